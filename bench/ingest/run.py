"""Ingest benchmark: single-event `POST /inbound/segment` on a live `tidings serve`.

In one run it starts, on free loopback ports,

- `tidings serve` with a temporary `--data-dir` (SQLite, the default settings), and
- `echo_app.py`, a bare Starlette app that echoes the body back, under the same uvicorn
  settings (one process, loop/http "auto", access log off),

then loads both with the same wrk script and body (`post.lua`: the product page's track
event, a unique messageId per request), alternating between them for a few rounds, because
the machine is shared and noisy. It reports the median req/s and p99 latency of each, the
ratio Tidings ÷ echo (budget: >= 0.5), and checks that every event answered 202 is stored.

    .venv/bin/python bench/ingest/run.py [--duration 10] [--connections 32] [--rounds 3]

Needs wrk (`apt-get install -y wrk`). Writes bench/results/ingest-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    BenchError,
    api_key,
    clean_environment,
    filesystem_of,
    free_port,
    run_benchmark,
    stop_on_signals,
    stop_process,
    tidings_executable,
    write_result,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LUA_SCRIPT = HERE / "post.lua"
ECHO_APP = HERE / "echo_app.py"
RESULTS_DIR = REPO / "bench" / "results"
PATH = "/inbound/segment"
BUDGET = 0.5
WRK_INSTALL_HINT = (
    "wrk, the HTTP load generator, is not installed (or not on PATH).\n"
    "Install it, then run this again:\n"
    "  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y wrk\n"
    "  macOS:          brew install wrk\n"
)
SAMPLE_EVENT: dict[str, Any] = {
    "messageId": "bench-smoke-1",
    "timestamp": "2021-12-07T08:41:59.410Z",
    "type": "track",
    "email": "test@example.org",
    "projectId": "4GgKeBoVJkT9EZL4vAmduv",
    "properties": {"property1": 1, "property2": "test", "property3": True},
    "userId": "test-user-cqw3gr",
    "event": "Segment Test Event Name",
}


# -- processes -------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process (all its threads), Linux only."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running(
    name: str, argv: list[str], port: int, log: Path, env: dict[str, str]
) -> Iterator[Server]:
    with log.open("wb") as log_file:
        # A session of its own: Ctrl-C reaches this script, which then stops the server.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = Server(name, port, process, log)
    try:
        yield server
    finally:
        stop_process(process)


def wait_until_up(server: Server, probe: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(
                f"{server.name} exited with code {server.process.returncode}:\n" + server.log_tail()
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{probe}", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # It answers HTTP: it is up.
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{server.name} did not come up within {timeout:.0f}s:\n{server.log_tail()}")


def pending_events(database: Path) -> int:
    """Events Tidings has stored but not processed yet (its in-process consumer's backlog)."""
    if not database.exists():
        return 0
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        row = connection.execute("SELECT count(*) FROM event WHERE status = 'received'").fetchone()
        return int(row[0])
    finally:
        connection.close()


def quiesce(servers: list[Server], database: Path, timeout: float = 180.0) -> float:
    """Wait until the servers are idle (< 5% of a core for two 0.5 s windows in a row) and
    Tidings' backlog of unprocessed events has stopped shrinking (it is 0 once the in-process
    consumer has caught up; it stays put with TIDINGS_CONSUMER_WORKERS=0), so that one run's
    leftovers do not slow the next. Returns the seconds waited."""
    start = time.monotonic()
    window = 0.5
    before = [server.cpu_seconds() for server in servers]
    backlog = pending_events(database)
    idle_windows = 0
    while time.monotonic() - start < timeout:
        time.sleep(window)
        after = [server.cpu_seconds() for server in servers]
        busy = any(
            a is not None and b is not None and a - b > 0.05 * window
            for a, b in zip(after, before, strict=True)
        )
        before = after
        previous, backlog = backlog, pending_events(database)
        idle_windows = 0 if busy or backlog != previous else idle_windows + 1
        if idle_windows >= 2:
            return time.monotonic() - start
    print(f"  warning: servers still busy after {timeout:.0f}s; measuring anyway")
    return time.monotonic() - start


# -- HTTP helpers ----------------------------------------------------------------------------


def http(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "User-Agent": "SegmentCourier",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# -- wrk ---------------------------------------------------------------------------------------


@dataclass
class WrkRun:
    target: str
    round: int
    phase: str
    tag: str
    connections: int
    threads: int
    duration_s: float
    requests: int
    ok: int
    non_2xx: int
    socket_errors: dict[str, int]
    statuses: dict[str, int]
    generated: int
    duplicates: int
    rps: float
    wrk_rps: float
    latency_ms: dict[str, float]
    idle_wait_s: float = 0.0  # before the warm-up: consumer backlog drained, servers idle
    acked_ids: list[str] = field(default_factory=list, repr=False)
    stdout: str = field(default="", repr=False)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        del data["acked_ids"]
        data["acked"] = len(self.acked_ids)
        return data


def run_wrk(
    wrk: str,
    server: Server,
    key: str,
    *,
    target: str,
    round_number: int,
    phase: str,
    seconds: float,
    connections: int,
    threads: int,
    timeout_s: float,
    work_dir: Path,
) -> WrkRun:
    tag = f"{target}-r{round_number}-{phase}"
    out = work_dir / f"{tag}.json"
    env = dict(os.environ, BENCH_API_KEY=key, BENCH_TAG=tag, BENCH_OUT=str(out))
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        server.url,
    ]
    completed = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=seconds + timeout_s + 60
    )
    if completed.returncode != 0 or not out.exists():
        raise BenchError(f"wrk failed ({completed.returncode}):\n{completed.stderr}")
    summary = json.loads(out.read_text())
    acked = (work_dir / f"{tag}.json.ids").read_text().split()
    statuses = {str(code): int(count) for code, count in summary["statuses"].items()}
    ok = sum(count for code, count in statuses.items() if code.startswith("2"))
    non_2xx = summary["errors"]["status"]
    printed = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", completed.stdout)
    if printed:  # wrk prints the line only when there were some.
        non_2xx = max(non_2xx, int(printed.group(1)))
    duration = summary["duration_us"] / 1e6
    latency = summary["latency_us"]
    return WrkRun(
        target=target,
        round=round_number,
        phase=phase,
        tag=tag,
        connections=connections,
        threads=threads,
        duration_s=round(duration, 3),
        requests=summary["requests"],
        ok=ok,
        non_2xx=non_2xx,
        socket_errors={
            name: count for name, count in summary["errors"].items() if name != "status"
        },
        statuses=statuses,
        generated=summary["sent"],
        duplicates=summary["duplicates"],
        rps=round(ok / duration, 1),
        wrk_rps=round(summary["requests"] / duration, 1),
        latency_ms={name: round(value / 1000, 3) for name, value in latency.items()},
        acked_ids=acked,
        stdout=completed.stdout,
    )


# -- verification ------------------------------------------------------------------------------


def stored_ids(database: Path) -> dict[str, set[str]]:
    """The stored Segment messageIds, grouped by run tag (the part before "-t<thread>-")."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute("SELECT message_id FROM event WHERE source = 'segment'")
        grouped: dict[str, set[str]] = {}
        for (message_id,) in rows:
            tag = re.sub(r"-t\d+-\d+$", "", message_id)
            grouped.setdefault(tag, set()).add(message_id)
        return grouped
    finally:
        connection.close()


def verify(runs: list[WrkRun], database: Path, smoke_ids: set[str]) -> dict[str, Any]:
    """Every event answered 202 is stored, once; the only extra rows are the requests that
    were still in flight (at most one per connection) when wrk stopped."""
    stored = stored_ids(database)
    problems: list[str] = []
    per_run = []
    total_acked = total_stored = total_in_flight = 0
    for run in runs:
        acked = set(run.acked_ids)
        rows = stored.pop(run.tag, set())
        missing = acked - rows
        in_flight = len(rows - acked)
        total_acked += len(acked)
        total_stored += len(rows)
        total_in_flight += in_flight
        if len(acked) != len(run.acked_ids):
            problems.append(f"{run.tag}: a messageId was answered twice")
        if missing:
            problems.append(f"{run.tag}: {len(missing)} events answered 202 are not stored")
        if in_flight > run.connections or len(rows) > run.generated:
            problems.append(f"{run.tag}: {in_flight} stored events were never answered")
        if run.duplicates:
            problems.append(f"{run.tag}: {run.duplicates} answers said duplicate")
        if run.non_2xx or any(run.socket_errors.values()):
            problems.append(
                f"{run.tag}: {run.non_2xx} non-2xx responses, socket errors {run.socket_errors}"
            )
        per_run.append(
            {
                "tag": run.tag,
                "answered_202": run.statuses.get("202", 0),
                "stored": len(rows),
                "in_flight_at_stop": in_flight,
                "missing": len(missing),
            }
        )
    for message_id in smoke_ids:
        if not stored.pop(message_id, None):
            problems.append(f"the smoke event {message_id} is not stored")
    if stored:
        problems.append(f"unexpected stored events: {sorted(stored)}")
    return {
        "ok": not problems,
        "problems": problems,
        "answered_202": total_acked,
        "stored": total_stored,
        "in_flight_at_stop": total_in_flight,
        "runs": per_run,
    }


# -- reporting ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("tidings", "uvicorn", "starlette", "fastapi", "uvloop", "httptools"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    versions["sqlite"] = sqlite3.sqlite_version
    wrk_version = subprocess.run(
        ["wrk", "-v"], capture_output=True, text=True, check=False
    ).stdout.split("Copyright")[0]
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "wrk": wrk_version.strip(),
        "git": commit,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def tidings_source(env: dict[str, str]) -> str:
    """Which tidings package `tidings serve` imports (PYTHONPATH can point at another tree)."""
    output = subprocess.run(
        [sys.executable, "-c", "import tidings; print(tidings.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    ).stdout.strip()
    path = Path(output).parent if output else None
    if path is None:
        return "unknown"
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    return str(path)


def export_commit(revision: str, destination: Path) -> tuple[str, Path]:
    """`git archive` the commit's src/ into destination; returns (short hash, src dir)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return commit, destination / "src"


def uvicorn_settings() -> dict[str, Any]:
    return {
        "processes": 1,
        "loop": "auto -> " + ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio"),
        "http": "auto -> " + ("httptools" if importlib.util.find_spec("httptools") else "h11"),
        "access_log": False,
        "log_level": "warning",
    }


def print_table(runs: list[WrkRun], summary: dict[str, Any]) -> None:
    print()
    print(f"{'round':>6}  {'target':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for run in runs:
        print(
            f"{run.round:>6}  {run.target:<8} {run.rps:>9.0f} {run.latency_ms['p50']:>8.2f} "
            f"{run.latency_ms['p99']:>8.2f} {run.non_2xx:>8}"
        )
    print("-" * 49)
    for target in ("echo", "tidings"):
        median = summary[target]
        print(
            f"{'median':>6}  {target:<8} {median['rps']:>9.0f} {median['p50_ms']:>8.2f} "
            f"{median['p99_ms']:>8.2f}"
        )
    verdict = "OK" if summary["ratio"] >= BUDGET else "OVER BUDGET"
    print(
        f"\nratio tidings/echo req/s: {summary['ratio']:.3f} "
        f"(budget >= {BUDGET}: {verdict}; per-round ratios {summary['round_ratios']})"
    )


def medians(runs: list[WrkRun]) -> dict[str, float]:
    return {
        "rps": round(statistics.median(run.rps for run in runs), 1),
        "p50_ms": round(statistics.median(run.latency_ms["p50"] for run in runs), 3),
        "p99_ms": round(statistics.median(run.latency_ms["p99"] for run in runs), 3),
    }


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark single-event POST /inbound/segment against a bare echo app."
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each: echo and tidings)")
    parser.add_argument("--timeout", type=float, default=10.0, help="wrk request timeout, s")
    parser.add_argument(
        "--tidings-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a TIDINGS_* setting for `tidings serve`, e.g. TIDINGS_SQLITE_SYNCHRONOUS=normal "
        "(TIDINGS_* variables of the calling shell are not passed on)",
    )
    parser.add_argument(
        "--data-root", type=Path, default=None, help="where the temporary data dir is created"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--commit",
        default=None,
        metavar="REV",
        help="measure src/ of this commit (git archive), not the working tree",
    )
    source.add_argument(
        "--src", type=Path, default=None, help="measure this copy of src/ (e.g. a patched one)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print(WRK_INSTALL_HINT, file=sys.stderr)
        return 2
    tidings = tidings_executable()
    if not tidings:
        print("`tidings` is not installed in this environment: pip install -e .", file=sys.stderr)
        return 2
    stop_on_signals()

    env = clean_environment()
    tidings_env = dict(env)
    for assignment in args.tidings_env:
        name, _, value = assignment.partition("=")
        tidings_env[name] = value

    started = dt.datetime.now(dt.UTC)
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    with contextlib.ExitStack() as stack:
        work_dir = Path(tempfile.mkdtemp(prefix="tidings-bench-", dir=args.data_root))
        if args.keep_data:
            print(f"data dir kept at {work_dir}")
        else:
            stack.callback(shutil.rmtree, work_dir, ignore_errors=True)
        data_dir = work_dir / "data"
        code = "working tree"
        if args.commit:
            code, src = export_commit(args.commit, work_dir / "tree")
        elif args.src:
            src = args.src.resolve()
            code = str(src)
        if args.commit or args.src:
            paths = [str(src), tidings_env.get("PYTHONPATH", "")]
            tidings_env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
        source = tidings_source(tidings_env)
        print(f"measuring Tidings from {source} ({code})")
        tidings_port, echo_port = free_port(), free_port()
        print(f"starting tidings serve on :{tidings_port} and the echo app on :{echo_port}")
        server = stack.enter_context(
            running(
                "tidings",
                [
                    tidings,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(tidings_port),
                    "--data-dir",
                    str(data_dir),
                ],
                tidings_port,
                work_dir / "tidings.log",
                tidings_env,
            )
        )
        echo = stack.enter_context(
            running(
                "echo",
                [sys.executable, str(ECHO_APP), "--port", str(echo_port)],
                echo_port,
                work_dir / "echo.log",
                env,
            )
        )
        wait_until_up(server, "/health")
        wait_until_up(echo, PATH)
        key = api_key(tidings, data_dir, tidings_env)

        status, body = http("POST", server.url, key, SAMPLE_EVENT)
        if status != 202:
            raise BenchError(f"smoke POST to tidings answered {status}: {body}")
        status, body = http("POST", echo.url, key, SAMPLE_EVENT)
        if status != 200 or body != SAMPLE_EVENT:
            raise BenchError(f"smoke POST to echo answered {status}: {body}")

        servers = {"echo": echo, "tidings": server}
        runs: list[WrkRun] = []
        print(
            f"{args.rounds} rounds x (echo, tidings): {args.warmup:g}s warm-up + "
            f"{args.duration:g}s, {args.connections} connections, {args.threads} wrk thread(s)"
        )
        for round_number in range(1, args.rounds + 1):
            order = ["echo", "tidings"] if round_number % 2 else ["tidings", "echo"]
            for target in order:
                idle = quiesce(list(servers.values()), data_dir / "tidings.db")
                common: dict[str, Any] = {
                    "target": target,
                    "round_number": round_number,
                    "connections": args.connections,
                    "threads": args.threads,
                    "timeout_s": args.timeout,
                    "work_dir": work_dir,
                }
                if args.warmup > 0:
                    runs.append(
                        run_wrk(
                            wrk, servers[target], key, phase="warm", seconds=args.warmup, **common
                        )
                    )
                run = run_wrk(
                    wrk, servers[target], key, phase="measure", seconds=args.duration, **common
                )
                run.idle_wait_s = round(idle, 2)
                runs.append(run)
                print(
                    f"  round {round_number} {target:<8} {run.rps:>8.0f} req/s  "
                    f"p99 {run.latency_ms['p99']:>7.2f} ms  non-2xx {run.non_2xx}  "
                    f"(waited {idle:.1f}s for idle servers first)"
                )

        drained = quiesce([server], data_dir / "tidings.db")  # In-flight requests commit.
        verification = verify(
            [run for run in runs if run.target == "tidings"],
            data_dir / "tidings.db",
            {str(SAMPLE_EVENT["messageId"])},
        )
        spot_id = next(run.acked_ids[-1] for run in reversed(runs) if run.target == "tidings")
        status, _ = http(
            "GET",
            f"http://127.0.0.1:{tidings_port}/integrations/segment/events/{spot_id}",
            key,
        )
        verification["api_spot_check"] = {"messageId": spot_id, "status": status}
        verification["final_drain_s"] = round(drained, 2)
        if status != 200:
            verification["ok"] = False
            verification["problems"].append(f"GET events/{spot_id} answered {status}")
        echo_runs = [run for run in runs if run.target == "echo"]
        for run in echo_runs:
            if run.non_2xx or any(run.socket_errors.values()) or run.ok != len(run.acked_ids):
                verification["ok"] = False
                verification["problems"].append(f"{run.tag}: bad echo responses")
        data_filesystem = filesystem_of(data_dir.resolve())

    measured = [run for run in runs if run.phase == "measure"]
    by_target = {t: [run for run in measured if run.target == t] for t in ("echo", "tidings")}
    summary: dict[str, Any] = {t: medians(by_target[t]) for t in by_target}
    summary["ratio"] = round(summary["tidings"]["rps"] / summary["echo"]["rps"], 3)
    summary["round_ratios"] = [
        round(t.rps / e.rps, 3)
        for e, t in zip(by_target["echo"], by_target["tidings"], strict=True)
    ]
    summary["budget"] = BUDGET
    summary["within_budget"] = summary["ratio"] >= BUDGET

    print_table(measured, summary)
    print(
        f"verification: {verification['answered_202']} events answered 202, "
        f"{verification['stored']} stored ({verification['in_flight_at_stop']} more were in "
        "flight when wrk stopped and got committed after; 0 answered events missing)"
        if verification["ok"]
        else "verification FAILED:\n  " + "\n  ".join(verification["problems"])
    )

    result = {
        "benchmark": "ingest",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": load_at_start},
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "rounds": args.rounds,
            "timeout_s": args.timeout,
            "uvicorn": uvicorn_settings(),
            "tidings_env": args.tidings_env,
            "tidings_source": source,
            "measured_code": code,
            "data_dir_filesystem": data_filesystem,
            "body_bytes": len(json.dumps(SAMPLE_EVENT, separators=(",", ":"))),
        },
        "summary": summary,
        "verification": verification,
        "runs": [run.public() for run in runs],
    }
    output = args.output or RESULTS_DIR / f"ingest-{started:%Y%m%dT%H%M%SZ}.json"
    write_result(result, output)
    return 0 if verification["ok"] else 1


if __name__ == "__main__":
    run_benchmark(main, "servers")
