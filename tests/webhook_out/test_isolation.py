"""A dead endpoint and one that hangs never hold up messages: the webhook pool has one
thread here, and the slow endpoint keeps it, while every message is routed, sent to the SMTP
sink and recorded SENT."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, free_port, wait_for
from tests.message.test_send_email import message_in, setup_email
from tests.processes import WAIT_SECONDS, scaled
from tests.smtp_sink import SmtpSink
from tests.webhook_out.receiver import Receiver
from tests.webhook_out.support import deliveries, register
from tidings.config import Settings

MESSAGES = 10


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A timeout longer than the test: the slow endpoint's request is held until released.
    return settings.model_copy(
        update={"webhook_timeout_seconds": min(60.0, scaled(WAIT_SECONDS)), "webhook_threads": 1}
    )


def test_a_dead_and_a_hanging_endpoint_do_not_delay_messages(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, receiver: Receiver
) -> None:
    dead = register(client, keys.test, f"http://127.0.0.1:{free_port()}/gone", "message.sent")
    hold = receiver.hang("/slow")
    slow = register(client, keys.test, receiver.url + "/slow", "message.sent")
    setup_email(client, keys.test, smtp_sink)

    sent = []
    for number in range(MESSAGES):
        response = client.post(
            "/send",
            json={
                "message": {"to": {"user_id": "u1"}, "template": "welcome", "data": {"n": number}}
            },
            headers=bearer(keys.test),
        )
        assert response.status_code == 202, response.text
        sent.append(response.json()["requestId"])
    wait_for(lambda: receiver.held == 1, what="the slow endpoint holding a request")
    for message_id in sent:
        message_in(client, keys.test, message_id, "SENT")
    wait_for(lambda: len(smtp_sink.messages) == MESSAGES, what="every email at the sink")
    # Every message went out while the endpoint was still holding the webhook pool's one
    # thread: its first request has not been answered.
    assert receiver.held == 1
    assert len(receiver.to("/slow")) == 1

    hold.set()

    def slow_done() -> bool:
        done = deliveries(client, keys.test, endpoint_id=slow["id"], status="succeeded")
        return len(done) == MESSAGES

    wait_for(slow_done, what="every event at the slow endpoint once it answers")
    assert {r.json()["data"]["message_id"] for r in receiver.to("/slow")} == set(sent)
    refused = wait_for(
        lambda: [
            d for d in deliveries(client, keys.test, endpoint_id=dead["id"]) if d["attempts"] >= 1
        ],
        what="the dead endpoint's attempts",
    )
    assert all("ConnectError" in (d["response"]["error"] or "") for d in refused)
    assert all(d["status"] in ("pending", "sending") for d in refused)
