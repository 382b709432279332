"""Audiences: the environment's audiences with their scans, an editor of the condition that
counts its matches as it is typed, and an audience's page with its members and their history,
each through the audience service the Audiences API calls (one set of rules)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from tidings.audience import service
from tidings.audience.conditions import Node, parse
from tidings.audience.schemas import AudienceBody
from tidings.automation import membership
from tidings.errors import AppError, BadRequest, NotFound
from tidings.models import Audience, AudienceMember
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Admin, Page, page_path, see_other
from tidings.studio.listing import Listing, ListQuery
from tidings.studio.templating import render, render_form
from tidings.studio.validation import json_field, validated
from tidings.workspace.service import Scope

router = APIRouter()

PAGE_SIZE = 100
MEMBERS_PAGE_SIZE = 50
# The lists an audience's page shows, one at a time (`?show=`); the first is the default.
TABS = ("members", "history")
# The editor of a new audience. No audience id starts with `_`, so it never hides the page of
# an audience (an audience may well be called `new`).
NEW_PATH = f"{PREFIX}/audiences/_new"
# The condition's text area: far above any condition within the language's limits as people
# write them, and small enough that a form is parsed at once.
MAX_CONDITION_CHARS = 100_000
EXAMPLE_CONDITION: dict[str, Any] = {
    "all": [
        {"trait": "plan", "equals": "free"},
        {"event": "Viewed Pricing", "at_least": 2, "within": "7 days"},
        {"not": {"event": "Upgraded"}},
    ]
}
FLASHES = {
    "created": "Audience created: its members are being computed.",
    "saved": "Audience saved.",
    "unchanged": "Nothing changed: the audience is as it was.",
    "deleted": "Audience deleted, with its members and their history.",
}


def audience_path(audience_id: str) -> str:
    return page_path("audiences", audience_id)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Summary:
    """An audience as its list and its page show it: members now, and its scan."""

    audience: Audience
    member_count: int
    ready: bool
    progress: str


def summary(session: Session, audience: Audience) -> Summary:
    ready = service.scan_state(audience) == "ready"
    if ready:
        progress = "ready"
    elif audience.scan_version != audience.version:
        progress = "scanning: starting"
    else:
        progress = f"scanning {audience.scanned:,} / {audience.scan_total:,}"
    return Summary(audience, service.member_count(session, audience), ready, progress)


@router.get("/audiences")
def list_audiences(page: Page) -> Response:
    """The environment's audiences, oldest first, as GET /audiences."""
    query = ListQuery(page.request, f"{PREFIX}/audiences", PAGE_SIZE)
    summaries: list[Summary] = []
    with page.database.read() as session:
        listing = query.in_order(
            lambda after_id, limit: service.audiences_page(session, page.scope, after_id, limit)
        )
        summaries = [summary(session, audience) for audience in listing.rows]
    return query.render(
        "audiences.html",
        listing,
        section="audiences",
        summaries=summaries,
        flash=page.flash(FLASHES),
    )


# ---------------------------------------------------------------------------------------------
# The editor


def _draft(text: str) -> dict[str, Any]:
    """The condition typed, checked as PUT /audiences/{id} checks it: JSON within the input
    limits, an object, then the audience service's reading of it. BadRequest at the path that
    is wrong (`condition.all[1].within`)."""
    if len(text) > MAX_CONDITION_CHARS:
        raise BadRequest(
            f"condition: the text is over {MAX_CONDITION_CHARS:,} characters. Shorten it, "
            "e.g. with fewer values in an `in`.",
            code="invalid_condition",
            field="condition",
        )
    if not text.strip():
        raise BadRequest(
            'condition: type a condition, e.g. {"trait": "plan", "equals": "pro"}.',
            code="invalid_condition",
            field="condition",
        )
    body = validated(
        AudienceBody,
        {"condition": json_field(text, "condition")},
        'A condition is one object, e.g. {"trait": "plan", "equals": "pro"}.',
    )
    given = service.AudienceInput(None, None, body.condition, None, None)
    condition: dict[str, Any] = service.definition_of(given)["condition"]
    return condition


def _input(values: dict[str, str]) -> service.AudienceInput:
    """The form as the API's request body: empty name and description are left out (the name
    is then the id, as with PUT)."""
    condition = _draft(values["condition"])
    body = validated(
        AudienceBody,
        {
            "name": values["name"] or None,
            "description": values["description"] or None,
            "condition": condition,
        },
    )
    return service.AudienceInput(body.name, body.description, body.condition, None, None)


def _form_values(form: FormData) -> dict[str, str]:
    return {
        "audience_id": form_text(form, "audience_id").strip(),
        "name": form_text(form, "name").strip(),
        "description": form_text(form, "description").strip(),
        "condition": form_text(form, "condition"),
    }


def _editor(
    request: Request,
    values: dict[str, str],
    *,
    new: bool,
    courier_filter: Any = None,
    error: AppError | None = None,
) -> Response:
    return render_form(
        request,
        "audience_edit.html",
        error,
        section="audiences",
        values=values,
        new=new,
        courier_filter=courier_filter,
        max_condition_chars=MAX_CONDITION_CHARS,
    )


def _stored(session: Session, scope: Scope, audience_id: str) -> Audience | None:
    """The audience saved with this id, if any."""
    try:
        return service.get_audience(session, scope, audience_id)
    except NotFound:
        return None


@router.get("/audiences/_new")
def new_audience(request: Request, admin: Admin) -> Response:
    values = {
        "audience_id": "",
        "name": "",
        "description": "",
        "condition": _pretty(EXAMPLE_CONDITION),
    }
    return _editor(request, values, new=True)


@router.get("/audiences/{audience_id}/edit")
def edit_audience(audience_id: str, page: Page) -> Response:
    with page.database.read() as session:
        audience = service.get_audience(session, page.scope, audience_id)
    values = {
        "audience_id": audience.audience_id,
        "name": audience.name,
        "description": audience.description or "",
        "condition": _pretty(audience.definition["condition"]),
    }
    return _editor(
        page.request, values, new=False, courier_filter=audience.definition.get("filter")
    )


@router.post("/audiences")
def save_audience(page: Page, form: CheckedForm) -> Response:
    """As PUT /audiences/{id} with a `condition` (an audience saved with Courier's `filter`
    is saved with the condition it means). A new audience's id must be free."""
    values = _form_values(form)
    new = form_text(form, "new") == "1"
    audience_id = values["audience_id"]
    try:
        service.check_audience_id(audience_id)
        given = _input(values)
        with page.database.write() as (session, outbox):
            if new and _stored(session, page.scope, audience_id) is not None:
                raise BadRequest(
                    f"An audience {audience_id!r} exists already: open it to edit it.",
                    code="audience_exists",
                    field="audience_id",
                )
            _, outcome = service.put_audience(session, outbox, page.scope, audience_id, given)
    except AppError as exc:
        courier_filter = None
        if not new:
            with page.database.read() as session:
                # The Courier filter it was saved with, shown beside the condition.
                stored = _stored(session, page.scope, audience_id)
                courier_filter = stored.definition.get("filter") if stored is not None else None
        return _editor(page.request, values, new=new, courier_filter=courier_filter, error=exc)
    flash = {"created": "created", "unchanged": "unchanged"}.get(outcome, "saved")
    return see_other(audience_path(audience_id), flash)


@router.post("/audiences/preview")
def preview(page: Page, form: CheckedForm) -> Response:
    """The live count: the typed condition evaluated against the environment's users, as a
    scan would, without saving anything; or why it cannot be saved."""
    try:
        node: Node = parse(_draft(form_text(form, "condition")))
    except AppError as exc:
        return render(page.request, "audience_preview.html", error=exc, found=None)
    with page.database.read() as session:
        found = membership.preview(session, page.scope.environment_id, node)
    return render(page.request, "audience_preview.html", error=None, found=found)


# ---------------------------------------------------------------------------------------------
# An audience's page


def _audience_context(
    page: Page, audience_id: str
) -> tuple[ListQuery, Listing[AudienceMember], dict[str, Any]]:
    """What the page and its live part show: the audience, its scan and members now, and
    the page of members or stays the query string asks for."""
    path = audience_path(audience_id)
    query = ListQuery(page.request, path, MEMBERS_PAGE_SIZE)
    tab = query.choice("show", TABS, "List") or TABS[0]
    with page.database.read() as session:
        audience = service.get_audience(session, page.scope, audience_id)
        now = summary(session, audience)
        if tab == "members":
            listing = query.in_order(
                lambda after_id, limit: service.members_page(session, audience, after_id, limit)
            )
        else:
            listing = query.in_order(
                lambda after_id, limit: service.stays_page(session, audience, after_id, limit, None)
            )
    live = None
    if not now.ready:
        # The same page of the same list; a flash is said once.
        kept = urlencode(
            [item for item in page.request.query_params.multi_items() if item[0] != "flash"]
        )
        live = f"{path}/live" + (f"?{kept}" if kept else "")
    return (
        query,
        listing,
        {
            "audience": audience,
            "summary": now,
            "tab": tab,
            "tabs": TABS,
            "here": path,
            "live": live,
        },
    )


@router.get("/audiences/{audience_id}/live")
def audience_live(audience_id: str, page: Page) -> Response:
    """The scan, the member count and the list, refreshed by htmx every 2 s while the scan
    runs; once it is ready the fragment comes back without its refresh."""
    query, listing, context = _audience_context(page, audience_id)
    return query.render("audience_live.html", listing, **context)


@router.get("/audiences/{audience_id}")
def audience_page(audience_id: str, page: Page) -> Response:
    query, listing, context = _audience_context(page, audience_id)
    return query.render(
        "audience.html",
        listing,
        section="audiences",
        flash=page.flash(FLASHES),
        **context,
    )


@router.post("/audiences/{audience_id}/delete")
def delete_audience(audience_id: str, page: Page, form: CheckedForm) -> Response:
    """As DELETE /audiences/{id}: the audience, its members and their history."""
    with page.database.write() as (session, _):
        service.delete_audience(session, page.scope, audience_id)
    return see_other(f"{PREFIX}/audiences", "deleted")
