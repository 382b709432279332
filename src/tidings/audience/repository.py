"""Every SQL query on audiences, their members and their re-checks."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from tidings.kit.sql import (
    Repository,
    chunks,
    execute_counting,
    insert_missing_in_environment,
    insert_replacing,
    keyset_page,
)
from tidings.models import Audience, AudienceCheck, AudienceMember
from tidings.workspace.service import Scope

# The environments' audiences read in this unit of work (`of_environment`); every write of
# an audience forgets them.
_OF_ENVIRONMENT = "tidings.audiences"


class AudienceRepository(Repository):
    def get(self, environment_id: str, audience_id: str) -> Audience | None:
        return self.find_row(Audience, environment_id=environment_id, audience_id=audience_id)

    def get_for_update(self, audience_pk: int) -> Audience | None:
        return self.lock_row(Audience, id=audience_pk)

    def get_or_create_for_update(
        self, scope: Scope, audience_id: str, now: datetime, **values: Any
    ) -> tuple[Audience, bool]:
        self.session.info.pop(_OF_ENVIRONMENT, None)
        return insert_missing_in_environment(
            self.session, scope, Audience, ("audience_id", audience_id), now, **values
        )

    def of_environment(self, environment_id: str) -> Sequence[Audience]:
        """The environment's audiences, read once per unit of work."""
        cache: dict[str, Sequence[Audience]] = self.session.info.setdefault(_OF_ENVIRONMENT, {})
        found = cache.get(environment_id)
        if found is None:
            found = cache[environment_id] = self.session.scalars(
                select(Audience)
                .where(Audience.environment_id == environment_id)
                .order_by(Audience.id)
            ).all()
        return found

    def page(self, environment_id: str, after_id: int | None, limit: int) -> Sequence[Audience]:
        return self.environment_page(Audience, environment_id, after_id, limit)

    def delete(self, audience: Audience) -> None:
        self.session.info.pop(_OF_ENVIRONMENT, None)
        for table in (AudienceMember, AudienceCheck):
            execute_counting(self.session, delete(table).where(table.audience_pk == audience.id))
        self.session.delete(audience)
        self.session.flush()

    def unfinished_scans(self) -> Sequence[int]:
        """Audiences whose condition changed since their last finished scan."""
        return self.session.scalars(
            select(Audience.id).where(
                (Audience.scan_version != Audience.version) | Audience.scan_finished_at.is_(None)
            )
        ).all()

    # Members ---------------------------------------------------------------------------------

    def member_count(self, audience_pk: int) -> int:
        return self.count_rows(
            AudienceMember,
            AudienceMember.audience_pk == audience_pk,
            AudienceMember.left_at.is_(None),
        )

    def members_page(
        self, audience_pk: int, after_id: int | None, limit: int
    ) -> Sequence[AudienceMember]:
        """Current members, in entry order."""
        query = select(AudienceMember).where(
            AudienceMember.audience_pk == audience_pk, AudienceMember.left_at.is_(None)
        )
        return self.session.scalars(keyset_page(query, AudienceMember.id, after_id, limit)).all()

    def member_ids_after(
        self, audience_pk: int, after_id: int, limit: int
    ) -> Sequence[tuple[int, str]]:
        """(row id, user id) of current members after row `after_id`, in entry order."""
        query = select(AudienceMember.id, AudienceMember.user_id).where(
            AudienceMember.audience_pk == audience_pk, AudienceMember.left_at.is_(None)
        )
        rows = self.session.execute(keyset_page(query, AudienceMember.id, after_id, limit))
        return [(row[0], row[1]) for row in rows]

    def member_user_ids(self, audience_pk: int) -> list[str]:
        return list(
            self.session.scalars(
                select(AudienceMember.user_id)
                .where(AudienceMember.audience_pk == audience_pk, AudienceMember.left_at.is_(None))
                .order_by(AudienceMember.id)
            )
        )

    def stays_page(
        self,
        audience_pk: int,
        after_id: int | None,
        limit: int,
        user_id: str | None = None,
    ) -> Sequence[AudienceMember]:
        """Every stay, current or ended, in entry order (a user's only, given `user_id`)."""
        query = select(AudienceMember).where(AudienceMember.audience_pk == audience_pk)
        if user_id is not None:
            query = query.where(AudienceMember.user_id == user_id)
        return self.session.scalars(keyset_page(query, AudienceMember.id, after_id, limit)).all()

    def current(
        self, audience_pks: Collection[int], user_ids: Collection[str]
    ) -> dict[tuple[int, str], int]:
        """(audience, user) → the open stay's row id, for these users and audiences."""
        found: dict[tuple[int, str], int] = {}
        users = sorted(user_ids)
        for chunk in chunks(users):
            rows = self.session.execute(
                select(AudienceMember.audience_pk, AudienceMember.user_id, AudienceMember.id).where(
                    AudienceMember.audience_pk.in_(sorted(audience_pks)),
                    AudienceMember.user_id.in_(chunk),
                    AudienceMember.left_at.is_(None),
                )
            )
            for audience_pk, user_id, row_id in rows:
                found[(audience_pk, user_id)] = row_id
        return found

    def enter(self, rows: list[dict[str, Any]]) -> None:
        """Open stays: each row has environment_id, audience_pk, user_id, version and
        entered_at."""
        if rows:
            self.session.execute(
                insert(AudienceMember), [{**row, "changed_at": row["entered_at"]} for row in rows]
            )

    def leave(self, row_ids: Collection[int], at: datetime) -> None:
        if row_ids:
            self.session.execute(
                update(AudienceMember)
                .where(AudienceMember.id.in_(sorted(row_ids)), AudienceMember.left_at.is_(None))
                .values(left_at=at, changed_at=at)
            )

    def forget_users(self, environment_id: str, user_ids: Collection[str]) -> int:
        """Remove the users from every audience of the environment, stays and checks (an
        erasure)."""
        removed = 0
        for table in (AudienceMember, AudienceCheck):
            removed += execute_counting(
                self.session,
                delete(table).where(
                    table.environment_id == environment_id, table.user_id.in_(sorted(user_ids))
                ),
            )
        return removed

    # Re-checks -------------------------------------------------------------------------------

    def set_checks(
        self,
        environment_id: str,
        checks: dict[tuple[int, str], datetime | None],
    ) -> None:
        """The next re-check of each (audience, user): set, or removed when None."""
        gone = [key for key, at in checks.items() if at is None]
        for audience_pk in {audience_pk for audience_pk, _ in gone}:
            users = sorted(user for pk, user in gone if pk == audience_pk)
            for chunk in chunks(users):
                self.session.execute(
                    delete(AudienceCheck).where(
                        AudienceCheck.audience_pk == audience_pk,
                        AudienceCheck.user_id.in_(chunk),
                    )
                )
        rows = [
            {
                "environment_id": environment_id,
                "audience_pk": audience_pk,
                "user_id": user_id,
                "check_at": at,
            }
            for (audience_pk, user_id), at in checks.items()
            if at is not None
        ]
        if rows:
            self.session.execute(
                insert_replacing(
                    self.session, AudienceCheck, ("audience_pk", "user_id"), ("check_at",)
                ),
                rows,
            )

    def next_check_at(self) -> datetime | None:
        """The soonest re-check of any member (flow tests move their clock to it)."""
        return self.session.scalars(
            select(AudienceCheck.check_at).order_by(AudienceCheck.check_at).limit(1)
        ).first()

    def due_checks(self, now: datetime, limit: int) -> Sequence[tuple[int, str, int, str]]:
        """(check id, environment, audience, user) of re-checks due at `now`, oldest first."""
        rows = self.session.execute(
            select(
                AudienceCheck.id,
                AudienceCheck.environment_id,
                AudienceCheck.audience_pk,
                AudienceCheck.user_id,
            )
            .where(AudienceCheck.check_at <= now)
            .order_by(AudienceCheck.check_at)
            .limit(limit)
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def claim_checks(self, check_ids: Collection[int], now: datetime) -> Sequence[tuple[int, str]]:
        """Delete these re-checks if still due; (audience, user) of those this transaction
        deleted: a concurrent sweep that deleted one first does its re-check instead."""
        claimed = []
        for check_id in sorted(check_ids):
            row = self.session.execute(
                delete(AudienceCheck)
                .where(AudienceCheck.id == check_id, AudienceCheck.check_at <= now)
                .returning(AudienceCheck.audience_pk, AudienceCheck.user_id)
            ).first()
            if row is not None:
                claimed.append((row[0], row[1]))
        return claimed
