"""`POST /callbacks/sendgrid`: SendGrid's Event Webhook moves messages to DELIVERED or
UNDELIVERABLE.

Event shapes follow SendGrid's Event Webhook reference
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event): a JSON array of
events with `event` (processed, deferred, delivered, bounce, dropped, open, click, …),
`email`, `timestamp`, `sg_event_id`, `sg_message_id` (`<X-Message-Id>.filter…`), `response`,
`reason`, `status`, `type` (bounce or blocked), and custom args flattened onto each event.
The Signed Event Webhook
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features)
sends `X-Twilio-Email-Event-Webhook-Signature`, a base64 ECDSA P-256 signature with SHA-256
over the `X-Twilio-Email-Event-Webhook-Timestamp` value followed by the raw body, checked
against the base64 public key SendGrid shows (as sendgrid-python's
`sendgrid/helpers/eventwebhook/__init__.py` does).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback.support import counts, history, message, send_with_sendgrid, without_ts
from tests.conftest import Keys

SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    SIGNING_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


@pytest.fixture
def verification_key() -> str:
    """The Signed Event Webhook public key, configured on the SendGrid provider."""
    return PUBLIC_KEY


def event(kind: str, message_id: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": "a@example.org",
        "timestamp": 1700000000,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": kind,
        "sg_event_id": f"ev-{kind}",
        "sg_message_id": "sg-abc123.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
        **fields,
    }
    if message_id is not None:
        body["tidings_message_id"] = message_id
    return body


def post(
    client: TestClient,
    events: Any,
    *,
    key: ec.EllipticCurvePrivateKey | None = SIGNING_KEY,
    timestamp: str = "1700000000",
    body: bytes | None = None,
) -> Any:
    raw = orjson.dumps(events)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        signature = key.sign(timestamp.encode() + raw, ec.ECDSA(hashes.SHA256()))
        headers[SIGNATURE] = base64.b64encode(signature).decode()
        headers[TIMESTAMP] = timestamp
    return client.post("/callbacks/sendgrid", content=body or raw, headers=headers)


def test_a_signed_delivered_event_marks_the_message_delivered(
    client: TestClient, keys: Keys, httpserver: HTTPServer, verification_key: str
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    delivered = event("delivered", message_id, response="250 OK")
    response = post(client, [delivered])
    assert response.status_code == 200, response.text
    assert response.json() == counts(received=1, applied=1)

    view = message(client, keys.test, message_id)
    assert view["status"] == "DELIVERED"
    assert view["delivered"] is not None
    assert view["delivered"] >= view["sent"]
    assert view["providers"][0]["status"] == "DELIVERED"
    last = without_ts(history(client, keys.test, message_id)[-1])
    assert last == {
        "type": "DELIVERED",
        "channel": "email",
        "provider": "sendgrid",
        "provider_message_id": "sg-abc123",
        "detail": "SendGrid delivered: 250 OK",
        "callback": orjson.dumps(delivered).decode(),
    }


def test_events_without_custom_args_are_found_by_the_sg_message_id_prefix(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_sendgrid(client, keys.test, httpserver)
    response = post(client, [event("delivered", None, response="250 OK")], key=None)
    assert response.json() == counts(received=1, applied=1)
    assert message(client, keys.test, message_id)["status"] == "DELIVERED"


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {
                "event": "bounce",
                "type": "bounce",
                "status": "5.1.1",
                "reason": "550 5.1.1 The email account that you tried to reach does not exist",
            },
            "SendGrid bounce: 550 5.1.1 The email account that you tried to reach does not "
            "exist (5.1.1)",
        ),
        (
            {"event": "bounce", "type": "blocked", "status": "5.7.1", "reason": "550 blocked"},
            "SendGrid bounce (blocked): 550 blocked (5.7.1)",
        ),
        ({"event": "dropped", "reason": "Bounced Address"}, "SendGrid dropped: Bounced Address"),
    ],
)
def test_a_bounce_or_drop_makes_the_message_undeliverable_with_reason_bounced(
    client: TestClient,
    keys: Keys,
    httpserver: HTTPServer,
    verification_key: str,
    fields: dict[str, str],
    detail: str,
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    response = post(client, [event(fields["event"], message_id, **fields)])
    assert response.json() == counts(received=1, applied=1)

    view = message(client, keys.test, message_id)
    assert view["status"] == "UNDELIVERABLE"
    assert view["reason"] == "BOUNCED"
    assert view["error"] == detail
    assert view["delivered"] is None
    assert view["providers"][0]["status"] == "FAILED"
    assert view["providers"][0]["error"] == detail
    last = history(client, keys.test, message_id)[-1]
    assert (last["type"], last["reason"], last["provider"], last["detail"]) == (
        "UNDELIVERABLE",
        "BOUNCED",
        "sendgrid",
        detail,
    )


def test_a_repeated_event_changes_and_records_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer, verification_key: str
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    delivered = event("delivered", message_id, response="250 OK")
    assert post(client, [delivered]).json() == counts(received=1, applied=1)
    first = message(client, keys.test, message_id)
    entries = history(client, keys.test, message_id)

    assert post(client, [delivered, delivered]).json() == counts(received=2, duplicates=2)
    assert message(client, keys.test, message_id) == first
    assert history(client, keys.test, message_id) == entries


def test_a_bad_signature_is_refused_with_401_and_changes_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer, verification_key: str
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    before = message(client, keys.test, message_id)
    entries = history(client, keys.test, message_id)
    delivered = [event("delivered", message_id, response="250 OK")]

    response = post(client, delivered, key=OTHER_KEY)
    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_signature",
        "message": "The X-Twilio-Email-Event-Webhook-Signature header does not verify with the "
        "SendGrid provider's verification key. Copy the current key from SendGrid's Event "
        "Webhook settings into the provider config.",
        "field": SIGNATURE,
    }
    # A signature of other content (here: another timestamp) does not carry over.
    raw = orjson.dumps(delivered)
    signature = SIGNING_KEY.sign(b"1700000001" + raw, ec.ECDSA(hashes.SHA256()))
    response = client.post(
        "/callbacks/sendgrid",
        content=raw,
        headers={SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: "1700000000"},
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"

    unsigned = post(client, delivered, key=None)
    assert unsigned.status_code == 401
    assert unsigned.json()["code"] == "missing_signature"

    assert message(client, keys.test, message_id) == before
    assert history(client, keys.test, message_id) == entries


def test_unknown_messages_and_untracked_events_are_answered_200_and_counted(
    client: TestClient, keys: Keys, httpserver: HTTPServer, verification_key: str
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    entries = history(client, keys.test, message_id)
    unknown = event("delivered", "msg_unknown", sg_message_id="nope.filter0001.0")
    events = [
        unknown,
        event("open", message_id, useragent="Mozilla/5.0"),
        event("processed", message_id),
        "not an event",
    ]
    response = post(client, events, key=None)
    assert response.status_code == 200, response.text
    assert response.json() == counts(received=4, ignored=3, unknown=1)
    assert message(client, keys.test, message_id)["status"] == "SENT"
    assert history(client, keys.test, message_id) == entries


def test_a_late_bounce_after_delivered_is_recorded_once_and_does_not_move_the_message(
    client: TestClient, keys: Keys, httpserver: HTTPServer, verification_key: str
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    assert post(client, [event("delivered", message_id, response="250 OK")]).json()["applied"] == 1
    bounce = event("bounce", message_id, type="bounce", reason="550 mailbox full", status="5.2.2")

    assert post(client, [bounce]).json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    assert (view["status"], view["reason"], view["error"]) == ("DELIVERED", None, None)
    assert view["providers"][0]["status"] == "DELIVERED"
    entries = history(client, keys.test, message_id)
    assert without_ts(entries[-1]) == {
        "type": "UNDELIVERABLE",
        "reason": "BOUNCED",
        "channel": "email",
        "provider": "sendgrid",
        "provider_message_id": "sg-abc123",
        "detail": "SendGrid bounce: 550 mailbox full (5.2.2)",
        "callback": orjson.dumps(bounce).decode(),
        "after_delivered": True,
    }

    assert post(client, [bounce]).json() == counts(received=1, duplicates=1)
    assert history(client, keys.test, message_id) == entries


def test_deferred_is_recorded_once_and_the_message_stays_sent(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_sendgrid(client, keys.test, httpserver)
    deferred = event("deferred", message_id, response="400 try again later", attempt="5")
    assert post(client, [deferred], key=None).json() == counts(received=1, recorded=1)
    assert post(client, [deferred], key=None).json() == counts(received=1, duplicates=1)
    assert message(client, keys.test, message_id)["status"] == "SENT"
    entries = [e for e in history(client, keys.test, message_id) if e["type"] == "PROVIDER_STATUS"]
    assert [without_ts(e) for e in entries] == [
        {
            "type": "PROVIDER_STATUS",
            "channel": "email",
            "provider": "sendgrid",
            "status": "deferred",
            "detail": "SendGrid deferred: 400 try again later (attempt 5)",
            "callback": orjson.dumps(deferred).decode(),
        }
    ]


def test_a_body_that_is_not_an_event_array_is_a_400(client: TestClient) -> None:
    response = client.post("/callbacks/sendgrid", json={"event": "delivered"})
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_request",
        "message": "The body must be a JSON array of events, as SendGrid's Event Webhook posts it.",
        "field": "body",
    }
    response = client.post("/callbacks/sendgrid", content=b"[{")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
