"""Batch benchmark: `POST /v1/batch` events/s with 100-event batches on a live `tidings serve`.

In one run it starts, on free loopback ports,

- `tidings serve` with a temporary `--data-dir` (SQLite, the default settings unless
  `--tidings-env` says otherwise), and
- the floor, `floor_app.py`: a minimal Starlette app that parses each batch with orjson and
  writes it to SQLite (WAL, Tidings' synchronous setting) in one multi-row INSERT and one
  commit per request, under the same uvicorn settings;

then, in rounds alternating between the two (floor first in odd rounds), posts batches the
way analytics-python does (`{"batch": [...100 tracks...], "sentAt", "writeKey"}`,
`Content-Type: application/json`) from N client threads, each on one keep-alive
connection, each waiting for its answer before sending the next. Every event has a unique
`messageId`. Both answer 200 only once the batch is committed, so every answered event is a
durable write. It reports events/s (events answered 200 / measured seconds) of each, the
ratio Tidings / floor of the medians (budget: >= 0.5), batch latency p50/p99, server CPU per
event, Tidings' peak RSS, and checks that every answered event is stored exactly once.

    .venv/bin/python bench/batch/run.py [--duration 6] [--clients 8] [--rounds 3]
        [--quick] [--commit REV | --src DIR] [--tidings-env TIDINGS_X=...]

Writes bench/results/batch-<timestamp>.json. Exits 1 if the verification fails or the
budget is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import os
import sqlite3
import statistics
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

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
    peak_rss_mb,
    pending_events,
    print_verdict,
    quiesce,
    run_benchmark,
    running,
    source_tree,
    sqlite_synchronous,
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
FLOOR_APP = HERE / "floor_app.py"
PATH = "/v1/batch"
BUDGET = 0.5
# The API process's memory under load (the architecture's budgets), reported beside.
RSS_BUDGET_MB = 200
TARGETS = ("floor", "tidings")


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
    target: str
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
    run = Run("", 0, "", tag, clients, batch_size, seconds)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark POST /v1/batch events/s.")
    parser.add_argument("--duration", type=float, help="seconds measured per run (6; quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per run (2; quick 1)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client connections")
    parser.add_argument("--batch-size", type=int, default=100, help="events per batch")
    parser.add_argument("--rounds", type=int, help="rounds, each floor and tidings (3; quick 1)")
    parser.add_argument(
        "--sequential-ids",
        action="store_true",
        help="messageIds <run>-<n> instead of the SDKs' random uuid4s",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    apply_defaults(
        args,
        {"duration": 6.0, "warmup": 2.0, "rounds": 3},
        {"duration": 3.0, "warmup": 1.0, "rounds": 1},
    )
    return args


def start_servers(
    stack: contextlib.ExitStack, tidings: str, work_dir: Path, tidings_env: dict[str, str]
) -> dict[str, Proc]:
    """`tidings serve` and the floor app (with Tidings' synchronous setting), answering."""
    synchronous = sqlite_synchronous(tidings_env)
    tidings_port, floor_port = free_port(), free_port()
    print(
        f"starting tidings serve on :{tidings_port} and the floor on :{floor_port} "
        f"(synchronous={synchronous})"
    )
    server = start_serve(
        stack, tidings, "tidings", work_dir / "tidings.log", tidings_env, tidings_port
    )
    floor_argv = [sys.executable, str(FLOOR_APP), "--port", str(floor_port)]
    floor_argv += ["--database", str(work_dir / "floor.db"), "--synchronous", synchronous]
    floor = stack.enter_context(
        running("floor", floor_argv, work_dir / "floor.log", clean_environment())
    )
    floor.port = floor_port
    wait_http(server, "/health")
    wait_http(floor, PATH)
    return {"floor": floor, "tidings": server}


def measure(
    servers: dict[str, Proc], key: str, args: argparse.Namespace, run_id: str, database: Path
) -> list[Run]:
    """Rounds of (floor, tidings), in alternating order, each after the servers are idle."""
    runs: list[Run] = []
    print(
        f"{args.rounds} rounds x (floor, tidings): {args.warmup:g}s warm-up + "
        f"{args.duration:g}s, {args.clients} clients, {args.batch_size} events a batch"
    )
    for round_number in range(1, args.rounds + 1):
        order = TARGETS if round_number % 2 else TARGETS[::-1]
        for target in order:
            server = servers[target]
            idle = quiesce(list(servers.values()), lambda: pending_events(database))
            phases = [("warm", args.warmup), ("measure", args.duration)]
            for phase, seconds in phases if args.warmup > 0 else phases[1:]:
                cpu_before = server.cpu_seconds()
                run, _ = load(
                    server.port,
                    key,
                    tag=f"{run_id}-{target}-r{round_number}-{phase}",
                    seconds=seconds,
                    clients=args.clients,
                    batch_size=args.batch_size,
                    random_ids=not args.sequential_ids,
                )
                cpu_after = server.cpu_seconds()
                run.target, run.round, run.phase = target, round_number, phase
                run.idle_wait_s = round(idle, 2)
                run.load_average = [round(value, 2) for value in os.getloadavg()]
                if cpu_before is not None and cpu_after is not None and run.ok:
                    run.server_cpu_s = round(cpu_after - cpu_before, 2)
                    run.server_cpu_us_per_event = round(
                        1e6 * run.server_cpu_s / (run.ok * run.batch_size), 1
                    )
                runs.append(run)
            print(
                f"  round {round_number} {target:<8} {run.events_per_s:>9.0f} events/s  "
                f"({run.ok} batches, p50 {run.latency_ms.get('p50', 0):.1f} ms, "
                f"p99 {run.latency_ms.get('p99', 0):.1f} ms, non-200 "
                f"{run.requests - run.ok}; server CPU {run.server_cpu_us_per_event} us/event; "
                f"load {run.load_average[0]}; waited {idle:.1f}s for idle servers first)"
            )
    return runs


def smoke(servers: dict[str, Proc], key: str, run_id: str) -> list[Run]:
    """One batch of sequential ids to each server, which must answer 200."""
    runs = []
    for target, server in servers.items():
        run, _ = load(
            server.port,
            key,
            tag=f"{run_id}-{target}-smoke",
            seconds=60,
            clients=1,
            batch_size=100,
            limit=1,
            random_ids=False,
        )
        if run.ok != 1:
            raise BenchError(f"smoke batch to {target} failed: {run.statuses} {run.errors}")
        run.target, run.phase = target, "smoke"
        runs.append(run)
    return runs


def check(
    runs: list[Run], databases: dict[str, Path], run_id: str, port: int, key: str
) -> dict[str, Any]:
    """Every event answered 200 stored exactly once, in each server's database, and the
    smoke batch's last event read back through Tidings' API."""
    problems = []
    answered = dict.fromkeys(TARGETS, 0)
    stored_rows = {}
    for run in runs:
        answered[run.target] += run.ok * run.batch_size
        if run.requests != run.ok or run.errors:
            problems.append(f"{run.tag}: {run.statuses} {run.errors[:3]}")
    for target, database in databases.items():
        count, distinct = stored(database, f"{run_id}-{target}-")
        stored_rows[target] = count
        if count != distinct:
            problems.append(f"{target}: {count - distinct} duplicate rows")
        if count != answered[target]:
            problems.append(f"{target}: {answered[target]} events answered 200 but {count} stored")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "GET",
            f"/integrations/segment/events/{run_id}-tidings-smoke-c0-0-99",
            headers={"Authorization": f"Bearer {key}"},
        )
        status = connection.getresponse().status
    finally:
        connection.close()
    if status != 200:
        problems.append(f"GET of the smoke batch's last event answered {status}")
    return {
        "ok": not problems,
        "problems": problems,
        "answered_events": answered,
        "stored": stored_rows,
    }


def summarize(measured: list[Run]) -> dict[str, Any]:
    by_target = {t: [run for run in measured if run.target == t] for t in TARGETS}
    summary: dict[str, Any] = {}
    for target, runs in by_target.items():
        summary[target] = {
            "events_per_s": round(statistics.median(run.events_per_s for run in runs), 1),
            "round_events_per_s": [run.events_per_s for run in runs],
            "p50_ms": statistics.median(run.latency_ms.get("p50", 0) for run in runs),
            "p99_ms": statistics.median(run.latency_ms.get("p99", 0) for run in runs),
            "server_cpu_us_per_event": statistics.median(
                run.server_cpu_us_per_event or 0 for run in runs
            ),
        }
    summary["round_ratios"] = [
        round(t.events_per_s / f.events_per_s, 3) if f.events_per_s else None
        for f, t in zip(by_target["floor"], by_target["tidings"], strict=True)
    ]
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tidings = tidings_executable()
    stop_on_signals()
    started = dt.datetime.now(dt.UTC)
    run_id = f"b{started:%H%M%S}"
    machine_info = machine()
    with contextlib.ExitStack() as stack:
        work_dir = make_work_dir(stack, args, "tidings-batch-")
        data_dir = work_dir / "data"
        source = source_tree(args.commit, args.src, work_dir)
        tidings_env = tidings_environment(clean_environment(), data_dir, source, args.tidings_env)
        servers = start_servers(stack, tidings, work_dir, tidings_env)
        key = api_key(tidings, data_dir, tidings_env)
        database = data_dir / "tidings.db"
        smoke_runs = smoke(servers, key, run_id)
        runs = measure(servers, key, args, run_id, database)
        verification = check(
            [*smoke_runs, *runs],
            {"floor": work_dir / "floor.db", "tidings": database},
            run_id,
            servers["tidings"].port,
            key,
        )
        data_filesystem = filesystem_of(data_dir.resolve())
        peak_rss = peak_rss_mb(servers["tidings"].pid)

    summary = summarize([run for run in runs if run.phase == "measure"])
    summary["tidings_peak_rss_mb"] = peak_rss
    summary["rss_budget_mb"] = RSS_BUDGET_MB
    figures = verdict(
        "events/s", summary["floor"]["events_per_s"], summary["tidings"]["events_per_s"], BUDGET
    )
    for target in TARGETS:
        median = summary[target]
        print(
            f"\nmedian {target}: {median['events_per_s']:.0f} events/s, batch p50 "
            f"{median['p50_ms']} ms, p99 {median['p99_ms']} ms, server CPU "
            f"{median['server_cpu_us_per_event']} us/event",
            end="",
        )
    print(f"\nper-round ratios tidings/floor: {summary['round_ratios']}")
    if peak_rss is not None:
        within = "within" if peak_rss <= RSS_BUDGET_MB else "OVER"
        print(f"tidings serve peak RSS {peak_rss:.0f} MB ({within} {RSS_BUDGET_MB} MB)")
    print(
        f"verification: events answered 200 {verification['answered_events']}, stored "
        f"{verification['stored']}, each once"
        if verification["ok"]
        else "verification FAILED:\n  " + "\n  ".join(verification["problems"])
    )
    print_verdict("batch", figures)
    result = {
        "benchmark": "batch",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info,
        "source": {k: v for k, v in source.items() if k != "path"},
        "budget": figures,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "clients": args.clients,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "quick": args.quick,
            "message_ids": "sequential" if args.sequential_ids else "uuid4",
            "uvicorn": uvicorn_settings(),
            "tidings_env": args.tidings_env,
            "data_dir_filesystem": data_filesystem,
        },
        "summary": summary,
        "verification": verification,
        "runs": [run.public() for run in [*smoke_runs, *runs]],
    }
    output = args.output or RESULTS_DIR / f"batch-{started:%Y%m%dT%H%M%SZ}.json"
    write_result(result, output)
    return 0 if verification["ok"] and figures["met"] else 1


if __name__ == "__main__":
    run_benchmark(main, "servers")
