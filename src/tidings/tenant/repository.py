"""Every SQL query on tenants and memberships."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, select

from tidings.kit.sql import (
    Repository,
    execute_counting,
    insert_ignoring_conflicts,
    insert_missing_in_environment,
    starts_or_contains,
)
from tidings.kit.time import utcnow
from tidings.models import Tenant, TenantMembership
from tidings.workspace.service import Scope


class TenantRepository(Repository):
    def get(self, scope: Scope, tenant_id: str) -> Tenant | None:
        return self.find_row(Tenant, environment_id=scope.environment_id, tenant_id=tenant_id)

    def page(
        self, scope: Scope, text: str | None, after_id: int | None, limit: int
    ) -> Sequence[Tenant]:
        """Tenants in creation order after `after_id`; with `text`, those whose id starts
        with it or whose name contains it (ignoring case)."""
        conditions = [starts_or_contains(Tenant.tenant_id, Tenant.name, text)] if text else []
        return self.environment_page(Tenant, scope.environment_id, after_id, limit, *conditions)

    def get_or_create_for_update(self, scope: Scope, tenant_id: str) -> tuple[Tenant, bool]:
        """The tenant row, locked for this transaction; created unnamed when missing."""
        return insert_missing_in_environment(
            self.session, scope, Tenant, ("tenant_id", tenant_id), utcnow(), properties={}
        )

    def add_member(self, scope: Scope, tenant_id: str, user_id: str) -> bool:
        """Make the user a member; False when they already were."""
        inserted = execute_counting(
            self.session,
            insert_ignoring_conflicts(self.session, TenantMembership).values(
                workspace_id=scope.workspace_id,
                environment_id=scope.environment_id,
                tenant_id=tenant_id,
                user_id=user_id,
                created_at=utcnow(),
            ),
        )
        return bool(inserted)

    def members(
        self, scope: Scope, tenant_id: str, after_id: int | None, limit: int
    ) -> Sequence[TenantMembership]:
        return self._memberships(scope, TenantMembership.tenant_id == tenant_id, after_id, limit)

    def member_ids(self, environment_id: str, tenant_id: str) -> list[str]:
        """Every member's user id, in the order they joined."""
        return list(
            self.session.scalars(
                select(TenantMembership.user_id)
                .where(
                    TenantMembership.environment_id == environment_id,
                    TenantMembership.tenant_id == tenant_id,
                )
                .order_by(TenantMembership.id)
            )
        )

    def member_ids_after(self, environment_id: str, after: str, limit: int) -> list[str]:
        """The next `limit` distinct member user ids of any tenant after `after`, in id
        order."""
        return self.distinct_user_ids_after(TenantMembership, environment_id, after, limit)

    def tenant_ids_of_users(
        self, environment_id: str, user_ids: Collection[str]
    ) -> dict[str, set[str]]:
        """The tenants each of the users belongs to (users in none are left out)."""
        return self.values_by_user(TenantMembership.tenant_id, environment_id, user_ids)

    def memberships_of(
        self, scope: Scope, user_id: str, after_id: int | None, limit: int
    ) -> Sequence[TenantMembership]:
        return self._memberships(scope, TenantMembership.user_id == user_id, after_id, limit)

    def _memberships(
        self, scope: Scope, condition: ColumnElement[bool], after_id: int | None, limit: int
    ) -> Sequence[TenantMembership]:
        return self.environment_page(
            TenantMembership, scope.environment_id, after_id, limit, condition
        )
