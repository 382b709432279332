"""`POST /callbacks/sendgrid`: SendGrid's Event Webhook moves messages to DELIVERED, OPENED,
CLICKED, BOUNCED, COMPLAINED or UNDELIVERABLE.

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
        "event_id": "ev-delivered",
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
    ("fields", "bounce", "detail"),
    [
        (
            {
                "type": "bounce",
                "status": "5.1.1",
                "reason": "550 5.1.1 The email account that you tried to reach does not exist",
            },
            "hard",
            "SendGrid bounce: 550 5.1.1 The email account that you tried to reach does not "
            "exist (5.1.1)",
        ),
        (
            {"type": "blocked", "status": "5.7.1", "reason": "550 blocked"},
            "soft",
            "SendGrid bounce (blocked): 550 blocked (5.7.1)",
        ),
    ],
)
def test_a_bounce_makes_the_message_bounced_hard_or_soft(
    client: TestClient,
    keys: Keys,
    httpserver: HTTPServer,
    verification_key: str,
    fields: dict[str, str],
    bounce: str,
    detail: str,
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    response = post(client, [event("bounce", message_id, **fields)])
    assert response.json() == counts(received=1, applied=1)

    view = message(client, keys.test, message_id)
    # Courier's SDKs read a bounce as UNDELIVERABLE, reason BOUNCED.
    assert (view["status"], view["tidings_status"]) == ("UNDELIVERABLE", "BOUNCED")
    assert (view["reason"], view["error"]) == ("BOUNCED", detail)
    assert view["delivered"] is None
    assert view["providers"][0]["status"] == "BOUNCED"
    assert view["providers"][0]["error"] == detail
    last = history(client, keys.test, message_id)[-1]
    assert (last["type"], last["bounce"], last["provider"], last["detail"]) == (
        "BOUNCED",
        bounce,
        "sendgrid",
        detail,
    )
    assert last["diagnostic"] == fields["reason"]


def test_a_drop_makes_the_message_undeliverable_with_reason_bounced(
    client: TestClient, keys: Keys, httpserver: HTTPServer, verification_key: str
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    response = post(client, [event("dropped", message_id, reason="Bounced Address")])
    assert response.json() == counts(received=1, applied=1)

    view = message(client, keys.test, message_id)
    detail = "SendGrid dropped: Bounced Address"
    assert (view["status"], view["tidings_status"]) == ("UNDELIVERABLE", "UNDELIVERABLE")
    assert (view["reason"], view["error"]) == ("BOUNCED", detail)
    assert view["providers"][0]["status"] == "FAILED"
    last = history(client, keys.test, message_id)[-1]
    assert (last["type"], last["reason"], last["detail"]) == ("UNDELIVERABLE", "BOUNCED", detail)


def test_opens_clicks_and_a_spam_report_move_the_message_up_and_each_is_recorded(
    client: TestClient, keys: Keys, httpserver: HTTPServer, verification_key: str
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    opened = event("open", message_id, useragent="Mozilla/5.0", sg_event_id="ev-open-1")
    again = event("open", message_id, useragent="Mozilla/5.0", sg_event_id="ev-open-2")
    click = event("click", message_id, url="https://example.org/order", sg_event_id="ev-click")
    assert post(client, [opened, opened, click, again]).json() == counts(
        received=4, applied=2, duplicates=1, recorded=1
    )
    view = message(client, keys.test, message_id)
    assert (view["status"], view["tidings_status"]) == ("CLICKED", "CLICKED")
    assert view["delivered"] is not None
    entries = [e for e in history(client, keys.test, message_id) if e["type"] != "ENQUEUED"]
    engagement = [(e["type"], e.get("user_agent"), e.get("url")) for e in entries[-3:]]
    assert engagement == [
        ("OPENED", "Mozilla/5.0", None),
        ("CLICKED", None, "https://example.org/order"),
        ("OPENED", "Mozilla/5.0", None),
    ]
    # A delivered event that comes after the opens moves nothing back.
    late = post(client, [event("delivered", message_id, response="250 OK")]).json()
    assert late == counts(received=1, recorded=1)
    assert message(client, keys.test, message_id)["status"] == "CLICKED"

    assert post(client, [event("spamreport", message_id)]).json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    # Courier's SDKs read a complaint as DELIVERED.
    assert (view["status"], view["tidings_status"]) == ("DELIVERED", "COMPLAINED")
    last = history(client, keys.test, message_id)[-1]
    assert (last["type"], last["feedback_type"]) == ("COMPLAINED", "abuse")


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
        event("unsubscribe", message_id),
        event("processed", message_id),
        "not an event",
    ]
    response = post(client, events, key=None)
    assert response.status_code == 200, response.text
    assert response.json() == counts(received=4, ignored=3, unknown=1)
    assert message(client, keys.test, message_id)["status"] == "SENT"
    assert history(client, keys.test, message_id) == entries


def test_a_bounce_after_delivered_wins_and_a_late_delivered_changes_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer, verification_key: str
) -> None:
    message_id = send_with_sendgrid(
        client, keys.test, httpserver, verification_key=verification_key
    )
    delivered = event("delivered", message_id, response="250 OK")
    assert post(client, [delivered]).json()["applied"] == 1
    bounce = event("bounce", message_id, type="bounce", reason="550 mailbox full", status="5.2.2")

    # The receiving server accepted the mail, then bounced it: the bounce stands.
    assert post(client, [bounce]).json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    assert (view["tidings_status"], view["reason"]) == ("BOUNCED", "BOUNCED")
    assert view["error"] == "SendGrid bounce: 550 mailbox full (5.2.2)"
    assert view["providers"][0]["status"] == "BOUNCED"
    entries = history(client, keys.test, message_id)
    assert without_ts(entries[-1]) == {
        "type": "BOUNCED",
        "reason": "BOUNCED",
        "channel": "email",
        "provider": "sendgrid",
        "provider_message_id": "sg-abc123",
        "detail": "SendGrid bounce: 550 mailbox full (5.2.2)",
        "diagnostic": "550 mailbox full",
        "bounce": "hard",
        "event_id": "ev-bounce",
        "callback": orjson.dumps(bounce).decode(),
    }
    assert post(client, [bounce]).json() == counts(received=1, duplicates=1)
    assert history(client, keys.test, message_id) == entries

    # The same delivered event again, and one with another id: nothing moves back.
    assert post(client, [delivered]).json() == counts(received=1, duplicates=1)
    other = {**delivered, "sg_event_id": "ev-delivered-2"}
    assert post(client, [other]).json() == counts(received=1, duplicates=1)
    assert message(client, keys.test, message_id)["tidings_status"] == "BOUNCED"


def test_a_delivered_after_a_bounce_is_recorded_once_as_late_and_changes_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_sendgrid(client, keys.test, httpserver)
    bounce = event("bounce", message_id, type="bounce", reason="550 no such user", status="5.1.1")
    delivered = event("delivered", message_id, response="250 OK")
    assert post(client, [bounce], key=None).json() == counts(received=1, applied=1)
    assert post(client, [delivered], key=None).json() == counts(received=1, recorded=1)
    assert post(client, [delivered], key=None).json() == counts(received=1, duplicates=1)
    view = message(client, keys.test, message_id)
    assert (view["tidings_status"], view["delivered"]) == ("BOUNCED", None)
    assert view["providers"][0]["status"] == "BOUNCED"
    last = history(client, keys.test, message_id)[-1]
    assert (last["type"], last["late"]) == ("DELIVERED", True)


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
