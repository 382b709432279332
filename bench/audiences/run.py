"""Audiences at scale: 100,000 profiles and 1,000,000 events, in-process on SQLite.

On a fresh data dir (the embedded default), it stores `--profiles` profiles (a `plan` and a
`country` trait each) and `--events` processed track events spread over them and over the
last 30 days (ten names, one of them "Viewed Pricing"), then measures:

1. **Incremental maintenance, per event, as a ratio to processing with no audiences.**
   `--probe` new "Viewed Pricing" tracks of random users are processed (the consumer's
   `process_events`, groups in transactions) with no audience, then as many others with
   three audiences defined (the issue's "viewed pricing twice, not upgraded", a trait-only
   one, and a "last seen" one, which every event touches). CPU seconds per event of each
   phase; the ratio is with / without.
2. **A full scan** of each audience after its definition: wall seconds, and per user.
3. **The first page of members** (20, and the member count) of the largest audience: the
   median of `--repeat` reads, in ms.

    .venv/bin/python bench/audiences/run.py [--profiles 100000] [--events 1000000]
        [--probe 2000] [--repeat 50] [--quick]

Writes bench/results/audiences-<timestamp>.json and prints the figures. It has no budget of
its own: the ratio is reported for comparison between commits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from tidings.audience import service as audience_service
from tidings.automation import membership
from tidings.event.batching import process_events
from tidings.kit.time import utcnow
from tidings.models import Audience, Event, EventStatus, Profile
from tidings.workspace.service import Scope

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import in_process

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
NAMES = [f"Feature {n}" for n in range(8)] + ["Viewed Pricing", "Upgraded"]
CHUNK = 10_000
AUDIENCES = {
    "pricing-hot": {
        "all": [
            {"trait": "plan", "equals": "free"},
            {"event": "Viewed Pricing", "at_least": 2, "within": "7 days"},
            {"not": {"event": "Upgraded"}},
        ]
    },
    "germans": {"trait": "country", "in": ["DE", "AT", "CH"]},
    "active": {"last_seen": {"within": "3 days"}},
}


def _store(runtime: Any, scope: Scope, profiles: int, events: int, seed: int) -> float:
    """Profiles and processed events, in bulk; returns the seconds it took."""
    started = time.perf_counter()
    rng = random.Random(seed)
    now = utcnow()
    countries = ["DE", "FR", "US", "AT", "GB", "CH", "ES"]
    with runtime.database.write() as (session, _):
        for start in range(0, profiles, CHUNK):
            session.execute(
                insert(Profile),
                [
                    {
                        "workspace_id": scope.workspace_id,
                        "environment_id": scope.environment_id,
                        "user_id": f"user-{n:06d}",
                        "data": {
                            "plan": "free" if n % 3 else "pro",
                            "country": countries[n % len(countries)],
                        },
                        "anonymous": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in range(start, min(start + CHUNK, profiles))
                ],
            )
    for start in range(0, events, CHUNK):
        with runtime.database.write() as (session, _):
            rows = []
            for n in range(start, min(start + CHUNK, events)):
                at = now - dt.timedelta(seconds=rng.randrange(30 * 86400))
                name = NAMES[rng.randrange(len(NAMES))]
                rows.append(
                    {
                        "workspace_id": scope.workspace_id,
                        "environment_id": scope.environment_id,
                        "source": "segment",
                        "message_id": f"seed-{n}",
                        "type": "track",
                        "name": f"track/{name}",
                        "user_id": f"user-{rng.randrange(profiles):06d}",
                        "anonymous_id": None,
                        "payload": {"type": "track", "event": name, "properties": {}},
                        "timestamp": at,
                        "received_at": at,
                        "status": EventStatus.PROCESSED,
                        "attempts": 1,
                        "diagnostics": [],
                        "profile_diff": [],
                        "effects": [],
                        "processed_at": at,
                    }
                )
            session.execute(insert(Event), rows)
    return time.perf_counter() - started


def _process_probe(runtime: Any, scope: Scope, count: int, tag: str, seed: int) -> float:
    """Insert `count` new "Viewed Pricing" tracks as received and process them; returns the
    CPU seconds of processing per event."""
    rng = random.Random(seed)
    profiles = _profile_count(runtime)
    now = utcnow()
    with runtime.database.write() as (session, _):
        ids = session.execute(
            insert(Event).returning(Event.id),
            [
                {
                    "workspace_id": scope.workspace_id,
                    "environment_id": scope.environment_id,
                    "source": "segment",
                    "message_id": f"probe-{tag}-{n}",
                    "type": "track",
                    "name": "track/Viewed Pricing",
                    "user_id": f"user-{rng.randrange(profiles):06d}",
                    "anonymous_id": None,
                    "payload": {"type": "track", "event": "Viewed Pricing", "properties": {}},
                    "timestamp": now,
                    "received_at": now,
                    "status": EventStatus.RECEIVED,
                    "attempts": 0,
                    "diagnostics": [],
                    "profile_diff": [],
                    "effects": [],
                }
                for n in range(count)
            ],
        ).scalars()
        event_ids = list(ids)
    started = time.process_time()
    for start in range(0, len(event_ids), 100):
        outcome = process_events(
            runtime.database, event_ids[start : start + 100], 5, runtime.jobs.context
        )
        if outcome.failed or outcome.retry:
            raise SystemExit(f"probe events failed: {outcome}")
    return (time.process_time() - started) / count


def _profile_count(runtime: Any) -> int:
    with runtime.database.read() as session:
        return len(session.scalars(select(Profile.id)).all())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--probe", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="10,000 profiles, 100,000 events")
    args = parser.parse_args()
    if args.quick:
        args.profiles, args.events, args.probe = 10_000, 100_000, 500

    result: dict[str, Any] = {
        "profiles": args.profiles,
        "events": args.events,
        "probe_events": args.probe,
    }
    with (
        tempfile.TemporaryDirectory(prefix="tidings-bench-audiences-") as data_dir,
        in_process(Path(data_dir)) as tidings,
    ):
        runtime = tidings.runtime
        own = tidings.scope
        scope = Scope(own.workspace_id, own.environment_id, own.environment, "")
        result["store_s"] = round(_store(runtime, scope, args.profiles, args.events, 1), 1)

        # Warm-up (the first events pay for imports and caches), then the baseline.
        _process_probe(runtime, scope, 200, "warm", args.seed)
        without = _process_probe(runtime, scope, args.probe, "without", args.seed + 1)

        scans: dict[str, Any] = {}
        for audience_id, condition in AUDIENCES.items():
            with runtime.database.write() as (session, outbox):
                audience, _ = audience_service.put_audience(
                    session,
                    outbox,
                    scope,
                    audience_id,
                    audience_service.AudienceInput(audience_id, None, condition, None, None),
                )
                audience_pk = audience.id
            started = time.perf_counter()
            membership.scan(runtime.database, audience_pk)
            seconds = time.perf_counter() - started
            with runtime.database.read() as session:
                row = session.get(Audience, audience_pk)
                assert row is not None
                count = audience_service.member_count(session, row)
                scanned = row.scanned
            scans[audience_id] = {
                "seconds": round(seconds, 2),
                "users_scanned": scanned,
                "us_per_user": round(seconds / max(scanned, 1) * 1e6, 1),
                "members": count,
            }
        result["scans"] = scans

        _process_probe(runtime, scope, 200, "warm-with", args.seed + 2)
        with_audiences = _process_probe(runtime, scope, args.probe, "with", args.seed + 3)
        result["cpu_us_per_event_without"] = round(without * 1e6, 1)
        result["cpu_us_per_event_with"] = round(with_audiences * 1e6, 1)
        result["ratio"] = round(with_audiences / without, 3)

        largest = max(scans, key=lambda key: scans[key]["members"])
        samples = []
        with runtime.database.read() as session:
            row = session.scalars(select(Audience).where(Audience.audience_id == largest)).one()
            for _ in range(args.repeat):
                started = time.perf_counter()
                page = audience_service.members_page(session, row, None, 21)
                audience_service.member_count(session, row)
                samples.append(time.perf_counter() - started)
                assert len(page) == 21
        result["first_page"] = {
            "audience": largest,
            "members": scans[largest]["members"],
            "ms": round(statistics.median(samples) * 1000, 2),
        }

    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"audiences-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"maintenance: {result['cpu_us_per_event_with']:.0f} us CPU/event with 3 audiences, "
        f"{result['cpu_us_per_event_without']:.0f} without: ratio {result['ratio']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
