"""Tenants: the list, filtered by id or name, and a tenant's data and members, each paged."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tidings.studio.dependencies import PREFIX, Page, page_path
from tidings.studio.listing import ListQuery
from tidings.tenant import service

router = APIRouter()

PAGE_SIZE = 100
MEMBERS_PAGE_SIZE = 50


@router.get("/tenants")
def list_tenants(page: Page) -> Response:
    """Tenants in creation order; `q` keeps those whose id starts with it or whose name
    contains it."""
    query = ListQuery(page.request, f"{PREFIX}/tenants", PAGE_SIZE)
    text = query.text("q")
    with page.database.read() as session:
        listing = query.in_order(
            lambda after_id, limit: service.list_tenants(session, page.scope, text, after_id, limit)
        )
    return query.render("tenants.html", listing, section="tenants")


@router.get("/tenants/{tenant_id:path}")
def tenant_detail(tenant_id: str, page: Page) -> Response:
    """As GET /tenants/{tenant_id} and its /users, a page of members at a time."""
    query = ListQuery(page.request, page_path("tenants", tenant_id), MEMBERS_PAGE_SIZE)
    with page.database.read() as session:
        tenant = service.get_tenant(session, page.scope, tenant_id)
        listing = query.in_order(
            lambda after_id, limit: service.list_members(
                session, page.scope, tenant_id, after_id, limit
            )
        )
    return query.render("tenant.html", listing, section="tenants", tenant=tenant)
