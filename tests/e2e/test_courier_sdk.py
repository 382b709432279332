"""The official `trycourier` Python SDK, pointed at a live Tidings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from courier import Courier, NotFoundError

from tests.conftest import LiveServer, cli_keys, wait_for
from tests.processes import HTTP_TIMEOUT
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
        timeout=HTTP_TIMEOUT,
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


def test_sdk_invokes_automations_and_reads_their_runs(
    courier: Courier, live_server: LiveServer, smtp_sink: SmtpSink
) -> None:
    headers = {"Authorization": f"Bearer {courier.api_key}"}
    httpx.put(
        f"{live_server.url}/providers/smtp",
        json={"config": smtp_sink.provider_config()},
        headers=headers,
        timeout=HTTP_TIMEOUT,
    ).raise_for_status()
    httpx.put(
        f"{live_server.url}/automations/thanks",
        json={
            "steps": [
                {"action": "send", "content": {"title": "Thanks, {{ data.name }}", "body": "."}}
            ]
        },
        headers=headers,
        timeout=HTTP_TIMEOUT,
    ).raise_for_status()

    first = courier.automations.invoke.invoke_by_template(
        "thanks",
        recipient="u2",
        profile={"email": "u2@example.org"},
        data={"name": "Ines"},
        idempotency_key="thanks-u2",
    )
    again = courier.automations.invoke.invoke_by_template(
        "thanks",
        recipient="u2",
        profile={"email": "u2@example.org"},
        data={"name": "Ines"},
        idempotency_key="thanks-u2",
    )
    assert again.run_id == first.run_id
    wait_for(lambda: smtp_sink.messages, what="the automation's email")
    assert [email["Subject"] for email in smtp_sink.messages] == ["Thanks, Ines"]

    def processed() -> list[Any] | None:
        page = courier.automations.runs.list(template_id="thanks", status="PROCESSED")
        return page.runs or None

    (run,) = wait_for(processed, what="the run listed as PROCESSED")
    assert run.run_id == first.run_id
    assert run.template_id == "thanks"
    assert run.source == ["invoke/thanks"]
    (step,) = courier.automations.runs.list_steps(first.run_id).steps
    assert step.action == "send"
    assert step.status == "PROCESSED"
    assert step.message_id is not None
    message = httpx.get(
        f"{live_server.url}/messages/{step.message_id}", headers=headers, timeout=HTTP_TIMEOUT
    ).json()
    assert message["recipient"] == "u2"

    ad_hoc = courier.automations.invoke.invoke_ad_hoc(
        automation={
            "steps": [{"action": "update-profile", "profile": {"vip": True}, "merge": "overwrite"}]
        },
        recipient="u2",
    )
    wait_for(
        lambda: (
            courier.automations.runs.list(status="PROCESSED,ERROR").runs[0].run_id == ad_hoc.run_id
        ),
        what="the ad hoc run",
    )
    assert courier.profiles.retrieve("u2").profile == {"vip": True}
