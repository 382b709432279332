"""The Jinja2 environment: autoescape on for every template, whatever its file name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tidings.errors import AppError
from tidings.kit.time import isoformat
from tidings.models.automation import RunStatus
from tidings.models.message import MessageStatus

TEMPLATES = Path(__file__).parent / "templates"


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _compact_json(value: Any) -> str:
    """JSON as text; autoescape then escapes it like any other string."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _code_spans(value: Any) -> Markup:
    """Text with its `backticked` parts shown as code, as Markdown shows inline code; the
    text itself is escaped (it may come from an event), and nothing else is interpreted."""
    parts = str(value).split("`")
    if len(parts) % 2 == 0:  # an odd backtick: no code spans, as Markdown would leave it
        return escape(value)
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if index % 2 else escape(part)
        for index, part in enumerate(parts)
    )


def _epoch_ms(value: int | None) -> str:
    if value is None:
        return ""
    return _when(datetime.fromtimestamp(value / 1000, tz=UTC))


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["pretty_json"] = _pretty_json
environment.filters["when"] = _when
environment.filters["compact_json"] = _compact_json
environment.filters["epoch_ms"] = _epoch_ms
environment.filters["code_spans"] = _code_spans
environment.filters["iso"] = isoformat
# Message statuses that mean the message will not reach its recipient: an event or a run that
# made one is not shown as a plain success.
environment.globals["NOT_SENT"] = (
    MessageStatus.UNDELIVERABLE,
    MessageStatus.BOUNCED,
    MessageStatus.UNROUTABLE,
    MessageStatus.UNMAPPED,
)
environment.globals["RUN_FAILED"] = RunStatus.ERROR


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page or fragment; `request.state` supplies the signed-in admin and CSRF token."""
    values: dict[str, Any] = {
        "request": request,
        "signed_in": getattr(request.state, "signed_in", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "flash": None,
        "section": "",
        **context,
    }
    html = environment.get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code)


def render_form(
    request: Request,
    template: str,
    error: AppError | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page with a form, as it is or shown again with the `error` that refused what was
    posted: then it answers with that error's status, and the template shows it as `error`."""
    return render(
        request, template, error.status_code if error else status_code, error=error, **context
    )
