"""Delivery feedback against a live `tidings serve`: each vendor's documented webhook payloads
(tests/callback/payloads.py), signed as the vendor signs them, replayed over HTTP at a real
server whose providers send to loopback fakes; Courier's SDK reads the outcome.

The in-process tests in tests/callback/ cover every case per vendor; this one checks the
whole loop through the real server: the send, the vendor's callback, the message's status
and history, and (for Amazon SES) the SNS subscription confirmation and certificate fetched
through the server's outbound client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from courier import Courier
from pytest_httpserver import HTTPServer

from tests.callback import test_mailgun, test_postmark, test_resend, test_ses, test_vonage
from tests.callback.payloads import (
    MAILGUN_DELIVERED,
    MAILGUN_FAILED_PERMANENT,
    MAILGUN_MESSAGE_ID,
    POSTMARK_CLICK,
    POSTMARK_DELIVERY,
    POSTMARK_MESSAGE_ID,
    POSTMARK_OPEN,
    POSTMARK_SPAM_COMPLAINT,
    RESEND_BOUNCED,
    RESEND_DELIVERED,
    RESEND_EMAIL_ID,
    SES_BOUNCE,
    SES_DELIVERY,
    SES_MESSAGE_ID,
    VONAGE_MESSAGE_ID,
    vonage_receipt,
)
from tests.callback.support import TEMPLATE
from tests.conftest import LiveServer, cli_keys, wait_for
from tests.processes import HTTP_TIMEOUT
from tidings.config import Settings


@pytest.fixture
def api(live_server: LiveServer, settings: Settings) -> Iterator[httpx.Client]:
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    with httpx.Client(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    ) as client:
        yield client


@pytest.fixture
def vendor(live_server: LiveServer) -> Iterator[httpx.Client]:
    """A client without the API key: callbacks carry the vendor's credentials only."""
    with httpx.Client(base_url=live_server.url, timeout=HTTP_TIMEOUT) as client:
        yield client


@pytest.fixture
def courier(api: httpx.Client, live_server: LiveServer) -> Iterator[Courier]:
    key = api.headers["Authorization"].removeprefix("Bearer ")
    with Courier(api_key=key, base_url=live_server.url, max_retries=0) as client:
        yield client


def send_through(
    api: httpx.Client,
    httpserver: HTTPServer,
    name: str,
    config: dict[str, Any],
    path: str,
    reply: dict[str, Any],
    provider_message_id: str,
) -> str:
    """Make `name` the environment's only provider, send, and wait until it is SENT."""
    for configured in api.get("/providers").json()["results"]:
        api.delete(f"/providers/{configured['name']}").raise_for_status()
    saved = api.put(
        f"/providers/{name}", json={"config": {**config, "base_url": httpserver.url_for("")}}
    )
    assert saved.status_code in (200, 201), saved.text
    httpserver.expect_request(path, method="POST").respond_with_json(reply)
    # The previous vendor's bounce or complaint put the address on the suppression list.
    for channel, address in (("email", "john@example.com"), ("sms", "+447700900000")):
        api.delete(f"/suppressions/{channel}/{address}")
    sent = api.post(
        "/send",
        json={
            "message": {"to": {"user_id": "u1"}, "template": "shipped", "data": {"order_id": "A1"}}
        },
    )
    assert sent.status_code == 202, sent.text
    message_id: str = sent.json()["requestId"]

    def is_sent() -> dict[str, Any] | None:
        view: dict[str, Any] = api.get(f"/messages/{message_id}").json()
        return view if view["status"] == "SENT" else None

    view = wait_for(is_sent, what=f"{name}: the message SENT")
    assert view["providers"][0]["reference"]["provider_message_id"] == provider_message_id
    return message_id


def tidings_status(api: httpx.Client, message_id: str) -> str:
    status: str = api.get(f"/messages/{message_id}").json()["tidings_status"]
    return status


def test_each_vendors_documented_webhooks_move_messages_on_a_live_server(
    api: httpx.Client, vendor: httpx.Client, courier: Courier, httpserver: HTTPServer
) -> None:
    assert api.put("/notifications/shipped", json=TEMPLATE).status_code in (200, 201)
    profile = {"email": "john@example.com", "phone_number": "+447700900000"}
    assert api.post("/profiles/u1", json={"profile": profile}).status_code == 200

    # Postmark: delivered, opened, clicked, then a spam complaint.
    postmark = send_through(
        api,
        httpserver,
        "postmark",
        test_postmark.CONFIG,
        "/email",
        {"MessageID": POSTMARK_MESSAGE_ID, "ErrorCode": 0, "Message": "OK"},
        POSTMARK_MESSAGE_ID,
    )
    for record in (POSTMARK_DELIVERY, POSTMARK_OPEN, POSTMARK_CLICK):
        assert test_postmark.post(vendor, record).json()["applied"] == 1
    assert courier.messages.retrieve(postmark).status == "CLICKED"
    assert test_postmark.post(vendor, POSTMARK_SPAM_COMPLAINT).json()["applied"] == 1
    assert tidings_status(api, postmark) == "COMPLAINED"
    suppressed = api.get("/suppressions").json()["items"]
    assert [(e["address"], e["reason"]) for e in suppressed] == [("john@example.com", "COMPLAINT")]
    assert courier.messages.retrieve(postmark).status == "DELIVERED"
    forged = test_postmark.post(vendor, POSTMARK_DELIVERY, test_postmark.auth(password="no"))
    assert forged.status_code == 401

    # Mailgun: a permanent failure (a hard bounce); the late delivered changes nothing.
    mailgun = send_through(
        api,
        httpserver,
        "mailgun",
        test_mailgun.CONFIG,
        "/v3/sandbox.mailgun.org/messages",
        {"id": f"<{MAILGUN_MESSAGE_ID}>", "message": "Queued. Thank you."},
        f"<{MAILGUN_MESSAGE_ID}>",
    )
    bounced = test_mailgun.post(vendor, test_mailgun.signed(MAILGUN_FAILED_PERMANENT))
    assert bounced.json()["applied"] == 1
    assert test_mailgun.post(vendor, test_mailgun.signed(MAILGUN_DELIVERED)).json()["recorded"] == 1
    assert tidings_status(api, mailgun) == "BOUNCED"
    read = courier.messages.retrieve(mailgun)
    assert (read.status, read.reason) == ("UNDELIVERABLE", "BOUNCED")

    # Resend: delivered, then bounced.
    resend = send_through(
        api,
        httpserver,
        "resend",
        test_resend.CONFIG,
        "/emails",
        {"id": RESEND_EMAIL_ID},
        RESEND_EMAIL_ID,
    )
    assert test_resend.post(vendor, RESEND_DELIVERED, "msg_1").json()["applied"] == 1
    assert test_resend.post(vendor, RESEND_BOUNCED, "msg_2").json()["applied"] == 1
    history = api.get(f"/messages/{resend}/history").json()["results"]
    assert [entry["type"] for entry in history][-2:] == ["DELIVERED", "BOUNCED"]
    assert history[-1]["bounce"] == "hard"

    # Amazon SES through SNS: the subscription is confirmed through the server's outbound
    # client, then a signed bounce arrives.
    httpserver.expect_request("/sns/SimpleNotificationService.pem").respond_with_data(
        test_ses.certificate(test_ses.SIGNING_KEY)
    )
    ses = send_through(
        api,
        httpserver,
        "ses",
        test_ses.config(httpserver),
        "/v2/email/outbound-emails",
        {"MessageId": SES_MESSAGE_ID},
        SES_MESSAGE_ID,
    )
    httpserver.expect_request(
        "/sns/", query_string="Action=ConfirmSubscription&Token=t1"
    ).respond_with_data("<ConfirmSubscriptionResponse/>")
    confirmation = test_ses.sns_message(
        httpserver,
        "SubscriptionConfirmation",
        "To confirm the subscription, visit the SubscribeURL included in this message.",
        "sns-confirm",
        Token="t1",
        SubscribeURL=httpserver.url_for("/sns/") + "?Action=ConfirmSubscription&Token=t1",
    )
    assert test_ses.post(vendor, confirmation).json()["subscribed"] == 1
    notification = test_ses.notification(httpserver, SES_BOUNCE, "sns-1", version="2")
    assert test_ses.post(vendor, notification).json()["applied"] == 1
    late = test_ses.notification(httpserver, SES_DELIVERY, "sns-2", version="2")
    assert test_ses.post(vendor, late).json()["recorded"] == 1
    assert tidings_status(api, ses) == "BOUNCED"

    # Vonage: an SMS, and its delivery receipt by GET.
    vonage = send_through(
        api,
        httpserver,
        "vonage",
        {**test_vonage.CONFIG, "signature_secret": test_vonage.SECRET},
        "/sms/json",
        {"message-count": "1", "messages": [{"status": "0", "message-id": VONAGE_MESSAGE_ID}]},
        VONAGE_MESSAGE_ID,
    )
    receipt = test_vonage.sign(vonage_receipt("delivered", **{"client-ref": vonage}))
    assert vendor.get("/callbacks/vonage", params=receipt).json()["applied"] == 1
    assert courier.messages.retrieve(vonage).status == "DELIVERED"
