"""Every SQL query on profiles."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tidings.kit.sql import execute_counting, insert_ignoring_conflicts
from tidings.kit.time import utcnow
from tidings.models import Profile, TenantMembership
from tidings.workspace.service import Scope


class ProfileRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, scope: Scope, user_id: str) -> Profile | None:
        return self.session.scalars(
            select(Profile).where(
                Profile.environment_id == scope.environment_id, Profile.user_id == user_id
            )
        ).first()

    def get_or_create_for_update(self, scope: Scope, user_id: str) -> tuple[Profile, bool]:
        """The profile row, locked for this transaction; created empty when missing."""
        now = utcnow()
        created = execute_counting(
            self.session,
            insert_ignoring_conflicts(self.session, Profile).values(
                workspace_id=scope.workspace_id,
                environment_id=scope.environment_id,
                user_id=user_id,
                data={},
                created_at=now,
                updated_at=now,
            ),
        )
        profile = self.session.scalars(
            select(Profile)
            .where(Profile.environment_id == scope.environment_id, Profile.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        return profile, bool(created)

    def save(self, profile: Profile, data: dict[str, Any]) -> None:
        profile.data = data
        profile.updated_at = utcnow()

    def delete(self, scope: Scope, user_id: str) -> bool:
        removed = execute_counting(
            self.session,
            delete(Profile).where(
                Profile.environment_id == scope.environment_id, Profile.user_id == user_id
            ),
        )
        execute_counting(
            self.session,
            delete(TenantMembership).where(
                TenantMembership.environment_id == scope.environment_id,
                TenantMembership.user_id == user_id,
            ),
        )
        return bool(removed)
