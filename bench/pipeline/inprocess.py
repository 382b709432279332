"""The pipeline's job bodies in one thread of this process: CPU time and SQL statements per
event, stage by stage.

A companion to run.py for "where does the time go": no queue and no polling, no HTTP server
competing for the cores. It sets up a temporary data dir in-process (FastAPI TestClient):
the SMTP provider pointing at `bench/send/sink.py` in a subprocess, the benchmark's
notification and automation, and the profiles. It posts N track events to
`/inbound/segment`, capturing the jobs Tidings would enqueue instead of queueing them, then
runs the job body the consumer would run, over every event:

`event.process` (`JobEngine._process_events`, one job per ingest batch) does the whole
pipeline: the event's record, the automation match and the run's insert; then, in the same
job, the run's send step (which accepts the message) and the message's routing, rendering,
SMTP exchange with the sink and outcome. (Before 26235c2 these were three jobs,
`event.process`, `automation.advance` and `message.process_many`, each crossing the queue.)

It counts SQL statements per stage with an SQLAlchemy event. It reaches into JobEngine's
internals, so it may need adjusting when they change.

    PYTHONPATH=<src dir> .venv/bin/python bench/pipeline/inprocess.py [--events 500]
        [--per-job N] [--group-events N] [--profile event]

Without PYTHONPATH it measures the working tree. `--profile event` prints a
cProfile listing of the job (cProfile roughly doubles the times; the shares hold).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import LOOPBACK_ALLOWED, SINK

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import AUTOMATION, AUTOMATION_ID, NOTIFICATION, NOTIFICATION_ID, email_of, user_id

WARMUP = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--profile", choices=["event"], default=None)
    parser.add_argument(
        "--per-job",
        type=int,
        default=0,
        metavar="N",
        help="regroup the events into jobs of N, as the enqueuer does when the consumer lags "
        "(default: as ingest batched them)",
    )
    parser.add_argument(
        "--group-events",
        type=int,
        default=0,
        metavar="N",
        help="process at most N events per transaction (tidings.event.batching.GROUP_EVENTS; "
        "1: each event alone, as when events arrive one by one)",
    )
    args = parser.parse_args()

    from fastapi.testclient import TestClient
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    import tidings
    from tidings.app import create_app
    from tidings.config import Settings
    from tidings.event import batching
    from tidings.migrate import upgrade
    from tidings.runtime import build_runtime
    from tidings.workspace import service as workspace_service

    if args.group_events:
        batching.GROUP_EVENTS = args.group_events
    work_dir = Path(tempfile.mkdtemp(prefix="tidings-pipeline-inprocess-"))
    sink = subprocess.Popen(
        [sys.executable, str(SINK), "--out", str(work_dir / "sink.jsonl")],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert sink.stdout is not None
        port = json.loads(sink.stdout.readline())["port"]
        runtime = build_runtime(
            Settings(
                data_dir=work_dir / "data",
                consumer_workers=0,
                outbound_allow=LOOPBACK_ALLOWED,  # the SMTP sink listens on loopback
            )
        )
        upgrade(runtime.database)
        with runtime.database.write() as (session, _):
            workspace_service.bootstrap(session, runtime.cipher)
        with runtime.database.read() as session:
            keys = workspace_service.list_keys(session, runtime.cipher)
        key = next(k.key for k in keys if k.environment == "test")

        # Capture what would be enqueued, per job, instead of queueing it.
        queued: dict[str, list[Any]] = collections.defaultdict(list)
        jobs: Any = runtime.jobs
        jobs._process = queued["event"].append

        total = args.events + WARMUP
        headers = {"Authorization": f"Bearer {key}", "User-Agent": "SegmentCourier"}
        with TestClient(create_app(runtime, consumer_workers=0)) as api:
            config = {"host": "127.0.0.1", "port": port, "security": "none"}
            config["from_email"] = "bench@tidings.test"
            for method, path, body in (
                ("PUT", "/providers/smtp", {"config": config}),
                ("PUT", f"/notifications/{NOTIFICATION_ID}", NOTIFICATION),
                ("PUT", f"/automations/{AUTOMATION_ID}", AUTOMATION),
            ):
                response = api.request(method, path, json=body, headers=headers)
                assert response.status_code in (200, 201), response.text
            for n in range(args.users):
                user = user_id(n, args.users)
                profile = {"profile": {"email": email_of(user), "name": f"User {n}"}}
                api.post(f"/profiles/{user}", json=profile, headers=headers)
            for seq in range(total):
                track = {
                    "messageId": f"inprocess-{seq}",
                    "type": "track",
                    "event": "Bench Event",
                    "userId": user_id(seq, args.users),
                    "properties": {"seq": seq, "plan": "pro"},
                }
                response = api.post("/inbound/segment", json=track, headers=headers)
                assert response.status_code == 202, response.text

        statements: collections.Counter[str] = collections.Counter()

        @event.listens_for(runtime.database.engine, "before_cursor_execute")
        def _count(*arguments: Any) -> None:
            statements[str(arguments[2]).split()[0].upper()] += 1

        @event.listens_for(Session, "after_flush")
        def _count_flush(*arguments: Any) -> None:
            statements["(ORM flushes)"] += 1

        stages: list[tuple[str, str, Callable[[Any], None]]] = [
            ("event", "event.process (all)", jobs._process_events),
        ]
        if args.per_job:
            ids = [event_id for batch in queued["event"] for event_id in batch]
            queued["event"][:] = [
                ids[start : start + args.per_job] for start in range(0, len(ids), args.per_job)
            ]
        event_batches = list(queued["event"])
        print(f"tidings from {Path(tidings.__file__).parent}")
        print(
            f"{args.events} events after {WARMUP} warm-up ones, {len(event_batches)} ingest "
            f"batches (event.process jobs)"
        )
        results = {}
        for name, job, body in stages:
            work = list(queued[name])
            queued[name].clear()
            warmup, timed = work[:WARMUP], work[WARMUP:]
            if name == "event":
                # Ingest batches hold several events: warm up on the batches holding the
                # first WARMUP events.
                seen, split = 0, 0
                for split, batch in enumerate(work):  # noqa: B007
                    if seen >= WARMUP:
                        break
                    seen += len(batch)
                warmup, timed = work[:split], work[split:]
            for item in warmup:
                body(item)
            statements.clear()
            profiler = cProfile.Profile() if args.profile == name else None
            wall, cpu = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            for item in timed:
                body(item)
            if profiler is not None:
                profiler.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            flushes = statements.pop("(ORM flushes)", 0)
            per_event = {kind: round(n / args.events, 2) for kind, n in sorted(statements.items())}
            per_event["ORM flushes"] = round(flushes / args.events, 2)
            results[name] = (job, len(timed), wall, cpu, per_event)
            print(
                f"  {job:<22} {len(timed):>4} jobs  {1000 * cpu / args.events:6.2f} ms CPU, "
                f"{1000 * wall / args.events:6.2f} ms wall per event; SQL per event "
                f"{sum(statements.values()) / args.events:.1f} {per_event}"
            )
            if profiler is not None:
                stats = pstats.Stats(profiler)
                stats.sort_stats("cumulative").print_stats(r"tidings/|smtplib|email/|liquid", 40)
        cpu_total = sum(result[3] for result in results.values())
        print(
            f"  {'total':<22}       {1000 * cpu_total / args.events:6.2f} ms CPU per event: "
            f"one core runs at most {args.events / cpu_total:.0f} events/s through these jobs"
        )
        lines = (work_dir / "sink.jsonl").read_text().splitlines()
        print(f"  the sink accepted {len(lines)} emails ({total} expected)")
        runtime.close()
    finally:
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
