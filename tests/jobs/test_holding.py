"""New events join the event job about to start rather than queueing jobs of their own
(tidings.jobs.holding)."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.conftest import Keys
from tests.payloads import track
from tidings.event.batching import GROUP_EVENTS
from tidings.ingest.validation import validate_segment_event
from tidings.ingest.writer import IngestItem, IngestWriter
from tidings.jobs.engine import EVENTS_PER_JOB
from tidings.jobs.holding import HeldEvents
from tidings.models import Event
from tidings.runtime import Runtime


def test_events_are_held_while_a_queued_event_job_has_not_started() -> None:
    held = HeldEvents()
    assert not held.hold([1])  # not consuming a polled queue: always queued
    assert not held.hold([2])
    assert held.started(32, 500) == ([], [])
    assert held.started(32, 500) == ([], [])

    held.enable()
    assert not held.hold([3])  # queued: a job now waits to start
    assert held.hold([4, 5])
    assert held.hold([6])
    assert held.started(32, 500) == ([4, 5, 6], [])  # that job takes them
    assert not held.hold([7])  # no job waits any more: queued

    assert held.hold([10, 11, 12])
    assert held.started(2, 500) == ([10, 11], [[12]])  # a group's room; the rest gets a job
    assert held.hold([13])  # held for that job

    assert held.hold([8])
    assert held.orphaned() == [13, 8]  # another process took that job
    assert not held.hold([9])


def test_the_rest_of_a_held_backlog_is_queued_in_bounded_jobs_each_counted() -> None:
    held = HeldEvents()
    held.enable()
    assert not held.hold([1], jobs=2)  # queued as two jobs
    assert held.started(0, 3) == ([], [])
    assert held.hold([2])  # the second has not started yet
    assert held.hold([3, 4, 5, 6, 7, 8, 9])
    assert held.started(1, 3) == ([2], [[3, 4, 5], [6, 7, 8], [9]])  # three jobs wait
    assert held.started(32, 3) == ([], [])
    assert held.started(32, 3) == ([], [])
    assert held.hold([10])  # the third has not started yet
    assert held.started(32, 3) == ([10], [])
    assert not held.hold([11])


def _write(runtime: Runtime, key: str, message_ids: list[str]) -> list[int]:
    writer = IngestWriter(runtime.database, runtime.cipher)
    results = writer.write(
        [IngestItem(key, validate_segment_event(track(messageId=m))) for m in message_ids]
    )
    return [result.event_id for result in results if result.event_id is not None]


def _received(runtime: Runtime) -> int:
    with runtime.database.read() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Event).where(Event.status == "received")
            )
            or 0
        )


def test_a_consumer_s_next_event_job_takes_the_events_held_for_it(
    runtime: Runtime, keys: Keys
) -> None:
    jobs = runtime.jobs
    huey = jobs.huey
    jobs.consumer(1, embedded=False)  # built, not started
    polled = not getattr(huey.storage, "blocking", False)

    first = _write(runtime, keys.test, ["h-1"])
    later = _write(runtime, keys.test, ["h-2", "h-3"]) + _write(runtime, keys.test, ["h-4"])
    # On a polled queue (SQLite) the later commits wait for the job queued for the first;
    # a blocking queue (Redis) gets a job per commit.
    assert huey.pending_count() == (1 if polled else 3)

    job = huey.dequeue()
    assert job.args == (first,)
    huey.execute(job)
    if polled:
        assert _received(runtime) == 0  # the held events were processed in that job
        assert huey.pending_count() == 0
    else:
        while (task := huey.dequeue()) is not None:
            huey.execute(task)
        assert _received(runtime) == 0
    assert len(later) == 3


def test_events_held_for_a_job_another_process_took_are_queued_by_an_idle_thread(
    runtime: Runtime, keys: Keys
) -> None:
    jobs = runtime.jobs
    huey = jobs.huey
    jobs.consumer(1, embedded=False)
    if getattr(huey.storage, "blocking", False):
        return  # nothing is held on a blocking queue (the test above shows it)
    _write(runtime, keys.test, ["o-1"])
    held = _write(runtime, keys.test, ["o-2"])
    assert huey.dequeue() is not None  # taken by another process: never started here
    assert huey.pending_count() == 0

    jobs._queue_orphaned()  # this process's thread found the queue empty
    job = huey.dequeue()
    assert job is not None
    assert job.args == (held,)


def test_a_job_takes_at_most_a_group_of_held_events_and_queues_the_rest(
    runtime: Runtime,
) -> None:
    jobs = runtime.jobs
    huey = jobs.huey
    jobs.consumer(1, embedded=False)
    if getattr(huey.storage, "blocking", False):
        return  # nothing is held on a blocking queue
    jobs.enqueue_events([1], "env_1")  # ids of no event: the job finds nothing to do
    held = list(range(100, 100 + GROUP_EVENTS + 9))
    jobs.enqueue_events(held, "env_1")
    job = huey.dequeue()
    assert job.args == ([1],)
    assert huey.pending_count() == 0

    huey.execute(job)  # takes GROUP_EVENTS - 1 of them
    rest = huey.dequeue()
    assert rest is not None
    assert rest.args == (held[GROUP_EVENTS - 1 :],)


def test_a_backlog_is_queued_in_jobs_of_at_most_events_per_job(runtime: Runtime) -> None:
    jobs = runtime.jobs
    huey = jobs.huey
    backlog = list(range(1, 2 * EVENTS_PER_JOB + 2))
    jobs.enqueue_events(backlog, "env_1")  # ids of no event
    queued = [huey.dequeue() for _ in range(huey.pending_count())]
    assert [job.args[0] for job in queued] == [
        backlog[:EVENTS_PER_JOB],
        backlog[EVENTS_PER_JOB:-1],
        backlog[-1:],
    ]
