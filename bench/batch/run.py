"""Batch benchmark: `POST /v1/batch` events/s with 100-event batches on a live `tidings serve`.

It starts `tidings serve` on a free loopback port with a temporary `--data-dir` (SQLite, the
default settings unless `--tidings-env` says otherwise), then, for a few rounds, posts
batches the way analytics-python does (`{"batch": [...100 tracks...], "sentAt", "writeKey"}`,
`Content-Type: application/json`) from N client threads, each on one keep-alive
connection, each waiting for its answer before sending the next. Every event has a unique
`messageId`. A 200 is sent only once the batch is committed, so every answered event is a
durable write. It reports events/s (events answered 200 / measured seconds), batch latency
p50/p99, and checks that every answered event is stored exactly once. Budget: >= 20,000
events/s.

    .venv/bin/python bench/batch/run.py [--duration 10] [--clients 8] [--rounds 3]

Writes bench/results/batch-<timestamp>.json. The process helpers come from bench/common.py
and bench/ingest/run.py.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    BenchError,
    api_key,
    clean_environment,
    filesystem_of,
    free_port,
    peak_rss_mb,
    run_benchmark,
    stop_on_signals,
    tidings_executable,
    write_result,
)

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
REPO = BENCH.parent


def _load_ingest_helpers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ingest_run", BENCH / "ingest" / "run.py")
    if spec is None or spec.loader is None:
        raise BenchError("bench/ingest/run.py is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Its dataclasses look their module up.
    spec.loader.exec_module(module)
    return module


ingest = _load_ingest_helpers()
RESULTS_DIR = REPO / "bench" / "results"
PATH = "/v1/batch"
BUDGET = 20_000
# The API process's memory under load (the architecture's budgets).
RSS_BUDGET_MB = 200


def event(message_id: str, n: int, timestamp: str) -> dict[str, Any]:
    """A track as analytics-python builds it."""
    return {
        "type": "track",
        "event": "Order Shipped",
        "userId": f"bench-user-{n % 1000}",
        "properties": {"order_id": n, "revenue": 19.99, "currency": "EUR"},
        "messageId": message_id,
        "timestamp": timestamp,
        "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
        "integrations": {},
    }


def batch_body(key: str, prefix: str, size: int, random_ids: bool = True) -> bytes:
    """With `random_ids`, messageIds are `<prefix>-<uuid4>` like the SDKs' uuid4s (random
    positions in the unique index); otherwise `<prefix>-<n>`, which sort together."""
    sent_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    if random_ids:
        ids = [f"{prefix}-{uuid.uuid4()}" for _ in range(size)]
    else:
        ids = [f"{prefix}-{n}" for n in range(size)]
    items = [event(message_id, n, sent_at) for n, message_id in enumerate(ids)]
    return orjson.dumps({"batch": items, "sentAt": sent_at, "writeKey": key})


@dataclass
class Run:
    round: int
    phase: str
    tag: str
    clients: int
    batch_size: int
    duration_s: float
    requests: int = 0
    ok: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    events_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    body_bytes: int = 0
    idle_wait_s: float = 0.0
    server_cpu_s: float | None = None
    server_cpu_us_per_event: float | None = None
    load_average: list[float] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return asdict(self)


def load(
    port: int,
    key: str,
    *,
    tag: str,
    seconds: float,
    clients: int,
    batch_size: int,
    limit: int | None = None,
    random_ids: bool = True,
) -> tuple[Run, list[float]]:
    """Post batches from `clients` threads for `seconds` (or `limit` batches per client);
    every request has its answer before this returns."""
    run = Run(0, "", tag, clients, batch_size, seconds)
    lock = threading.Lock()
    latencies: list[float] = []
    start_gate = threading.Event()
    deadline = [0.0]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        counter = 0
        local_latency = []
        statuses: dict[str, int] = {}
        errors = []
        start_gate.wait()
        try:
            while time.monotonic() < deadline[0] and (limit is None or counter < limit):
                body = batch_body(key, f"{tag}-c{index}-{counter}", batch_size, random_ids)
                counter += 1
                began = time.perf_counter()
                try:
                    connection.request(
                        "POST",
                        PATH,
                        body=body,
                        headers={
                            "Content-Type": "application/json",
                            "User-Agent": "analytics-python/2.3.4",
                        },
                    )
                    response = connection.getresponse()
                    answer = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(repr(exc))
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    continue
                local_latency.append(time.perf_counter() - began)
                statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
                if response.status != 200 and len(errors) < 5:
                    errors.append(f"{response.status}: {answer[:200]!r}")
        finally:
            connection.close()
        with lock:
            latencies.extend(local_latency)
            for status, count in statuses.items():
                run.statuses[status] = run.statuses.get(status, 0) + count
            run.errors.extend(errors)
            run.body_bytes = len(body)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    deadline[0] = began + seconds
    start_gate.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    run.duration_s = round(elapsed, 3)
    run.requests = sum(run.statuses.values())
    run.ok = run.statuses.get("200", 0)
    run.events_per_s = round(run.ok * batch_size / elapsed, 1)
    if latencies:
        ordered = sorted(latencies)
        run.latency_ms = {
            "p50": round(1000 * ordered[len(ordered) // 2], 2),
            "p99": round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "max": round(1000 * ordered[-1], 2),
        }
    return run, latencies


def stored(database: Path, prefix: str) -> tuple[int, int]:
    """(events, distinct messageIds) stored whose messageId starts with prefix."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=60)
    try:
        row = connection.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM event WHERE message_id LIKE ?",
            (prefix + "%",),
        ).fetchone()
        return int(row[0]), int(row[1])
    finally:
        connection.close()


def machine() -> dict[str, Any]:
    """The machine, as bench/ingest records it, without asking for wrk (not used here)."""
    if shutil.which("wrk"):
        described: dict[str, Any] = ingest.machine()
        described.pop("wrk", None)
        return described
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
        "git": commit,
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark POST /v1/batch events/s.")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client connections")
    parser.add_argument("--batch-size", type=int, default=100, help="events per batch")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs")
    parser.add_argument(
        "--sequential-ids",
        action="store_true",
        help="messageIds <run>-<n> instead of the SDKs' random uuid4s",
    )
    parser.add_argument(
        "--tidings-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a TIDINGS_* setting for `tidings serve`, e.g. TIDINGS_CONSUMER_WORKERS=0",
    )
    parser.add_argument("--data-root", type=Path, default=None, help="where the data dir goes")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--commit", default=None, metavar="REV", help="measure src/ of a commit")
    source.add_argument("--src", type=Path, default=None, help="measure this copy of src/")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dir")
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    run_id = f"b{started:%H%M%S}"
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        work_dir = Path(tempfile.mkdtemp(prefix="tidings-bench-", dir=args.data_root))
        if args.keep_data:
            print(f"data dir kept at {work_dir}")
        else:
            stack.callback(shutil.rmtree, work_dir, ignore_errors=True)
        data_dir = work_dir / "data"
        code = "working tree"
        if args.commit:
            code, src = ingest.export_commit(args.commit, work_dir / "tree")
        elif args.src:
            src = args.src.resolve()
            code = str(src)
        if args.commit or args.src:
            paths = [str(src), tidings_env.get("PYTHONPATH", "")]
            tidings_env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
        source = ingest.tidings_source(tidings_env)
        print(f"measuring Tidings from {source} ({code})")
        port = free_port()
        argv_serve = [tidings, "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = stack.enter_context(
            ingest.running(
                "tidings",
                [*argv_serve, "--data-dir", str(data_dir)],
                port,
                work_dir / "tidings.log",
                tidings_env,
            )
        )
        ingest.wait_until_up(server, "/health")
        key = api_key(tidings, data_dir, tidings_env)
        database = data_dir / "tidings.db"

        smoke, _ = load(
            port,
            key,
            tag=f"{run_id}-smoke",
            seconds=60,
            clients=1,
            batch_size=100,
            limit=1,
            random_ids=False,
        )
        if smoke.ok != 1:
            raise BenchError(f"smoke batch failed: {smoke.statuses} {smoke.errors}")
        print(
            f"{args.rounds} rounds: {args.warmup:g}s warm-up + {args.duration:g}s, "
            f"{args.clients} clients, {args.batch_size} events a batch"
        )
        for round_number in range(1, args.rounds + 1):
            idle = ingest.quiesce([server], database)
            if args.warmup > 0:
                warm, _ = load(
                    port,
                    key,
                    tag=f"{run_id}-r{round_number}-warm",
                    seconds=args.warmup,
                    clients=args.clients,
                    batch_size=args.batch_size,
                    random_ids=not args.sequential_ids,
                )
                warm.round, warm.phase = round_number, "warm"
                runs.append(warm)
            cpu_before = server.cpu_seconds()
            run, _ = load(
                port,
                key,
                tag=f"{run_id}-r{round_number}-measure",
                seconds=args.duration,
                clients=args.clients,
                batch_size=args.batch_size,
                random_ids=not args.sequential_ids,
            )
            cpu_after = server.cpu_seconds()
            run.round, run.phase, run.idle_wait_s = round_number, "measure", round(idle, 2)
            run.load_average = [round(value, 2) for value in os.getloadavg()]
            if cpu_before is not None and cpu_after is not None and run.ok:
                run.server_cpu_s = round(cpu_after - cpu_before, 2)
                run.server_cpu_us_per_event = round(
                    1e6 * run.server_cpu_s / (run.ok * run.batch_size), 1
                )
            runs.append(run)
            print(
                f"  round {round_number}: {run.events_per_s:>9.0f} events/s  "
                f"({run.ok} batches, p50 {run.latency_ms.get('p50', 0):.1f} ms, "
                f"p99 {run.latency_ms.get('p99', 0):.1f} ms, non-200 "
                f"{run.requests - run.ok}; server CPU {run.server_cpu_us_per_event} us/event; "
                f"load {run.load_average[0]}; waited {idle:.1f}s for an idle server first)"
            )

        problems = []
        answered = 0
        for run in [smoke, *runs]:
            answered += run.ok * run.batch_size
            if run.requests != run.ok or run.errors:
                problems.append(f"{run.tag}: {run.statuses} {run.errors[:3]}")
        count, distinct = stored(database, run_id)
        if count != distinct:
            problems.append(f"{count - distinct} duplicate rows")
        if count != answered:
            problems.append(f"{answered} events answered 200 but {count} stored")
        status, _ = ingest.http(
            "GET",
            f"http://127.0.0.1:{port}/integrations/segment/events/{run_id}-smoke-c0-0-99",
            key,
        )
        if status != 200:
            problems.append(f"GET of the smoke batch's last event answered {status}")
        verification = {
            "ok": not problems,
            "problems": problems,
            "answered_events": answered,
            "stored": count,
        }
        data_filesystem = filesystem_of(data_dir.resolve())
        peak_rss = peak_rss_mb(server.process.pid)

    measured = [run for run in runs if run.phase == "measure"]
    summary = {
        "events_per_s": round(statistics.median(run.events_per_s for run in measured), 1),
        "round_events_per_s": [run.events_per_s for run in measured],
        "p50_ms": statistics.median(run.latency_ms.get("p50", 0) for run in measured),
        "p99_ms": statistics.median(run.latency_ms.get("p99", 0) for run in measured),
        "server_cpu_us_per_event": statistics.median(
            run.server_cpu_us_per_event or 0 for run in measured
        ),
        "budget": BUDGET,
        "server_peak_rss_mb": peak_rss,
        "rss_budget_mb": RSS_BUDGET_MB,
    }
    summary["within_budget"] = summary["events_per_s"] >= BUDGET
    verdict = "OK" if summary["within_budget"] else "UNDER BUDGET"
    print(
        f"\nmedian {summary['events_per_s']:.0f} events/s (budget >= {BUDGET}: {verdict}), "
        f"batch p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
        f"server CPU {summary['server_cpu_us_per_event']} us/event"
    )
    if peak_rss is not None:
        within = "OK" if peak_rss <= RSS_BUDGET_MB else "OVER BUDGET"
        print(f"tidings serve peak RSS {peak_rss:.0f} MB (budget <= {RSS_BUDGET_MB} MB: {within})")
    print(
        f"verification: {answered} events answered 200, {count} stored, each once"
        if verification["ok"]
        else "verification FAILED:\n  " + "\n  ".join(problems)
    )
    result = {
        "benchmark": "batch",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": load_at_start},
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "clients": args.clients,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "message_ids": "sequential" if args.sequential_ids else "uuid4",
            "uvicorn": ingest.uvicorn_settings(),
            "tidings_env": args.tidings_env,
            "tidings_source": source,
            "measured_code": code,
            "data_dir_filesystem": data_filesystem,
        },
        "summary": summary,
        "verification": verification,
        "runs": [run.public() for run in [smoke, *runs]],
    }
    output = args.output or RESULTS_DIR / f"batch-{started:%Y%m%dT%H%M%SZ}.json"
    write_result(result, output)
    return 0 if verification["ok"] else 1


if __name__ == "__main__":
    run_benchmark(main, "server")
