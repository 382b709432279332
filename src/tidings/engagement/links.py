"""Tracked links and the open pixel, written into an email's HTML when it is rendered.

Each `<a href>` (and `<area href>`) to an http or https URL becomes
`{public URL}/t/c/{token}`, and an open pixel `{public URL}/t/o/{token}` goes before
`</body>`. The tokens are signed (`kit.crypto.sign_fields`, the format of the unsubscribe
links, with a key of their own): a click token carries the message id and the original URL,
so the redirect needs no lookup, and only a URL Tidings signed is ever redirected to. A
changed token does not verify, and its request is a 404: the endpoints are no open redirect.

Left as they are: mailto:, tel: and every other scheme, anchors and relative links, Tidings'
own unsubscribe links and already tracked links, and URLs over `MAX_TRACKED_URL` characters.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from tidings.kit.crypto import derive_key, sign_fields, verify_fields

CLICK_VERSION = "c1"
OPEN_VERSION = "o1"
_KEY_INFO = b"tidings open and click tracking token v1"
# Longer URLs are not tracked: their token would not fit the verified token length.
MAX_TRACKED_URL = 2048
TRACKED_SCHEMES = frozenset({"http", "https"})
OPEN_PATH = "/t/o/"
CLICK_PATH = "/t/c/"

# An <a> or <area> start tag (quoted attribute values may hold ">"), and its href.
_LINK_TAG = re.compile(r"""<(?:a|area)\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_HREF = re.compile(
    r"""(?P<name>(?<![\w:-])href\s*=\s*)"""
    r"""(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>[^\s"'=<>`]+))""",
    re.IGNORECASE,
)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
# What a browser does to an href before reading it: leading and trailing C0 controls and
# spaces go, and so do tabs and newlines anywhere.
_EDGES = "".join(chr(code) for code in range(0x21))
_TABS_AND_NEWLINES = re.compile(r"[\t\n\r]")


def engagement_key(server_secret: bytes) -> bytes:
    """The HMAC key of tracking tokens, derived from the server secret (its own purpose: an
    unsubscribe token is never a tracking token, nor the reverse)."""
    return derive_key(server_secret, _KEY_INFO)


def open_token(key: bytes, message_id: str) -> str:
    return sign_fields(key, OPEN_VERSION, (message_id,))


def click_token(key: bytes, message_id: str, url: str) -> str:
    return sign_fields(key, CLICK_VERSION, (message_id, url))


def verify_open(key: bytes, token: str) -> str | None:
    """The message id of a genuine open token, else None."""
    fields = verify_fields(key, OPEN_VERSION, token, 1)
    return fields[0] if fields is not None else None


def verify_click(key: bytes, token: str) -> tuple[str, str] | None:
    """`(message_id, url)` of a genuine click token whose URL is http or https, else None."""
    fields = verify_fields(key, CLICK_VERSION, token, 2)
    if fields is None or tracked_url(fields[1]) is None:
        return None
    return fields[0], fields[1]


def tracked_url(href: str) -> str | None:
    """The URL a link leads to, as a browser reads the href, when it is one to track: http
    or https with a host, within `MAX_TRACKED_URL`; None for anything else."""
    url = _TABS_AND_NEWLINES.sub("", href).strip(_EDGES)
    if len(url) > MAX_TRACKED_URL:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in TRACKED_SCHEMES or not parts.hostname:
        return None
    return url


@dataclass(frozen=True, slots=True)
class Instrumented:
    html: str
    links: int
    pixel: bool


def instrument(
    source: str,
    *,
    key: bytes,
    base_url: str,
    message_id: str,
    opens: bool,
    clicks: bool,
) -> Instrumented:
    """The email's HTML with its links tracked (`clicks`) and an open pixel (`opens`)."""
    base = base_url.rstrip("/")
    own = (f"{base}/unsubscribe/", f"{base}{CLICK_PATH}", f"{base}{OPEN_PATH}")
    count = 0

    def rewrite_href(match: re.Match[str]) -> str:
        nonlocal count
        href = next(value for value in match.group("double", "single", "bare") if value is not None)
        url = tracked_url(html.unescape(href))
        if url is None or url.startswith(own):
            return match[0]
        count += 1
        tracked = f"{base}{CLICK_PATH}{click_token(key, message_id, url)}"
        return f'{match["name"]}"{html.escape(tracked)}"'

    def rewrite_tag(match: re.Match[str]) -> str:
        return _HREF.sub(rewrite_href, match[0], count=1)

    result = _LINK_TAG.sub(rewrite_tag, source) if clicks else source
    if not opens:
        return Instrumented(result, count, pixel=False)
    src = html.escape(f"{base}{OPEN_PATH}{open_token(key, message_id)}")
    pixel = (
        f'<img src="{src}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0" />'
    )
    ends = list(_BODY_END.finditer(result))
    if ends:
        at = ends[-1].start()
        result = f"{result[:at]}{pixel}{result[at:]}"
    else:
        result = f"{result}{pixel}"
    return Instrumented(result, count, pixel=True)
