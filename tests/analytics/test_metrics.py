"""Message metrics counted through the real paths: sends to the SMTP sink, a vendor's
callbacks from a loopback fake, Tidings' own open pixel and tracked links, one-click
unsubscribes; and `GET /analytics/messages`, its filters and its errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse, urlsplit

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback.payloads import POSTMARK_BOUNCE, POSTMARK_DELIVERY, POSTMARK_SPAM_COMPLAINT
from tests.callback.test_postmark import post, send_with_postmark
from tests.conftest import Keys, bearer, wait_for
from tests.engagement.support import CHROME, TRACKED_TEMPLATE, tracked_urls
from tests.engagement.test_tracking import send_and_receive, setup
from tests.message.test_send_email import message_in
from tests.smtp_sink import SmtpSink
from tidings.config import Settings

ZERO = dict.fromkeys(
    ("sent", "delivered", "bounced", "complained", "opened", "clicked", "unsubscribed"), 0
)
BROWSER = {"User-Agent": CHROME}


@pytest.fixture(autouse=True)
def no_scanner_window(settings: Settings) -> None:
    """The tests open and click at once; the `too_soon` rule is engagement's own test."""
    settings.machine_engagement_seconds = 0


def metrics(client: TestClient, key: str, **params: str) -> dict[str, Any]:
    response = client.get("/analytics/messages", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def totals(client: TestClient, key: str, **params: str) -> dict[str, int]:
    found: dict[str, int] = metrics(client, key, **params)["totals"]
    return found


def funnel(client: TestClient, key: str, **params: str) -> list[tuple[str, int]]:
    return [(s["stage"], s["count"]) for s in metrics(client, key, **params)["funnel"]]


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_sends_unique_opens_and_clicks_are_counted_and_machine_hits_are_not(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    assert totals(client, keys.test) == ZERO
    setup(client, keys.test, smtp_sink, TRACKED_TEMPLATE)
    first, first_email = send_and_receive(client, keys.test, smtp_sink)
    second, second_email = send_and_receive(client, keys.test, smtp_sink)
    assert totals(client, keys.test) == {**ZERO, "sent": 2}

    pixel, (link,) = tracked_urls(first_email)
    # The same person opens twice and clicks twice: one unique open, one unique click; the
    # open proves delivery.
    for _ in range(2):
        assert client.get(path_of(pixel), headers=BROWSER).status_code == 200
        assert client.get(path_of(link), headers=BROWSER, follow_redirects=False).is_redirect
    # Apple's privacy proxy loads the second message's pixel, a scanner follows its link:
    # recorded in its history, counted nowhere.
    machine_pixel, (machine_link,) = tracked_urls(second_email)
    assert client.get(path_of(machine_pixel), headers={"User-Agent": "Mozilla/5.0"}).is_success
    scanner = {"User-Agent": "Barracuda Sentinel (EE)"}
    assert client.get(path_of(machine_link), headers=scanner, follow_redirects=False).is_redirect
    assert message_in(client, keys.test, second, "SENT")["opened"] is None

    assert totals(client, keys.test) == {
        **ZERO,
        "sent": 2,
        "delivered": 1,
        "opened": 1,
        "clicked": 1,
    }
    assert funnel(client, keys.test) == [
        ("sent", 2),
        ("delivered", 1),
        ("opened", 1),
        ("clicked", 1),
    ]
    stages = metrics(client, keys.test)["funnel"]
    assert [(s["rate"], s["conversion"]) for s in stages] == [
        (1.0, None),
        (0.5, 0.5),
        (0.5, 1.0),
        (0.5, 1.0),
    ]
    assert message_in(client, keys.test, first, "CLICKED")["opened"] is not None


def test_a_vendors_delivery_bounce_and_complaint_are_counted_once(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    send_with_postmark(client, keys.test, httpserver)
    assert post(client, POSTMARK_DELIVERY).json()["applied"] == 1
    assert post(client, POSTMARK_BOUNCE).json()["applied"] == 1
    # Postmark retries: the repeats are duplicates and count nothing.
    for record in (POSTMARK_DELIVERY, POSTMARK_BOUNCE):
        assert post(client, record).json()["duplicates"] == 1
    expected = {**ZERO, "sent": 1, "delivered": 1, "bounced": 1}
    assert totals(client, keys.test) == expected
    assert totals(client, keys.test, template="shipped", channel="email") == expected

    assert post(client, POSTMARK_SPAM_COMPLAINT).json()["applied"] == 1
    assert post(client, POSTMARK_SPAM_COMPLAINT).json()["duplicates"] == 1
    assert totals(client, keys.test) == {**expected, "complained": 1}


NEWS = {
    "content": {"email": {"subject": "News", "text": "Unsubscribe: {{ urls.unsubscribe }}"}},
    "topic_id": "news",
}


def test_a_one_click_unsubscribe_is_counted_against_the_topics_last_message(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    headers = bearer(keys.test)
    assert client.put(
        "/providers/smtp", json={"config": smtp_sink.provider_config()}, headers=headers
    ).is_success
    assert client.post(
        "/profiles/u1", json={"profile": {"email": "ada@example.org"}}, headers=headers
    ).is_success
    assert client.put(
        "/preferences/topics/news",
        json={"name": "News", "default_status": "OPTED_IN"},
        headers=headers,
    ).is_success
    assert client.put("/notifications/news", json=NEWS, headers=headers).is_success
    response = client.post(
        "/send", json={"message": {"to": {"user_id": "u1"}, "template": "news"}}, headers=headers
    )
    message_in(client, keys.test, response.json()["requestId"], "SENT")
    wait_for(lambda: smtp_sink.messages, what="the email in the sink")

    url = smtp_sink.messages[-1]["List-Unsubscribe"].strip("<>")
    for _ in range(2):  # the second changes nothing, and is not counted
        answer = client.post(
            urlparse(url).path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 200, answer.text
    assert totals(client, keys.test, template="news") == {**ZERO, "sent": 1, "unsubscribed": 1}
    assert totals(client, keys.test, template="other") == ZERO


def test_filters_by_template_automation_and_channel_and_buckets(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup(client, keys.test, smtp_sink, TRACKED_TEMPLATE)
    send_and_receive(client, keys.test, smtp_sink)
    headers = bearer(keys.test)
    automation = {"steps": [{"action": "send", "template": "shipped"}]}
    assert client.put("/automations/weekly", json=automation, headers=headers).is_success
    for _ in range(2):
        invoked = client.post(
            "/automations/weekly/invoke",
            json={"recipient": "u1", "data": {"order_id": "B2"}},
            headers=headers,
        )
        assert invoked.status_code == 202, invoked.text
    wait_for(lambda: len(smtp_sink.messages) == 3, what="three emails in the sink")
    wait_for(lambda: totals(client, keys.test)["sent"] == 3, what="the automation's sends counted")

    assert totals(client, keys.test, template="shipped")["sent"] == 3
    assert totals(client, keys.test, automation="weekly")["sent"] == 2
    assert totals(client, keys.test, automation="weekly", template="shipped")["sent"] == 2
    assert totals(client, keys.test, automation="other")["sent"] == 0
    assert totals(client, keys.test, channel="email")["sent"] == 3
    assert totals(client, keys.test, channel="sms") == ZERO

    by_day = metrics(client, keys.test)
    assert by_day["interval"] == "day"
    assert len(by_day["results"]) == 30
    assert by_day["results"][-1]["sent"] == 3
    assert sum(bucket["sent"] for bucket in by_day["results"][:-1]) == 0
    assert by_day["filters"] == {"template": None, "automation": None, "channel": None}
    assert by_day["from"].endswith("T00:00:00Z")
    assert by_day["to"].endswith("T00:00:00Z")
    # Another environment's key sees none of it.
    assert totals(client, keys.production) == ZERO

    by_hour = metrics(client, keys.test, interval="hour")
    assert len(by_hour["results"]) == 24
    assert by_hour["results"][-1]["sent"] == 3

    period = metrics(client, keys.test, **{"from": "2026-01-01", "to": "2026-01-03"})
    assert [bucket["start"] for bucket in period["results"]] == [
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ]
    assert period["totals"] == ZERO


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "week"}, "interval"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-01-05", "to": "2026-01-01"}, "to"),
        ({"from": "2026-01-01", "to": "2026-03-01", "interval": "hour"}, "from"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "from"),
        ({"to": "0001-01-01"}, "to"),
        ({"from": "9999-12-31T12:00", "to": "9999-12-31T13:00"}, "to"),
        ({"channel": "fax"}, "channel"),
        ({"template": "t" * 201}, "template"),
    ],
)
def test_bad_queries_are_refused_in_the_one_error_shape(
    client: TestClient, keys: Keys, params: dict[str, str], field: str
) -> None:
    response = client.get("/analytics/messages", params=params, headers=bearer(keys.test))
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"code", "message", "field"}
    assert body["field"] == field


def test_metrics_need_a_secret_key(client: TestClient, keys: Keys) -> None:
    assert client.get("/analytics/messages").status_code == 401
