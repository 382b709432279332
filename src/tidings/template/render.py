"""Liquid rendering of channel content.

Variables: `{{ data.order_id }}`, `{{ profile.email }}`, `{{ recipient }}`,
`{{ urls.unsubscribe }}`, and Courier's bare `{{ order_id }}`, which resolves against `data`.
A missing variable renders empty, unless the template is strict: then the channel whose
content refers to it fails with a reason, and the other channels still render.

HTML email bodies are autoescaped: data and profile values are untrusted text.

Every render has limits (docs/security.md, "Templates and links"): loop iterations, output
size, local variables, and a time budget per message. A template over one of them fails with
a `RenderError` whose `limit` is set, and the message fails with that reason.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from io import StringIO
from typing import Any, TextIO

from liquid import BoundTemplate, Environment, StrictUndefined, escape
from liquid import RenderContext as LiquidContext
from liquid.exceptions import LiquidError, ResourceLimitError
from liquid.output import LimitedStringIO
from liquid.span import Span

from tidings.kit.jsondoc import leaves

CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "html", "text"),
    "sms": ("text",),
    "push": ("title", "body"),
    "chat": ("text",),
    "inbox": ("title", "body", "action_url"),
    "webhook": (),
}
HTML_FIELDS = {("email", "html")}

# The limits of one render. Loop iterations are counted as Liquid counts them: the product
# of the lengths of the loops entered, nested ones included.
LOOP_ITERATION_LIMIT = 50_000
OUTPUT_LIMIT_BYTES = 2_000_000
LOCAL_NAMESPACE_LIMIT = 1_000_000
RENDER_SECONDS = 2.0

_deadline: ContextVar[float | None] = ContextVar("render_deadline", default=None)


class RenderTimeLimitError(ResourceLimitError):
    pass


def _check_deadline() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise RenderTimeLimitError(
            f"render time limit reached ({RENDER_SECONDS:g} s per message)", token=None
        )


@contextmanager
def render_budget(seconds: float = RENDER_SECONDS) -> Iterator[None]:
    """Give every render inside the block one shared deadline (a message's channels share
    one); a render outside any block gets a budget of its own."""
    if _deadline.get() is not None:
        yield
        return
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


class _BudgetedBuffer(LimitedStringIO):
    def write(self, text: str, /) -> int:
        _check_deadline()
        return super().write(text)


class _BudgetedContext(LiquidContext):
    """Liquid's render context, checking the deadline wherever a render can spend time:
    entering a loop, assigning a variable, writing output."""

    def raise_for_loop_limit(self, length: int = 1) -> None:
        _check_deadline()
        super().raise_for_loop_limit(length)

    def assign(self, key: str, val: Any) -> None:
        _check_deadline()
        super().assign(key, val)

    def get_buffer(self, buf: TextIO | None = None) -> StringIO:
        carry = buf.size if isinstance(buf, LimitedStringIO) else 0
        return _BudgetedBuffer(limit=OUTPUT_LIMIT_BYTES - carry)


class _BudgetedTemplate(BoundTemplate):
    context_class = _BudgetedContext

    def _get_buffer(self) -> StringIO:
        return _BudgetedBuffer(limit=OUTPUT_LIMIT_BYTES)

    def render(self, *args: Any, **kwargs: Any) -> str:
        with render_budget():
            return super().render(*args, **kwargs)


class _LimitedEnvironment(Environment):
    template_class = _BudgetedTemplate
    loop_iteration_limit = LOOP_ITERATION_LIMIT
    output_stream_limit = OUTPUT_LIMIT_BYTES
    local_namespace_limit = LOCAL_NAMESPACE_LIMIT


_plain = _LimitedEnvironment(autoescape=False)
_html = _LimitedEnvironment(autoescape=True)
_plain_strict = _LimitedEnvironment(autoescape=False, undefined=StrictUndefined)
_html_strict = _LimitedEnvironment(autoescape=True, undefined=StrictUndefined)


class RenderError(ValueError):
    """A channel that did not render: the field, Liquid's reason (with its line and column
    when Liquid knows them, `line` too); `limit` when it went over a render limit."""

    def __init__(
        self,
        channel: str,
        field: str,
        reason: str,
        *,
        limit: bool = False,
        line: int | None = None,
    ) -> None:
        super().__init__(f"{channel}.{field}: {reason}")
        self.channel = channel
        self.field = field
        self.reason = reason
        self.limit = limit
        self.line = line

    @classmethod
    def of(cls, channel: str, field: str, exc: LiquidError) -> RenderError:
        where = exc.context()
        return cls(
            channel,
            field,
            describe(exc),
            limit=isinstance(exc, ResourceLimitError),
            line=None if where is None else where[0],
        )


def describe(exc: LiquidError) -> str:
    """A Liquid error in one line, with where it is in its template when Liquid knows
    (columns counted from 1): `'y' is undefined (line 2, column 6)`."""
    message = str(exc.message if exc.message is not None else exc).splitlines()[0]
    where = exc.context()
    if where is None:
        return message
    return f"{message} (line {where[0]}, column {where[1] + 1})"


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


# `{{ name }}` or `{{ name.key.key }}`: an output of a plain variable path, with no filter.
_PLAIN_OUTPUT = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")


class _Template:
    """A parsed template, with a shortcut for the common case.

    When the source is only text and plain `{{ a.b }}` outputs, a render looks each path up
    in the variables itself, as Liquid would, provided every step is a key present in a
    dict and the value is a string, a number, a boolean or null; for anything else (a
    missing key, a list, an object) it renders through Liquid. Either way the output is the
    same; the shortcut skips Liquid's per-render set-up, most of the cost of a short
    template such as a subject line.
    """

    __slots__ = ("bound", "html", "parts")

    def __init__(self, bound: BoundTemplate, source: str, html: bool) -> None:
        self.bound = bound
        self.html = html
        self.parts: list[tuple[str, tuple[str, ...]]] | None = None
        parts: list[tuple[str, tuple[str, ...]]] = []
        position = 0
        for match in _PLAIN_OUTPUT.finditer(source):
            parts.append((source[position : match.start()], tuple(match[1].split("."))))
            position = match.end()
        parts.append((source[position:], ()))
        if not any("{{" in text or "{%" in text for text, _ in parts):
            self.parts = parts

    def render(self, variables: dict[str, Any]) -> str:
        if self.parts is None:
            return self.bound.render(**variables)
        pieces: list[str] = []
        for text, path in self.parts:
            pieces.append(text)
            if not path:
                continue
            value: Any = variables
            for key in path:
                if type(value) is not dict or key not in value:
                    return self.bound.render(**variables)
                value = value[key]
            if value is None:
                value = ""
            elif value is True or value is False:
                value = "true" if value else "false"
            elif type(value) in (int, float):
                value = str(value)
            elif type(value) is not str:
                return self.bound.render(**variables)
            pieces.append(str(escape(value)) if self.html else value)
        return "".join(pieces)


@functools.lru_cache(maxsize=2048)
def _compiled(source: str, html: bool, strict: bool) -> _Template:
    """Parsing is most of the cost of a render: each template source is parsed once."""
    environment = (
        (_html_strict if strict else _html) if html else (_plain_strict if strict else _plain)
    )
    return _Template(environment.from_string(source), source, html)


def render_string(
    source: str, context: RenderContext, *, html: bool = False, strict: bool = False
) -> str:
    return _compiled(source, html, strict).render(context.variables())


def render_with(source: str, variables: dict[str, Any], *, strict: bool = False) -> str:
    """Render a plain-text template with the given variables (automation step fields)."""
    return _compiled(source, False, strict).render(variables)


def check_syntax(source: str) -> str | None:
    """What is wrong with `source` as a Liquid template, or None: a syntax error, or a filter
    Liquid does not have (found by Liquid's static analysis; rendering would fail on it).
    The reason names the line and column when Liquid knows them."""
    try:
        template = _plain.from_string(source)
    except LiquidError as exc:
        return f"the Liquid template does not parse: {describe(exc)}"
    unknown = [
        (span.index, name)
        for name, spans in template.analyze(include_partials=False).filters.items()
        if name not in _plain.filters
        for span in spans
    ]
    if not unknown:
        return None
    index, name = min(unknown)
    line, column = Span("", index).line_col(source)
    return (
        f"the Liquid template uses an unknown filter {name!r} (line {line}, column {column + 1}); "
        "Tidings has Liquid's standard filters, such as default, upcase and date"
    )


def syntax_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first string inside a JSON value (content, a channel's spec) that is not Liquid
    that renders, as (its path below `path`, what `check_syntax` says), or None."""
    for at, leaf in leaves(value, path):
        reason = check_syntax(leaf) if isinstance(leaf, str) else None
        if reason is not None:
            return at, reason
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
            raise RenderError.of(channel, field, exc) from exc
    extra = {"push": "data", "webhook": "body"}.get(channel)
    if extra is not None and extra in spec:
        try:
            rendered[extra] = _render_value(spec[extra], context, strict)
        except LiquidError as exc:
            raise RenderError.of(channel, extra, exc) from exc
    if channel == "push":
        rendered.setdefault("data", {})
    return rendered
