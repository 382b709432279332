"""The machine-open rule (engagement/machine.py, docs/deliverability.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.engagement.machine import machine_reason

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SENT_LONG_AGO = NOW - timedelta(minutes=5)
CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
APPLE_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"


@pytest.mark.parametrize(
    ("user_agent", "client_ip", "reason"),
    [
        (CHROME, "203.0.113.9", None),
        (APPLE_MAIL, "203.0.113.9", None),
        (OUTLOOK, "203.0.113.9", None),
        (GMAIL_PROXY, "66.249.84.1", None),
        ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", None, None),
        # Apple Mail Privacy Protection: its proxy's bare user agent, or Apple's network.
        ("Mozilla/5.0", "203.0.113.9", "apple_privacy"),
        ("Mozilla/5.0", None, "apple_privacy"),
        (APPLE_MAIL, "17.58.101.4", "apple_privacy"),
        (CHROME, "::ffff:17.1.2.3", "apple_privacy"),
        ("", "203.0.113.9", "no_user_agent"),
        ("   ", None, "no_user_agent"),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            None,
            "automated_client",
        ),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", None, "automated_client"),
        ("python-requests/2.32.3", None, "automated_client"),
        ("python-httpx/0.28.1", None, "automated_client"),
        ("curl/8.5.0", None, "automated_client"),
        ("Go-http-client/1.1", None, "automated_client"),
        ("Barracuda Sentinel (EE)", None, "automated_client"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) HeadlessChrome/120.0",
            None,
            "automated_client",
        ),
        (CHROME, "not an address", None),
    ],
)
def test_who_opened_or_clicked(user_agent: str, client_ip: str | None, reason: str | None) -> None:
    assert machine_reason(user_agent, client_ip, SENT_LONG_AGO, NOW, 2.0) == reason


def test_a_hit_within_the_window_of_the_send_is_a_scanners() -> None:
    just_sent = NOW - timedelta(seconds=1)
    assert machine_reason(CHROME, None, just_sent, NOW, 2.0) == "too_soon"
    assert machine_reason(CHROME, None, NOW - timedelta(seconds=2), NOW, 2.0) is None
    # Before the send was even recorded.
    assert machine_reason(CHROME, None, None, NOW, 2.0) == "too_soon"
    # A window of 0 turns the rule off.
    assert machine_reason(CHROME, None, just_sent, NOW, 0) is None
    assert machine_reason(CHROME, None, None, NOW, 0) is None
    # The other rules come first.
    assert machine_reason("Mozilla/5.0", None, just_sent, NOW, 2.0) == "apple_privacy"
