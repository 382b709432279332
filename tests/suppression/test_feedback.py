"""Vendors' reports feed the suppression list: a hard bounce or a complaint suppresses the
address at once, soft bounces after `TIDINGS_SOFT_BOUNCE_LIMIT` in a row (a delivery ends the
row). The next send falls over to SMS. Postmark and Twilio are loopback fakes that check the
vendors' request shapes (tests/callback)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback import test_postmark
from tests.callback.payloads import (
    POSTMARK_BOUNCE,
    POSTMARK_DELIVERY,
    POSTMARK_MESSAGE_ID,
    POSTMARK_SPAM_COMPLAINT,
)
from tests.callback.support import TEMPLATE, TWILIO_PATH, configure, twilio_config
from tests.conftest import Keys, bearer
from tests.suppression.test_send import history, settled
from tidings.config import Settings

SOFT_BOUNCE = {**POSTMARK_BOUNCE, "Type": "SoftBounce", "TypeCode": 4096, "Name": "Soft bounce"}
ADDRESS = "john@example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.soft_bounce_limit = 2
    return settings


def set_up(client: TestClient, key: str, httpserver: HTTPServer) -> None:
    """Postmark for email, Twilio for SMS; the template routes `single` email then SMS; u1
    has both addresses (the email in another case)."""
    headers = bearer(key)
    configure(client, key, "postmark", {**test_postmark.CONFIG, "base_url": httpserver.url_for("")})
    configure(client, key, "twilio", twilio_config(httpserver, "twilio-token"))
    httpserver.expect_request("/email", method="POST").respond_with_json(
        {"MessageID": POSTMARK_MESSAGE_ID, "ErrorCode": 0, "Message": "OK"}
    )
    httpserver.expect_request(TWILIO_PATH, method="POST").respond_with_json(
        {"sid": "SM42", "status": "queued"}, status=201
    )
    assert client.put("/notifications/shipped", json=TEMPLATE, headers=headers).status_code == 201
    profile = {"email": " John@Example.com", "phone_number": "+15557654321"}
    assert (
        client.post("/profiles/u1", json={"profile": profile}, headers=headers).status_code == 200
    )


def shipped(client: TestClient, key: str, **message: Any) -> str:
    body = {"to": {"user_id": "u1"}, "template": "shipped", "data": {"order_id": "A1"}, **message}
    response = client.post("/send", json={"message": body}, headers=bearer(key))
    assert response.status_code == 202, response.text
    message_id: str = response.json()["requestId"]
    return message_id


def channel_of(view: dict[str, Any]) -> str:
    (provider,) = view["providers"]
    name: str = provider["channel"]["name"]
    return name


def report(client: TestClient, record: dict[str, Any], message_id: str) -> None:
    answer = test_postmark.post(client, {**record, "Metadata": {"tidings_message_id": message_id}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] + answer.json()["recorded"] == 1


def entries(client: TestClient, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/suppressions", headers=bearer(key)).json()["items"]
    return items


def twilio_sends(httpserver: HTTPServer) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == TWILIO_PATH)


def test_a_hard_bounce_suppresses_the_address_and_the_next_send_goes_by_sms(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    set_up(client, keys.test, httpserver)
    first = shipped(client, keys.test)
    assert channel_of(settled(client, keys.test, first, "SENT")) == "email"
    report(client, POSTMARK_BOUNCE, first)
    assert settled(client, keys.test, first, "BOUNCED")["tidings_status"] == "BOUNCED"

    (entry,) = entries(client, keys.test)
    assert {k: entry[k] for k in ("channel", "address", "topic_id", "reason", "source")} == {
        "channel": "email",
        "address": ADDRESS,
        "topic_id": None,
        "reason": "HARD_BOUNCE",
        "source": "postmark",
    }
    assert entry["detail"].startswith("Postmark")
    # The same report again (a vendor's retry) adds nothing.
    repeat = {**POSTMARK_BOUNCE, "Metadata": {"tidings_message_id": first}}
    assert test_postmark.post(client, repeat).json()["duplicates"] == 1
    assert len(entries(client, keys.test)) == 1

    second = shipped(client, keys.test)
    view = settled(client, keys.test, second, "SENT")
    assert channel_of(view) == "sms"
    routed = next(e for e in history(client, keys.test, second) if e["type"] == "ROUTED")
    assert routed["suppressed"][0]["reason"] == "HARD_BOUNCE"
    assert twilio_sends(httpserver) == 1

    # Email only: nothing else to fall over to.
    email_only = shipped(client, keys.test, routing={"method": "single", "channels": ["email"]})
    kept = settled(client, keys.test, email_only, "SUPPRESSED")
    assert (kept["tidings_reason"], kept["status"]) == ("HARD_BOUNCE", "FILTERED")
    assert f"email {ADDRESS} is suppressed" in kept["error"]
    assert "from postmark" in kept["error"]
    assert twilio_sends(httpserver) == 1


def test_a_complaint_suppresses_the_address(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    set_up(client, keys.test, httpserver)
    first = shipped(client, keys.test)
    settled(client, keys.test, first, "SENT")
    report(client, POSTMARK_SPAM_COMPLAINT, first)
    (entry,) = entries(client, keys.test)
    assert (entry["address"], entry["reason"], entry["source"]) == (
        ADDRESS,
        "COMPLAINT",
        "postmark",
    )
    assert channel_of(settled(client, keys.test, shipped(client, keys.test), "SENT")) == "sms"


def test_soft_bounces_suppress_only_in_a_row(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    """TIDINGS_SOFT_BOUNCE_LIMIT is 2 here: a delivery between two soft bounces ends the row."""
    set_up(client, keys.test, httpserver)

    def sent_by_email() -> str:
        message_id = shipped(client, keys.test)
        assert channel_of(settled(client, keys.test, message_id, "SENT")) == "email"
        return message_id

    report(client, SOFT_BOUNCE, sent_by_email())
    report(client, POSTMARK_DELIVERY, sent_by_email())
    report(client, SOFT_BOUNCE, sent_by_email())
    assert entries(client, keys.test) == []
    report(client, SOFT_BOUNCE, sent_by_email())
    (entry,) = entries(client, keys.test)
    assert (entry["address"], entry["reason"]) == (ADDRESS, "SOFT_BOUNCES")
    assert entry["detail"].startswith("2 soft bounces in a row; the last: Postmark")
    assert channel_of(settled(client, keys.test, shipped(client, keys.test), "SENT")) == "sms"

    # Taken off the list, the address starts a new row from nothing.
    assert (
        client.delete(f"/suppressions/email/{ADDRESS}", headers=bearer(keys.test)).status_code
        == 204
    )
    report(client, SOFT_BOUNCE, sent_by_email())
    assert entries(client, keys.test) == []
