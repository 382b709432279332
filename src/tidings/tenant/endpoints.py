from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from fastapi import APIRouter, Request

from tidings.dependencies import Caller, ReadSession
from tidings.kit.api import from_row
from tidings.kit.pagination import PageOf20, PageQuery
from tidings.models import TenantMembership
from tidings.routing import ApiRoute
from tidings.tenant import service
from tidings.tenant.schemas import Membership, MembershipList, TenantResponse

router = APIRouter(tags=["tenants"], route_class=ApiRoute)


def _page(rows: Sequence[TenantMembership], paging: PageQuery, request: Request) -> MembershipList:
    found = paging.page(rows)
    path = request.url.path
    return MembershipList(
        url=path,
        next_url=f"{path}?{urlencode({'cursor': found.cursor, 'limit': paging.limit})}"
        if found.cursor
        else None,
        items=[Membership(user_id=row.user_id, tenant_id=row.tenant_id) for row in found.rows],
        has_more=found.more,
        cursor=found.cursor,
    )


@router.get("/tenants/{tenant_id}", response_model=TenantResponse)
def get_tenant(tenant_id: str, caller: Caller, session: ReadSession) -> TenantResponse:
    tenant = service.get_tenant(session, caller, tenant_id)
    return from_row(TenantResponse, tenant, id=tenant.tenant_id)


@router.get("/tenants/{tenant_id}/users", response_model=MembershipList)
def list_tenant_users(
    tenant_id: str, caller: Caller, session: ReadSession, paging: PageOf20, request: Request
) -> MembershipList:
    rows = service.list_members(session, caller, tenant_id, paging.after_id, paging.rows_to_read)
    return _page(rows, paging, request)


@router.get("/users/{user_id}/tenants", response_model=MembershipList)
def list_user_tenants(
    user_id: str, caller: Caller, session: ReadSession, paging: PageOf20, request: Request
) -> MembershipList:
    rows = service.list_memberships(session, caller, user_id, paging.after_id, paging.rows_to_read)
    return _page(rows, paging, request)
