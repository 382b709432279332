"""Liquid rendering of channel content.

Variables: `{{ data.order_id }}`, `{{ profile.email }}`, `{{ recipient }}`,
`{{ urls.unsubscribe }}`, and Courier's bare `{{ order_id }}`, which resolves against `data`.
A missing variable renders empty, unless the template is strict: then the channel whose
content refers to it fails with a reason, and the other channels still render.

HTML email bodies are autoescaped: data and profile values are untrusted text.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from liquid import BoundTemplate, Environment, StrictUndefined
from liquid.exceptions import LiquidError

CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "html", "text"),
    "sms": ("text",),
    "push": ("title", "body"),
    "chat": ("text",),
    "inbox": ("title", "body", "action_url"),
    "webhook": (),
}
HTML_FIELDS = {("email", "html")}

_plain = Environment(autoescape=False)
_html = Environment(autoescape=True)
_plain_strict = Environment(autoescape=False, undefined=StrictUndefined)
_html_strict = Environment(autoescape=True, undefined=StrictUndefined)


class RenderError(ValueError):
    def __init__(self, channel: str, field: str, reason: str) -> None:
        super().__init__(f"{channel}.{field}: {reason}")
        self.channel = channel
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RenderContext:
    data: dict[str, Any]
    profile: dict[str, Any]
    recipient: str | None = None
    urls: dict[str, str] | None = None

    def variables(self) -> dict[str, Any]:
        variables: dict[str, Any] = dict(self.data)
        variables.update(
            {
                "data": self.data,
                "profile": self.profile,
                "recipient": self.recipient,
                "urls": self.urls or {},
            }
        )
        return variables


@functools.lru_cache(maxsize=2048)
def _compiled(source: str, html: bool, strict: bool) -> BoundTemplate:
    """Parsing is most of the cost of a render: each template source is parsed once."""
    environment = (
        (_html_strict if strict else _html) if html else (_plain_strict if strict else _plain)
    )
    return environment.from_string(source)


def render_string(
    source: str, context: RenderContext, *, html: bool = False, strict: bool = False
) -> str:
    return _compiled(source, html, strict).render(**context.variables())


def render_with(source: str, variables: dict[str, Any], *, strict: bool = False) -> str:
    """Render a plain-text template with the given variables (automation step fields)."""
    return _compiled(source, False, strict).render(**variables)


def check_syntax(source: str) -> str | None:
    """The Liquid syntax error in `source`, or None."""
    try:
        _plain.from_string(source)
    except LiquidError as exc:
        return str(exc)
    return None


def _render_value(value: Any, context: RenderContext, strict: bool) -> Any:
    """Render every string inside a JSON value (webhook bodies, push data)."""
    if isinstance(value, str):
        return render_string(value, context, strict=strict)
    if isinstance(value, dict):
        return {key: _render_value(item, context, strict) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_value(item, context, strict) for item in value]
    return value


def render_channel(
    channel: str, spec: dict[str, Any], context: RenderContext, *, strict: bool = False
) -> dict[str, Any]:
    """Render one channel's content; raises RenderError naming the field that failed."""
    rendered: dict[str, Any] = {}
    for field in CHANNEL_FIELDS.get(channel, ()):
        source = spec.get(field)
        if source is None:
            continue
        try:
            rendered[field] = render_string(
                str(source), context, html=(channel, field) in HTML_FIELDS, strict=strict
            )
        except LiquidError as exc:
            raise RenderError(channel, field, str(exc).splitlines()[0]) from exc
    extra = {"push": "data", "webhook": "body"}.get(channel)
    if extra is not None and extra in spec:
        try:
            rendered[extra] = _render_value(spec[extra], context, strict)
        except LiquidError as exc:
            raise RenderError(channel, extra, str(exc).splitlines()[0]) from exc
    if channel == "push":
        rendered.setdefault("data", {})
    return rendered
