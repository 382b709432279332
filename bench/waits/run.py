"""Wait-for-event matching against 100,000 waiting runs, as a ratio to matching against none.

When an event is processed, `automation.runs.resume_waiting_runs` looks up the waits of its
recipient and name through an index and resolves the ones whose match hash equals the
event's. This times that call, in-process on a fresh SQLite data dir (the embedded default),
for two events, each repeated in a transaction rolled back after it:

- an event that matches nothing, with 0 waiting runs, then with 100,000 (other users');
- an event that resolves its run's wait, with that one waiting run, then with it and
  100,000 others.

Matching that scans the waiting runs would be about 100,000 times slower in the second
case of each pair; matching by index costs about the same. The ratios are printed; a run
exits 1 when one is above `--budget` (5 by default).

    .venv/bin/python bench/waits/run.py [--waiting 100000] [--repeat 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from tidings.automation.runs import resume_waiting_runs
from tidings.automation.steps.wait_for_event import match_fields, match_key
from tidings.kit.time import utcnow
from tidings.models import AutomationRun, AutomationRunWait, Event, RunStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import in_process

EVENT_NAME = "track/Order Completed"
STEP = {
    "action": "wait-for-event",
    "event": EVENT_NAME,
    "match": {"cart_id": "{{ data.cart_id }}"},
    "timeout": "1 hour",
    "on_match": "continue",
    "on_timeout": "continue",
}
CHUNK = 10_000


def _insert_waiting(session: Session, workspace_id: str, environment_id: str, users: range) -> None:
    """Waiting runs with their waits, one a user, cart `cart-<n>` each."""
    now = utcnow()
    fields = match_fields(["cart_id"])
    for start in range(users.start, users.stop, CHUNK):
        chunk = range(start, min(start + CHUNK, users.stop))
        first = session.execute(
            insert(AutomationRun).returning(AutomationRun.id),
            [
                {
                    "run_id": f"run_bench_{n}",
                    "workspace_id": workspace_id,
                    "environment_id": environment_id,
                    "definition": {"steps": [STEP], "cancelation_token": None},
                    "source": "bench",
                    "recipient": f"user-{n}",
                    "status": RunStatus.WAITING_FOR_EVENT,
                    "step_index": 0,
                    "step_count": 1,
                    "context": {"data": {"cart_id": f"cart-{n}"}, "refs": {}},
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in chunk
            ],
        ).scalars()
        session.execute(
            insert(AutomationRunWait),
            [
                {
                    "run_pk": run_pk,
                    "environment_id": environment_id,
                    "recipient": f"user-{n}",
                    "source": "segment",
                    "event": EVENT_NAME,
                    "position": 0,
                    "match_fields": fields,
                    "match_key": match_key({"cart_id": f"cart-{n}"}),
                    "created_at": now,
                }
                for run_pk, n in zip(first, chunk, strict=True)
            ],
        )


def _event(environment_id: str, user: str, cart: str) -> Event:
    return Event(
        workspace_id="",
        environment_id=environment_id,
        source="segment",
        message_id=f"bench-{user}-{cart}",
        type="track",
        name=EVENT_NAME,
        user_id=user,
        anonymous_id=None,
        payload={"type": "track", "event": "Order Completed", "properties": {"cart_id": cart}},
    )


def _time(engine: Any, event: Event, repeat: int, expect: int) -> float:
    """The median seconds of one `resume_waiting_runs`, rolled back after each."""
    samples = []
    for _ in range(repeat):
        with Session(engine) as session:
            session.begin()
            start = time.perf_counter()
            resumed = resume_waiting_runs(session, event)
            session.flush()
            samples.append(time.perf_counter() - start)
            session.rollback()
        if len(resumed) != expect:
            raise SystemExit(f"expected {expect} resumed runs, got {len(resumed)}")
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--budget", type=float, default=5.0)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="tidings-bench-waits-") as data_dir,
        in_process(Path(data_dir)) as tidings,
    ):
        runtime = tidings.runtime
        workspace_id, environment_id = tidings.scope.workspace_id, tidings.scope.environment_id
        engine = runtime.database.engine
        # The user whose cart resolves: user-0, outside the others' range.
        none = _event(environment_id, "user-none", "cart-x")
        own = _event(environment_id, "user-0", "cart-0")
        result: dict[str, Any] = {"waiting": args.waiting, "repeat": args.repeat}

        def measure(event: Event, expect: int) -> float:
            return _time(engine, event, args.repeat, expect)

        result["no_match_empty_s"] = measure(none, 0)
        with runtime.database.write() as (session, _):
            _insert_waiting(session, workspace_id, environment_id, range(0, 1))
        result["match_one_waiting_s"] = measure(own, 1)
        started = time.perf_counter()
        with runtime.database.write() as (session, _):
            _insert_waiting(session, workspace_id, environment_id, range(1, args.waiting + 1))
        result["insert_s"] = round(time.perf_counter() - started, 1)
        result["no_match_loaded_s"] = measure(none, 0)
        result["match_loaded_s"] = measure(own, 1)

    no_match = result["no_match_loaded_s"] / result["no_match_empty_s"]
    match = result["match_loaded_s"] / result["match_one_waiting_s"]
    result["ratio_no_match"] = round(no_match, 2)
    result["ratio_match"] = round(match, 2)
    print(json.dumps(result, indent=2))
    print(
        f"an event matching nothing: {result['no_match_empty_s'] * 1e6:.0f} us with 0 waiting "
        f"runs, {result['no_match_loaded_s'] * 1e6:.0f} us with {args.waiting:,}: "
        f"ratio {no_match:.2f}"
    )
    print(
        f"an event resolving its wait: {result['match_one_waiting_s'] * 1e6:.0f} us with 1 "
        f"waiting run, {result['match_loaded_s'] * 1e6:.0f} us with {args.waiting + 1:,}: "
        f"ratio {match:.2f}"
    )
    return 0 if max(no_match, match) <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
