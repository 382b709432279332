"""Profiles: search by user id or email; a profile's traits, edited as the API edits them
(Merge as POST /profiles/{id}, Replace as PUT), deleted as DELETE does; and its events,
messages, lists, tenants and preferences, one list at a time, each paged."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from tidings.errors import AppError, BadRequest
from tidings.eventstore.repository import EventRepository
from tidings.identity import service as identity_service
from tidings.list import service as list_service
from tidings.message.repository import MessageRepository
from tidings.preference import service as preference_service
from tidings.profile import service as profile_service
from tidings.profile.repository import ProfileRepository
from tidings.profile.schemas import PatchBody, ProfileBody
from tidings.studio.csrf import CheckedForm, form_text
from tidings.studio.dependencies import PREFIX, Page, page_path, see_other
from tidings.studio.listing import Listing, ListQuery
from tidings.studio.validation import json_field, validated
from tidings.tenant import service as tenant_service
from tidings.workspace.service import Scope

router = APIRouter()


PAGE_SIZE = 100
# The rows of each list on a profile's page.
PROFILE_PAGE_SIZE = 20
# The lists a profile's page shows, one at a time (`?show=`); the first is the default.
TABS = ("events", "messages", "lists", "tenants", "preferences")
FLASHES = {
    "merge": "Merged into the profile: keys left out are kept, and a null removes a key.",
    "replace": "Replaced the profile: it is now exactly what was saved.",
    "patch": "Patched the profile: every operation applied.",
    "deleted": "Profile deleted, as a Segment delete does.",
}


def profile_path(user_id: str) -> str:
    return page_path("profiles", user_id)


@router.get("/profiles")
def search_profiles(page: Page) -> Response:
    """Profiles matching `q`, most recently updated first, a page at a time."""
    query = ListQuery(page.request, f"{PREFIX}/profiles", PAGE_SIZE)
    q = query.text("q") or ""
    with page.database.read() as session:
        repository = ProfileRepository(session)
        listing = query.by_time(
            lambda before, limit: repository.search_page(page.scope, q, before, limit),
            key=lambda profile: (profile.updated_at, profile.id),
        )
    template = "_profiles.html" if page.fragment else "profiles.html"
    return query.render(template, listing, section="profiles", q=q, flash=page.flash(FLASHES))


def _tab_listing(
    query: ListQuery, session: Session, scope: Scope, user_id: str, tab: str
) -> Listing[Any]:
    """The page of the profile's list `tab` that the query string asks for."""
    if tab == "events":
        events = EventRepository(session)
        return query.newest_first(
            lambda before_id, after_id, limit: events.user_page(
                scope, user_id, before_id=before_id, after_id=after_id, limit=limit
            )
        )
    if tab == "messages":
        messages = MessageRepository(session)
        return query.newest_first(
            lambda before_id, after_id, limit: messages.page(
                scope.environment_id,
                before_id=before_id,
                after_id=after_id,
                limit=limit,
                recipient=user_id,
            )
        )
    read: Callable[[int | None, int], Sequence[Any]]
    if tab == "lists":
        read = lambda after_id, limit: list_service.user_lists(  # noqa: E731
            session, scope, user_id, after_id, limit
        )
        return query.in_order(read, key=lambda row: row[0].id)
    if tab == "tenants":
        read = lambda after_id, limit: tenant_service.list_memberships(  # noqa: E731
            session, scope, user_id, after_id, limit
        )
        return query.in_order(read)

    def preferences(after_id: int | None, limit: int) -> list[tuple[Any, Any]]:
        # Each topic (for its id, the page's cursor) with the user's preference for it, as
        # GET /users/{user_id}/preferences answers it: both read topics in id order.
        topics = preference_service.list_topics(session, scope, after_id, limit)
        chosen = preference_service.list_preferences(session, scope, user_id, after_id, limit)
        return list(zip(topics, chosen.rows, strict=True))

    return query.in_order(preferences, key=lambda row: row[0].id)


def _profile_page(
    page: Page,
    user_id: str,
    *,
    edit: dict[str, str] | None = None,
    error: AppError | None = None,
    flash: str | None = None,
) -> Response:
    query = ListQuery(page.request, profile_path(user_id), PROFILE_PAGE_SIZE)
    tab = query.choice("show", TABS, "List") or TABS[0]
    with page.database.read() as session:
        profile = ProfileRepository(session).get(page.scope, user_id)
        listing = _tab_listing(query, session, page.scope, user_id, tab)
    if edit is None:
        document = profile.data if profile is not None else {}
        edit = {"profile": json.dumps(document, indent=2, ensure_ascii=False), "mode": "merge"}
    return query.render(
        "profile.html",
        listing,
        refused=error,
        section="profiles",
        user_id=user_id,
        profile=profile,
        tab=tab,
        tabs=TABS,
        edit=edit,
        flash=flash,
    )


@router.post("/profiles/{user_id:path}/save")
def save_profile(user_id: str, page: Page, form: CheckedForm) -> Response:
    """Store the edited profile: Merge as POST /profiles/{user_id}, Replace as PUT, Patch
    (the text is a JSON Patch) as PATCH."""
    edit = {"profile": form_text(form, "profile"), "mode": form_text(form, "mode")}
    try:
        with page.database.write() as (session, _):
            if edit["mode"] == "merge":
                profile_service.merge_profile(
                    session, page.scope, user_id, profile_document(edit["profile"])
                )
            elif edit["mode"] == "replace":
                profile_service.replace_profile(
                    session, page.scope, user_id, profile_document(edit["profile"])
                )
            elif edit["mode"] == "patch":
                profile_service.patch_profile(
                    session, page.scope, user_id, patch_operations(edit["profile"])
                )
            else:
                raise BadRequest(
                    f"mode: {edit['mode']!r} is not merge, replace or patch. Choose Merge to "
                    "keep the keys left out, Replace to remove them, or Patch to apply JSON "
                    "Patch operations.",
                    field="mode",
                )
    except AppError as exc:
        # The form as typed, so that nothing is lost.
        return _profile_page(page, user_id, edit=edit, error=exc)
    return see_other(profile_path(user_id), edit["mode"])


def profile_document(text: str) -> dict[str, Any]:
    """The profile typed in the editor, checked as the API checks a request's `profile`:
    JSON within Tidings' input limits, and an object (ProfileBody)."""
    body = validated(
        ProfileBody,
        {"profile": json_field(text, "profile")},
        'Write the profile as a JSON object, such as `{"email": "ada@example.com"}`.',
    )
    return body.profile


def patch_operations(text: str) -> list[dict[str, Any]]:
    """The JSON Patch typed in the editor, checked as the API checks PATCH's `patch`."""
    body = validated(
        PatchBody,
        {"patch": json_field(text, "profile")},
        'Write a JSON Patch: a list of operations such as [{"op": "replace", "path": '
        '"/name", "value": "Ada"}].',
    )
    return [operation.model_dump() for operation in body.patch]


@router.post("/profiles/{user_id:path}/delete")
def delete_profile(user_id: str, page: Page, form: CheckedForm) -> Response:
    """As DELETE /profiles/{user_id}: the user is erased as a Segment delete erases them."""
    with page.database.write() as (session, _):
        identity_service.delete_profile(session, page.scope, user_id)
    return see_other(f"{PREFIX}/profiles", "deleted")


@router.get("/profiles/{user_id:path}")
def profile_detail(user_id: str, page: Page) -> Response:
    return _profile_page(page, user_id, flash=page.flash(FLASHES))
