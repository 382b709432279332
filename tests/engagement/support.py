"""Shared by the tracking tests: a tracked template, and the tracked URLs of a received email."""

from __future__ import annotations

import html
import re
from email.message import EmailMessage
from typing import Any

from tidings.engagement.links import CLICK_PATH, OPEN_PATH

CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
ORDER_URL = "https://shop.example.com/orders/{{ data.order_id }}?from=mail&step=1"
TRACKED_TEMPLATE: dict[str, Any] = {
    "name": "Order shipped",
    "content": {
        "email": {
            "subject": "Order {{ data.order_id }} shipped",
            "text": "Track it: https://shop.example.com/orders/{{ data.order_id }}",
            "html": (
                "<html><body><p>Order {{ data.order_id }} shipped.</p>"
                f'<p><a href="{ORDER_URL}">See your order</a></p>'
                '<p><a href="mailto:help@example.com">Write to us</a></p>'
                "</body></html>"
            ),
        }
    },
    "tracking": {"opens": True, "clicks": True},
}
_URL = re.compile(r'(?:href|src)="(https?://[^"]+(?:/t/[oc]/)[^"]+)"')


def tracked_urls(email: EmailMessage) -> tuple[str, list[str]]:
    """The open pixel's URL and the tracked links' URLs in an email's HTML part."""
    part = email.get_body(("html",))
    assert part is not None
    found = [html.unescape(url) for url in _URL.findall(part.get_content())]
    pixels = [url for url in found if OPEN_PATH in url]
    assert len(pixels) == 1, found
    return pixels[0], [url for url in found if CLICK_PATH in url]
