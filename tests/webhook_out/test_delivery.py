"""One delivery's attempts, driven directly with a chosen clock: the retry schedule, the
answer recorded, a dead, a slow and a refused endpoint, and the sweeper's re-drive."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import Keys, free_port
from tests.outbox import recording
from tests.webhook_out.conftest import TIMEOUT_SECONDS
from tests.webhook_out.receiver import Receiver
from tidings.kit.outbound import OutboundClient, OutboundGuard
from tidings.kit.time import utcnow
from tidings.models import WebhookDelivery
from tidings.runtime import Runtime
from tidings.webhook_out import delivery, service
from tidings.webhook_out.events import RUN_FAILED, Emission
from tidings.webhook_out.repository import SENDING_STALE_SECONDS
from tidings.worker.context import WorkerContext
from tidings.workspace.service import Scope, resolve_keys


def _scope(runtime: Runtime, keys: Keys) -> Scope:
    with runtime.database.read() as session:
        return resolve_keys(session, runtime.cipher, [keys.test])[keys.test]


def _endpoint(runtime: Runtime, scope: Scope, url: str, *, allow_internal: bool = True) -> str:
    with runtime.database.write() as (session, _):
        row, _secret = service.create(
            session,
            scope,
            runtime.config_cipher,
            runtime.outbound if allow_internal else OutboundGuard.from_setting("127.0.0.1"),
            url=url,
            event_types=[RUN_FAILED],
        )
        return row.id


def _emit(runtime: Runtime, scope: Scope) -> int:
    with runtime.database.write() as (session, outbox):
        (delivery_id,) = service.emit(
            session, outbox, Emission(scope.environment_id, RUN_FAILED, {"run_id": "r1"})
        )
    return delivery_id


def _row(runtime: Runtime, delivery_id: int) -> WebhookDelivery:
    with runtime.database.read() as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert row is not None
        return row


def test_a_failing_endpoint_is_retried_on_the_schedule_then_the_delivery_fails(
    runtime: Runtime, keys: Keys, receiver: Receiver
) -> None:
    scope = _scope(runtime, keys)
    _endpoint(runtime, scope, receiver.answer("/down", 503))
    delivery_id = _emit(runtime, scope)
    context = runtime.jobs.context
    now = utcnow()
    waits: list[timedelta] = []
    with recording(runtime.database) as dispatched:
        for attempt in range(1, delivery.MAX_ATTEMPTS + 1):
            status = delivery.attempt(context, delivery_id, now)
            row = _row(runtime, delivery_id)
            assert row.attempts == attempt
            assert row.response_status == 503
            if status == "failed":
                break
            assert status == "pending"
            assert row.next_attempt_at is not None
            waits.append(row.next_attempt_at - now)
            # Not due yet: nothing is sent, and the job is put back for the due time.
            early = row.next_attempt_at - timedelta(milliseconds=1)
            assert delivery.attempt(context, delivery_id, early) is None
            assert dispatched.outboxes[-1].webhooks == [(delivery_id, row.next_attempt_at)]
            now = row.next_attempt_at
    assert waits == [timedelta(seconds=s) for s in delivery.RETRY_SCHEDULE_SECONDS]
    row = _row(runtime, delivery_id)
    assert row.status == "failed"
    assert row.attempts == delivery.MAX_ATTEMPTS == 8
    assert row.next_attempt_at is None
    assert len(receiver.to("/down")) == 8
    # Done: another attempt does nothing.
    assert delivery.attempt(context, delivery_id, now + timedelta(days=2)) is None
    assert len(receiver.to("/down")) == 8


def test_a_delivery_succeeds_once_the_endpoint_recovers(
    runtime: Runtime, keys: Keys, receiver: Receiver
) -> None:
    scope = _scope(runtime, keys)
    _endpoint(runtime, scope, receiver.answer("/flaky", 500, 429, 204))
    delivery_id = _emit(runtime, scope)
    context = runtime.jobs.context
    now = utcnow()
    statuses = []
    for _ in range(3):
        statuses.append(delivery.attempt(context, delivery_id, now))
        now = _row(runtime, delivery_id).next_attempt_at or now
    assert statuses == ["pending", "pending", "succeeded"]
    row = _row(runtime, delivery_id)
    assert (row.attempts, row.response_status, row.error) == (3, 204, None)
    requests = receiver.to("/flaky")
    assert {r.headers["webhook-id"] for r in requests} == {row.event_id}
    assert {r.body for r in requests} == {row.body.encode()}
    body = requests[0].json()
    assert body == {"type": "run.failed", "timestamp": body["timestamp"], "data": {"run_id": "r1"}}


def test_a_dead_and_a_slow_endpoint_are_recorded_and_retried(
    runtime: Runtime, keys: Keys, receiver: Receiver
) -> None:
    scope = _scope(runtime, keys)
    context = runtime.jobs.context
    dead = _endpoint(runtime, scope, f"http://127.0.0.1:{free_port()}/nobody-listens")
    hold = receiver.hang("/slow")
    _endpoint(runtime, scope, receiver.url + "/slow")
    with runtime.database.write() as (session, outbox):
        ids = service.emit(
            session, outbox, Emission(scope.environment_id, RUN_FAILED, {"run_id": "r2"})
        )
    assert len(ids) == 2
    for delivery_id in ids:
        assert delivery.attempt(context, delivery_id) == "pending"
    refused, slow = sorted(
        (_row(runtime, delivery_id) for delivery_id in ids), key=lambda r: r.endpoint_id != dead
    )
    assert refused.response_status is None
    assert refused.error is not None
    assert "ConnectError" in refused.error
    assert slow.response_status is None
    assert slow.error == f"no answer within {TIMEOUT_SECONDS:g} s (timed out)"
    assert slow.next_attempt_at is not None
    assert not hold.is_set()  # it timed out: the endpoint was still holding the request


def test_a_target_the_outbound_guard_refuses_fails_at_once(
    runtime: Runtime, keys: Keys, receiver: Receiver
) -> None:
    scope = _scope(runtime, keys)
    _endpoint(runtime, scope, receiver.answer("/inside"))
    delivery_id = _emit(runtime, scope)
    guarded = WorkerContext(
        runtime.database,
        runtime.settings,
        runtime.config_cipher,
        OutboundClient(OutboundGuard(), timeout=5.0),
        lease=runtime.jobs.context.lease,
    )
    try:
        assert delivery.attempt(guarded, delivery_id) == "failed"
    finally:
        guarded.http.close()
    row = _row(runtime, delivery_id)
    assert row.attempts == 1
    assert row.error is not None
    assert "internal address (loopback)" in row.error
    assert receiver.to("/inside") == []


def test_the_sweeper_redrives_a_lost_job_and_an_orphaned_attempt(
    runtime: Runtime, keys: Keys, receiver: Receiver
) -> None:
    scope = _scope(runtime, keys)
    _endpoint(runtime, scope, receiver.answer("/swept"))
    lost = _emit(runtime, scope)
    orphaned = _emit(runtime, scope)
    context = runtime.jobs.context
    # An attempt begun longer ago than an attempt can take, by a process without a lease:
    # nobody will finish it.
    begun = utcnow() - timedelta(seconds=SENDING_STALE_SECONDS + 1)
    assert delivery.start(context, orphaned, begun) is not None
    assert _row(runtime, orphaned).status == "sending"
    with recording(runtime.database) as dispatched:
        assert runtime.jobs.sweep(older_than_seconds=0) >= 2
    swept = [delivery_id for outbox in dispatched.outboxes for delivery_id, _ in outbox.webhooks]
    assert sorted(swept) == sorted([lost, orphaned])
    # Claimed: the next sweep leaves them to the jobs it queued.
    with recording(runtime.database) as again:
        runtime.jobs.sweep(older_than_seconds=0)
    assert not [w for outbox in again.outboxes for w in outbox.webhooks]
    for delivery_id in swept:
        assert delivery.attempt(context, delivery_id) == "succeeded"
    assert _row(runtime, orphaned).attempts == 2
    assert len(receiver.to("/swept")) == 2


def test_a_disabled_endpoint_gets_nothing(runtime: Runtime, keys: Keys, receiver: Receiver) -> None:
    scope = _scope(runtime, keys)
    endpoint_id = _endpoint(runtime, scope, receiver.answer("/off"))
    delivery_id = _emit(runtime, scope)
    with runtime.database.write() as (session, _):
        service.update(session, scope, runtime.outbound, endpoint_id, enabled=False)
    assert delivery.attempt(runtime.jobs.context, delivery_id) is None
    row = _row(runtime, delivery_id)
    assert (row.status, row.error, row.attempts) == ("failed", "the endpoint is disabled", 0)
    assert receiver.to("/off") == []
