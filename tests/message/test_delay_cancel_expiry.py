"""Delays, cancelation and expiry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.message.test_send_email import WELCOME, message_in, setup_email
from tests.smtp_sink import SmtpSink
from tidings.app import create_app
from tidings.kit.time import parse_timestamp, utcnow
from tidings.message import pipeline
from tidings.runtime import Runtime


@pytest.fixture
def paused(runtime: Runtime) -> Iterator[TestClient]:
    """The app with no job consumer: nothing is routed or sent until the test says so, so
    what a delay holds back does not depend on how fast the machine is."""
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


def test_a_delayed_message_waits_then_sends(
    runtime: Runtime, keys: Keys, smtp_sink: SmtpSink
) -> None:
    with TestClient(create_app(runtime)) as paused:  # as the `paused` fixture
        setup_email(paused, keys.test, smtp_sink)
        response = paused.post(
            "/send",
            json={
                "message": {
                    "to": {"user_id": "u1"},
                    "template": "welcome",
                    "delay": {"duration": 1500},
                }
            },
            headers=bearer(keys.test),
        )
        message_id = response.json()["requestId"]
        delayed = paused.get(f"/messages/{message_id}", headers=bearer(keys.test)).json()
    assert delayed["status"] == "DELAYED"
    send_at = parse_timestamp(delayed["send_at"])
    assert send_at is not None
    assert smtp_sink.messages == []
    with TestClient(create_app(runtime, consumer_workers=2)) as client:
        sent = message_in(client, keys.test, message_id, "SENT")
    assert len(smtp_sink.messages) == 1
    # Sent no earlier than it was due, however soon the consumer ran.
    assert sent["sent"] >= int(send_at.timestamp() * 1000)


def test_a_canceled_delayed_message_is_never_sent(
    paused: TestClient, runtime: Runtime, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(paused, keys.test, smtp_sink)
    response = paused.post(
        "/send",
        json={
            "message": {"to": {"user_id": "u1"}, "template": "welcome", "delay": {"duration": 800}}
        },
        headers=bearer(keys.test),
    )
    message_id = response.json()["requestId"]
    canceled = paused.post(f"/messages/{message_id}/cancel", headers=bearer(keys.test))
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "CANCELED"
    assert canceled.json()["canceledAt"] is not None
    send_at = parse_timestamp(
        paused.get(f"/messages/{message_id}", headers=bearer(keys.test)).json()["send_at"]
    )
    assert send_at is not None
    wait_for(lambda: utcnow() > send_at, what="the time it was due")
    # Its job, run now that it is due, sends nothing; the sweeper finds nothing to re-drive.
    assert list(pipeline.process_message(runtime.jobs.context, message_id)) == []
    assert runtime.jobs.sweep(0) == 0
    assert smtp_sink.messages == []
    message = paused.get(f"/messages/{message_id}", headers=bearer(keys.test)).json()
    assert message["status"] == "CANCELED"
    history = paused.get(f"/messages/{message_id}/history", headers=bearer(keys.test)).json()
    assert [entry["type"] for entry in history["results"]] == ["ENQUEUED", "DELAYED", "CANCELED"]


def test_a_sent_message_cannot_be_canceled(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    response = client.post(
        "/send",
        json={"message": {"to": {"user_id": "u1"}, "template": "welcome"}},
        headers=bearer(keys.test),
    )
    message_id = response.json()["requestId"]
    message_in(client, keys.test, message_id, "SENT")
    refused = client.post(f"/messages/{message_id}/cancel", headers=bearer(keys.test))
    assert refused.status_code == 409
    assert refused.json()["code"] == "message_not_cancelable"


def test_an_expired_message_is_not_sent(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    response = client.post(
        "/send",
        json={
            "message": {
                "to": {"user_id": "u1"},
                "template": "welcome",
                "delay": {"duration": 1000},
                "expiry": {"expires_in": 200},
            }
        },
        headers=bearer(keys.test),
    )
    message = message_in(client, keys.test, response.json()["requestId"], "UNDELIVERABLE")
    assert (message["reason"], message["tidings_reason"]) == ("FAILED", "EXPIRED")
    assert smtp_sink.messages == []


def test_send_validation_names_the_field(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.put("/notifications/welcome", json=WELCOME, headers=headers)
    cases = [
        ({"to": {"user_id": "u1"}}, "invalid_message", "message.content"),
        (
            {
                "to": {"user_id": "u1"},
                "template": "welcome",
                "content": {"title": "x", "body": "y"},
            },
            "invalid_message",
            "message.template",
        ),
        ({"to": {"user_id": "u1"}, "template": "nope"}, "notification_not_found", "template"),
        (
            {"to": {"nothing": 1}, "content": {"title": "a", "body": "b"}},
            "invalid_recipient",
            "message.to",
        ),
        (
            {"to": {"user_id": "u1"}, "content": {"elements": [{"type": "video"}]}},
            "invalid_content",
            "message.content.elements[0].type",
        ),
        (
            {"to": {"list_pattern": "a.**.b"}, "content": {"title": "a", "body": "b"}},
            "invalid_list_pattern",
            "to.list_pattern",
        ),
        (
            {"to": {"user_id": "u1"}, "template": "welcome", "delay": {"until": "tomorrow"}},
            "invalid_time",
            "message.delay.until",
        ),
    ]
    for message, code, field in cases:
        response = client.post("/send", json={"message": message}, headers=headers)
        assert response.status_code in (400, 404), (message, response.text)
        assert (response.json()["code"], response.json()["field"]) == (code, field), message
    missing_to = client.post("/send", json={"message": {"template": "welcome"}}, headers=headers)
    assert missing_to.status_code == 400
    assert missing_to.json()["field"] == "message.to"
