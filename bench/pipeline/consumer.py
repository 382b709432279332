"""Pipeline benchmark, consumer side: CPU per event of what a job does with a group of events.

The pipeline benchmark finds Tidings' highest sustained rate through `tidings serve`, where
the event loop, the ingest writer, the consumer and the delivery threads share one
interpreter, and where the rate moves with the machine's noise. This measures, in one thread
of this process and on a fresh SQLite data dir, the consumer's own work for a group of `n`
events: `JobEngine._process_events`, the body of the `event.process` job, which processes
the group (one transaction), starts each event's run and its `send` step, routes the messages
(a second transaction) and, with no delivery pool running, sends each over SMTP to the sink
of `bench/send/sink.py` and records it sent.

Set-up as `run.py` (through the API, in-process): the SMTP provider, the notification, the
automation of one `send` step triggered by `track/Bench Event`, and `--users` profiles.
Each group's events are stored first by the ingest writer (not timed), then handed to the
job in one call (timed: this thread's CPU time). Groups of 1 event are what a quiet server
processes; under load the groups fill up to 32 (`event.batching.GROUP_EVENTS`). What the
job costs beyond its events (queries and transactions per group) shows in the difference.

    .venv/bin/python bench/pipeline/consumer.py [--groups 1,4,16] [--events 480] [--rounds 3]
        [--profile]

Prints the CPU microseconds per event for each group size (the median over the rounds).
It has no budget of its own: it is for comparing commits (`--commit` is not supported; run
it in a checkout of each).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import AUTOMATION, AUTOMATION_ID, EVENT_NAME, FROM_EMAIL, NOTIFICATION, NOTIFICATION_ID

from common import clean_environment, in_process, start_sink
from tidings.app import create_app
from tidings.ingest.tracking import batch_events
from tidings.ingest.writer import IngestItem, IngestWriter
from tidings.kit import json_input
from tidings.kit.time import utcnow
from tidings.runtime import Runtime


def _set_up(runtime: Runtime, key: str, smtp_port: int, users: int) -> None:
    """Provider, notification, automation and profiles, through the API in-process (its
    lifespan, and so its consumer, never starts)."""
    api = TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"})
    provider = {"host": "127.0.0.1", "port": smtp_port, "security": "none"}
    calls = [
        ("/providers/smtp", {"config": provider | {"from_email": FROM_EMAIL}}),
        (f"/notifications/{NOTIFICATION_ID}", NOTIFICATION),
        (f"/automations/{AUTOMATION_ID}", AUTOMATION),
    ]
    for path, body in calls:
        response = api.put(path, json=body)
        assert response.status_code < 300, response.text
    for n in range(users):
        profile = {"profile": {"email": f"bench-u{n}@bench.test", "name": f"User {n}"}}
        response = api.post(f"/profiles/bench-u{n}", json=profile)
        assert response.status_code < 300, response.text


class Events:
    """Stores groups of Segment tracks through the ingest writer and returns their ids."""

    def __init__(self, runtime: Runtime, key: str, users: int) -> None:
        self.writer = IngestWriter(runtime.database, runtime.cipher)
        self.key, self.users, self.seq = key, users, 0

    def store(self, count: int) -> list[int]:
        batch = []
        for _ in range(count):
            user = f"bench-u{self.seq % self.users}"
            batch.append(
                {
                    "type": "track",
                    "event": EVENT_NAME,
                    "userId": user,
                    "messageId": uuid.uuid4().hex,
                    "properties": {"seq": self.seq},
                }
            )
            self.seq += 1
        body = json.dumps({"batch": batch}).encode()
        events = batch_events(json_input.loads(body), utcnow(), len(body))
        results, _ = self.writer._write([IngestItem(key=self.key, event=e) for e in events])
        return [result.event_id for result in results if result.event_id is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="1,4,16", help="group sizes, comma-separated")
    parser.add_argument("--events", type=int, default=480, help="events a group size, a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="cProfile the last round")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.groups.split(",")]

    per_event: dict[int, list[float]] = {size: [] for size in sizes}
    profile = cProfile.Profile()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as work:
        sink = start_sink(stack, Path(work), clean_environment())
        tidings = stack.enter_context(in_process(Path(work) / "data", outbound_allow="127.0.0.1"))
        runtime, key = tidings.runtime, tidings.key
        _set_up(runtime, key, sink.port, args.users)
        events = Events(runtime, key, args.users)
        for _ in range(3):  # warm-up: caches, the SMTP connection
            runtime.jobs._process_events(events.store(4))
        for number in range(args.rounds):
            profiling = args.profile and number == args.rounds - 1
            for size in sizes:
                spent, groups = 0.0, max(1, args.events // size)
                for _ in range(groups):
                    ids = events.store(size)
                    if profiling:
                        profile.enable()
                    started = time.process_time()
                    runtime.jobs._process_events(ids)
                    spent += time.process_time() - started
                    if profiling:
                        profile.disable()
                per_event[size].append(spent * 1e6 / (groups * size))
                print(f"  round {number + 1}: groups of {size}: {per_event[size][-1]:.0f} us/event")
    for size, values in per_event.items():
        print(f"groups of {size}: {statistics.median(values):.0f} us/event (median)")
    if args.profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
