"""Open and click tracking in-process: a send through the SMTP sink, its tracked links and
pixel fetched, and what they did to the message; the settings per template and environment."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.engagement.support import CHROME, TRACKED_TEMPLATE, tracked_urls
from tests.message.test_send_email import message_in
from tests.smtp_sink import SmtpSink
from tidings.callback import hits
from tidings.config import Settings
from tidings.engagement.links import engagement_key, open_token
from tidings.runtime import Runtime

BROWSER = {"User-Agent": CHROME}


@pytest.fixture(autouse=True)
def no_scanner_window(settings: Settings) -> None:
    """These tests fetch a message's links the moment it is sent, as no person does: the
    "too soon" rule is tested on its own (test_machine.py, and below)."""
    settings.machine_engagement_seconds = 0


def path_of(url: str) -> str:
    return urlsplit(url).path


def setup(client: TestClient, key: str, sink: SmtpSink, template: dict[str, Any]) -> None:
    headers = bearer(key)
    assert client.put("/notifications/shipped", json=template, headers=headers).status_code in (
        200,
        201,
    )
    response = client.put(
        "/providers/smtp", json={"config": sink.provider_config()}, headers=headers
    )
    assert response.status_code in (200, 201), response.text
    response = client.post(
        "/profiles/u1", json={"profile": {"email": "ada@example.org"}}, headers=headers
    )
    assert response.status_code == 200, response.text


def send_and_receive(client: TestClient, key: str, sink: SmtpSink) -> tuple[str, EmailMessage]:
    count = len(sink.messages)
    response = client.post(
        "/send",
        json={
            "message": {"to": {"user_id": "u1"}, "template": "shipped", "data": {"order_id": "A7"}}
        },
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    message_id: str = response.json()["requestId"]
    message_in(client, key, message_id, "SENT")
    wait_for(lambda: len(sink.messages) > count, what="the email in the sink")
    return message_id, sink.messages[-1]


def history(client: TestClient, key: str, message_id: str, *types: str) -> list[dict[str, Any]]:
    response = client.get(f"/messages/{message_id}/history", headers=bearer(key))
    assert response.status_code == 200, response.text
    return [entry for entry in response.json()["results"] if entry["type"] in types]


def view(client: TestClient, key: str, message_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/messages/{message_id}", headers=bearer(key)).json()
    return body


def test_a_tracked_email_records_opens_and_clicks_and_moves_the_message(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup(client, keys.test, smtp_sink, TRACKED_TEMPLATE)
    message_id, email = send_and_receive(client, keys.test, smtp_sink)
    pixel, links = tracked_urls(email)
    assert len(links) == 1
    body = email.get_body(("html",))
    assert body is not None
    assert 'href="mailto:help@example.com"' in body.get_content()
    assert "shop.example.com" not in body.get_content()
    # The text part is left as it is.
    text = email.get_body(("plain",))
    assert text is not None
    assert "https://shop.example.com/orders/A7" in text.get_content()
    (rendered,) = history(client, keys.test, message_id, "RENDERED")
    assert rendered["tracking"] == {"opens": True, "links": 1}

    opened = client.get(path_of(pixel), headers=BROWSER)
    assert opened.status_code == 200
    assert opened.headers["content-type"] == "image/gif"
    assert opened.content.startswith(b"GIF89a")
    assert "no-store" in opened.headers["cache-control"]
    read = view(client, keys.test, message_id)
    assert (read["status"], read["tidings_status"]) == ("OPENED", "OPENED")
    assert read["opened"] > 0
    assert read["clicked"] is None

    clicked = client.get(path_of(links[0]), headers=BROWSER, follow_redirects=False)
    assert clicked.status_code == 302
    assert clicked.headers["location"] == "https://shop.example.com/orders/A7?from=mail&step=1"
    read = view(client, keys.test, message_id)
    assert read["status"] == "CLICKED"
    assert read["clicked"] >= read["opened"]

    (open_entry,) = history(client, keys.test, message_id, "OPENED")
    (click_entry,) = history(client, keys.test, message_id, "CLICKED")
    assert open_entry["user_agent"] == CHROME
    assert open_entry["machine"] is False
    assert (open_entry["channel"], open_entry["provider"]) == ("email", "smtp")
    assert open_entry["source"] == "tidings_tracking"
    assert "callback" not in open_entry
    assert click_entry["url"] == "https://shop.example.com/orders/A7?from=mail&step=1"
    assert click_entry["machine"] is False
    assert click_entry["ts"] >= open_entry["ts"]

    # Each open is its own entry; a later open leaves CLICKED.
    assert client.get(path_of(pixel), headers=BROWSER).status_code == 200
    assert len(history(client, keys.test, message_id, "OPENED")) == 2
    assert view(client, keys.test, message_id)["status"] == "CLICKED"


def test_a_machine_open_is_recorded_and_not_counted(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup(client, keys.test, smtp_sink, TRACKED_TEMPLATE)
    message_id, email = send_and_receive(client, keys.test, smtp_sink)
    pixel, links = tracked_urls(email)
    # Apple Mail Privacy Protection fetches the pixel as the message arrives.
    assert client.get(path_of(pixel), headers={"User-Agent": "Mozilla/5.0"}).status_code == 200
    # A link scanner follows the link: it still gets where the link goes.
    scanned = client.get(
        path_of(links[0]), headers={"User-Agent": "python-requests/2.32"}, follow_redirects=False
    )
    assert scanned.status_code == 302
    read = view(client, keys.test, message_id)
    assert read["status"] == "SENT"
    assert (read["opened"], read["clicked"]) == (None, None)
    (open_entry,) = history(client, keys.test, message_id, "OPENED")
    assert (open_entry["machine"], open_entry["machine_reason"]) == (True, "apple_privacy")
    assert "late" not in open_entry
    (click_entry,) = history(client, keys.test, message_id, "CLICKED")
    assert (click_entry["machine"], click_entry["machine_reason"]) == (True, "automated_client")

    # A person's open afterwards counts.
    assert client.get(path_of(pixel), headers=BROWSER).status_code == 200
    assert view(client, keys.test, message_id)["status"] == "OPENED"


def test_a_changed_link_or_pixel_is_a_404_and_records_nothing(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup(client, keys.test, smtp_sink, TRACKED_TEMPLATE)
    message_id, email = send_and_receive(client, keys.test, smtp_sink)
    pixel, links = tracked_urls(email)
    for url in (pixel, links[0]):
        path = path_of(url)
        version, payload, mac = path.rsplit("/", 1)[1].split(".")
        prefix = path.rsplit("/", 1)[0]
        changed = [
            f"{prefix}/{version}.{payload}A.{mac}",
            f"{prefix}/{version}.{payload}.{mac[:-1]}",
            f"{prefix}/{version}.{payload}",
            f"{prefix}/not-a-token",
            f"{prefix}/{'x' * 5000}",
        ]
        for bad in changed:
            response = client.get(bad, headers=BROWSER, follow_redirects=False)
            assert response.status_code == 404, bad
            assert response.json()["code"] in ("invalid_tracking_link", "invalid_request")
            assert "location" not in response.headers
    # An open token is no link, and a link no open.
    swapped = client.get(
        path_of(links[0]).replace("/t/c/", "/t/o/"), headers=BROWSER, follow_redirects=False
    )
    assert swapped.status_code == 404
    assert history(client, keys.test, message_id, "OPENED", "CLICKED") == []
    assert view(client, keys.test, message_id)["status"] == "SENT"


def test_a_genuine_link_of_a_message_that_is_gone_still_redirects(
    client: TestClient, runtime: Runtime
) -> None:
    key = engagement_key(runtime.secret)
    assert client.get(f"/t/o/{open_token(key, 'no-such-message')}").status_code == 200


def test_without_settings_a_template_is_not_tracked_and_the_environment_default_applies(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    untracked = {key: value for key, value in TRACKED_TEMPLATE.items() if key != "tracking"}
    setup(client, keys.test, smtp_sink, untracked)
    assert client.get("/settings/tracking", headers=bearer(keys.test)).json() == {
        "opens": False,
        "clicks": False,
    }
    _, email = send_and_receive(client, keys.test, smtp_sink)
    body = email.get_body(("html",))
    assert body is not None
    assert "/t/" not in body.get_content()
    assert 'href="https://shop.example.com/orders/A7?from=mail&step=1"' in body.get_content()

    # The environment's default: opens only.
    response = client.put(
        "/settings/tracking", json={"opens": True, "clicks": False}, headers=bearer(keys.test)
    )
    assert response.status_code == 200, response.text
    assert client.get("/settings/tracking", headers=bearer(keys.test)).json()["opens"] is True
    # Another environment keeps its own.
    assert (
        client.get("/settings/tracking", headers=bearer(keys.production)).json()["opens"] is False
    )
    _, email = send_and_receive(client, keys.test, smtp_sink)
    _, links = tracked_urls(email)
    assert links == []

    # A template's own setting wins over the default; what it leaves out is the default's.
    clicks_only = {**untracked, "tracking": {"clicks": True, "opens": False}}
    setup(client, keys.test, smtp_sink, clicks_only)
    _, email = send_and_receive(client, keys.test, smtp_sink)
    body = email.get_body(("html",))
    assert body is not None
    assert "/t/o/" not in body.get_content()
    assert "/t/c/" in body.get_content()
    clicks_left_out = {**untracked, "tracking": {"clicks": None}}
    setup(client, keys.test, smtp_sink, clicks_left_out)
    _, email = send_and_receive(client, keys.test, smtp_sink)
    _, links = tracked_urls(email)
    assert links == []


def test_tracking_settings_are_checked(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    bad = client.put("/settings/tracking", json={"opens": "sometimes"}, headers=headers)
    assert bad.status_code == 400
    assert bad.json()["field"] is not None
    unknown = client.put("/settings/tracking", json={"open": True}, headers=headers)
    assert unknown.status_code == 400
    assert client.get("/settings/tracking").status_code == 401
    template = {**TRACKED_TEMPLATE, "tracking": {"opens": True, "pixels": True}}
    refused = client.put("/notifications/shipped", json=template, headers=headers)
    assert refused.status_code == 400


def test_a_scanner_that_follows_links_as_the_email_arrives_is_flagged(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    setup(client, keys.test, smtp_sink, TRACKED_TEMPLATE)
    message_id, _ = send_and_receive(client, keys.test, smtp_sink)
    url = "https://shop.example.com/orders/A7?from=mail&step=1"
    hit = hits.Hit(message_id=message_id, user_agent=CHROME, client_ip="203.0.113.5", url=url)
    with runtime.database.write() as (session, outbox):
        assert hits.record_hit(session, outbox, hit, machine_seconds=3600) == "recorded"
    (entry,) = history(client, keys.test, message_id, "CLICKED")
    assert (entry["machine"], entry["machine_reason"]) == (True, "too_soon")
    assert view(client, keys.test, message_id)["clicked"] is None


def test_a_message_keeps_a_bounded_number_of_opens_and_clicks(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hits, "MAX_TRACKED_EVENTS", 3)
    setup(client, keys.test, smtp_sink, TRACKED_TEMPLATE)
    message_id, email = send_and_receive(client, keys.test, smtp_sink)
    pixel, links = tracked_urls(email)
    for _ in range(3):
        assert client.get(path_of(pixel), headers=BROWSER).status_code == 200
    # Past the bound, the link still leads where it goes, and nothing more is written.
    clicked = client.get(path_of(links[0]), headers=BROWSER, follow_redirects=False)
    assert clicked.status_code == 302
    assert len(history(client, keys.test, message_id, "OPENED", "CLICKED")) == 3
    assert view(client, keys.test, message_id)["clicked"] is None


def test_the_unsubscribe_link_is_left_alone_and_inline_sends_follow_the_default(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    headers = bearer(keys.test)
    topic = {"name": "News", "default_status": "OPTED_IN"}
    assert client.put("/preferences/topics/news", json=topic, headers=headers).is_success
    news = {
        "content": {
            "email": {
                "subject": "News",
                "html": '<a href="https://example.com/news">Read</a>'
                '<a href="{{ urls.unsubscribe }}">Unsubscribe</a>',
            }
        },
        "topic_id": "news",
        "tracking": {"opens": True, "clicks": True},
    }
    setup(client, keys.test, smtp_sink, news)
    _, email = send_and_receive(client, keys.test, smtp_sink)
    _, links = tracked_urls(email)
    assert len(links) == 1
    part = email.get_body(("html",))
    assert part is not None
    unsubscribe = email["List-Unsubscribe"].strip("<>")
    assert f'href="{unsubscribe}"' in part.get_content()

    # An inline send (no template) follows the environment's default.
    assert client.put(
        "/settings/tracking", json={"opens": False, "clicks": True}, headers=headers
    ).is_success
    inline = {
        "to": {"user_id": "u1"},
        "content": {
            "title": "Hi",
            "elements": [{"type": "action", "content": "Open", "href": "https://example.com/app"}],
        },
        "routing": {"method": "single", "channels": ["email"]},
    }
    count = len(smtp_sink.messages)
    response = client.post("/send", json={"message": inline}, headers=headers)
    assert response.status_code == 202, response.text
    message_in(client, keys.test, response.json()["requestId"], "SENT")
    wait_for(lambda: len(smtp_sink.messages) > count, what="the inline email in the sink")
    part = smtp_sink.messages[-1].get_body(("html",))
    assert part is not None
    assert "/t/c/" in part.get_content()
    assert "/t/o/" not in part.get_content()
    assert "example.com/app" not in part.get_content()
