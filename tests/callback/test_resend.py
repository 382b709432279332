"""`POST /callbacks/resend`: Resend's webhooks, replayed from its documented examples
(tests/callback/payloads.py), signed the way Svix signs them
(https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests,
https://docs.svix.com/receiving/verifying-payloads/how-manual): `v1,` + base64 HMAC-SHA256
of `<svix-id>.<svix-timestamp>.<body>`, keyed with the base64 part of the `whsec_` secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback.payloads import (
    RESEND_BOUNCED,
    RESEND_CLICKED,
    RESEND_COMPLAINED,
    RESEND_DELIVERED,
    RESEND_DELIVERY_DELAYED,
    RESEND_EMAIL_ID,
    RESEND_OPENED,
)
from tests.callback.support import counts, history, last_entry, message, send_with
from tests.conftest import Keys

SECRET = "whsec_" + base64.b64encode(b"resend-webhook-signing-secret-32b").decode()
CONFIG = {"api_key": "re_123", "from_email": "onboarding@resend.dev", "webhook_secret": SECRET}


def send_with_resend(client: TestClient, key: str, httpserver: HTTPServer) -> str:
    reply = {"id": RESEND_EMAIL_ID}
    return send_with(client, key, httpserver, "resend", CONFIG, "/emails", reply, RESEND_EMAIL_ID)


def post(
    client: httpx.Client,
    event: dict[str, Any],
    svix_id: str,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
) -> Any:
    body = orjson.dumps(event)
    sent = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{svix_id}.{sent}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "svix-id": svix_id,
        "svix-timestamp": sent,
        # Svix sends one signature per active secret, space-separated.
        "svix-signature": "v1,bm90IHRoaXMgb25l v1," + base64.b64encode(digest).decode(),
        "Content-Type": "application/json",
    }
    return client.post("/callbacks/resend", content=body, headers=headers)


def test_documented_events_walk_the_message_up_the_ladder(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_resend(client, keys.test, httpserver)

    assert post(client, RESEND_DELIVERY_DELAYED, "msg_1").json() == counts(received=1, recorded=1)
    assert post(client, RESEND_DELIVERED, "msg_2").json() == counts(received=1, applied=1)
    assert message(client, keys.test, message_id)["status"] == "DELIVERED"
    assert post(client, RESEND_OPENED, "msg_3").json() == counts(received=1, applied=1)
    assert post(client, RESEND_CLICKED, "msg_4").json() == counts(received=1, applied=1)
    clicked = last_entry(client, keys.test, message_id)
    assert (clicked["type"], clicked["url"], clicked["event_id"]) == (
        "CLICKED",
        "https://resend.com",
        "msg_4",
    )
    assert clicked["user_agent"].startswith("Mozilla/5.0 (Macintosh")
    assert message(client, keys.test, message_id)["status"] == "CLICKED"

    # Svix retries with the same svix-id: a duplicate.
    entries = history(client, keys.test, message_id)
    assert post(client, RESEND_CLICKED, "msg_4").json() == counts(received=1, duplicates=1)
    assert history(client, keys.test, message_id) == entries

    assert post(client, RESEND_COMPLAINED, "msg_5").json() == counts(received=1, applied=1)
    assert message(client, keys.test, message_id)["tidings_status"] == "COMPLAINED"


def test_a_permanent_bounce_is_hard_and_outranks_a_later_delivered(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_resend(client, keys.test, httpserver)
    assert post(client, RESEND_BOUNCED, "msg_1").json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    assert (view["status"], view["tidings_status"], view["reason"]) == (
        "UNDELIVERABLE",
        "BOUNCED",
        "BOUNCED",
    )
    words = RESEND_BOUNCED["data"]["bounce"]["message"]
    assert view["error"] == f"Resend bounced (Permanent, Suppressed): {words}"
    assert last_entry(client, keys.test, message_id)["bounce"] == "hard"

    assert post(client, RESEND_DELIVERED, "msg_2").json() == counts(received=1, recorded=1)
    assert message(client, keys.test, message_id)["tidings_status"] == "BOUNCED"


def test_a_bad_old_or_missing_signature_is_refused_with_401_and_changes_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_resend(client, keys.test, httpserver)
    entries = history(client, keys.test, message_id)

    other = "whsec_" + base64.b64encode(b"another-secret").decode()
    response = post(client, RESEND_DELIVERED, "msg_1", secret=other)
    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_signature",
        "message": "The svix-signature header is missing, too old, or does not verify with "
        "the Resend provider's webhook_secret. Copy the webhook's current signing secret "
        "from Resend into the provider config.",
        "field": "svix-signature",
    }
    # Signed, but ten minutes ago: a replay.
    old = post(client, RESEND_DELIVERED, "msg_1", timestamp=int(time.time()) - 600)
    assert old.status_code == 401
    unsigned = client.post("/callbacks/resend", json=RESEND_DELIVERED)
    assert unsigned.status_code == 401
    assert message(client, keys.test, message_id)["status"] == "SENT"
    assert history(client, keys.test, message_id) == entries


def test_events_tidings_does_not_track_are_counted(client: TestClient) -> None:
    sent = {**RESEND_DELIVERED, "type": "email.sent"}
    response = client.post("/callbacks/resend", json=sent)
    assert response.json() == counts(received=1, ignored=1)
    response = client.post("/callbacks/resend", json={"type": "email.delivered"})
    assert response.status_code == 400
    assert response.json()["field"] == "data"
