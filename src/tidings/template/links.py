"""Safe links: a rendered URL is kept only as http, https or mailto (or a relative URL).

Data and profile values end up in links (`<a href="{{ data.url }}">`, an Elemental action's
`href`, an image's `src`, the inbox `action_url`). Autoescaping keeps them inside their
attribute, but not out of `javascript:` or `data:`. After rendering, every URL attribute of
an HTML field and every URL field is checked; a URL with any other scheme is replaced by an
empty one and reported, so the message history can say what was dropped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
URL_FIELDS = {("inbox", "action_url")}

_URL_ATTRIBUTE = re.compile(
    r"""(?P<name>(?<![\w-])(?:href|src|action|formaction|background|poster|xlink:href)\s*=\s*)"""
    r"""(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>[^\s"'=<>`]+))""",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
# Browsers drop ASCII tabs and newlines anywhere in a URL and control characters and spaces
# around it, so `java\tscript:` is `javascript:`.
_IGNORED_IN_URL = re.compile(r"[\x00-\x20\x7f]+")
_SHOWN_URL_CHARACTERS = 200


@dataclass(frozen=True, slots=True)
class DroppedLink:
    channel: str
    field: str
    url: str

    def as_dict(self) -> dict[str, str]:
        return {"channel": self.channel, "field": self.field, "url": self.url}


def unsafe_scheme(url: str) -> str | None:
    """The scheme of `url` (as it appears in HTML) when it is not allowed, else None."""
    match = _SCHEME.match(_IGNORED_IN_URL.sub("", html.unescape(url)))
    if match is None:
        return None
    scheme = match[1].lower()
    return None if scheme in SAFE_SCHEMES else scheme


def _drop_in_html(channel: str, field: str, source: str, dropped: list[DroppedLink]) -> str:
    if ":" not in source:
        return source

    def replace(match: re.Match[str]) -> str:
        url = next(value for value in match.group("double", "single", "bare") if value is not None)
        if unsafe_scheme(url) is None:
            return match[0]
        shown = html.unescape(url)[:_SHOWN_URL_CHARACTERS]
        dropped.append(DroppedLink(channel, field, shown))
        return f'{match["name"]}""'

    return _URL_ATTRIBUTE.sub(replace, source)


def drop_unsafe_links(
    channel: str, rendered: dict[str, Any], html_fields: set[tuple[str, str]]
) -> list[DroppedLink]:
    """Empty every unsafe URL in one rendered channel, in place; returns what was dropped."""
    dropped: list[DroppedLink] = []
    for field, value in rendered.items():
        if not isinstance(value, str):
            continue
        if (channel, field) in html_fields:
            rendered[field] = _drop_in_html(channel, field, value, dropped)
        elif (channel, field) in URL_FIELDS and unsafe_scheme(value) is not None:
            dropped.append(DroppedLink(channel, field, value[:_SHOWN_URL_CHARACTERS]))
            rendered[field] = ""
    return dropped
