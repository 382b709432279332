"""Recovery: work of a process that is gone is re-driven at once (worker leases), work of a
live one is left alone, and sweeps claim disjoint work without a cap."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Keys, wait_for
from tests.event.test_processing import _identify_for, _store_without_job
from tests.processes import WAIT_SECONDS, scaled
from tidings.db import Outbox
from tidings.jobs.engine import BACKLOG_JOBS
from tidings.kit.time import utcnow
from tidings.models import (
    AutomationRun,
    DeliveryStatus,
    Environment,
    Message,
    MessageDelivery,
    MessageStatus,
    RunStatus,
    WorkerLease,
)
from tidings.runtime import Runtime


def _lease(runtime: Runtime, lease_id: str, age_seconds: float) -> None:
    beat = utcnow() - timedelta(seconds=age_seconds)
    with runtime.database.write() as (session, _):
        session.add(
            WorkerLease(id=lease_id, hostname="h", pid=1, started_at=beat, heartbeat_at=beat)
        )


def _message(runtime: Runtime, name: str, status: str = MessageStatus.ENQUEUED) -> int:
    now = utcnow()
    with runtime.database.write() as (session, _):
        environment = session.scalars(select(Environment).where(Environment.name == "test")).one()
        message = Message(
            workspace_id=environment.workspace_id,
            environment_id=environment.id,
            message_id=name,
            request_id=name,
            status=status,
            to={"email": "ada@example.org"},
            timeout_at=now + timedelta(hours=1),
            enqueued_at=now,
            updated_at=now,
        )
        session.add(message)
        session.flush()
        return message.id


def _sending(runtime: Runtime, name: str, owner: str | None) -> int:
    message_pk = _message(runtime, name, MessageStatus.ROUTED)
    now = utcnow()
    with runtime.database.write() as (session, _):
        delivery = MessageDelivery(
            message_pk=message_pk,
            environment_id=session.get(Message, message_pk).environment_id,  # type: ignore[union-attr]
            channel="email",
            providers=["smtp"],
            provider="smtp",
            status=DeliveryStatus.SENDING,
            attempts=1,
            provider_attempts=1,
            sending_since=now,
            owner=owner,
            updated_at=now,
        )
        session.add(delivery)
        session.flush()
        return delivery.id


def _recording(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, kind: str) -> list[Any]:
    """The ids of one kind that committed units of work dispatch from now on, instead of
    their jobs."""
    seen: list[Any] = []
    lock = threading.Lock()
    pick: dict[str, Callable[[Outbox], list[Any]]] = {
        "deliveries": lambda outbox: [delivery for delivery, _ in outbox.deliveries],
        "messages": lambda outbox: [message for message, _, _ in outbox.messages],
        "events": lambda outbox: [event for _, events in outbox.events for event in events],
        "runs": lambda outbox: [run_pk for run_pk, _ in outbox.runs],
    }

    class Recorder:
        def dispatch(self, outbox: Outbox) -> None:
            with lock:
                seen.extend(pick[kind](outbox))

    monkeypatch.setattr(runtime.database, "dispatcher", Recorder())
    return seen


def test_sending_work_of_an_expired_or_unknown_lease_is_re_driven_at_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lease(runtime, "alive", age_seconds=1)
    _lease(runtime, "dead", age_seconds=runtime.settings.worker_lease_seconds + 1)
    alive = _sending(runtime, "m-alive", "alive")
    dead = _sending(runtime, "m-dead", "dead")
    unknown = _sending(runtime, "m-unknown", "never-registered")
    no_owner = _sending(runtime, "m-no-owner", None)
    delivered = _recording(runtime, monkeypatch, "deliveries")
    # All of them began a second ago: no fixed age has passed.
    assert runtime.jobs.sweep() == 2
    assert sorted(delivered) == sorted([dead, unknown])
    # A consumer starting re-drives everything pending, but never a live process's send.
    delivered.clear()
    runtime.jobs.recover()
    assert alive not in delivered
    assert no_owner not in delivered


def test_a_re_driven_delivery_of_a_dead_owner_is_sent_and_of_a_live_one_is_not(
    runtime: Runtime,
) -> None:
    from tidings.message import pipeline

    _lease(runtime, "alive", age_seconds=1)
    alive = _sending(runtime, "m-alive", "alive")
    dead = _sending(runtime, "m-dead", "gone")

    # No provider is configured: an attempt that starts fails over to nothing, and is
    # recorded; one that does not start returns None.
    context = runtime.jobs.context
    assert pipeline.start_attempt(context, alive) is None
    attempt = pipeline.start_attempt(context, dead)
    assert attempt is not None
    assert pipeline.attempt_delivery(context, attempt) == DeliveryStatus.FAILED
    with runtime.database.read() as session:
        assert session.get(MessageDelivery, alive).status == DeliveryStatus.SENDING  # type: ignore[union-attr]


def test_messages_left_enqueued_are_re_driven_when_a_consumer_starts(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _message(runtime, "m-1")
    processed = _recording(runtime, monkeypatch, "messages")
    # Younger than TIDINGS_SWEEP_STALE_SECONDS: the periodic sweep leaves it to its job...
    assert runtime.jobs.sweep() == 0
    # ...and a consumer's start takes it at once.
    assert runtime.jobs.recover() == 1
    assert processed == ["m-1"]
    # Claimed: the periodic sweep does not queue it again while the claim holds.
    assert runtime.jobs.sweep(older_than_seconds=0) == 0


def test_concurrent_sweeps_take_disjoint_events_and_all_of_them(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 1_200  # more than two chunks of SWEEP_BATCH
    ids = _store_without_job(
        runtime, keys.test, [_identify_for(f"user-{n}", n) for n in range(count)]
    )
    enqueued = _recording(runtime, monkeypatch, "events")
    threads = [threading.Thread(target=runtime.jobs.recover) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(scaled(WAIT_SECONDS))
    assert len(enqueued) == count
    assert sorted(enqueued) == sorted(ids)


def test_a_consumer_lease_re_drives_the_work_of_a_worker_whose_lease_expires(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "worker_lease_seconds", 0.5)
    _lease(runtime, "soon-dead", age_seconds=0)
    delivery = _sending(runtime, "m-1", "soon-dead")
    delivered = _recording(runtime, monkeypatch, "deliveries")
    runtime.jobs.start_lease()
    try:
        with runtime.database.read() as session:
            lease = session.get(WorkerLease, runtime.jobs.context.owner)
            assert lease is not None
        # Nobody renews "soon-dead": this process's heartbeat finds it expired, deletes it and
        # re-drives its send.
        wait_for(lambda: delivery in delivered, what="the re-driven send")
        with runtime.database.read() as session:
            assert session.get(WorkerLease, "soon-dead") is None
            assert session.get(WorkerLease, runtime.jobs.context.owner) is not None
    finally:
        runtime.jobs.stop_lease()
    with runtime.database.read() as session:
        assert session.scalars(select(WorkerLease)).all() == []


def test_work_a_dead_worker_claimed_after_its_last_heartbeat_is_re_driven_a_period_later(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's sweep claimed a message (its jobs died with the worker) after the worker's
    last heartbeat. When its lease is found expired, that claim is younger than a lease
    period, and the re-drive leaves it to the claiming sweep; the one a period later takes it."""
    monkeypatch.setattr(runtime.settings, "worker_lease_seconds", 0.5)
    _lease(runtime, "dies-after-a-sweep", age_seconds=0)
    message = _message(runtime, "m-claimed")
    with runtime.database.write() as (session, _):
        claimed = session.get(Message, message)
        assert claimed is not None
        # Claimed 0.4 s after the last heartbeat, so about 0.1 s before the lease expires.
        claimed.swept_at = utcnow() + timedelta(seconds=0.4)
    redriven = _recording(runtime, monkeypatch, "messages")
    runtime.jobs.start_lease()
    try:
        wait_for(lambda: "m-claimed" in redriven, what="the claimed message's re-drive")
        with runtime.database.read() as session:
            assert session.get(WorkerLease, "dies-after-a-sweep") is None
    finally:
        runtime.jobs.stop_lease()


def _run(runtime: Runtime, owner: str | None, updated_seconds_ago: float) -> int:
    updated = utcnow() - timedelta(seconds=updated_seconds_ago)
    with runtime.database.write() as (session, _):
        environment = session.scalars(select(Environment).where(Environment.name == "test")).one()
        run = AutomationRun(
            run_id=f"run-{secrets.token_hex(4)}",
            workspace_id=environment.workspace_id,
            environment_id=environment.id,
            definition={"steps": [{"action": "fetch-data", "url": "https://example.org"}]},
            source="test",
            status=RunStatus.PROCESSING,
            step_index=0,
            step_count=1,
            context={},
            owner=owner,
            created_at=updated,
            updated_at=updated,
        )
        session.add(run)
        session.flush()
        return run.id


def test_a_run_whose_request_is_in_flight_is_left_to_its_live_owner(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lease(runtime, "alive", age_seconds=1)
    stale = runtime.settings.sweep_stale_seconds + 5
    in_flight = _run(runtime, "alive", updated_seconds_ago=stale)
    orphaned = _run(runtime, "dead", updated_seconds_ago=0)
    between_steps = _run(runtime, None, updated_seconds_ago=stale)
    advanced = _recording(runtime, monkeypatch, "runs")
    assert runtime.jobs.sweep() == 2
    assert sorted(advanced) == sorted([orphaned, between_steps])
    advanced.clear()
    runtime.jobs.recover()
    assert in_flight not in advanced


def test_the_periodic_sweep_waits_while_the_consumers_are_behind(
    runtime: Runtime, keys: Keys
) -> None:
    """A long queue means the consumers are behind: what looks stale is still queued, and
    queueing it again doubled a flood's work. Once the queue drains, the sweep re-drives."""
    ids = _store_without_job(runtime, keys.test, [_identify_for("user-1", 1)])
    huey = runtime.jobs.huey
    for _ in range(BACKLOG_JOBS + 1):
        runtime.jobs.enqueue_events([ids[0]])
    assert runtime.jobs.sweep(0) == 0
    assert huey.pending_count() == BACKLOG_JOBS + 1

    huey.flush()
    assert runtime.jobs.sweep(0) == 1
    assert huey.dequeue().args == (ids,)
