"""Template rules: validation on save, rendering for sends and previews."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from tidings.errors import BadRequest, not_in_environment
from tidings.kit.time import utcnow
from tidings.models import Notification
from tidings.notification.repository import NotificationRepository
from tidings.notification.schemas import NotificationBody
from tidings.template.links import DroppedLink, drop_unsafe_links
from tidings.template.render import (
    HTML_FIELDS,
    RenderContext,
    RenderError,
    check_syntax,
    render_budget,
    render_channel,
)
from tidings.workspace.service import Scope

CHANNEL_ORDER = ("email", "push", "sms", "chat", "inbox", "webhook")


def _check_liquid(value: Any, path: str) -> None:
    if isinstance(value, str):
        reason = check_syntax(value)
        if reason is not None:
            raise BadRequest(
                f"{path}: {reason}",
                code="invalid_template",
                field=path,
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_liquid(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_liquid(item, f"{path}[{index}]")


not_found = not_in_environment(
    "notification template",
    "PUT /notifications/{id}",
    code="notification_not_found",
    field="template",
)


def save(
    session: Session, scope: Scope, notification_id: str, body: NotificationBody
) -> tuple[Notification, bool]:
    content = body.content.model_dump(exclude_none=True)
    if not content:
        raise BadRequest(
            "content is empty: give at least one channel, e.g. "
            '{"email": {"subject": "…", "text": "…"}}.',
            code="invalid_template",
            field="content",
        )
    _check_liquid(content, "content")
    repository = NotificationRepository(session)
    if body.topic_id is not None and not repository.topic_exists(scope, body.topic_id):
        raise BadRequest(
            f"topic_id {body.topic_id!r} is not a subscription topic in this environment. "
            "Create it with PUT /preferences/topics/{topic_id}, or leave topic_id out.",
            code="unknown_topic",
            field="topic_id",
        )
    routing = body.routing.model_dump() if body.routing else None
    now = utcnow()
    notification = repository.get(scope, notification_id)
    created = notification is None
    if notification is None:
        notification = Notification(
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            notification_id=notification_id,
            created_at=now,
        )
        repository.add(notification)
    notification.name = body.name or notification_id
    notification.content = content
    notification.routing = routing
    notification.strict = body.strict
    notification.topic_id = body.topic_id
    notification.updated_at = now
    session.flush()
    return notification, created


def get(session: Session, scope: Scope, notification_id: str) -> Notification:
    notification = NotificationRepository(session).get(scope, notification_id)
    if notification is None:
        raise not_found(notification_id)
    return notification


def default_routing(content: dict[str, Any]) -> dict[str, Any]:
    """Without routing: try the channels the template has content for, one of them."""
    return {"method": "single", "channels": [c for c in CHANNEL_ORDER if c in content]}


@dataclass
class Rendering:
    """Every channel of one message rendered: the ones that failed say why in `errors`
    (channel → "field: reason") and in `failures` (channel, field, error, line);
    `limit_error` names the first that went over a render limit, which fails the message."""

    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    dropped_links: list[DroppedLink] = field(default_factory=list)
    limit_error: str | None = None


def render_all(specs: dict[str, dict[str, Any]], context: RenderContext, strict: bool) -> Rendering:
    """Render every channel within one time budget; a failing channel is reported, the
    others still render. Unsafe links are dropped from what rendered."""
    rendering = Rendering()
    with render_budget():
        for channel, spec in specs.items():
            try:
                rendered = render_channel(channel, spec, context, strict=strict)
            except RenderError as exc:
                rendering.errors[channel] = f"{exc.field}: {exc.reason}"
                rendering.failures.append(
                    {"channel": channel, "field": exc.field, "error": exc.reason, "line": exc.line}
                )
                if exc.limit and rendering.limit_error is None:
                    rendering.limit_error = f"{channel}.{exc.field}: {exc.reason}"
                continue
            rendering.dropped_links.extend(drop_unsafe_links(channel, rendered, HTML_FIELDS))
            rendering.channels[channel] = rendered
    return rendering
