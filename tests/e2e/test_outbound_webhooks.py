"""Outbound webhooks against a live `tidings serve`: a send to the SMTP sink and a provider's
delivery report reach a loopback receiver as `message.sent` and `message.delivered`, signed
as Standard Webhooks (checked by the official verifier); an endpoint that fails first is
retried; a delivery is replayed with the same `webhook-id`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tests.callback import test_postmark
from tests.callback.payloads import POSTMARK_DELIVERY, POSTMARK_MESSAGE_ID
from tests.callback.support import TEMPLATE
from tests.conftest import LiveServer, cli_keys, wait_for
from tests.e2e.test_delivery_feedback import send_through
from tests.processes import HTTP_TIMEOUT
from tests.smtp_sink import SmtpSink
from tests.webhook_out.receiver import Receiver

# The loopback receiver's fixture (re-exported, so that pytest finds it here).
from tests.webhook_out.receiver import receiver as receiver
from tidings.config import Settings


@pytest.fixture
def api(live_server: LiveServer, settings: Settings) -> Iterator[httpx.Client]:
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    with httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=HTTP_TIMEOUT
    ) as client:
        yield client


def _register(api: httpx.Client, url: str, *event_types: str) -> dict[str, str]:
    response = api.post("/webhooks/endpoints", json={"url": url, "event_types": event_types})
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


def test_sends_and_reports_reach_a_receiver_signed_retried_and_replayable(
    api: httpx.Client,
    live_server: LiveServer,
    smtp_sink: SmtpSink,
    httpserver: HTTPServer,
    receiver: Receiver,
) -> None:
    main = _register(api, receiver.answer("/main"), "message.sent", "message.delivered")
    flaky = _register(api, receiver.answer("/flaky", 500, 200), "message.sent")

    # A send to the SMTP sink: message.sent.
    assert api.put("/notifications/shipped", json=TEMPLATE).status_code in (200, 201)
    profile = {"email": "john@example.com", "phone_number": "+447700900000"}
    assert api.post("/profiles/u1", json={"profile": profile}).status_code == 200
    saved = api.put("/providers/smtp", json={"config": smtp_sink.provider_config()})
    assert saved.status_code == 201, saved.text
    sent = api.post(
        "/send",
        json={
            "message": {"to": {"user_id": "u1"}, "template": "shipped", "data": {"order_id": "A1"}}
        },
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["requestId"]
    wait_for(lambda: smtp_sink.messages, what="the email at the sink", details=live_server.log)
    (request,) = wait_for(
        lambda: receiver.to("/main"), what="message.sent", details=live_server.log
    )
    payload = request.verified(main["secret"])
    assert payload["type"] == "message.sent"
    assert payload["data"]["message_id"] == message_id
    assert payload["data"]["provider"] == "smtp"
    assert api.get(f"/messages/{message_id}").json()["status"] == "SENT"

    # The endpoint that answered 500 first is retried, and the retry succeeds.
    def flaky_succeeded() -> list[dict[str, object]]:
        found = api.get(
            "/webhooks/deliveries", params={"endpoint_id": flaky["id"], "status": "succeeded"}
        ).json()["results"]
        return list(found)

    (retried,) = wait_for(flaky_succeeded, what="the retried delivery", details=live_server.log)
    assert retried["attempts"] == 2
    first, second = receiver.to("/flaky")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == retried["event_id"]
    assert second.verified(flaky["secret"])["data"]["message_id"] == message_id

    # Postmark sends; its delivery report becomes message.delivered.
    postmark = send_through(
        api,
        httpserver,
        "postmark",
        test_postmark.CONFIG,
        "/email",
        {"MessageID": POSTMARK_MESSAGE_ID, "ErrorCode": 0, "Message": "OK"},
        POSTMARK_MESSAGE_ID,
    )
    with httpx.Client(base_url=live_server.url, timeout=HTTP_TIMEOUT) as vendor:
        assert test_postmark.post(vendor, POSTMARK_DELIVERY).json()["applied"] == 1

    def delivered() -> list[dict[str, object]]:
        return [
            r.verified(main["secret"])
            for r in receiver.to("/main")
            if r.json()["type"] == "message.delivered"
        ]

    (report,) = wait_for(delivered, what="message.delivered", details=live_server.log)
    assert report["data"]["message_id"] == postmark  # type: ignore[index]
    assert report["data"]["status"] == "DELIVERED"  # type: ignore[index]

    # A replay sends the same event again, under the same webhook-id.
    log = api.get("/webhooks/deliveries", params={"endpoint_id": main["id"]}).json()["results"]
    original = next(d for d in log if d["event_type"] == "message.delivered")
    replayed = api.post(f"/webhooks/deliveries/{original['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    again = wait_for(
        lambda: [
            r for r in receiver.to("/main") if r.headers["webhook-id"] == original["event_id"]
        ][1:],
        what="the replayed request",
        details=live_server.log,
    )
    assert again[0].verified(main["secret"])["data"]["message_id"] == postmark
