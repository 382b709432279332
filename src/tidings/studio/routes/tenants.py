"""Tenants: the list, filtered by id or name, and a tenant's data and members, each paged."""

from __future__ import annotations

from operator import attrgetter
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from tidings.dependencies import DatabaseDep
from tidings.studio.dependencies import PREFIX, Admin
from tidings.studio.listing import ListQuery
from tidings.tenant import service

router = APIRouter()

PAGE_SIZE = 100
MEMBERS_PAGE_SIZE = 50


@router.get("/tenants")
def list_tenants(request: Request, admin: Admin, database: DatabaseDep) -> Response:
    """Tenants in creation order; `q` keeps those whose id starts with it or whose name
    contains it."""
    query = ListQuery(request, f"{PREFIX}/tenants", PAGE_SIZE)
    text = query.text("q")
    with database.read() as session:
        listing = query.in_order(
            lambda after_id, limit: service.list_tenants(
                session, admin.scope, text, after_id, limit
            ),
            key=attrgetter("id"),
        )
    return query.render(request, "tenants.html", listing, section="tenants")


@router.get("/tenants/{tenant_id:path}")
def tenant_detail(
    tenant_id: str, request: Request, admin: Admin, database: DatabaseDep
) -> Response:
    """As GET /tenants/{tenant_id} and its /users, a page of members at a time."""
    query = ListQuery(request, f"{PREFIX}/tenants/{quote(tenant_id, safe='')}", MEMBERS_PAGE_SIZE)
    with database.read() as session:
        tenant = service.get_tenant(session, admin.scope, tenant_id)
        listing = query.in_order(
            lambda after_id, limit: service.list_members(
                session, admin.scope, tenant_id, after_id, limit
            ),
            key=attrgetter("id"),
        )
    return query.render(request, "tenant.html", listing, section="tenants", tenant=tenant)
