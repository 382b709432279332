"""The delivery pool: provider calls off the consumer threads (tidings.jobs.deliveries)."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.message.test_send_email import message_in, setup_email
from tests.smtp_sink import SmtpSink
from tidings.app import create_app
from tidings.message import pipeline
from tidings.models import Message, MessageDelivery
from tidings.runtime import Runtime


def _send(client: TestClient, key: str, order: int) -> str:
    response = client.post(
        "/send",
        json={
            "message": {"to": {"user_id": "u1"}, "template": "welcome", "data": {"order_id": order}}
        },
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    message_id: str = response.json()["requestId"]
    return message_id


def test_a_slow_provider_call_does_not_hold_back_the_next_message(
    runtime: Runtime, keys: Keys, smtp_sink: SmtpSink
) -> None:
    # One consumer thread. The first SMTP conversation hangs after EHLO until the test lets
    # it go; the second message is sent meanwhile, from another pool thread.
    hold = threading.Event()
    smtp_sink.handler.ehlo_holds.append(hold)
    with TestClient(create_app(runtime, consumer_workers=1)) as client:
        setup_email(client, keys.test, smtp_sink)
        first = _send(client, keys.test, 1)
        wait_for(smtp_sink.handler.ehlo_started.is_set, what="the first SMTP send to start")
        second = _send(client, keys.test, 2)
        message_in(client, keys.test, second, "SENT")
        assert len(smtp_sink.messages) == 1
        assert (
            client.get(f"/messages/{first}", headers=bearer(keys.test)).json()["status"] == "ROUTED"
        )
        hold.set()
        message_in(client, keys.test, first, "SENT")
    assert [message["To"] for message in smtp_sink.messages] == ["ada@example.org"] * 2


def test_without_a_consumer_the_caller_carries_out_the_attempt(
    runtime: Runtime, keys: Keys, smtp_sink: SmtpSink
) -> None:
    # No consumer runs (a tool, a test calling job bodies): the pool is not started and
    # `submit` sends on the calling thread, so the message is SENT when it returns.
    with TestClient(create_app(runtime)) as client:
        setup_email(client, keys.test, smtp_sink)
        message_id = _send(client, keys.test, 3)
    context = runtime.jobs.context
    (attempt,) = pipeline.process_message(context, message_id)
    runtime.jobs.deliveries.submit(attempt)
    with runtime.database.read() as session:
        message = session.query(Message).filter_by(message_id=message_id).one()
        delivery = session.get(MessageDelivery, attempt.delivery_id)
        assert delivery is not None
        assert (message.status, delivery.status) == ("SENT", "sent")
    assert len(smtp_sink.messages) == 1


def test_a_graceful_stop_carries_out_the_attempts_handed_over(
    runtime: Runtime, keys: Keys, smtp_sink: SmtpSink
) -> None:
    hold = threading.Event()
    smtp_sink.handler.ehlo_holds.append(hold)
    with TestClient(create_app(runtime)) as client:
        setup_email(client, keys.test, smtp_sink)
        message_id = _send(client, keys.test, 4)
    context = runtime.jobs.context
    (attempt,) = pipeline.process_message(context, message_id)
    pool = runtime.jobs.deliveries
    pool.start()
    pool.submit(attempt)
    wait_for(smtp_sink.handler.ehlo_started.is_set, what="the SMTP send to start")
    stopper = threading.Thread(target=pool.stop)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive()  # waiting for the held send
    hold.set()
    stopper.join()
    assert len(smtp_sink.messages) == 1
