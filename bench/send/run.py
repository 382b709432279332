"""Send benchmark: `POST /send` to SMTP accept, through one `tidings worker` process.

In one run it starts, on free loopback ports and a temporary data dir (SQLite database and
SQLite job queue, the embedded defaults):

- `sink.py`, an aiosmtpd SMTP sink in a process of its own, which appends the accept time
  (`time.time()`), Subject and recipients of every message it accepts to a JSON-lines file;
- `tidings serve` with `TIDINGS_CONSUMER_WORKERS=0` (API only);
- one `tidings worker` with `TIDINGS_CONSUMER_WORKERS=<--threads>` (default 4).

Before timing starts it configures the SMTP provider, a template whose subject is
`bench {{ data.t }} {{ profile.n }}`, and N profiles (`bench-<n>`, `bench-<n>@bench.test`),
and sends one warm-up message end to end. Then, timed, it posts the N messages as fast as the
API takes them, 100 recipients per request (`to` = 100 `{"user_id": ...}`), with `data.t` =
`time.time()` when the request is built, and waits (at most `--timeout` seconds) until the
sink holds N of them. It reports

- sustained sends/s: messages accepted by the sink ÷ (last SMTP accept - first request);
- "enqueue to SMTP accept" latency, p50/p99 of (sink accept time - `data.t`);
- the API's own rate (recipients accepted ÷ time to post them all);
- duplicates (a recipient accepted twice by the sink), missing recipients, and the final
  message statuses (a count on the `message` table);
- CPU seconds of each process during the timed phase, and a timeline of queue depth,
  message statuses and sink count;
- the data dir's fsync latency just before and after the timed phase (each message's
  outcome is one fsync'd commit under SQLite's single write lock, so this bounds sends/s).

    .venv/bin/python bench/send/run.py [--messages 3000] [--threads 4] [--clients 2]
        [--commit REV | --src DIR] [--tidings-env TIDINGS_X=...] [--py-spy cpu|wall]

Budget: >= 500 sends/s with one worker process. Writes bench/results/send-<timestamp>.json.

By default it measures the working tree (the editable install). `--commit REV` measures
`src/` of a commit instead (extracted with `git archive`, first on PYTHONPATH), so a result
can name exactly what it measured while src/ is being edited; `--src DIR` runs a patched copy
of src/ for an experiment. `--py-spy cpu|wall` also records py-spy profiles (raw format) of
the worker and the API during the timed phase into bench/results/ (`pip install py-spy`
first; it is not a project dependency); `pyspy_summary.py` condenses one.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    REPO,
    BenchError,
    api_key,
    clean_environment,
    filesystem_of,
    free_port,
    machine,
    machine_busy_seconds,
    ms,
    own_cpu_seconds,
    percentile,
    run_benchmark,
    running,
    source_tree,
    start_py_spy,
    start_sink,
    stop_on_signals,
    tidings_environment,
    tidings_executable,
    wait_for,
    write_result,
)

RESULTS_DIR = REPO / "bench" / "results"
BUDGET_SENDS_PER_S = 500.0
BATCH = 100
TEMPLATE_ID = "bench-send"
TEMPLATE = {
    "name": "Send benchmark",
    "content": {
        "email": {
            "subject": "bench {{ data.t }} {{ profile.n }}",
            "text": "Hello {{ profile.n }}, this is benchmark message {{ data.t }}.",
            "html": "<p>Hello {{ profile.n }}, this is benchmark message {{ data.t }}.</p>",
        }
    },
}
WARMUP_USER = "bench-warmup"
PENDING_STATUSES = ("ENQUEUED", "DELAYED", "ROUTED")


# Set on Ctrl-C / SIGTERM: the client threads stop after their current request.
STOP = threading.Event()


# -- the sink's record -------------------------------------------------------------------------


@dataclass
class Accepted:
    at: float
    t: float | None
    n: str
    rcpt: list[str]


class SinkRecord:
    """Reads the sink's JSON lines as they are appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.messages: list[Accepted] = []
        self.unparsed: list[str] = []

    def poll(self) -> list[Accepted]:
        with self.path.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        new = []
        for raw in lines:
            if not raw.strip():
                continue
            record = json.loads(raw)
            parts = str(record["subject"]).split()
            if len(parts) != 3 or parts[0] != "bench":
                self.unparsed.append(record["subject"])
                continue
            try:
                t: float | None = float(parts[1])
            except ValueError:
                t = None
            new.append(Accepted(float(record["t"]), t, parts[2], list(record["rcpt"])))
        self.messages.extend(new)
        return new

    def bench_messages(self) -> list[Accepted]:
        return [m for m in self.messages if m.n != "warmup"]


# -- API ---------------------------------------------------------------------------------------


def client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
    )


def expect(response: httpx.Response, *codes: int) -> Any:
    if response.status_code not in codes:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None


def user_id(n: int) -> str:
    return f"bench-{n}"


def set_up(base_url: str, key: str, smtp_port: int, messages: int, clients: int) -> float:
    """Provider, template and profiles, through the API. Returns the seconds it took."""
    started = time.monotonic()
    with client(base_url, key) as api:
        expect(
            api.put(
                "/providers/smtp",
                json={
                    "config": {
                        "host": "127.0.0.1",
                        "port": smtp_port,
                        "security": "none",
                        "from_email": "bench@tidings.test",
                        "from_name": "Tidings bench",
                    }
                },
            ),
            200,
            201,
        )
        expect(api.put(f"/notifications/{TEMPLATE_ID}", json=TEMPLATE), 200, 201)
        expect(
            api.post(
                f"/profiles/{WARMUP_USER}",
                json={"profile": {"email": "warmup@bench.test", "n": "warmup"}},
            ),
            200,
            201,
        )

    def create(chunk: list[int]) -> None:
        with client(base_url, key) as api:
            for n in chunk:
                if STOP.is_set():
                    return
                expect(
                    api.post(
                        f"/profiles/{user_id(n)}",
                        json={"profile": {"email": f"{user_id(n)}@bench.test", "n": n}},
                    ),
                    200,
                    201,
                )

    chunks = [list(range(i, messages, clients)) for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(create, chunks))
    return time.monotonic() - started


@dataclass
class Request:
    first: int
    count: int
    t: float
    answered: float
    status: int
    request_id: str | None


def send_all(base_url: str, key: str, messages: int, clients: int) -> list[Request]:
    """Post the N messages, `BATCH` recipients per request, from `clients` threads."""
    batches = iter(range(0, messages, BATCH))
    lock = threading.Lock()
    done: list[Request] = []

    def worker() -> None:
        with client(base_url, key) as api:
            while not STOP.is_set():
                with lock:
                    first = next(batches, None)
                if first is None:
                    return
                count = min(BATCH, messages - first)
                t = time.time()
                body = {
                    "message": {
                        "to": [{"user_id": user_id(n)} for n in range(first, first + count)],
                        "template": TEMPLATE_ID,
                        "data": {"t": t},
                    }
                }
                response = api.post("/send", json=body)
                answered = time.time()
                request_id = response.json().get("requestId") if response.is_success else None
                with lock:
                    done.append(
                        Request(first, count, t, answered, response.status_code, request_id)
                    )
                if response.status_code != 202:
                    raise BenchError(f"POST /send answered {response.status_code}: {response.text}")

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    return sorted(done, key=lambda request: request.first)


# -- the database --------------------------------------------------------------------------------


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def status_counts(database: Path) -> dict[str, int]:
    connection = read_only(database)
    try:
        rows = connection.execute(
            "SELECT status, count(*) FROM message WHERE recipient != ? GROUP BY status",
            (WARMUP_USER,),
        ).fetchall()
        return {str(status): int(count) for status, count in rows}
    finally:
        connection.close()


def queued_jobs(jobs_db: Path) -> int | None:
    if not jobs_db.exists():
        return None
    connection = read_only(jobs_db)
    try:
        return int(connection.execute("SELECT count(*) FROM task").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        connection.close()


# -- statistics -------------------------------------------------------------------------------


def fsync_latency_ms(directory: Path, count: int = 40) -> dict[str, float | None]:
    """How long the data dir's filesystem takes to fsync a 16 KB append, just before and
    after the timed phase: every message's outcome is one SQLite commit (one fsync of the
    WAL) under the database's single write lock, so this bounds sends/s whatever the CPU,
    and on a shared disk it varies from run to run as much as the CPU noise does."""
    probe = directory / "fsync-probe"
    times = []
    descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            os.write(descriptor, b"\0" * 16384)
            start = time.perf_counter()
            os.fsync(descriptor)
            times.append(time.perf_counter() - start)
    finally:
        os.close(descriptor)
        probe.unlink(missing_ok=True)
    return {"p50": ms(percentile(times, 0.5)), "p90": ms(percentile(times, 0.9))}


def print_table(summary: dict[str, Any]) -> None:
    rows = [
        ("messages", f"{summary['messages']}"),
        ("worker threads", f"{summary['threads']}"),
        ("accepted by the sink", f"{summary['accepted']}"),
        ("duplicates / missing", f"{summary['duplicates']} / {summary['missing']}"),
        ("API: recipients/s taken", f"{summary['api_recipients_per_s']:.0f}"),
        ("API: time to take all", f"{summary['api_seconds']:.2f} s"),
        (
            "API: request p50 / max",
            f"{summary['api_request_ms']['p50']} / {summary['api_request_ms']['max']} ms",
        ),
        ("sustained sends/s", f"{summary['sends_per_s']:.0f}"),
        ("first request -> last accept", f"{summary['elapsed_s']:.2f} s"),
        ("enqueue->SMTP accept p50", f"{summary['latency_ms']['p50']} ms"),
        ("enqueue->SMTP accept p99", f"{summary['latency_ms']['p99']} ms"),
        ("enqueue->SMTP accept max", f"{summary['latency_ms']['max']} ms"),
        ("final statuses", json.dumps(summary["statuses"])),
        ("worker CPU per message", f"{summary['worker_cpu_ms_per_message']} ms"),
        (
            "other processes' CPU meanwhile",
            f"{summary['other_processes_cpu_seconds']} s in {summary['timed_wall_seconds']} s "
            f"({os.cpu_count()} CPUs)",
        ),
        (
            "fsync of the data dir p50/p90",
            " then ".join(
                f"{probe['p50']} / {probe['p90']} ms"
                for probe in (summary["data_dir_fsync_ms"][when] for when in ("before", "after"))
            ),
        ),
        (
            "CPU s (api/worker/sink)",
            " / ".join(
                f"{summary['cpu_seconds'].get(name, 0):.1f}" for name in ("api", "worker", "sink")
            ),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    verdict = "OK" if summary["within_budget"] else "UNDER BUDGET"
    print(f"\n  budget >= {BUDGET_SENDS_PER_S:.0f} sends/s with one worker process: {verdict}")


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark POST /send -> SMTP accept with one `tidings worker` process."
    )
    parser.add_argument("--messages", type=int, default=3000, help="messages (recipients)")
    parser.add_argument("--threads", type=int, default=4, help="consumer threads of the worker")
    parser.add_argument("--clients", type=int, default=2, help="concurrent API client threads")
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="max seconds to wait for the sink"
    )
    parser.add_argument(
        "--tidings-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a TIDINGS_* setting for serve and worker, e.g. TIDINGS_SQLITE_SYNCHRONOUS=normal "
        "(TIDINGS_* variables of the calling shell are not passed on)",
    )
    parser.add_argument(
        "--commit",
        default=None,
        metavar="REV",
        help="run Tidings' src/ as of this git revision (git archive into the temporary dir, "
        "first on PYTHONPATH) instead of the working tree, e.g. HEAD",
    )
    parser.add_argument(
        "--src",
        type=Path,
        default=None,
        metavar="DIR",
        help="run Tidings from this src/ directory (first on PYTHONPATH), e.g. a patched copy "
        "for an experiment",
    )
    parser.add_argument(
        "--py-spy",
        choices=["cpu", "wall"],
        default=None,
        help="profile worker and API with py-spy during the timed phase: `cpu` samples running "
        "threads only, `wall` also waiting ones (py-spy --idle)",
    )
    parser.add_argument(
        "--data-root", type=Path, default=None, help="where the temporary data dir is created"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")
    args = parser.parse_args(argv)
    if args.commit and args.src:
        parser.error("give --commit or --src, not both")
    if args.messages < 1 or args.threads < 1 or args.clients < 1:
        parser.error("--messages, --threads and --clients must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tidings = tidings_executable()
    if not tidings:
        print("`tidings` is not installed in this environment: pip install -e .", file=sys.stderr)
        return 2
    stop_on_signals(STOP.set)

    env = clean_environment()
    started = dt.datetime.now(dt.UTC)
    machine_info = machine()
    with contextlib.ExitStack() as stack:
        work_dir = Path(tempfile.mkdtemp(prefix="tidings-send-", dir=args.data_root))
        if args.keep_data:
            print(f"data dir kept at {work_dir}")
        else:
            stack.callback(shutil.rmtree, work_dir, ignore_errors=True)
        data_dir = work_dir / "data"
        database, jobs_db = data_dir / "tidings.db", data_dir / "jobs.db"
        source = source_tree(args.commit, args.src, work_dir)
        tidings_env = tidings_environment(env, data_dir, source, args.tidings_env)

        sink = start_sink(stack, work_dir, env)
        smtp_port = sink.port
        port = free_port()
        print(f"sink on :{smtp_port}; starting tidings serve (API only) on :{port}")
        api = stack.enter_context(
            running(
                "api",
                [
                    tidings,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data_dir),
                ],
                work_dir / "serve.log",
                dict(tidings_env, TIDINGS_CONSUMER_WORKERS="0"),
            )
        )
        base_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base_url}/health", timeout=2).status_code == 200
            return False

        wait_for("tidings serve to answer /health", healthy, [api, sink], 60)
        key = api_key(tidings, data_dir, tidings_env)
        print(f"starting one tidings worker with {args.threads} consumer thread(s)")
        worker = stack.enter_context(
            running(
                "worker",
                [tidings, "worker", "--data-dir", str(data_dir)],
                work_dir / "worker.log",
                dict(tidings_env, TIDINGS_CONSUMER_WORKERS=str(args.threads)),
            )
        )
        procs = [api, worker, sink]
        wait_for(
            "the worker to start",
            lambda: "Tidings worker:" in worker.log.read_text(errors="replace"),
            procs,
            60,
        )

        setup_s = set_up(base_url, key, smtp_port, args.messages, args.clients)
        print(f"provider, template and {args.messages} profiles set up in {setup_s:.1f}s")
        record = SinkRecord(work_dir / "sink.jsonl")
        with client(base_url, key) as warm:
            expect(
                warm.post(
                    "/send",
                    json={
                        "message": {
                            "to": {"user_id": WARMUP_USER},
                            "template": TEMPLATE_ID,
                            "data": {"t": time.time()},
                        }
                    },
                ),
                202,
            )
        wait_for("the warm-up message in the sink", lambda: record.poll() or None, procs, 60)
        if record.unparsed or record.messages[0].t is None:
            raise BenchError(f"unexpected subject in the sink: {record.unparsed}")
        time.sleep(1.0)  # The warm-up delivery's last commit.

        profiles: dict[str, Path] = {}
        if args.py_spy:
            profiles = start_py_spy(stack, [worker, api], work_dir, env, args.py_spy, RESULTS_DIR)

        # -- timed --------------------------------------------------------------------------
        print(
            f"sending {args.messages} messages ({BATCH} recipients per request, "
            f"{args.clients} client threads)"
        )
        fsync_before = fsync_latency_ms(data_dir)
        cpu_before = {proc.name: proc.cpu_seconds() for proc in procs}
        cpu_before["runner"] = own_cpu_seconds()
        busy_before = machine_busy_seconds()
        timeline: list[dict[str, Any]] = []
        t0 = time.time()
        sending: dict[str, Any] = {}

        def post_everything() -> None:
            try:
                sending["requests"] = send_all(base_url, key, args.messages, args.clients)
            except BaseException as exc:  # reported by the main thread
                sending["error"] = exc

        poster = threading.Thread(target=post_everything, daemon=True)
        poster.start()
        deadline = t0 + args.timeout
        next_sample = t0
        while time.time() < deadline:
            record.poll()
            if "error" in sending:
                raise BenchError(f"sending failed: {sending['error']!r}")
            now = time.time()
            if now >= next_sample:
                timeline.append(
                    {
                        "s": round(now - t0, 2),
                        "sink": len(record.bench_messages()),
                        "queued_jobs": queued_jobs(jobs_db),
                        "statuses": status_counts(database),
                    }
                )
                next_sample = now + 0.5
            if len({m.n for m in record.bench_messages()}) >= args.messages:
                break
            for proc in procs:
                proc.check_alive()
            time.sleep(0.05)
        else:
            print(f"  warning: the sink did not get every message within {args.timeout:.0f}s")
        cpu_after = {proc.name: proc.cpu_seconds() for proc in procs}
        cpu_after["runner"] = own_cpu_seconds()
        busy_after = machine_busy_seconds()
        timed_s = time.time() - t0
        fsync_after = fsync_latency_ms(data_dir)
        poster.join(60)
        if "error" in sending:
            raise BenchError(f"sending failed: {sending['error']!r}")
        requests: list[Request] = sending.get("requests", [])

        # -- settle and verify --------------------------------------------------------------
        settle_deadline = time.time() + 30
        statuses = status_counts(database)
        while time.time() < settle_deadline and any(s in statuses for s in PENDING_STATUSES):
            time.sleep(0.25)
            statuses = status_counts(database)
        time.sleep(1.0)
        record.poll()  # Anything (a duplicate) that arrived late.
        statuses = status_counts(database)
        data_filesystem = filesystem_of(data_dir.resolve())
        if profiles:
            stack.close()  # Stops py-spy (and everything else) so the profiles get written.

    bench = record.bench_messages()
    per_recipient = collections.Counter(m.n for m in bench)
    expected = {str(n) for n in range(args.messages)}
    duplicates = sum(count - 1 for count in per_recipient.values() if count > 1)
    missing = len(expected - set(per_recipient))
    stray = sorted(set(per_recipient) - expected)
    wrong_rcpt = sum(1 for m in bench if m.rcpt != [f"{user_id(int(m.n))}@bench.test"])
    first_request = min(request.t for request in requests) if requests else t0
    last_answer = max(request.answered for request in requests) if requests else t0
    first_time = {}
    for m in sorted(bench, key=lambda m: m.at):
        first_time.setdefault(m.n, m)
    unique = list(first_time.values())
    last_accept = max((m.at for m in unique), default=first_request)
    elapsed = last_accept - first_request
    latencies = [m.at - m.t for m in unique if m.t is not None]
    api_latencies = [request.answered - request.t for request in requests]
    api_seconds = last_answer - first_request
    cpu = {
        name: round(cpu_after[name] - cpu_before[name], 2)
        for name in cpu_before
        if cpu_before[name] is not None and cpu_after.get(name) is not None
    }
    others = None
    if busy_before is not None and busy_after is not None:
        # What the rest of the machine (other users' work, py-spy) used meanwhile.
        others = round(busy_after - busy_before - sum(cpu.values()), 1)
    sends_per_s = len(unique) / elapsed if elapsed > 0 else 0.0
    summary: dict[str, Any] = {
        "messages": args.messages,
        "threads": args.threads,
        "accepted": len(unique),
        "duplicates": duplicates,
        "missing": missing,
        "stray": stray,
        "wrong_recipient": wrong_rcpt,
        "sends_per_s": round(sends_per_s, 1),
        "elapsed_s": round(elapsed, 3),
        "latency_ms": {
            "p50": ms(percentile(latencies, 0.5)),
            "p90": ms(percentile(latencies, 0.9)),
            "p99": ms(percentile(latencies, 0.99)),
            "max": ms(max(latencies, default=None)),
        },
        "api_recipients_per_s": round(
            sum(r.count for r in requests) / api_seconds if api_seconds > 0 else 0.0, 1
        ),
        "api_seconds": round(api_seconds, 3),
        "api_request_ms": {
            "p50": ms(percentile(api_latencies, 0.5)),
            "max": ms(max(api_latencies, default=None)),
        },
        "statuses": statuses,
        "cpu_seconds": cpu,
        "worker_cpu_ms_per_message": round(1000 * cpu.get("worker", 0.0) / max(1, len(unique)), 2),
        "other_processes_cpu_seconds": others,
        "timed_wall_seconds": round(timed_s, 2),
        "data_dir_fsync_ms": {"before": fsync_before, "after": fsync_after},
        "budget_sends_per_s": BUDGET_SENDS_PER_S,
        "within_budget": sends_per_s >= BUDGET_SENDS_PER_S
        and not duplicates
        and not missing
        and statuses.get("SENT", 0) == args.messages,
    }
    print_table(summary)
    ok = not duplicates and not missing and not stray and not wrong_rcpt
    if not ok:
        print(
            f"  verification FAILED: {duplicates} duplicates, {missing} missing, "
            f"{len(stray)} stray, {wrong_rcpt} wrong recipients"
        )

    result = {
        "benchmark": "send",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info,
        "settings": {
            "messages": args.messages,
            "worker_processes": 1,
            "worker_threads": args.threads,
            "api_consumer_workers": 0,
            "recipients_per_request": BATCH,
            "api_clients": args.clients,
            "timeout_s": args.timeout,
            "tidings_env": args.tidings_env,
            "source": {k: v for k, v in source.items() if k != "path"},
            "job_storage": "sqlite",
            "data_dir_filesystem": data_filesystem,
            "template": TEMPLATE,
            "py_spy": {"mode": args.py_spy, **{n: p.name for n, p in profiles.items()}},
        },
        "summary": summary,
        "setup_s": round(setup_s, 2),
        "requests": [
            {
                "first": r.first,
                "count": r.count,
                "s": round(r.t - first_request, 3),
                "ms": ms(r.answered - r.t),
                "status": r.status,
            }
            for r in requests
        ],
        "timeline": timeline,
    }
    output = args.output or RESULTS_DIR / f"send-{started:%Y%m%dT%H%M%SZ}.json"
    for name, path in profiles.items():
        print(f"  py-spy profile of {name}: {path}")
    write_result(result, output)
    return 0 if ok else 1


if __name__ == "__main__":
    run_benchmark(main, "processes")
