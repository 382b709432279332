"""Tracked links and the open pixel: what is rewritten, what is left alone, and that only a
token Tidings signed leads anywhere."""

from __future__ import annotations

import html
import re

from tidings.engagement.links import (
    MAX_TRACKED_URL,
    click_token,
    engagement_key,
    instrument,
    open_token,
    tracked_url,
    verify_click,
    verify_open,
)
from tidings.preference.service import unsubscribe_key, unsubscribe_token

KEY = engagement_key(b"server secret")
BASE = "https://tidings.example.com"
CLICK = re.compile(r'href="https://tidings\.example\.com/t/c/([^"]+)"', re.IGNORECASE)


def tracked(source: str, *, opens: bool = True, clicks: bool = True) -> str:
    return instrument(
        source, key=KEY, base_url=BASE, message_id="m-1", opens=opens, clicks=clicks
    ).html


def click_targets(source: str) -> list[str]:
    targets = []
    for token in CLICK.findall(source):
        verified = verify_click(KEY, html.unescape(token))
        assert verified is not None
        assert verified[0] == "m-1"
        targets.append(verified[1])
    return targets


def test_http_and_https_links_are_rewritten_to_signed_redirects() -> None:
    source = (
        '<p><a href="https://shop.example.com/orders/7?ref=mail&amp;x=1">Order</a> '
        "<a class=big href='http://example.org/a b'>A</a> "
        "<A HREF=https://example.net/up>Up</A></p>"
    )
    result = tracked(source, opens=False)
    assert click_targets(result) == [
        "https://shop.example.com/orders/7?ref=mail&x=1",
        "http://example.org/a b",
        "https://example.net/up",
    ]
    assert "shop.example.com" not in result
    assert ">Order</a>" in result
    assert 'class=big href="' in result


def test_other_links_are_left_alone() -> None:
    unsubscribe = f"{BASE}/unsubscribe/v1.abc.def"
    source = (
        '<a href="mailto:help@example.com">Mail</a>'
        '<a href="tel:+441234">Call</a>'
        '<a href="#top">Top</a>'
        '<a href="/relative">Relative</a>'
        '<a href="sms:+441234">SMS</a>'
        '<a href="https://">No host</a>'
        f'<a href="{unsubscribe}">Unsubscribe</a>'
        '<link href="https://fonts.example.com/css">'
        '<img src="https://cdn.example.com/logo.png">'
        '<a name="no-href">Anchor</a>'
    )
    assert tracked(source, opens=False) == source


def test_an_already_tracked_email_is_not_tracked_twice() -> None:
    once = tracked('<a href="https://example.com/">x</a></body>')
    twice = instrument(once, key=KEY, base_url=BASE, message_id="m-1", opens=False, clicks=True)
    assert twice.links == 0
    assert twice.html == once


def test_a_url_too_long_for_a_token_is_left_alone() -> None:
    long_url = "https://example.com/" + "a" * MAX_TRACKED_URL
    source = f'<a href="{long_url}">x</a>'
    assert tracked(source, opens=False) == source
    assert tracked_url(long_url) is None


def test_the_pixel_goes_before_the_last_body_end_tag_or_at_the_end() -> None:
    with_body = tracked("<html><body><p>Hi</p></BODY></html>", clicks=False)
    match = re.search(
        r'<img src="https://tidings\.example\.com/t/o/([^"]+)"[^>]*/></BODY>', with_body
    )
    assert match is not None
    assert verify_open(KEY, html.unescape(match[1])) == "m-1"
    assert 'width="1" height="1" alt=""' in with_body
    fragment = tracked("<p>Hi</p>", clicks=False)
    assert fragment.startswith("<p>Hi</p><img src=")
    assert fragment.endswith("/>")


def test_with_tracking_off_nothing_changes() -> None:
    source = '<a href="https://example.com/">x</a></body>'
    done = instrument(source, key=KEY, base_url=BASE, message_id="m-1", opens=False, clicks=False)
    assert done.html == source
    assert (done.links, done.pixel) == (0, False)


def test_a_changed_token_does_not_verify() -> None:
    token = click_token(KEY, "m-1", "https://example.com/")
    version, payload, mac = token.split(".")
    assert verify_click(KEY, token) == ("m-1", "https://example.com/")
    # Another URL in the payload, the MAC kept: refused.
    forged = click_token(KEY, "m-1", "https://evil.example/")
    assert verify_click(KEY, f"{version}.{forged.split('.')[1]}.{mac}") is None
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    assert verify_click(KEY, f"{version}.{payload}.{flipped}") is None
    assert verify_click(KEY, token[:-5]) is None
    assert verify_click(KEY, "") is None
    assert verify_click(KEY, "x" * 10_000) is None
    # Signed with another key, or of another kind: refused.
    assert verify_click(engagement_key(b"another secret"), token) is None
    assert verify_open(KEY, token) is None
    assert verify_click(KEY, open_token(KEY, "m-1")) is None


def test_an_unsubscribe_token_is_no_tracking_token() -> None:
    token = unsubscribe_token(unsubscribe_key(b"server secret"), "env", "u1", "topic")
    assert verify_click(KEY, token) is None
    assert verify_open(KEY, token) is None


def test_a_signed_url_of_another_scheme_is_never_redirected_to() -> None:
    # Only http and https are ever signed; a token carrying anything else is refused anyway.
    assert verify_click(KEY, click_token(KEY, "m-1", "javascript:alert(1)")) is None
    assert verify_click(KEY, click_token(KEY, "m-1", "https://example.com/")) is not None
