"""One environment's backlog does not hold up another's events (tidings.jobs.fairness)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import Keys, bearer
from tests.outbox import recording
from tests.payloads import track
from tidings.app import create_app
from tidings.ingest.validation import validate_segment_event
from tidings.ingest.writer import IngestItem, IngestWriter
from tidings.jobs.engine import MESSAGES_PER_JOB
from tidings.jobs.fairness import FairShare
from tidings.models import Environment, Event
from tidings.runtime import Runtime

FLOOD_BATCHES = 10
BATCH_EVENTS = 100


def test_a_flooding_environment_queues_at_lower_priorities_and_its_load_fades() -> None:
    now = [0.0]
    share = FairShare(half_life=10.0, clock=lambda: now[0])
    assert [share.priority("test", 100) for _ in range(3)] == [-100, -200, -300]
    assert share.priority("production", 1) == -1
    now[0] = 10.0  # one half-life later
    assert share.priority("test", 100) == -250
    now[0] = 200.0
    assert share.priority("test", 1) == -1


def _status_counts(runtime: Runtime) -> dict[tuple[str, str], int]:
    with runtime.database.read() as session:
        rows = session.execute(
            select(Environment.name, Event.status, func.count())
            .join(Environment, Environment.id == Event.environment_id)
            .group_by(Environment.name, Event.status)
        ).all()
    return {(name, status): count for name, status, count in rows}


def test_a_production_event_is_processed_ahead_of_a_test_flood_queued_before_it(
    runtime: Runtime, keys: Keys
) -> None:
    """The bound: an event waits for the jobs already running, then for at most one group
    of another environment's events (the group its own job fills up with)."""
    writer = IngestWriter(runtime.database, runtime.cipher)
    for batch in range(FLOOD_BATCHES):
        writer.write(
            [
                IngestItem(
                    keys.test,
                    validate_segment_event(
                        track(messageId=f"flood-{batch}-{n}", userId=f"user-{n % 40}")
                    ),
                )
                for n in range(BATCH_EVENTS)
            ]
        )
    (urgent,) = writer.write(
        [IngestItem(keys.production, validate_segment_event(track(messageId="urgent")))]
    )
    huey = runtime.jobs.huey
    assert huey.pending_count() == FLOOD_BATCHES + 1

    # The consumer takes the production job first, though it was queued last.
    first = huey.dequeue()
    assert first.args == ([urgent.event_id],)
    huey.execute(first)
    counts = _status_counts(runtime)
    assert counts[("production", "processed")] == 1
    flood = FLOOD_BATCHES * BATCH_EVENTS
    still_waiting = counts.get(("test", "received"), 0)
    assert still_waiting >= flood - 32, counts

    # The flood is then processed in full, nothing lost.
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    assert _status_counts(runtime) == {("production", "processed"): 1, ("test", "processed"): flood}


def test_a_production_send_is_routed_ahead_of_a_large_test_send(
    runtime: Runtime, keys: Keys
) -> None:
    with TestClient(create_app(runtime, consumer_workers=0)) as client:
        recipients = [{"email": f"user-{n}@example.org"} for n in range(200)]
        bulk = client.post(
            "/send",
            json={"message": {"to": recipients, "content": {"title": "Hi", "body": "All"}}},
            headers=bearer(keys.test),
        )
        assert bulk.status_code == 202, bulk.text
        urgent = client.post(
            "/send",
            json={"message": {"to": {"email": "ops@example.org"}, "content": {"title": "Down"}}},
            headers=bearer(keys.production),
        )
        assert urgent.status_code == 202, urgent.text
    huey = runtime.jobs.huey
    assert huey.pending_count() == 200 // MESSAGES_PER_JOB + 1
    first = huey.dequeue()
    assert first.args == ([urgent.json()["requestId"]],)


def test_a_recovered_backlog_is_queued_at_its_environments_share(
    runtime: Runtime, keys: Keys
) -> None:
    """Events whose jobs were lost (storage gone, process killed) are re-driven at their
    environment's fair share too: a production event queued after the recovery goes first."""
    lost = IngestWriter(runtime.database, runtime.cipher)
    with recording(runtime.database):  # their jobs never reach the queue
        for batch in range(FLOOD_BATCHES):
            lost.write(
                [
                    IngestItem(
                        keys.test, validate_segment_event(track(messageId=f"lost-{batch}-{n}"))
                    )
                    for n in range(BATCH_EVENTS)
                ]
            )
    assert runtime.jobs.recover() == FLOOD_BATCHES * BATCH_EVENTS
    writer = IngestWriter(runtime.database, runtime.cipher)
    (urgent,) = writer.write(
        [IngestItem(keys.production, validate_segment_event(track(messageId="urgent")))]
    )
    assert runtime.jobs.huey.dequeue().args == ([urgent.event_id],)
