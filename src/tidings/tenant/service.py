"""Tenant rules: a Segment group upserts the tenant and makes the user a member.

Group traits: `name` becomes the tenant's name; every other trait merges into the tenant's
`properties` with the same rules as profile traits (RFC 7386: `null` removes a key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from tidings.errors import found
from tidings.kit.jsondoc import merge_patch
from tidings.kit.missing import Missing
from tidings.kit.time import utcnow
from tidings.models import Tenant, TenantMembership
from tidings.tenant.repository import TenantRepository
from tidings.workspace.service import Scope

_missing_tenant = Missing(
    "tenant",
    "Tenants are created by Segment group calls whose groupId is the tenant id.",
    code="tenant_not_found",
    field="tenant_id",
)


def apply_group(
    session: Session, scope: Scope, tenant_id: str, traits: dict[str, Any], user_id: str | None
) -> list[str]:
    """Upsert the tenant from group traits and add the member. Returns what was done."""
    repository = TenantRepository(session)
    tenant, created = repository.get_or_create_for_update(scope, tenant_id)
    effects = [f"tenant {tenant_id!r} {'created' if created else 'updated'}"]
    rest = {key: value for key, value in traits.items() if key != "name"}
    if "name" in traits:
        name = traits["name"]
        tenant.name = None if name is None else str(name)
    tenant.properties = merge_patch(tenant.properties, rest)
    tenant.updated_at = utcnow()
    if user_id is not None:
        if repository.add_member(scope, tenant_id, user_id):
            effects.append(f"user {user_id!r} joined tenant {tenant_id!r}")
        else:
            effects.append(f"user {user_id!r} already in tenant {tenant_id!r}")
    return effects


def get_tenant(session: Session, scope: Scope, tenant_id: str) -> Tenant:
    return found(TenantRepository(session).get(scope, tenant_id), _missing_tenant(tenant_id))


def list_tenants(
    session: Session, scope: Scope, text: str | None, after_id: int | None, limit: int
) -> Sequence[Tenant]:
    """Tenants in creation order; with `text`, those whose id starts with it or whose name
    contains it."""
    return TenantRepository(session).page(scope, text, after_id, limit)


def list_members(
    session: Session, scope: Scope, tenant_id: str, after_id: int | None, limit: int
) -> Sequence[TenantMembership]:
    get_tenant(session, scope, tenant_id)
    return TenantRepository(session).members(scope, tenant_id, after_id, limit)


def list_memberships(
    session: Session, scope: Scope, user_id: str, after_id: int | None, limit: int
) -> Sequence[TenantMembership]:
    return TenantRepository(session).memberships_of(scope, user_id, after_id, limit)
