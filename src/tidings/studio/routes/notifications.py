"""Notifications: a per-channel template editor, a live preview and a test send."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, Response

from tidings.automation import references
from tidings.dependencies import SettingsDep
from tidings.engagement import service as engagement_service
from tidings.errors import AppError, BadRequest
from tidings.event.service import preview_data
from tidings.message import service as message_service
from tidings.message.schemas import MessageSpec
from tidings.models import MessageStatus, Notification
from tidings.notification import service as notification_service
from tidings.notification.repository import NotificationRepository
from tidings.notification.schemas import NotificationBody
from tidings.profile.repository import ProfileRepository
from tidings.studio import service
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, page_path, see_other
from tidings.studio.listing import ListQuery
from tidings.studio.templating import render, render_form
from tidings.template.render import CHANNEL_FIELDS as RENDERED_FIELDS
from tidings.template.render import RenderContext
from tidings.workspace.service import Scope

router = APIRouter()

PAGE_SIZE = 100
# The picker of the preview's event lists the newest; a search field finds any other.
PICKER_SIZE = 20
FLASHES = {"saved": "Saved.", "sent": "Test message sent: see Messages."}

# The fields of each channel the editor offers: those the renderer renders, in its order but
# for email's text before its HTML.
_EDITOR_ORDER = {"email": ("subject", "text", "html")}
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    channel: _EDITOR_ORDER.get(channel, fields)
    for channel, fields in RENDERED_FIELDS.items()
    if fields
}
# The channel fields that hold JSON rather than text: push data, and a webhook's whole body.
JSON_FIELDS: dict[str, str] = {"push": "data", "webhook": "body"}
EDITOR_CHANNELS = tuple(dict.fromkeys([*CHANNEL_FIELDS, *JSON_FIELDS]))


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def form_values(notification: Notification) -> dict[str, str]:
    """Every field of a stored template as the editor's form shows it, by input name:
    what an unchanged Save submits, and `body_from_form` reads back to the same template."""
    values = {"id": notification.notification_id, "name": notification.name}
    for channel, spec in notification.content.items():
        for field in CHANNEL_FIELDS.get(channel, ()):
            values[f"{channel}.{field}"] = str(spec.get(field) or "")
        extra = JSON_FIELDS.get(channel)
        if extra is not None and extra in spec and spec[extra] != {}:
            values[f"{channel}.{extra}"] = _json_text(spec[extra])
    values["routing"] = _json_text(notification.routing) if notification.routing else ""
    values["topic_id"] = notification.topic_id or ""
    values["strict"] = "on" if notification.strict else ""
    for setting in TRACKING_SETTINGS:
        chosen = (notification.tracking or {}).get(setting)
        values[f"tracking.{setting}"] = "" if chosen is None else ("on" if chosen else "off")
    return values


# Open and click tracking: each "on", "off" or "" (the environment's default).
TRACKING_SETTINGS = ("opens", "clicks")


def tracking_from_form(form: FormData) -> dict[str, bool] | None:
    chosen = {
        setting: form_text(form, f"tracking.{setting}") == "on"
        for setting in TRACKING_SETTINGS
        if form_text(form, f"tracking.{setting}") in ("on", "off")
    }
    return chosen or None


def _parsed_json(form: FormData, name: str) -> Any:
    text = form_text(form, name)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"{name}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}).",
            field=name,
        ) from exc


def content_from_form(form: FormData) -> dict[str, dict[str, Any]]:
    """Channels with at least one non-empty field, e.g. {"email": {"subject": …, "text": …}};
    push data and a webhook body parsed from JSON (BadRequest naming the field if invalid)."""
    content: dict[str, dict[str, Any]] = {}
    for channel in EDITOR_CHANNELS:
        values: dict[str, Any] = {
            field: value
            for field in CHANNEL_FIELDS.get(channel, ())
            if (value := form_text(form, f"{channel}.{field}"))
        }
        extra = JSON_FIELDS.get(channel)
        if extra is not None and form_text(form, f"{channel}.{extra}").strip():
            values[extra] = _parsed_json(form, f"{channel}.{extra}")
        if any(not isinstance(value, str) or value.strip() for value in values.values()):
            content[channel] = values
    return content


def body_from_form(form: FormData) -> NotificationBody:
    """The template the form describes, validated as PUT /notifications/{id} validates it."""
    routing = _parsed_json(form, "routing") if form_text(form, "routing").strip() else None
    try:
        return NotificationBody.model_validate(
            {
                "name": form_text(form, "name").strip() or None,
                "content": content_from_form(form),
                "routing": routing,
                "strict": form_text(form, "strict") == "on",
                "topic_id": form_text(form, "topic_id").strip() or None,
                "tracking": tracking_from_form(form),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        field = where.removeprefix("content.") if where.startswith("content.") else where
        raise BadRequest(f"{where}: {first['msg']}", field=field.split(".")[0]) from exc


def _editor(
    page: Page,
    values: dict[str, str],
    *,
    new: bool,
    error: AppError | None = None,
    flash: str | None = None,
) -> Response:
    with page.database.read() as session:
        events = service.recent_events(session, page.scope, PICKER_SIZE)
        sent_by = [] if new else references.automations_sending(session, page.scope, values["id"])
        tracking_default = engagement_service.environment_tracking(
            session, page.scope.environment_id
        )
    return render_form(
        page.request,
        "notification_edit.html",
        error,
        section="notifications",
        values={"id": "", "name": "", **values},
        editor_channels=EDITOR_CHANNELS,
        channels=CHANNEL_FIELDS,
        json_fields=JSON_FIELDS,
        new=new,
        events=events,
        flash=flash,
        sent_by=sent_by,
        tracking_default=tracking_default.model_dump(),
    )


@router.get("/notifications")
def list_notifications(page: Page) -> Response:
    query = ListQuery(page.request, f"{PREFIX}/notifications", PAGE_SIZE)
    with page.database.read() as session:
        repository = NotificationRepository(session)
        listing = query.in_order(
            lambda after_id, limit: repository.page(page.scope, after_id, limit)
        )
    return query.render("notifications.html", listing, section="notifications")


@router.get("/notifications/new")
def new_notification(page: Page) -> Response:
    return _editor(page, {}, new=True)


@router.get("/notifications/{notification_id}")
def edit_notification(notification_id: str, page: Page) -> Response:
    with page.database.read() as session:
        notification = notification_service.get(session, page.scope, notification_id)
    return _editor(
        page,
        form_values(notification),
        new=False,
        flash=page.flash(FLASHES),
    )


@router.post("/notifications")
def save_notification(page: Page, form: CheckedForm) -> Response:
    notification_id = form_text(form, "id").strip()
    new = form_text(form, "new") == "1"
    try:
        if not notification_id:
            raise BadRequest("Give the template an id, e.g. welcome.", field="id")
        body = body_from_form(form)
        with page.database.write() as (session, _):
            existing = NotificationRepository(session).get(page.scope, notification_id)
            if new and existing is not None:
                raise BadRequest(f"A template {notification_id!r} already exists.", field="id")
            notification_service.save(session, page.scope, notification_id, body)
    except AppError as exc:
        # The form as submitted, so that nothing typed is lost.
        values = {name: value for name, value in form.multi_items() if isinstance(value, str)}
        return _editor(page, values, new=new, error=exc)
    return see_other(page_path("notifications", notification_id), "saved")


def _picked(form: FormData) -> str:
    """The event picked for the preview: a messageId or user id typed in the picker's search
    field wins over its list."""
    return form_text(form, "event_search").strip() or form_text(form, "event")


def _event_data(session: Session, scope: Scope, wanted: str) -> tuple[dict[str, Any], str | None]:
    """The picked event's data and user id; none when no event is picked or found."""
    event = service.preview_event(session, scope, wanted) if wanted else None
    return (preview_data(event), event.user_id) if event is not None else ({}, None)


# The rendered email in Studio's frame: sandboxed (no script, no form, an origin of its own)
# whether framed or opened alone, with its inline styles and images, framed only by Studio.
EMAIL_FRAME_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; "
        "font-src data: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    ),
    "X-Frame-Options": "SAMEORIGIN",
}
NO_HTML = "<p style='font-family: sans-serif; color: #5b6475'>This template has no HTML part.</p>"


@router.post("/notifications/email-frame")
def email_frame(page: Page, form: CheckedForm) -> Response:
    """The form's unsaved email HTML, rendered as the preview renders it, for the preview's
    frame (the preview itself shows it as source)."""
    try:
        # Only the email: the preview beside it renders the other channels.
        content = {key: value for key, value in content_from_form(form).items() if key == "email"}
    except BadRequest:
        content = {}
    rendering = _rendering(page, content, _picked(form))
    html = rendering.channels.get("email", {}).get("html") or NO_HTML
    return HTMLResponse(html, headers=EMAIL_FRAME_HEADERS)


@router.post("/notifications/{notification_id}/delete")
def delete_notification(notification_id: str, page: Page, form: CheckedForm) -> Response:
    """As DELETE /notifications/{id}; messages already made keep their history."""
    with page.database.write() as (session, _):
        if not NotificationRepository(session).delete(page.scope, notification_id):
            raise notification_service.not_found(notification_id)
    return see_other(f"{PREFIX}/notifications")


def _rendering(
    page: Page, content: dict[str, Any], event_id: str
) -> notification_service.Rendering:
    """Content rendered as a preview: with the picked event's data, user and stored profile."""
    profile: dict[str, Any] = {}
    with page.database.read() as session:
        data, recipient = _event_data(session, page.scope, event_id)
        if recipient is not None:
            stored = ProfileRepository(session).get(page.scope, recipient)
            profile = {**(stored.data if stored else {}), "user_id": recipient}
    context = RenderContext(data=data, profile=profile, recipient=recipient, urls={})
    return notification_service.render_all(content, context, strict=False)


@router.post("/notifications/preview")
def preview(page: Page, form: CheckedForm) -> Response:
    """The live preview: the form's unsaved content, rendered with a received event's data."""
    try:
        content = content_from_form(form)
    except BadRequest as exc:
        return render(
            page.request,
            "_preview.html",
            rendered={},
            errors={},
            dropped_links=[],
            invalid=exc.message,
        )
    rendering = _rendering(page, content, _picked(form))
    return render(
        page.request,
        "_preview.html",
        rendered=rendering.channels,
        errors=rendering.errors,
        dropped_links=rendering.dropped_links,
        invalid=None,
    )


def _test_data(form: FormData, event_data: dict[str, Any]) -> dict[str, Any]:
    """The typed JSON data, else the data of the event picked for the preview."""
    if not form_text(form, "data").strip():
        return event_data
    data = _parsed_json(form, "data")
    if not isinstance(data, dict):
        raise BadRequest('data: give a JSON object, e.g. {"order_id": "123"}.', field="data")
    return data


@router.post("/notifications/{notification_id}/test-send")
def test_send(
    notification_id: str, page: Page, form: CheckedForm, settings: SettingsDep
) -> Response:
    """Send the saved template to one user, as POST /send would, with typed data or the data
    of the event picked for the preview (and its user, when none is typed)."""
    try:
        with page.database.write() as (session, outbox):
            event_data, event_user = _event_data(session, page.scope, _picked(form))
            user_id = form_text(form, "user_id").strip() or event_user
            if not user_id:
                raise BadRequest(
                    "Give the user id to send the test to, or pick an event for the preview.",
                    field="user_id",
                )
            spec = MessageSpec.model_validate(
                {
                    "to": {"user_id": user_id},
                    "template": notification_id,
                    "data": _test_data(form, event_data),
                }
            )
            _, messages = message_service.accept_send(
                session,
                page.scope,
                spec,
                message_timeout=timedelta(seconds=settings.message_timeout_seconds),
                source={"type": "studio", "admin": page.admin.admin_id},
            )
            outbox.add_messages(messages, page.scope.environment_id)
            message_ids = [message.message_id for message in messages]
    except AppError as exc:
        return render(page.request, "_test_send.html", exc.status_code, error=exc.message, ids=[])
    return render(page.request, "_test_send.html", error=None, ids=message_ids)


@router.get("/notifications/test-sends/{message_id}")
def test_send_outcome(message_id: str, page: Page) -> Response:
    """A test message's status as it progresses: the fragment polls itself until the message
    is sent or has ended."""
    with page.database.read() as session:
        message = message_service.get_message(session, page.scope, message_id)
    settled = message.status == MessageStatus.SENT or message.status in MessageStatus.FINAL
    return render(page.request, "_test_send_outcome.html", message=message, settled=settled)
