"""Broadcasts: the environment's broadcasts with their progress, a form that makes one, and
a broadcast's page with its counts refreshed live and its pause, resume and cancel, each
through the broadcast service the Broadcasts API calls (one set of rules)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from tidings.audience import service as audience_service
from tidings.broadcast import service
from tidings.broadcast.schemas import BroadcastBody
from tidings.db import Outbox
from tidings.errors import AppError, BadRequest
from tidings.kit.windows import DAY_NAMES
from tidings.models import Broadcast, BroadcastStatus
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, page_path, see_other
from tidings.studio.listing import ListQuery
from tidings.studio.repository import PICKER_LIMIT, StudioRepository
from tidings.studio.templating import render, render_form
from tidings.studio.validation import json_field, validated
from tidings.workspace.service import Scope

router = APIRouter()

PAGE_SIZE = 50
# The form of a new broadcast. No broadcast id starts with `_` (ids are letters, digits and
# `_.:-`, and Studio's own path is taken first), so it hides no broadcast called `new`.
NEW_PATH = f"{PREFIX}/broadcasts/_new"
# The data's text area: far above the data a template is rendered with, and small enough
# that a form is parsed at once.
MAX_DATA_CHARS = 100_000
# What a broadcast goes to, as `to` names it, with the label the form gives it.
TARGETS = {"audience_id": "Audience", "list_id": "List", "tenant_id": "Tenant"}
FIELDS = (
    "broadcast_id",
    "template",
    "target",
    "audience_id",
    "list_id",
    "tenant_id",
    "data",
    "send_at",
    "window_start",
    "window_end",
    "window_timezone",
)
# Where an error's path (`window.hours.start`) is shown in the form.
WINDOW_FIELDS = {
    "window.days": "window_days",
    "window.hours.start": "window_start",
    "window.hours.end": "window_end",
    "window.timezone": "window_timezone",
}
FLASHES = {
    "created": "Broadcast created.",
    "paused": "Broadcast paused: no more recipients are reached until it is resumed.",
    "resumed": "Broadcast resumed from where it stopped.",
    "canceled": "Broadcast canceled: no more recipients are reached, and its messages not "
    "sent yet are canceled.",
}
_PATH = re.compile(r"^[A-Za-z_][\w.\[\]]*$")


def broadcast_path(broadcast_id: str) -> str:
    return page_path("broadcasts", broadcast_id)


@dataclass(frozen=True, slots=True)
class Summary:
    """A broadcast as the list and its page show it: its counts now, and whether the page
    keeps refreshing (it is releasing, or messages it made are not settled yet)."""

    broadcast: Broadcast
    counts: dict[str, int]
    live: bool

    @property
    def target_kind(self) -> str:
        ((key, _),) = self.broadcast.target.items()
        return TARGETS.get(key, key)

    @property
    def target_id(self) -> str:
        ((_, value),) = self.broadcast.target.items()
        return str(value)

    @property
    def target_link(self) -> str | None:
        ((key, value),) = self.broadcast.target.items()
        area = {"audience_id": "audiences", "list_id": "lists", "tenant_id": "tenants"}.get(key)
        return page_path(area, str(value)) if area else None

    @property
    def progress(self) -> str:
        return f"sent {self.counts['sent']:,} of {self.counts['targeted']:,}"


def summary(session: Session, broadcast: Broadcast) -> Summary:
    counts = service.counts(session, broadcast)
    live = broadcast.status not in BroadcastStatus.FINAL or counts["pending"] > 0
    return Summary(broadcast, counts, live)


@router.get("/broadcasts")
def list_broadcasts(page: Page) -> Response:
    """The environment's broadcasts, oldest first, as GET /broadcasts."""
    query = ListQuery(page.request, f"{PREFIX}/broadcasts", PAGE_SIZE)
    with page.database.read() as session:
        listing = query.in_order(
            lambda after_id, limit: service.page(session, page.scope, after_id, limit)
        )
        summaries = [summary(session, broadcast) for broadcast in listing.rows]
    return query.render("broadcasts.html", listing, section="broadcasts", summaries=summaries)


# ---------------------------------------------------------------------------------------------
# A new broadcast


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {name: form_text(form, name).strip() for name in FIELDS}
    values["data"] = form_text(form, "data")
    values["window_days"] = [
        day for day in form.getlist("window_days") if isinstance(day, str) and day in DAY_NAMES
    ]
    return values


def _window(values: dict[str, Any]) -> dict[str, Any] | None:
    """The window the fields give, as a window object (None: no field filled). Days left
    unticked are every day, and hours left empty the whole day, as the API reads them."""
    window: dict[str, Any] = {}
    if values["window_days"]:
        window["days"] = list(values["window_days"])
    hours = {key: values[f"window_{key}"] for key in ("start", "end") if values[f"window_{key}"]}
    if hours:
        window["hours"] = hours
    if values["window_timezone"]:
        window["timezone"] = values["window_timezone"]
    return window or None


def _body(values: dict[str, Any]) -> BroadcastBody:
    """The form as POST /broadcasts's body, checked by its request model."""
    text = values["data"]
    if len(text) > MAX_DATA_CHARS:
        raise BadRequest(
            f"data: the text is over {MAX_DATA_CHARS:,} characters. Shorten it.",
            code="invalid_json",
            field="data",
        )
    kind = values["target"]
    return validated(
        BroadcastBody,
        {
            "broadcast_id": values["broadcast_id"] or None,
            "template": values["template"],
            "to": {kind: values[kind]} if kind in TARGETS else {},
            "data": json_field(text, "data") if text.strip() else {},
            "send_at": values["send_at"] or None,
            "window": _window(values),
        },
    )


def error_field(error: AppError) -> str | None:
    """The form field an error is shown at (None: above the form). A request model's error
    names its first path element as the field and the whole path in its message
    (`to.list_id: …`)."""
    field = error.field or ""
    head = error.message.split(":", 1)[0]
    if head.startswith(field) and _PATH.match(head):
        field = head
    if field.startswith("to."):
        name = field.removeprefix("to.")
        return name if name in TARGETS else "target"
    if field == "to":
        return "target"
    if field.startswith("window"):
        for path, name in WINDOW_FIELDS.items():
            if field.startswith(path):
                return name
        return "window"
    root = field.split(".", 1)[0].split("[", 1)[0]
    return root if root in FIELDS else None


def _pickers(session: Session, scope: Scope) -> dict[str, list[str]]:
    ids = StudioRepository(session).picker_ids(scope.environment_id)
    audiences = audience_service.audiences_page(session, scope, None, PICKER_LIMIT)
    return {
        "templates": ids["templates"],
        "lists": ids["lists"],
        "audiences": [audience.audience_id for audience in audiences],
    }


def _form(page: Page, values: dict[str, Any], error: AppError | None = None) -> Response:
    with page.database.read() as session:
        pickers = _pickers(session, page.scope)
    return render_form(
        page.request,
        "broadcast_new.html",
        error,
        section="broadcasts",
        values=values,
        pickers=pickers,
        targets=TARGETS,
        days=DAY_NAMES,
        error_at=error_field(error) if error else None,
        max_data_chars=MAX_DATA_CHARS,
    )


@router.get("/broadcasts/_new")
def new_broadcast(page: Page) -> Response:
    values: dict[str, Any] = dict.fromkeys(FIELDS, "")
    values.update(target="list_id", data="{}", window_days=[])
    return _form(page, values)


@router.post("/broadcasts")
def create_broadcast(page: Page, form: CheckedForm) -> Response:
    """As POST /broadcasts: the errors are shown at their fields, with the form as typed."""
    values = _form_values(form)
    try:
        body = _body(values)
        with page.database.write() as (session, outbox):
            broadcast, created = service.create(session, outbox, page.scope, body)
            broadcast_id = broadcast.broadcast_id
    except AppError as exc:
        return _form(page, values, exc)
    return see_other(broadcast_path(broadcast_id), "created" if created else None)


# ---------------------------------------------------------------------------------------------
# A broadcast's page


def _context(page: Page, broadcast_id: str) -> dict[str, Any]:
    with page.database.read() as session:
        now = summary(session, service.get(session, page.scope, broadcast_id))
    here = broadcast_path(broadcast_id)
    return {
        "broadcast": now.broadcast,
        "summary": now,
        "here": here,
        "live": f"{here}/live" if now.live else None,
    }


@router.get("/broadcasts/{broadcast_id}/live")
def broadcast_live(broadcast_id: str, page: Page) -> Response:
    """The status, counts and actions, refreshed by htmx every 2 s while the broadcast
    releases recipients or its messages are not settled; then once more without it."""
    return render(page.request, "broadcast_live.html", **_context(page, broadcast_id))


def _page(
    page: Page, broadcast_id: str, flash: str | None = None, error: AppError | None = None
) -> Response:
    return render_form(
        page.request,
        "broadcast.html",
        error,
        section="broadcasts",
        flash=flash,
        **_context(page, broadcast_id),
    )


@router.get("/broadcasts/{broadcast_id}")
def broadcast_page(broadcast_id: str, page: Page) -> Response:
    return _page(page, broadcast_id, page.flash(FLASHES))


def _change(
    page: Page,
    broadcast_id: str,
    change: Callable[[Session, Outbox], object],
    flash: str,
    then: Callable[[], object] | None = None,
) -> Response:
    """`change` the broadcast through its service in one unit of work: its page with the
    service's refusal, or, once committed (and `then` done), back to it with `flash`."""
    try:
        with page.database.write() as (session, outbox):
            change(session, outbox)
    except AppError as exc:
        return _page(page, broadcast_id, error=exc)
    if then is not None:
        then()
    return see_other(broadcast_path(broadcast_id), flash)


@router.post("/broadcasts/{broadcast_id}/pause")
def pause_broadcast(broadcast_id: str, page: Page, form: CheckedForm) -> Response:
    """As POST /broadcasts/{id}/pause."""
    return _change(
        page,
        broadcast_id,
        lambda session, _: service.pause(session, page.scope, broadcast_id),
        "paused",
    )


@router.post("/broadcasts/{broadcast_id}/resume")
def resume_broadcast(broadcast_id: str, page: Page, form: CheckedForm) -> Response:
    """As POST /broadcasts/{id}/resume."""
    return _change(
        page,
        broadcast_id,
        lambda session, outbox: service.resume(session, outbox, page.scope, broadcast_id),
        "resumed",
    )


@router.post("/broadcasts/{broadcast_id}/cancel")
def cancel_broadcast(broadcast_id: str, page: Page, form: CheckedForm) -> Response:
    """As POST /broadcasts/{id}/cancel: stopped for good, then its messages not sent yet
    canceled."""
    return _change(
        page,
        broadcast_id,
        lambda session, _: service.cancel(session, page.scope, broadcast_id),
        "canceled",
        then=lambda: service.cancel_unsent(page.database, page.scope, broadcast_id),
    )
