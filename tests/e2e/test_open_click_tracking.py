"""Open and click tracking through a real send: a live `tidings serve` sends a tracked
template to the SMTP sink; the tracked link and open pixel are taken from the email as
received and fetched over HTTP as a mail client would (a browser, Apple Mail Privacy
Protection's proxy); the message's status, `opened`, `clicked` and history say what
happened."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Serve, cli_keys, wait_for
from tests.engagement.support import CHROME, TRACKED_TEMPLATE, tracked_urls
from tests.processes import HTTP_TIMEOUT
from tests.smtp_sink import SmtpSink
from tidings.config import Settings

APPLE_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
ORDER = "https://shop.example.com/orders/A7?from=mail&step=1"


@pytest.fixture
def server_url(serve: Serve) -> str:
    # A person does not open a message within a second of its send, and this test does: the
    # scanner rule (TIDINGS_MACHINE_ENGAGEMENT_SECONDS) has tests of its own.
    return serve(TIDINGS_MACHINE_ENGAGEMENT_SECONDS="0").url


@pytest.fixture
def api(server_url: str, settings: Settings) -> Iterator[httpx.Client]:
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    with httpx.Client(
        base_url=server_url, headers={"Authorization": f"Bearer {key}"}, timeout=HTTP_TIMEOUT
    ) as client:
        yield client


@pytest.fixture
def mail_client() -> Iterator[httpx.Client]:
    """What fetches the pixel and follows the link: no API key, no redirects followed."""
    with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
        yield client


def history(api: httpx.Client, message_id: str, kind: str) -> list[dict[str, Any]]:
    response = api.get(f"/messages/{message_id}/history")
    assert response.status_code == 200, response.text
    return [entry for entry in response.json()["results"] if entry["type"] == kind]


def test_opens_and_clicks_of_a_sent_email_reach_the_message(
    api: httpx.Client, mail_client: httpx.Client, server_url: str, smtp_sink: SmtpSink
) -> None:
    saved = api.put("/providers/smtp", json={"config": smtp_sink.provider_config()})
    assert saved.status_code == 201, saved.text
    assert api.post("/profiles/u1", json={"profile": {"email": "ada@example.org"}}).is_success
    assert api.put("/notifications/shipped", json=TRACKED_TEMPLATE).status_code == 201
    assert api.get("/notifications/shipped").json()["tracking"] == {"opens": True, "clicks": True}
    sent = api.post(
        "/send",
        json={
            "message": {"to": {"user_id": "u1"}, "template": "shipped", "data": {"order_id": "A7"}}
        },
    )
    assert sent.status_code == 202, sent.text
    message_id: str = sent.json()["requestId"]
    wait_for(
        lambda: api.get(f"/messages/{message_id}").json()["status"] == "SENT",
        what="the message SENT",
    )
    wait_for(lambda: smtp_sink.messages, what="the email in the sink")
    (email,) = smtp_sink.messages
    pixel, links = tracked_urls(email)
    assert pixel.startswith(f"{server_url}/t/o/")
    (link,) = links
    assert link.startswith(f"{server_url}/t/c/")
    html = email.get_body(("html",))
    assert html is not None
    assert 'href="mailto:help@example.com"' in html.get_content()

    # Apple Mail Privacy Protection loads the pixel as the message arrives: its proxy's bare
    # user agent, or Apple's network (the proxy in front of the server forwards the address).
    for headers in (
        {"User-Agent": "Mozilla/5.0"},
        {"User-Agent": APPLE_MAIL, "X-Forwarded-For": "17.58.63.10"},
    ):
        fetched = mail_client.get(pixel, headers=headers)
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "image/gif"
        assert "no-store" in fetched.headers["cache-control"]
    machine_opens = history(api, message_id, "OPENED")
    assert [(e["machine"], e["machine_reason"]) for e in machine_opens] == [
        (True, "apple_privacy"),
        (True, "apple_privacy"),
    ]
    assert machine_opens[0]["user_agent"] == "Mozilla/5.0"
    view = api.get(f"/messages/{message_id}").json()
    assert (view["status"], view["opened"], view["clicked"]) == ("SENT", None, None)

    # The recipient opens it in a browser, then follows the link.
    opened = mail_client.get(pixel, headers={"User-Agent": CHROME})
    assert opened.status_code == 200
    view = api.get(f"/messages/{message_id}").json()
    assert view["status"] == "OPENED"
    assert view["opened"] is not None
    clicked = mail_client.get(link, headers={"User-Agent": CHROME})
    assert clicked.status_code == 302
    assert clicked.headers["location"] == ORDER
    view = api.get(f"/messages/{message_id}").json()
    assert view["status"] == "CLICKED"
    assert view["clicked"] >= view["opened"]

    person_open = history(api, message_id, "OPENED")[-1]
    assert (person_open["machine"], person_open["user_agent"]) == (False, CHROME)
    assert "machine_reason" not in person_open
    (click,) = history(api, message_id, "CLICKED")
    assert (click["url"], click["user_agent"], click["machine"]) == (ORDER, CHROME, False)
    assert click["ts"] >= person_open["ts"] >= machine_opens[-1]["ts"]

    # A changed link leads nowhere and is not recorded.
    prefix, token = link.rsplit("/", 1)
    version, payload, mac = token.split(".")
    for forged in (
        f"{prefix}/{version}.{payload}x.{mac}",
        f"{prefix}/{version}.{payload}.{mac[1:]}",
    ):
        refused = mail_client.get(forged, headers={"User-Agent": CHROME})
        assert refused.status_code == 404
        assert refused.json()["code"] == "invalid_tracking_link"
        assert "location" not in refused.headers
    assert len(history(api, message_id, "CLICKED")) == 1
