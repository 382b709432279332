"""Ingest benchmark: single-event `POST /inbound/segment` on a live `tidings serve`.

In one run it starts, on free loopback ports,

- `tidings serve` with a temporary `--data-dir` (SQLite, the default settings), and
- the floor, `echo_app.py`: a bare Starlette app that echoes the body back, under the same
  uvicorn settings (one process, loop/http "auto", access log off),

then loads both with the same wrk script and body (`post.lua`: the product page's track
event, a unique messageId per request), alternating between them for a few rounds, because
the machine is shared and noisy. It reports the median req/s and p99 latency of each, the
ratio Tidings / echo (budget: >= 0.5), and checks that every event answered 202 is stored.

    .venv/bin/python bench/ingest/run.py [--duration 6] [--connections 32] [--rounds 3]
        [--quick] [--commit REV | --src DIR] [--tidings-env TIDINGS_X=...]

Needs wrk (`apt-get install -y wrk`). Writes bench/results/ingest-<timestamp>.json. Exits 1
if the verification fails or the budget is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    RESULTS_DIR,
    BenchError,
    Proc,
    add_common_arguments,
    api_key,
    apply_defaults,
    clean_environment,
    filesystem_of,
    free_port,
    machine,
    make_work_dir,
    pending_events,
    print_verdict,
    quiesce,
    run_benchmark,
    running,
    source_tree,
    start_serve,
    stop_on_signals,
    tidings_environment,
    tidings_executable,
    uvicorn_settings,
    verdict,
    wait_http,
    write_result,
)

HERE = Path(__file__).resolve().parent
LUA_SCRIPT = HERE / "post.lua"
ECHO_APP = HERE / "echo_app.py"
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


# -- the database ------------------------------------------------------------------------------


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
    server: Proc,
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
        f"http://127.0.0.1:{server.port}{PATH}",
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
    print(f"per-round ratios tidings/echo: {summary['round_ratios']}")


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
    parser.add_argument("--duration", type=float, help="seconds measured per run (6; quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per run (2; quick 1)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, help="rounds, each echo and tidings (3; quick 1)")
    parser.add_argument("--timeout", type=float, default=10.0, help="wrk request timeout, s")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    apply_defaults(
        args,
        {"duration": 6.0, "warmup": 2.0, "rounds": 3},
        {"duration": 3.0, "warmup": 1.0, "rounds": 1},
    )
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


def start_servers(
    stack: contextlib.ExitStack, tidings: str, work_dir: Path, env: dict[str, str]
) -> tuple[Proc, Proc]:
    """`tidings serve` (in env, the measured source's) and the echo app, up and answering."""
    tidings_port, echo_port = free_port(), free_port()
    print(f"starting tidings serve on :{tidings_port} and the echo app on :{echo_port}")
    server = start_serve(stack, tidings, "tidings", work_dir / "tidings.log", env, tidings_port)
    echo = stack.enter_context(
        running(
            "echo",
            [sys.executable, str(ECHO_APP), "--port", str(echo_port)],
            work_dir / "echo.log",
            clean_environment(),
        )
    )
    echo.port = echo_port
    wait_http(server, "/health")
    wait_http(echo, PATH)
    return server, echo


def measure(
    wrk: str, servers: dict[str, Proc], key: str, args: argparse.Namespace, work_dir: Path
) -> list[WrkRun]:
    """Rounds of (echo, tidings), in alternating order, each after the servers are idle."""
    database = work_dir / "data" / "tidings.db"
    runs: list[WrkRun] = []
    print(
        f"{args.rounds} rounds x (echo, tidings): {args.warmup:g}s warm-up + "
        f"{args.duration:g}s, {args.connections} connections, {args.threads} wrk thread(s)"
    )
    for round_number in range(1, args.rounds + 1):
        order = ["echo", "tidings"] if round_number % 2 else ["tidings", "echo"]
        for target in order:
            idle = quiesce(list(servers.values()), lambda: pending_events(database))
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
                    run_wrk(wrk, servers[target], key, phase="warm", seconds=args.warmup, **common)
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
    return runs


def check(server: Proc, runs: list[WrkRun], key: str, database: Path) -> dict[str, Any]:
    """Every answered event stored once (see verify), one read back through the API, and
    the echo runs clean."""
    drained = quiesce([server], lambda: pending_events(database))  # In-flight requests commit.
    verification = verify(
        [run for run in runs if run.target == "tidings"],
        database,
        {str(SAMPLE_EVENT["messageId"])},
    )
    spot_id = next(run.acked_ids[-1] for run in reversed(runs) if run.target == "tidings")
    status, _ = http(
        "GET", f"http://127.0.0.1:{server.port}/integrations/segment/events/{spot_id}", key
    )
    verification["api_spot_check"] = {"messageId": spot_id, "status": status}
    verification["final_drain_s"] = round(drained, 2)
    if status != 200:
        verification["ok"] = False
        verification["problems"].append(f"GET events/{spot_id} answered {status}")
    for run in runs:
        bad = run.non_2xx or any(run.socket_errors.values()) or run.ok != len(run.acked_ids)
        if run.target == "echo" and bad:
            verification["ok"] = False
            verification["problems"].append(f"{run.tag}: bad echo responses")
    return verification


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print(WRK_INSTALL_HINT, file=sys.stderr)
        return 2
    tidings = tidings_executable()
    stop_on_signals()

    started = dt.datetime.now(dt.UTC)
    machine_info = machine()
    with contextlib.ExitStack() as stack:
        work_dir = make_work_dir(stack, args, "tidings-ingest-")
        data_dir = work_dir / "data"
        source = source_tree(args.commit, args.src, work_dir)
        tidings_env = tidings_environment(clean_environment(), data_dir, source, args.tidings_env)
        server, echo = start_servers(stack, tidings, work_dir, tidings_env)
        key = api_key(tidings, data_dir, tidings_env)

        status, body = http("POST", f"http://127.0.0.1:{server.port}{PATH}", key, SAMPLE_EVENT)
        if status != 202:
            raise BenchError(f"smoke POST to tidings answered {status}: {body}")
        status, body = http("POST", f"http://127.0.0.1:{echo.port}{PATH}", key, SAMPLE_EVENT)
        if status != 200 or body != SAMPLE_EVENT:
            raise BenchError(f"smoke POST to echo answered {status}: {body}")

        runs = measure(wrk, {"echo": echo, "tidings": server}, key, args, work_dir)
        verification = check(server, runs, key, data_dir / "tidings.db")
        data_filesystem = filesystem_of(data_dir.resolve())

    measured = [run for run in runs if run.phase == "measure"]
    by_target = {t: [run for run in measured if run.target == t] for t in ("echo", "tidings")}
    summary: dict[str, Any] = {t: medians(by_target[t]) for t in by_target}
    summary["round_ratios"] = [
        round(t.rps / e.rps, 3)
        for e, t in zip(by_target["echo"], by_target["tidings"], strict=True)
    ]
    figures = verdict("req/s", summary["echo"]["rps"], summary["tidings"]["rps"], BUDGET)

    print_table(measured, summary)
    print(
        f"verification: {verification['answered_202']} events answered 202, "
        f"{verification['stored']} stored ({verification['in_flight_at_stop']} more were in "
        "flight when wrk stopped and got committed after; 0 answered events missing)"
        if verification["ok"]
        else "verification FAILED:\n  " + "\n  ".join(verification["problems"])
    )
    print_verdict("ingest", figures)

    result = {
        "benchmark": "ingest",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info,
        "source": {k: v for k, v in source.items() if k != "path"},
        "budget": figures,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "rounds": args.rounds,
            "quick": args.quick,
            "timeout_s": args.timeout,
            "uvicorn": uvicorn_settings(),
            "tidings_env": args.tidings_env,
            "data_dir_filesystem": data_filesystem,
            "body_bytes": len(json.dumps(SAMPLE_EVENT, separators=(",", ":"))),
        },
        "summary": summary,
        "verification": verification,
        "runs": [run.public() for run in runs],
    }
    output = args.output or RESULTS_DIR / f"ingest-{started:%Y%m%dT%H%M%SZ}.json"
    write_result(result, output)
    return 0 if verification["ok"] and figures["met"] else 1


if __name__ == "__main__":
    run_benchmark(main, "servers")
