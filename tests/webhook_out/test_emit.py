"""Where outbound webhook events come from: the SENT transition (with its statement count),
a provider's report, a failed run, an unmapped event; each signed and received."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback import test_postmark
from tests.callback.payloads import POSTMARK_DELIVERY, POSTMARK_MESSAGE_ID
from tests.conftest import Keys, bearer, wait_for
from tests.message.test_record_sent import _CountingCursor, _reply, _started_attempt
from tests.message.test_send_email import message_in, setup_email
from tests.outbox import recording
from tests.smtp_sink import SmtpSink
from tests.webhook_out.receiver import Receiver
from tests.webhook_out.support import deliveries, register
from tidings.app import create_app
from tidings.db import Database
from tidings.message.repository import MessageRepository
from tidings.models import WebhookDelivery
from tidings.runtime import Runtime
from tidings.webhook_out.events import MESSAGE_SENT, Emission, message_data


def _record_sent_counting(
    runtime: Runtime, client: TestClient, keys: Keys, httpserver: HTTPServer, monkeypatch: Any
) -> tuple[list[str], list[int]]:
    attempt, message_id = _started_attempt(client, runtime, keys, httpserver)
    statements: list[str] = []
    driver = Database.write_driver

    def counting_driver(self: Database, work: Callable[[Any], Any]) -> Any:
        return driver(self, lambda cursor: work(_CountingCursor(cursor, statements)))

    sent = Emission(
        attempt.environment_id,
        MESSAGE_SENT,
        message_data(message_id, "SENT", "u1", "email", "sendgrid", "sg-1"),
    )
    monkeypatch.setattr(Database, "write_driver", counting_driver)
    with recording(runtime.database) as dispatched:
        status = MessageRepository.record_sent(
            runtime.database, attempt.delivery_id, attempt.message_pk, _reply(attempt), sent
        )
    monkeypatch.undo()
    assert status == "sent"
    return statements, [w for outbox in dispatched.outboxes for w, _ in outbox.webhooks]


def test_without_endpoints_the_sent_transition_costs_one_more_statement_writing_nothing(
    runtime: Runtime, keys: Keys, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(runtime)) as client:
        statements, dispatched = _record_sent_counting(
            runtime, client, keys, httpserver, monkeypatch
        )
    # The four of the transition (tests/message/test_record_sent.py) and the lookup.
    assert len(statements) == 5
    assert statements[-1].startswith("INSERT INTO webhook_delivery")
    assert dispatched == []
    with runtime.database.read() as session:
        assert session.query(WebhookDelivery).count() == 0
    if runtime.database.is_sqlite:
        # The lookup is a search of webhook_subscription's key, not a scan.
        with runtime.database.engine.connect() as connection:
            plan = " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statements[-1].replace("?", "'x'")
                )
            )
        assert "SEARCH s USING" in plan
        assert "SCAN s" not in plan


def test_with_an_endpoint_the_sent_transition_inserts_its_delivery_and_dispatches_it(
    runtime: Runtime,
    keys: Keys,
    httpserver: HTTPServer,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with TestClient(create_app(runtime)) as client:
        register(client, keys.test, receiver.answer("/sent"), "message.sent")
        register(client, keys.test, receiver.answer("/other"), "message.delivered")
        statements, dispatched = _record_sent_counting(
            runtime, client, keys, httpserver, monkeypatch
        )
    assert len(statements) == 5
    assert len(dispatched) == 1
    with runtime.database.read() as session:
        row = session.get(WebhookDelivery, dispatched[0])
        assert row is not None
        assert (row.event_type, row.status) == ("message.sent", "pending")


def test_a_send_to_the_smtp_sink_and_a_provider_report_reach_the_endpoint_signed(
    client: TestClient,
    keys: Keys,
    smtp_sink: SmtpSink,
    receiver: Receiver,
    httpserver: HTTPServer,
) -> None:
    endpoint = register(
        client, keys.test, receiver.answer("/events"), "message.sent", "message.delivered"
    )
    setup_email(client, keys.test, smtp_sink)
    response = client.post(
        "/send",
        json={"message": {"to": {"user_id": "u1"}, "template": "welcome", "data": {"x": 1}}},
        headers=bearer(keys.test),
    )
    message_id = response.json()["requestId"]
    message_in(client, keys.test, message_id, "SENT")
    wait_for(lambda: smtp_sink.messages, what="the email at the sink")
    (request,) = wait_for(lambda: receiver.to("/events"), what="message.sent at the endpoint")
    payload = request.verified(endpoint["secret"])
    assert payload["type"] == "message.sent"
    assert payload["data"] == {
        "message_id": message_id,
        "status": "SENT",
        "recipient": "u1",
        "channel": "email",
        "provider": "smtp",
        "provider_message_id": payload["data"]["provider_message_id"],
    }
    wait_for(
        lambda: [d for d in deliveries(client, keys.test) if d["status"] == "succeeded"],
        what="the delivery succeeded",
    )

    # Postmark sends, and reports the delivery: message.delivered.
    postmark_message = test_postmark.send_with_postmark(client, keys.test, httpserver)
    assert test_postmark.post(client, POSTMARK_DELIVERY).json()["applied"] == 1
    delivered = wait_for(
        lambda: [
            r.verified(endpoint["secret"])
            for r in receiver.to("/events")
            if r.json()["type"] == "message.delivered"
        ],
        what="message.delivered at the endpoint",
    )
    assert delivered[0]["data"]["message_id"] == postmark_message
    assert delivered[0]["data"]["provider"] == "postmark"
    assert delivered[0]["data"]["provider_message_id"] == POSTMARK_MESSAGE_ID
    # The same report again is a duplicate: no second event.
    assert test_postmark.post(client, POSTMARK_DELIVERY).json()["duplicates"] == 1
    wait_for(
        lambda: [r.json()["type"] for r in receiver.to("/events")].count("message.sent") == 2,
        what="message.sent of the Postmark send",
    )
    wait_for(
        lambda: len(deliveries(client, keys.test, status="succeeded")) == 3,
        what="every delivery answered",
    )
    assert len(deliveries(client, keys.test)) == 3
    types = [r.json()["type"] for r in receiver.to("/events")]
    assert types.count("message.delivered") == 1


def test_a_failed_run_and_an_unmapped_event_reach_the_endpoint(
    client: TestClient, keys: Keys, receiver: Receiver
) -> None:
    endpoint = register(client, keys.test, receiver.answer("/ops"), "run.failed", "event.unmapped")
    headers = bearer(keys.test)
    invoked = client.post(
        "/automations/invoke",
        json={
            "automation": {"steps": [{"action": "send", "template": "{{ data.template }}"}]},
            "recipient": "u9",
            "data": {"template": "no-such-template"},
        },
        headers=headers,
    )
    assert invoked.status_code == 202, invoked.text
    run_id = invoked.json()["runId"]
    failed = wait_for(
        lambda: [r for r in receiver.to("/ops") if r.json()["type"] == "run.failed"],
        what="run.failed at the endpoint",
    )
    data = failed[0].verified(endpoint["secret"])["data"]
    assert data["run_id"] == run_id
    assert data["status"] == "ERROR"
    assert "no-such-template" in data["error"]

    segment = client.post(
        "/inbound/segment",
        json={"type": "track", "event": "Cart Viewed", "userId": "u9", "messageId": "m-cart"},
        headers=headers,
    )
    assert segment.status_code in (200, 202), segment.text
    unmapped = wait_for(
        lambda: [r for r in receiver.to("/ops") if r.json()["type"] == "event.unmapped"],
        what="event.unmapped at the endpoint",
    )
    data = unmapped[0].verified(endpoint["secret"])["data"]
    assert data["message_id"] == "m-cart"
    assert data["trigger"] == "segment/track/Cart Viewed"
    assert data["user_id"] == "u9"
