from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query

from tidings.dependencies import Caller, ReadSession
from tidings.kit.pagination import decode_cursor, page
from tidings.kit.time import isoformat
from tidings.models import TenantMembership
from tidings.routing import ApiRoute
from tidings.tenant import service
from tidings.tenant.schemas import Membership, MembershipList, TenantResponse

router = APIRouter(tags=["tenants"], route_class=ApiRoute)

Limit = Annotated[int, Query(ge=1, le=100)]


def _page(rows: Sequence[TenantMembership], limit: int) -> MembershipList:
    found = page(rows, limit)
    return MembershipList(
        items=[Membership(user_id=row.user_id, tenant_id=row.tenant_id) for row in found.rows],
        has_more=found.more,
        cursor=found.cursor,
    )


@router.get("/tenants/{tenant_id}", response_model=TenantResponse)
def get_tenant(tenant_id: str, caller: Caller, session: ReadSession) -> TenantResponse:
    tenant = service.get_tenant(session, caller, tenant_id)
    return TenantResponse(
        id=tenant.tenant_id,
        name=tenant.name,
        properties=tenant.properties,
        created_at=isoformat(tenant.created_at) or "",
        updated_at=isoformat(tenant.updated_at) or "",
    )


@router.get("/tenants/{tenant_id}/users", response_model=MembershipList)
def list_tenant_users(
    tenant_id: str,
    caller: Caller,
    session: ReadSession,
    cursor: str | None = None,
    limit: Limit = 20,
) -> MembershipList:
    rows = service.list_members(session, caller, tenant_id, decode_cursor(cursor), limit + 1)
    return _page(rows, limit)


@router.get("/users/{user_id}/tenants", response_model=MembershipList)
def list_user_tenants(
    user_id: str,
    caller: Caller,
    session: ReadSession,
    cursor: str | None = None,
    limit: Limit = 20,
) -> MembershipList:
    rows = service.list_memberships(session, caller, user_id, decode_cursor(cursor), limit + 1)
    return _page(rows, limit)
