"""Template rules: validation on save, rendering for sends and previews."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Session

from tidings.errors import BadRequest, NotFound, found, not_in_environment
from tidings.kit.time import utcnow
from tidings.models import Notification, NotificationVersion
from tidings.notification.repository import TEMPLATE_FIELDS, NotificationRepository
from tidings.notification.schemas import NotificationBody
from tidings.template.links import DroppedLink, drop_unsafe_links
from tidings.template.render import (
    HTML_FIELDS,
    RenderContext,
    RenderError,
    render_budget,
    render_channel,
    syntax_problem,
)
from tidings.workspace.service import Scope

CHANNEL_ORDER = ("email", "push", "sms", "chat", "inbox", "webhook")


not_found = not_in_environment(
    "notification template",
    "PUT /notifications/{id}",
    code="notification_not_found",
    field="template",
)


SaveOutcome = Literal["created", "updated", "unchanged"]


def fields_of(row: Notification | NotificationVersion) -> dict[str, Any]:
    """The template a row holds, as a version records it (`TEMPLATE_FIELDS`)."""
    return {name: getattr(row, name) for name in TEMPLATE_FIELDS}


def save(
    session: Session,
    scope: Scope,
    notification_id: str,
    body: NotificationBody,
    *,
    restored_from: int | None = None,
) -> tuple[Notification, NotificationVersion, SaveOutcome]:
    """Validate and save a template: every path that writes one (the API, Studio, `tidings
    apply`, a restore) comes here. A template that differs from its newest version is
    recorded as version N+1, with who saved it; an equal one is `unchanged`."""
    content = body.content.model_dump(exclude_none=True)
    if not content:
        raise BadRequest(
            "content is empty: give at least one channel, e.g. "
            '{"email": {"subject": "…", "text": "…"}}.',
            code="invalid_template",
            field="content",
        )
    problem = syntax_problem(content, "content")
    if problem is not None:
        raise BadRequest(f"{problem[0]}: {problem[1]}", code="invalid_template", field=problem[0])
    repository = NotificationRepository(session)
    if body.topic_id is not None and not repository.topic_exists(scope, body.topic_id):
        raise BadRequest(
            f"topic_id {body.topic_id!r} is not a subscription topic in this environment. "
            "Create it with PUT /preferences/topics/{topic_id}, or leave topic_id out.",
            code="unknown_topic",
            field="topic_id",
        )
    fields = {
        "name": body.name or notification_id,
        "content": content,
        "routing": body.routing.model_dump() if body.routing else None,
        "strict": body.strict,
        "topic_id": body.topic_id,
        "tracking": (body.tracking.model_dump(exclude_none=True) or None)
        if body.tracking
        else None,
    }
    existing = repository.get(scope, notification_id)
    if existing is not None:
        latest = repository.version(existing, repository.latest_version_number(existing))
        if latest is not None and fields_of(latest) == fields == fields_of(existing):
            return existing, latest, "unchanged"
    notification, version, created = repository.save(
        scope,
        notification_id,
        fields,
        utcnow(),
        saved_by=repository.saved_by(scope),
        restored_from=restored_from,
    )
    return notification, version, "created" if created else "updated"


def get_version(
    session: Session, scope: Scope, notification_id: str, number: int
) -> NotificationVersion:
    """One saved version of a template; NotFound naming the versions it has otherwise."""
    notification = get(session, scope, notification_id)
    repository = NotificationRepository(session)
    version = repository.version(notification, number)
    if version is None:
        # Not through `found`: the message reads the latest version number.
        raise NotFound(
            f"Template {notification_id!r} has no version {number}; its versions are 1 to "
            f"{repository.latest_version_number(notification)}. "
            f"GET /notifications/{notification_id}/versions lists them.",
            code="notification_version_not_found",
            field="version",
        )
    return version


def restore(
    session: Session, scope: Scope, notification_id: str, number: int
) -> tuple[Notification, NotificationVersion, SaveOutcome]:
    """Save version `number`'s template as a new version, through `save` and its checks (a
    topic deleted since is refused); history is never rewritten. `unchanged` when the
    template already equals that version."""
    version = get_version(session, scope, notification_id, number)
    body = NotificationBody.model_validate(
        {
            "name": version.name,
            "content": version.content,
            "routing": version.routing,
            "strict": version.strict,
            "topic_id": version.topic_id,
            "tracking": version.tracking,
        }
    )
    return save(session, scope, notification_id, body, restored_from=number)


def get(session: Session, scope: Scope, notification_id: str) -> Notification:
    return found(
        NotificationRepository(session).get(scope, notification_id),
        not_found(notification_id),
    )


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
