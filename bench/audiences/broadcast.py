"""Broadcast benchmark: a broadcast to a list of N users, to SMTP accept, against the send
floor; and a transactional send made during it.

In one run, on `tidings serve` with its defaults (SQLite, the in-process consumer) and the
SMTP sink of `bench/send/sink.py`, on free loopback ports and a temporary data dir:

1. **Set-up**: the SMTP provider and the template of `bench/send` through the API, N
   profiles written straight into the SQLite database (as `bench/send` makes them, without
   N requests), and a list `bench-all` of all N (`POST /lists/{id}/subscriptions`, 1,000 a
   request).
2. **The floor**: one thread of this process sends the same N messages with smtplib over
   one connection to the same sink (`bench/send`'s floor).
3. **The broadcast**: `POST /broadcasts` of the template to the list, with the broadcast rate
   raised out of the way (`TIDINGS_BROADCAST_RATE`, `--rate`) so that what is measured is
   Tidings' own throughput; its rate is N / (the last broadcast email's accept - the POST).
4. **A transactional send during it**: once the sink holds `--during` of the broadcast's
   emails, a `POST /send` to another user (the password-reset case); its latency is its
   email's accept - the POST, and the report says how many broadcast emails were accepted
   after it was posted and before it.

Reports the broadcast's rate, its ratio to the floor's, and the transactional latency.

    .venv/bin/python bench/audiences/broadcast.py [--recipients 100000] [--during 0.3]
        [--rate 100000] [--quick] [--commit REV | --src DIR]

Writes bench/results/broadcast-<timestamp>.json. Exits 1 if the verification fails (every
recipient exactly one email, the transactional email delivered). It has no budget of its
own: the ratio is reported for comparison with the send benchmark's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "send"))
from run import (
    TEMPLATE_ID,
    SinkRecord,
    client,
    email_of,
    expect,
    send_floor,
    set_up,
    user_id,
)

from common import (
    RESULTS_DIR,
    add_common_arguments,
    api_key,
    apply_defaults,
    clean_environment,
    free_port,
    machine,
    make_work_dir,
    run_benchmark,
    source_tree,
    start_serve,
    start_sink,
    stop_on_signals,
    tidings_environment,
    tidings_executable,
    wait_for,
    write_result,
)

LIST_ID = "bench-all"
TRANSACTIONAL_USER = "bench-reset"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=None)
    parser.add_argument("--during", type=float, default=0.3)
    parser.add_argument("--rate", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    apply_defaults(args, {"recipients": 100_000}, {"recipients": 5_000})
    return args


def write_profiles(database: Path, recipients: int) -> None:
    """The N profiles `bench/send` makes through the API, written in one transaction."""
    connection = sqlite3.connect(database, timeout=60)
    try:
        workspace_id, environment_id = connection.execute(
            "SELECT workspace_id, id FROM environment WHERE name = 'test'"
        ).fetchone()
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
        with connection:
            connection.executemany(
                "INSERT INTO profile (workspace_id, environment_id, user_id, data, anonymous, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                (
                    (
                        workspace_id,
                        environment_id,
                        user_id(n),
                        json.dumps({"email": email_of(n), "n": n}),
                        now,
                        now,
                    )
                    for n in range(recipients)
                ),
            )
    finally:
        connection.close()


def subscribe_all(base_url: str, key: str, recipients: int) -> None:
    with client(base_url, key) as api:
        expect(api.put(f"/lists/{LIST_ID}", json={"name": "Everyone"}), 204)
        for first in range(0, recipients, 1_000):
            body = {
                "recipients": [
                    {"recipientId": user_id(n)}
                    for n in range(first, min(first + 1_000, recipients))
                ]
            }
            expect(api.post(f"/lists/{LIST_ID}/subscriptions", json=body), 204)
        profile = {"profile": {"email": "reset@bench.test", "n": "reset"}}
        expect(api.post(f"/profiles/{TRANSACTIONAL_USER}", json=profile), 200, 201)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tidings = tidings_executable()
    stop_on_signals()
    env = clean_environment()
    started = dt.datetime.now(dt.UTC)
    result: dict[str, Any] = {
        "benchmark": "broadcast",
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "recipients": args.recipients,
    }
    with contextlib.ExitStack() as stack:
        work_dir = make_work_dir(stack, args, "tidings-broadcast-")
        data_dir = work_dir / "data"
        source = source_tree(args.commit, args.src, work_dir)
        result["source"] = {k: v for k, v in source.items() if k != "path"}
        tidings_env = tidings_environment(env, data_dir, source, args.tidings_env)
        tidings_env["TIDINGS_BROADCAST_RATE"] = str(args.rate)
        sink = start_sink(stack, work_dir, env)
        port = free_port()
        server = start_serve(stack, tidings, "api", work_dir / "serve.log", tidings_env, port)
        base_url = f"http://127.0.0.1:{port}"
        wait_for(
            "tidings serve to answer /health",
            lambda: _healthy(base_url),
            [server],
            60,
        )
        key = api_key(tidings, data_dir, tidings_env)
        record = SinkRecord(work_dir / "sink.jsonl")
        procs = [server, sink]
        setup_started = time.monotonic()
        set_up(base_url, key, sink.port, 0, args.clients)
        write_profiles(data_dir / "tidings.db", args.recipients)
        subscribe_all(base_url, key, args.recipients)
        setup_s = time.monotonic() - setup_started
        print(f"set up {args.recipients:,} profiles and the list in {setup_s:.0f}s")

        floor_started = send_floor(sink.port, args.recipients, 1)

        def floor_count() -> int:
            record.poll()
            return len(record.of("floor", 1))

        wait_for(
            "the floor's emails", lambda: floor_count() >= args.recipients, procs, args.timeout
        )
        floor_rate = args.recipients / (max(m.at for m in record.of("floor", 1)) - floor_started)
        print(f"floor: {floor_rate:,.0f} sends/s")

        with client(base_url, key) as api:
            posted = time.time()
            body = {
                "broadcast_id": "bench",
                "template": TEMPLATE_ID,
                "to": {"list_id": LIST_ID},
                "data": {"round": 2, "t": posted},
            }
            expect(api.post("/broadcasts", json=body), 202)

            def broadcast_count() -> int:
                record.poll()
                return len(record.of("tidings", 2))

            threshold = int(args.recipients * args.during)
            wait_for(
                "the broadcast's first emails",
                lambda: broadcast_count() >= threshold,
                procs,
                args.timeout,
            )
            reset_posted = time.time()
            message = {
                "to": {"user_id": TRANSACTIONAL_USER},
                "template": TEMPLATE_ID,
                "data": {"round": 3, "t": reset_posted},
            }
            expect(api.post("/send", json={"message": message}), 202)
            wait_for(
                "the transactional email",
                lambda: broadcast_count() >= 0 and record.of("tidings", 3),
                procs,
                args.timeout,
            )
            wait_for(
                "every broadcast email",
                lambda: broadcast_count() >= args.recipients,
                procs,
                args.timeout,
            )
            time.sleep(2.0)
            record.poll()
            view = expect(api.get("/broadcasts/bench"), 200)

    broadcast = record.of("tidings", 2)
    (reset,) = record.of("tidings", 3)
    rate = args.recipients / (max(m.at for m in broadcast) - posted)
    accepted_between = sum(1 for m in broadcast if reset_posted <= m.at <= reset.at)
    recipients = [r for m in broadcast for r in m.rcpt]
    problems = []
    if len(recipients) != args.recipients or len(set(recipients)) != args.recipients:
        problems.append(
            f"{len(recipients)} broadcast emails to {len(set(recipients))} recipients, "
            f"not {args.recipients} once each"
        )
    if set(recipients) != {email_of(n) for n in range(args.recipients)}:
        problems.append("broadcast emails went to the wrong recipients")
    result.update(
        {
            "setup_s": round(setup_s, 1),
            "floor_sends_per_s": round(floor_rate, 1),
            "broadcast_sends_per_s": round(rate, 1),
            "ratio": round(rate / floor_rate, 3),
            "transactional": {
                "posted_after_broadcast_emails": threshold,
                "latency_ms": round((reset.at - reset_posted) * 1000, 1),
                "broadcast_emails_accepted_meanwhile": accepted_between,
            },
            "broadcast_view": view,
            "verification": {"ok": not problems, "problems": problems},
        }
    )
    print(
        f"broadcast: {rate:,.0f} sends/s, {result['ratio']:.3f} of the floor's "
        f"{floor_rate:,.0f}; a transactional send during it: "
        f"{result['transactional']['latency_ms']:.0f} ms, with {accepted_between} broadcast "
        "emails accepted meanwhile"
    )
    if problems:
        print("verification FAILED:\n  " + "\n  ".join(problems))
    write_result(result, args.output or RESULTS_DIR / f"broadcast-{started:%Y%m%dT%H%M%SZ}.json")
    return 0 if not problems else 1


def _healthy(base_url: str) -> bool:
    import httpx

    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{base_url}/health", timeout=2).status_code == 200
    return False


if __name__ == "__main__":
    run_benchmark(main, "processes")
