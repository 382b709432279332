"""Lists: the list of lists (filtered by the API's patterns), create and delete a list, and a
list's page with its subscribers, subscribe and unsubscribe, each through the list service
the Lists API calls."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tidings.errors import AppError, BadRequest
from tidings.list import service
from tidings.list.repository import ListRepository
from tidings.list.schemas import ListBody, SubscribeUserBody, preferences_document
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, page_path, see_other
from tidings.studio.listing import ListQuery, empty
from tidings.studio.validation import json_field, validated

router = APIRouter()

PAGE_SIZE = 100
SUBSCRIBERS_PAGE_SIZE = 50
FLASHES = {
    "created": "List created.",
    "renamed": "List renamed.",
    "subscribed": "Subscribed.",
    "unsubscribed": "Unsubscribed.",
    "deleted": "List deleted, with its subscriptions.",
}


def list_path(list_id: str) -> str:
    return page_path("lists", list_id)


def _lists_page(
    page: Page,
    *,
    new: dict[str, str] | None = None,
    error: AppError | None = None,
    flash: str | None = None,
) -> Response:
    """The lists matching `pattern` (as GET /lists?pattern=), in creation order."""
    query = ListQuery(page.request, f"{PREFIX}/lists", PAGE_SIZE)
    pattern = query.text("pattern")
    if pattern:
        try:
            service.compile_pattern(pattern)
        except BadRequest as exc:
            query.errors["pattern"] = exc.message
    listing = empty()
    if not query.errors:
        with page.database.read() as session:
            listing = query.in_order(
                lambda after_id, limit: service.find_lists(
                    session, page.scope, pattern, after_id, limit
                )
            )
    return query.render(
        "lists.html",
        listing,
        section="lists",
        new=new or {"list_id": "", "name": ""},
        refused=error,
        flash=flash,
    )


@router.get("/lists")
def list_lists(page: Page) -> Response:
    return _lists_page(page, flash=page.flash(FLASHES))


@router.post("/lists")
def create_list(page: Page, form: CheckedForm) -> Response:
    """A new list, as PUT /lists/{list_id}; refused when the id is taken (PUT would rename
    it)."""
    new = {"list_id": form_text(form, "list_id").strip(), "name": form_text(form, "name").strip()}
    try:
        service.check_list_id(new["list_id"])
        body = validated(ListBody, {"name": new["name"] or new["list_id"]})
        with page.database.write() as (session, _):
            if ListRepository(session).get(page.scope, new["list_id"]) is not None:
                raise BadRequest(
                    f"A list {new['list_id']!r} exists already: open it to rename it.",
                    code="list_exists",
                    field="list_id",
                )
            service.put_list(session, page.scope, new["list_id"], body.name)
    except AppError as exc:
        return _lists_page(page, new=new, error=exc)
    return see_other(list_path(new["list_id"]), "created")


def _list_page(
    page: Page,
    list_id: str,
    *,
    values: dict[str, str] | None = None,
    error: AppError | None = None,
    flash: str | None = None,
) -> Response:
    query = ListQuery(page.request, list_path(list_id), SUBSCRIBERS_PAGE_SIZE)
    with page.database.read() as session:
        recipient_list = service.get_list(session, page.scope, list_id)
        listing = query.in_order(
            lambda after_id, limit: service.list_subscriptions(
                session, page.scope, list_id, after_id, limit
            )
        )
    return query.render(
        "list.html",
        listing,
        section="lists",
        recipient_list=recipient_list,
        values={"name": recipient_list.name, "user_id": "", "preferences": "", **(values or {})},
        refused=error,
        flash=flash,
    )


@router.post("/lists/{list_id:path}/rename")
def rename_list(list_id: str, page: Page, form: CheckedForm) -> Response:
    """As PUT /lists/{list_id} on a list that exists."""
    values = {"name": form_text(form, "name").strip()}
    try:
        body = validated(ListBody, values)
        with page.database.write() as (session, _):
            service.get_list(session, page.scope, list_id)
            service.put_list(session, page.scope, list_id, body.name)
    except AppError as exc:
        return _list_page(page, list_id, values=values, error=exc)
    return see_other(list_path(list_id), "renamed")


@router.post("/lists/{list_id:path}/subscribe")
def subscribe_user(list_id: str, page: Page, form: CheckedForm) -> Response:
    """As PUT /lists/{list_id}/subscriptions/{user_id}: preferences, when typed, replace the
    subscription's; left empty, they are kept."""
    values = {
        "user_id": form_text(form, "user_id").strip(),
        "preferences": form_text(form, "preferences"),
    }
    try:
        preferences = None
        if values["preferences"].strip():
            body = validated(
                SubscribeUserBody,
                {"preferences": json_field(values["preferences"], "preferences")},
                'For example `{"categories": {"news": {"status": "OPTED_OUT"}}}`.',
            )
            preferences = preferences_document(body.preferences)
        with page.database.write() as (session, _):
            service.get_list(session, page.scope, list_id)
            service.subscribe(session, page.scope, list_id, values["user_id"], preferences)
    except AppError as exc:
        return _list_page(page, list_id, values=values, error=exc)
    return see_other(list_path(list_id), "subscribed")


@router.post("/lists/{list_id:path}/unsubscribe")
def unsubscribe_user(list_id: str, page: Page, form: CheckedForm) -> Response:
    """As DELETE /lists/{list_id}/subscriptions/{user_id}."""
    with page.database.write() as (session, _):
        service.unsubscribe(session, page.scope, list_id, form_text(form, "user_id"))
    return see_other(list_path(list_id), "unsubscribed")


@router.post("/lists/{list_id:path}/delete")
def delete_list(list_id: str, page: Page, form: CheckedForm) -> Response:
    """As DELETE /lists/{list_id}: the list and every subscription to it, for good."""
    with page.database.write() as (session, _):
        service.delete_list(session, page.scope, list_id)
    return see_other(f"{PREFIX}/lists", "deleted")


@router.get("/lists/{list_id:path}")
def list_detail(list_id: str, page: Page) -> Response:
    return _list_page(page, list_id, flash=page.flash(FLASHES))
