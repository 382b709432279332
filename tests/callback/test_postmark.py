"""`POST /callbacks/postmark`: Postmark's webhooks, replayed from its documented examples
(tests/callback/payloads.py), with the basic-auth credentials Postmark puts in the webhook URL
(https://postmarkapp.com/developer/webhooks/webhooks-overview#protecting-your-webhook)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback.payloads import (
    POSTMARK_BOUNCE,
    POSTMARK_CLICK,
    POSTMARK_DELIVERY,
    POSTMARK_MESSAGE_ID,
    POSTMARK_OPEN,
    POSTMARK_SPAM_COMPLAINT,
)
from tests.callback.support import counts, history, last_entry, message, send_with
from tests.conftest import Keys

CONFIG = {
    "server_token": "server-token",
    "from_email": "sender@example.com",
    "webhook_username": "hooks",
    "webhook_password": "s3cret-password",
}


def send_with_postmark(client: TestClient, key: str, httpserver: HTTPServer) -> str:
    reply = {
        "To": "john@example.com",
        "SubmittedAt": "2019-11-05T16:33:54.9070259Z",
        "MessageID": POSTMARK_MESSAGE_ID,
        "ErrorCode": 0,
        "Message": "OK",
    }
    return send_with(
        client, key, httpserver, "postmark", CONFIG, "/email", reply, POSTMARK_MESSAGE_ID
    )


def auth(user: str = "hooks", password: str = "s3cret-password") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def post(
    client: httpx.Client, record: dict[str, Any], headers: dict[str, str] | None = None
) -> Any:
    return client.post(
        "/callbacks/postmark", json=record, headers=auth() if headers is None else headers
    )


def test_documented_webhooks_walk_the_message_up_the_ladder(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_postmark(client, keys.test, httpserver)

    assert post(client, POSTMARK_DELIVERY).json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    assert (view["status"], view["providers"][0]["status"]) == ("DELIVERED", "DELIVERED")
    delivered = last_entry(client, keys.test, message_id)
    assert (delivered["type"], delivered["detail"]) == (
        "DELIVERED",
        "Postmark delivered: Test delivery webhook details",
    )

    assert post(client, POSTMARK_OPEN).json() == counts(received=1, applied=1)
    opened = last_entry(client, keys.test, message_id)
    assert (opened["type"], opened["user_agent"]) == ("OPENED", POSTMARK_OPEN["UserAgent"])
    assert message(client, keys.test, message_id)["status"] == "OPENED"

    assert post(client, POSTMARK_CLICK).json() == counts(received=1, applied=1)
    clicked = last_entry(client, keys.test, message_id)
    assert (clicked["type"], clicked["url"]) == ("CLICKED", "https://example.com")
    view = message(client, keys.test, message_id)
    assert view["status"] == "CLICKED"
    # Courier's timestamps of the first open and click.
    assert view["delivered"] <= view["opened"] <= view["clicked"]

    # Postmark retries a webhook it got no answer to: the repeats change nothing.
    entries = history(client, keys.test, message_id)
    for record in (POSTMARK_DELIVERY, POSTMARK_OPEN, POSTMARK_CLICK):
        assert post(client, record).json() == counts(received=1, duplicates=1)
    assert history(client, keys.test, message_id) == entries
    again = message(client, keys.test, message_id)
    assert (again["opened"], again["clicked"]) == (view["opened"], view["clicked"])

    assert post(client, POSTMARK_SPAM_COMPLAINT).json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    assert (view["status"], view["tidings_status"]) == ("DELIVERED", "COMPLAINED")
    complained = last_entry(client, keys.test, message_id)
    assert (complained["type"], complained["detail"]) == (
        "COMPLAINED",
        "Postmark SpamComplaint: Test spam complaint details",
    )


def test_a_hard_bounce_bounces_the_message_and_a_late_delivery_changes_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_postmark(client, keys.test, httpserver)
    assert post(client, POSTMARK_BOUNCE).json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    assert (view["status"], view["tidings_status"], view["reason"]) == (
        "UNDELIVERABLE",
        "BOUNCED",
        "BOUNCED",
    )
    assert view["error"] == "Postmark HardBounce: Test bounce details"
    bounced = last_entry(client, keys.test, message_id)
    assert (bounced["type"], bounced["bounce"], bounced["event_id"]) == (
        "BOUNCED",
        "hard",
        "4323372036854775807",
    )
    # The bounce dump is not kept in the history.
    assert "Full dump" not in bounced["callback"]

    assert post(client, POSTMARK_DELIVERY).json() == counts(received=1, recorded=1)
    late = last_entry(client, keys.test, message_id)
    assert (late["type"], late["late"]) == ("DELIVERED", True)
    assert message(client, keys.test, message_id)["tidings_status"] == "BOUNCED"


def test_a_transient_bounce_is_recorded_and_the_message_stays_sent(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_postmark(client, keys.test, httpserver)
    transient = {**POSTMARK_BOUNCE, "Type": "Transient", "TypeCode": 2, "Details": "Delayed"}
    assert post(client, transient).json() == counts(received=1, recorded=1)
    assert message(client, keys.test, message_id)["status"] == "SENT"
    entry = last_entry(client, keys.test, message_id)
    assert (entry["type"], entry["status"], entry["detail"]) == (
        "PROVIDER_STATUS",
        "Bounce",
        "Postmark Transient: Delayed",
    )


def test_wrong_or_missing_credentials_are_refused_with_401_and_change_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_postmark(client, keys.test, httpserver)
    entries = history(client, keys.test, message_id)

    response = post(client, POSTMARK_DELIVERY, auth(password="guess"))
    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_credentials",
        "message": "The callback's basic-auth credentials are missing or do not match the "
        "Postmark provider's webhook_username and webhook_password. Put them in the webhook "
        "URL configured at Postmark.",
        "field": "Authorization",
    }
    assert post(client, POSTMARK_DELIVERY, {}).status_code == 401
    assert post(client, POSTMARK_DELIVERY, {"Authorization": "Basic !!"}).status_code == 401
    assert message(client, keys.test, message_id)["status"] == "SENT"
    assert history(client, keys.test, message_id) == entries


def test_without_webhook_credentials_configured_callbacks_are_refused(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_postmark(client, keys.test, httpserver)
    without = {k: v for k, v in CONFIG.items() if not k.startswith("webhook_")}
    response = client.put(
        "/providers/postmark",
        json={"config": {**without, "base_url": httpserver.url_for("")}},
        headers={"Authorization": f"Bearer {keys.test}"},
    )
    assert response.status_code == 200, response.text
    refused = post(client, POSTMARK_DELIVERY)
    assert refused.status_code == 401
    assert refused.json()["code"] == "callback_not_configured"
    assert message(client, keys.test, message_id)["status"] == "SENT"


def test_records_of_unknown_messages_and_untracked_types_are_counted(client: TestClient) -> None:
    unknown = {**POSTMARK_DELIVERY, "MessageID": "00000000-0000-0000-0000-000000000000"}
    assert post(client, unknown, {}).json() == counts(received=1, unknown=1)
    change = {**POSTMARK_BOUNCE, "RecordType": "SubscriptionChange"}
    assert post(client, change, {}).json() == counts(received=1, ignored=1)
    refused = client.post("/callbacks/postmark", json=[POSTMARK_DELIVERY])
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_request"
