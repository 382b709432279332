"""The official `trycourier` Python SDK, pointed at a live Tidings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from courier import Courier, NotFoundError

from tests.conftest import LiveServer, cli_keys, wait_for
from tests.smtp_sink import SmtpSink
from tidings.config import Settings


@pytest.fixture
def courier(live_server: LiveServer, settings: Settings) -> Courier:
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    return Courier(api_key=key, base_url=live_server.url, max_retries=0)


def test_sdk_sends_a_message_and_reads_its_status(
    courier: Courier, live_server: LiveServer, smtp_sink: SmtpSink
) -> None:
    headers = {"Authorization": f"Bearer {courier.api_key}"}
    httpx.put(
        f"{live_server.url}/providers/smtp",
        json={"config": smtp_sink.provider_config()},
        headers=headers,
    ).raise_for_status()
    courier.profiles.create("u1", profile={"email": "ada@example.org", "name": "Ada"})
    assert courier.profiles.retrieve("u1").profile == {"email": "ada@example.org", "name": "Ada"}

    sent = courier.send.message(
        message={
            "to": {"user_id": "u1"},
            "content": {"title": "Hello {{ profile.name }}", "body": "Your code is {{ code }}"},
            "data": {"code": "1234"},
            "routing": {"method": "single", "channels": ["email"]},
        },
        idempotency_key="sdk-test-1",
    )
    again = courier.send.message(
        message={
            "to": {"user_id": "u1"},
            "content": {"title": "Hello {{ profile.name }}", "body": "Your code is {{ code }}"},
            "data": {"code": "1234"},
            "routing": {"method": "single", "channels": ["email"]},
        },
        idempotency_key="sdk-test-1",
    )
    assert sent.request_id == again.request_id

    def status() -> Any:
        message = courier.messages.retrieve(sent.request_id)
        return message if message.status == "SENT" else None

    message = wait_for(status, what="SENT through the SDK")
    assert message.recipient == "u1"
    assert message.enqueued > 0
    assert message.sent is not None
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["Subject"] == "Hello Ada"

    history = courier.messages.history(sent.request_id)
    assert [entry["type"] for entry in history.results][:2] == ["ENQUEUED", "PROFILE_LOADED"]

    with pytest.raises(NotFoundError):
        courier.messages.retrieve("msg_does_not_exist")
