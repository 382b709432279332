"""Courier's inline content: the `{title, body}` shorthand and a subset of Elemental.

Supported elements, each optionally with `if` (an expression over `data` and `profile`, see
`tidings.kit.expression`) and `channels` (the channels it shows on):

- `meta`: `{title}`: the email subject, push and inbox title;
- `text`: `{content}`: a paragraph;
- `action`: `{content, href}`: a button (a link in text channels; the inbox action URL);
- `image`: `{src, alt_text, href?}`;
- `divider`;
- `channel`: `{channel, elements}`: elements for one channel only;
- `group`: `{elements}`.

The result is one Liquid content spec per channel, rendered by `render.render_channel`.
"""

from __future__ import annotations

from html import escape
from typing import Any

from tidings.kit.expression import ExpressionError, compile_expression, truthy
from tidings.template.render import CHANNEL_FIELDS

ELEMENT_TYPES = ("meta", "text", "action", "image", "divider", "channel", "group")
CHANNELS = tuple(CHANNEL_FIELDS)


class ContentError(ValueError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def validate_content(content: Any, path: str = "content") -> None:
    """Raise ContentError naming the first problem in inline content."""
    if not isinstance(content, dict):
        raise ContentError(path, "must be an object: {title, body} or {version, elements}")
    if "elements" not in content:
        if not any(key in content for key in ("title", "body")):
            raise ContentError(path, "needs `title` and `body`, or Elemental `elements`")
        for key in ("title", "body"):
            if key in content and not isinstance(content[key], str):
                raise ContentError(f"{path}.{key}", "must be a string")
        return
    _validate_elements(content["elements"], f"{path}.elements")


def _validate_elements(elements: Any, path: str) -> None:
    if not isinstance(elements, list):
        raise ContentError(path, "must be a list of elements")
    for index, element in enumerate(elements):
        where = f"{path}[{index}]"
        if not isinstance(element, dict):
            raise ContentError(where, "must be an object with a `type`")
        kind = element.get("type")
        if kind not in ELEMENT_TYPES:
            raise ContentError(
                f"{where}.type", f"{kind!r} is not supported; use one of {', '.join(ELEMENT_TYPES)}"
            )
        if "if" in element:
            try:
                compile_expression(str(element["if"]))
            except ExpressionError as exc:
                raise ContentError(f"{where}.if", str(exc)) from exc
        if kind == "text" and not isinstance(element.get("content"), str):
            raise ContentError(f"{where}.content", "a text element needs `content`")
        if kind == "action" and not isinstance(element.get("href"), str):
            raise ContentError(f"{where}.href", "an action needs `href`")
        if kind == "image" and not isinstance(element.get("src"), str):
            raise ContentError(f"{where}.src", "an image needs `src`")
        if kind == "channel" and element.get("channel") not in CHANNELS:
            raise ContentError(f"{where}.channel", f"must be one of {', '.join(CHANNELS)}")
        if kind in ("channel", "group"):
            _validate_elements(element.get("elements", []), f"{where}.elements")


class _Parts:
    def __init__(self) -> None:
        self.title: str | None = None
        self.html: list[str] = []
        self.text: list[str] = []
        self.action_url: str | None = None


def _collect(
    elements: list[dict[str, Any]], channel: str, variables: dict[str, Any], parts: _Parts
) -> None:
    for element in elements:
        shown_on = element.get("channels")
        if isinstance(shown_on, list) and channel not in shown_on:
            continue
        condition = element.get("if")
        if condition is not None and not truthy(compile_expression(str(condition))(variables)):
            continue
        kind = element["type"]
        if kind == "meta":
            if isinstance(element.get("title"), str):
                parts.title = element["title"]
        elif kind == "text":
            parts.html.append(f"<p>{element['content']}</p>")
            parts.text.append(element["content"])
        elif kind == "action":
            label = element.get("content") or element["href"]
            parts.html.append(f'<p><a href="{escape(element["href"])}">{label}</a></p>')
            parts.text.append(f"{label}: {element['href']}")
            parts.action_url = parts.action_url or element["href"]
        elif kind == "image":
            alt = escape(str(element.get("alt_text", "")))
            image = f'<img src="{escape(element["src"])}" alt="{alt}">'
            if isinstance(element.get("href"), str):
                image = f'<a href="{escape(element["href"])}">{image}</a>'
            parts.html.append(f"<p>{image}</p>")
            if element.get("alt_text"):
                parts.text.append(str(element["alt_text"]))
        elif kind == "divider":
            parts.html.append("<hr>")
            parts.text.append("---")
        elif kind == "channel":
            if element.get("channel") == channel:
                _collect(element.get("elements", []), channel, variables, parts)
        elif kind == "group":
            _collect(element.get("elements", []), channel, variables, parts)


def _spec_for(channel: str, parts: _Parts) -> dict[str, Any]:
    text = "\n\n".join(parts.text)
    if channel == "email":
        return {"subject": parts.title or "", "html": "\n".join(parts.html), "text": text}
    if channel == "sms":
        return {"text": text}
    if channel == "push":
        return {"title": parts.title or "", "body": text}
    if channel == "chat":
        return {"text": f"{parts.title}\n\n{text}" if parts.title else text}
    if channel == "inbox":
        return {"title": parts.title or "", "body": text, "action_url": parts.action_url or ""}
    return {"body": {"title": parts.title or "", "body": text}}


def content_to_specs(
    content: dict[str, Any], variables: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """One Liquid content spec per channel, with element conditions already applied."""
    if "elements" in content:
        elements = content["elements"]
    else:
        elements = []
        if content.get("title"):
            elements.append({"type": "meta", "title": content["title"]})
        if content.get("body"):
            elements.append({"type": "text", "content": content["body"]})
    specs = {}
    for channel in CHANNELS:
        parts = _Parts()
        _collect(elements, channel, variables, parts)
        specs[channel] = _spec_for(channel, parts)
    return specs
