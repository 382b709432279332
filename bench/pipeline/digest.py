"""Pipeline benchmark, digest case: Segment track events batched per recipient into one email.

In one run, on `tidings serve` with its defaults (SQLite, the in-process consumer) and the
SMTP sink of `bench/send/sink.py`, on free loopback ports and a temporary data dir:

1. **The pipeline case, per event** (the baseline): the automation of `run.py` (one `send`
   step per `track/Bench Event`), `--baseline-events` events at `--baseline-rate`, open-loop;
   it waits for every email and for the server to be idle. Tidings' CPU seconds (its
   process, all threads) over that phase, less what it spends idle (measured for 3 s just
   before), divided by the events, is the pipeline's CPU per event.
2. **The digest case**: the same trigger, now a `batch` step (a fixed `--window`) and a send
   whose subject is `digest {{ data.batch.total_count }}`; `--users` recipients x
   `--events-per-user` events, recipients in turn (event i goes to user i mod users), at
   `--rate`, open-loop. Every recipient's events arrive within its window, so each
   recipient's run opens one batch and the others join it; at the window's end every batch
   closes and sends one email.

It reports, for the digest case: the **time to close every batch after the window** (the
last digest email's sink accept time - (the send time of the last recipient's first event +
the window)), each batch's lateness (its email's accept - its first event's send + window:
p50, p99, max), and **Tidings' CPU per event**, with its **ratio to the pipeline case's**.
It checks that every recipient got exactly one digest, counting all its events (no item
lost or counted twice, no second batch), and that every baseline email arrived once.

    .venv/bin/python bench/pipeline/digest.py [--users 1000] [--events-per-user 10]
        [--rate 250] [--window 60] [--baseline-events 2000] [--baseline-rate 100] [--quick]

Writes bench/results/pipeline-digest-<timestamp>.json. Exits 1 if the verification fails.
It has no budget of its own: the ratio is reported for comparison between commits.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (
    AUTOMATION,
    AUTOMATION_ID,
    EVENT_NAME,
    Accept,
    SinkRecord,
    email_of,
    expect,
    send_events,
    set_up,
    user_id,
)

from common import (
    RESULTS_DIR,
    BenchError,
    Proc,
    add_common_arguments,
    apply_defaults,
    clean_environment,
    machine,
    make_work_dir,
    percentile,
    quiesce,
    run_benchmark,
    source_tree,
    start_serve,
    start_sink,
    stop_on_signals,
    tidings_environment,
    tidings_executable,
    wait_for,
    wait_for_api_key,
    write_result,
)

DIGEST_ID = "bench-digest"
DIGEST_NOTIFICATION = {
    "name": "Digest benchmark",
    "content": {
        "email": {
            "subject": "digest {{ data.batch.total_count }}",
            "text": "{% for item in data.batch.items %}event {{ item.seq }}\n{% endfor %}",
        }
    },
}


def digest_automation(window: float) -> dict[str, Any]:
    return {
        "name": "Digest benchmark",
        "enabled": True,
        "triggers": [{"source": "segment", "event": f"track/{EVENT_NAME}"}],
        "steps": [
            {"action": "batch", "window": f"{window:g} seconds"},
            {"action": "send", "template": DIGEST_ID},
        ],
    }


def switch_to_digest(base_url: str, key: str, window: float) -> None:
    """The pipeline automation off, the digest one (same trigger) on."""
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as api:
        expect(api.put(f"/notifications/{DIGEST_ID}", json=DIGEST_NOTIFICATION), 200, 201)
        expect(
            api.put(f"/automations/{AUTOMATION_ID}", json={**AUTOMATION, "enabled": False}),
            200,
            201,
        )
        expect(api.put(f"/automations/{DIGEST_ID}", json=digest_automation(window)), 200, 201)


def accepted(record: SinkRecord, kind: str, count: int) -> list[Accept]:
    record.poll()
    found = record.accepted.get(kind, [])
    return found if len(found) >= count else []


def cpu_of(server: Proc) -> float:
    seconds = server.cpu_seconds()
    if seconds is None:
        raise BenchError("the server's CPU time is not readable (/proc)")
    return seconds


IDLE_SAMPLE_SECONDS = 3.0


def idle_cpu_rate(server: Proc) -> float:
    """The server's CPU seconds per second while idle (its sweeper, its job consumer's
    polling): the digest case spends its window idle, so both cases subtract it."""
    quiesce([server])
    before, started = cpu_of(server), time.monotonic()
    time.sleep(IDLE_SAMPLE_SECONDS)
    return (cpu_of(server) - before) / (time.monotonic() - started)


def cpu_since(server: Proc, before: float, started: float, idle: float) -> float:
    """CPU seconds the server used since `before` (at monotonic `started`), less idling."""
    return cpu_of(server) - before - idle * (time.monotonic() - started)


def baseline(
    args: argparse.Namespace, server: Proc, sink: Proc, key: str, record: SinkRecord
) -> dict[str, Any]:
    """The pipeline case: one email per event; Tidings' CPU per event."""
    idle = idle_cpu_rate(server)
    before, since = cpu_of(server), time.monotonic()
    seqs = range(args.baseline_events)
    sent = send_events(
        "127.0.0.1", server.port, key, "pipe", seqs, args.baseline_rate, args.users, 32, 3600.0
    )
    refused = [s for s in sent if s.status != 202]
    if refused:
        raise BenchError(f"pipeline events refused: {refused[:3]}")
    emails = wait_for(
        "the pipeline emails",
        lambda: accepted(record, "pipeline", len(seqs)),
        [server, sink],
        args.drain_timeout,
    )
    quiesce([server])
    cpu = cpu_since(server, before, since, idle)
    seen = sorted(accept.seq for accept in emails)
    return {
        "events": len(seqs),
        "rate": args.baseline_rate,
        "cpu_seconds": round(cpu, 3),
        "idle_cpu_per_second": round(idle, 4),
        "cpu_us_per_event": round(cpu / len(seqs) * 1e6, 1),
        "ok": seen == list(seqs),
    }


def digest(
    args: argparse.Namespace, server: Proc, sink: Proc, key: str, record: SinkRecord
) -> dict[str, Any]:
    """The digest case: one email per recipient at its window's end."""
    record.accepted["digest"] = []
    total = args.users * args.events_per_user
    idle = idle_cpu_rate(server)
    before, since = cpu_of(server), time.monotonic()
    started = time.time()
    sent = send_events(
        "127.0.0.1", server.port, key, "digest", range(total), args.rate, args.users, 32, 3600.0
    )
    sending = time.time() - started
    refused = [s for s in sent if s.status != 202]
    if refused:
        raise BenchError(f"digest events refused: {refused[:3]}")
    # Each recipient's first event is its seq k (k < users): its batch closes a window later.
    first_sent = {user_id(s.seq, args.users): s.written for s in sent if s.seq < args.users}
    emails = wait_for(
        "the digest emails",
        lambda: accepted(record, "digest", args.users),
        [server, sink],
        args.window + args.drain_timeout,
    )
    quiesce([server])
    cpu = cpu_since(server, before, since, idle)
    by_recipient: dict[str, list[Accept]] = {}
    for accept in emails:
        for rcpt in accept.rcpt:
            by_recipient.setdefault(rcpt, []).append(accept)
    expected = {email_of(user): user for user in first_sent}
    lateness = [
        by_recipient[email][0].at - (first_sent[user] + args.window)
        for email, user in expected.items()
        if email in by_recipient
    ]
    last_window_end = max(first_sent.values()) + args.window
    ok = (
        sorted(by_recipient) == sorted(expected)
        and all(len(found) == 1 for found in by_recipient.values())
        and all(found[0].seq == args.events_per_user for found in by_recipient.values())
        and len(emails) == args.users
    )
    return {
        "users": args.users,
        "events_per_user": args.events_per_user,
        "events": total,
        "rate": args.rate,
        "window_seconds": args.window,
        "sending_seconds": round(sending, 2),
        "fits_in_window": sending < args.window,
        "close_all_after_window_s": round(max(a.at for a in emails) - last_window_end, 3),
        "lateness_s": {
            "p50": round(percentile(lateness, 0.5) or 0.0, 3),
            "p99": round(percentile(lateness, 0.99) or 0.0, 3),
            "max": round(max(lateness), 3) if lateness else None,
        },
        "cpu_seconds": round(cpu, 3),
        "idle_cpu_per_second": round(idle, 4),
        "cpu_us_per_event": round(cpu / total * 1e6, 1),
        "ok": ok,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--users", type=int, default=None, help="recipients (1000)")
    parser.add_argument("--events-per-user", type=int, default=None, help="events each (10)")
    parser.add_argument("--rate", type=float, default=None, help="digest events/s (250)")
    parser.add_argument("--window", type=float, default=None, help="batch window, s (60)")
    parser.add_argument("--baseline-events", type=int, default=None, help="pipeline case (2000)")
    parser.add_argument("--baseline-rate", type=float, default=None, help="events/s (100)")
    parser.add_argument("--drain-timeout", type=float, default=None, help="s (300)")
    args = parser.parse_args(argv)
    full = {
        "users": 1000,
        "events_per_user": 10,
        "rate": 250.0,
        "window": 60.0,
        "baseline_events": 2000,
        "baseline_rate": 100.0,
        "drain_timeout": 300.0,
    }
    quick = {
        "users": 100,
        "rate": 100.0,
        "window": 20.0,
        "baseline_events": 300,
        "drain_timeout": 120.0,
    }
    apply_defaults(args, full, quick)
    spread = (args.users * (args.events_per_user - 1)) / args.rate
    if spread >= args.window:
        parser.error(
            f"a recipient's events span {spread:.0f} s at {args.rate:g} events/s: give a window "
            "longer than that (--window) or a higher --rate"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tidings = tidings_executable()
    stop_on_signals()
    started = dt.datetime.now(dt.UTC)
    machine_info = machine()
    with contextlib.ExitStack() as stack:
        work_dir = make_work_dir(stack, args, "tidings-digest-")
        data_dir = work_dir / "data"
        source = source_tree(args.commit, args.src, work_dir)
        tidings_env = tidings_environment(clean_environment(), data_dir, source, args.tidings_env)
        sink = start_sink(stack, work_dir, clean_environment())
        server = start_serve(stack, tidings, "serve", work_dir / "serve.log", tidings_env)

        def healthy() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                url = f"http://127.0.0.1:{server.port}/health"
                return httpx.get(url, timeout=2).status_code == 200
            return False

        wait_for("tidings serve to answer /health", healthy, [server, sink], 60)
        key = wait_for_api_key(tidings, data_dir, tidings_env, [server])
        base_url = f"http://127.0.0.1:{server.port}"
        set_up(base_url, key, sink.port, args.users)
        record = SinkRecord(work_dir / "sink.jsonl")
        print(f"pipeline case: {args.baseline_events} events at {args.baseline_rate:g}/s")
        pipeline = baseline(args, server, sink, key, record)
        switch_to_digest(base_url, key, args.window)
        print(
            f"digest case: {args.users} recipients x {args.events_per_user} events at "
            f"{args.rate:g}/s, a {args.window:g} s window"
        )
        batched = digest(args, server, sink, key, record)

    ratio = round(batched["cpu_us_per_event"] / pipeline["cpu_us_per_event"], 3)
    ok = pipeline["ok"] and batched["ok"]
    print(
        f"\n  pipeline case: {pipeline['cpu_us_per_event']:,.0f} us of CPU per event\n"
        f"  digest case: {batched['cpu_us_per_event']:,.0f} us of CPU per event (ratio "
        f"{ratio:.3f}); every batch closed {batched['close_all_after_window_s']:.2f} s after "
        f"the last window's end (lateness p50 {batched['lateness_s']['p50']:.2f} s, p99 "
        f"{batched['lateness_s']['p99']:.2f} s)\n"
        f"  verification: {'ok' if ok else 'FAILED (lost, repeated or split batches)'}"
    )
    settings = {
        key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
    }
    result = {
        "benchmark": "pipeline-digest",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info,
        "source": {k: v for k, v in source.items() if k != "path"},
        "settings": settings
        | {
            "tidings": "tidings serve, defaults (SQLite, in-process consumer)",
            "automation": digest_automation(args.window),
            "notification": DIGEST_NOTIFICATION,
        },
        "pipeline": pipeline,
        "digest": batched,
        "cpu_per_event_ratio": ratio,
        "verification": {"ok": ok},
    }
    output = args.output or RESULTS_DIR / f"pipeline-digest-{started:%Y%m%dT%H%M%SZ}.json"
    write_result(result, output)
    return 0 if ok else 1


if __name__ == "__main__":
    run_benchmark(main, "processes")
