"""`POST /callbacks/mailgun`: Mailgun's webhooks, replayed from its documented examples
(tests/callback/payloads.py), signed as
https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks says:
the hex HMAC-SHA256 of timestamp + token under the HTTP webhook signing key."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback.payloads import (
    MAILGUN_CLICKED,
    MAILGUN_COMPLAINED,
    MAILGUN_DELIVERED,
    MAILGUN_FAILED_PERMANENT,
    MAILGUN_FAILED_TEMPORARY,
    MAILGUN_MESSAGE_ID,
    MAILGUN_OPENED,
)
from tests.callback.support import counts, history, last_entry, message, send_with
from tests.conftest import Keys

SIGNING_KEY = "key-7e55d003b4a3e7a8f0d8c4b1e6a2d9f0"
CONFIG = {
    "api_key": "key-api",
    "domain": "sandbox.mailgun.org",
    "from_email": "bob@sandbox.mailgun.org",
    "webhook_signing_key": SIGNING_KEY,
}


def send_with_mailgun(client: TestClient, key: str, httpserver: HTTPServer) -> str:
    reply = {"id": f"<{MAILGUN_MESSAGE_ID}>", "message": "Queued. Thank you."}
    path = "/v3/sandbox.mailgun.org/messages"
    return send_with(
        client, key, httpserver, "mailgun", CONFIG, path, reply, f"<{MAILGUN_MESSAGE_ID}>"
    )


def signed(event: dict[str, Any], key: str = SIGNING_KEY, token: str | None = None) -> Any:
    timestamp = "1529006854"
    token = token or "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0" + event["id"][:4]
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": digest},
        "event-data": event,
    }


def post(client: httpx.Client, body: Any) -> Any:
    return client.post("/callbacks/mailgun", json=body)


def test_documented_events_walk_the_message_up_the_ladder(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_mailgun(client, keys.test, httpserver)

    assert post(client, signed(MAILGUN_DELIVERED)).json() == counts(received=1, applied=1)
    assert message(client, keys.test, message_id)["status"] == "DELIVERED"
    delivered = last_entry(client, keys.test, message_id)
    assert (delivered["type"], delivered["detail"], delivered["event_id"]) == (
        "DELIVERED",
        "Mailgun delivered: OK",
        "CPgfbmQMTCKtHW6uIWtuVe",
    )

    assert post(client, signed(MAILGUN_OPENED)).json() == counts(received=1, applied=1)
    opened = last_entry(client, keys.test, message_id)
    assert opened["user_agent"].startswith("Mozilla/5.0 (X11; Linux x86_64)")
    assert post(client, signed(MAILGUN_CLICKED)).json() == counts(received=1, applied=1)
    clicked = last_entry(client, keys.test, message_id)
    assert clicked["url"] == MAILGUN_CLICKED["url"]
    assert message(client, keys.test, message_id)["status"] == "CLICKED"
    # Another open, after the click: recorded, and the message stays CLICKED.
    second = {**MAILGUN_OPENED, "id": "second-open"}
    assert post(client, signed(second)).json() == counts(received=1, recorded=1)
    assert message(client, keys.test, message_id)["status"] == "CLICKED"

    entries = history(client, keys.test, message_id)
    assert post(client, signed(MAILGUN_OPENED)).json() == counts(received=1, duplicates=1)
    assert history(client, keys.test, message_id) == entries

    assert post(client, signed(MAILGUN_COMPLAINED)).json() == counts(received=1, applied=1)
    assert message(client, keys.test, message_id)["tidings_status"] == "COMPLAINED"


def test_a_permanent_failure_is_a_hard_bounce_and_a_temporary_one_is_recorded(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_mailgun(client, keys.test, httpserver)
    assert post(client, signed(MAILGUN_FAILED_TEMPORARY)).json() == counts(received=1, recorded=1)
    assert message(client, keys.test, message_id)["status"] == "SENT"
    assert last_entry(client, keys.test, message_id)["detail"] == (
        "Mailgun failed (temporary, generic, 452): 4.2.2 The email account that you tried "
        "to reach is over quota."
    )

    assert post(client, signed(MAILGUN_FAILED_PERMANENT)).json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    detail = "Mailgun failed (permanent, bounce, 605): Not delivering to previously bounced address"
    assert (view["tidings_status"], view["reason"], view["error"]) == ("BOUNCED", "BOUNCED", detail)
    assert last_entry(client, keys.test, message_id)["bounce"] == "hard"

    # A delivered event that arrives after the bounce moves nothing back.
    assert post(client, signed(MAILGUN_DELIVERED)).json() == counts(received=1, recorded=1)
    assert message(client, keys.test, message_id)["tidings_status"] == "BOUNCED"


def test_a_bad_or_missing_signature_is_refused_with_401_and_changes_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_mailgun(client, keys.test, httpserver)
    entries = history(client, keys.test, message_id)

    response = post(client, signed(MAILGUN_DELIVERED, key="key-other"))
    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_signature",
        "message": "The event's signature is missing or does not verify with the Mailgun "
        "provider's webhook_signing_key. Copy the current HTTP webhook signing key from "
        "Mailgun's Webhooks page into the provider config.",
        "field": "signature",
    }
    # The signature of one token does not carry over to another.
    body = signed(MAILGUN_DELIVERED)
    body["signature"]["token"] = "another-token"
    assert post(client, body).status_code == 401
    assert post(client, {"event-data": MAILGUN_DELIVERED}).status_code == 401
    assert message(client, keys.test, message_id)["status"] == "SENT"
    assert history(client, keys.test, message_id) == entries


def test_a_body_without_event_data_is_a_400(client: TestClient) -> None:
    response = post(client, {"signature": {}})
    assert response.status_code == 400
    assert response.json()["field"] == "event-data"
