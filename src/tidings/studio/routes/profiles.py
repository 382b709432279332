"""Profiles: search by user id or email; detail with traits, tenants, lists, events, messages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.dependencies import DatabaseDep
from tidings.event.repository import EventRepository
from tidings.list.repository import ListRepository
from tidings.message.repository import MessageRepository
from tidings.preference.service import list_preferences
from tidings.profile.repository import ProfileRepository
from tidings.studio.dependencies import PREFIX, Admin
from tidings.studio.listing import ListQuery
from tidings.studio.templating import render
from tidings.tenant.repository import TenantRepository

router = APIRouter()


PAGE_SIZE = 100


@router.get("/profiles")
def search_profiles(request: Request, admin: Admin, database: DatabaseDep) -> Response:
    """Profiles matching `q`, most recently updated first, a page at a time."""
    query = ListQuery(request, f"{PREFIX}/profiles", PAGE_SIZE)
    q = query.text("q") or ""
    with database.read() as session:
        repository = ProfileRepository(session)
        listing = query.by_time(
            lambda before, limit: repository.search_page(admin.scope, q, before, limit),
            key=lambda profile: (profile.updated_at, profile.id),
        )
    template = "_profiles.html" if request.headers.get("hx-request") else "profiles.html"
    return query.render(request, template, listing, section="profiles", q=q)


@router.get("/profiles/{user_id:path}")
def profile_detail(user_id: str, request: Request, admin: Admin, database: DatabaseDep) -> Response:
    scope = admin.scope
    with database.read() as session:
        profile = ProfileRepository(session).get(scope, user_id)
        tenants = TenantRepository(session).memberships_of(scope, user_id, None, 100)
        lists = ListRepository(session).user_subscriptions(scope, user_id, None, 100)
        events = EventRepository(session).of_user(scope, user_id, 50)
        messages = MessageRepository(session).page(
            scope.environment_id, before_id=None, limit=50, recipient=user_id
        )
        preferences = list_preferences(session, scope, user_id, None, 100).rows
    return render(
        request,
        "profile.html",
        section="profiles",
        user_id=user_id,
        profile=profile,
        tenants=tenants,
        lists=lists,
        events=events,
        messages=messages,
        preferences=preferences,
    )
