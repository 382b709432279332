"""Every SQL query on the suppression list and the soft-bounce streaks."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update

from tidings.kit.sql import (
    InEnvironment,
    Repository,
    chunks,
    execute_counting,
    insert_ignoring_conflicts,
    keyset_page,
)
from tidings.models import SoftBounceStreak, Suppression


class SuppressionRepository(Repository):
    # -- the send-time check ----------------------------------------------------------------

    def entries_for(
        self, environment_id: str, addresses: Collection[tuple[str, str]]
    ) -> list[Suppression]:
        """The entries of these (channel, address) pairs, every topic's and each topic's, in
        one query on the unique index (environment_id, channel, address, topic_id)."""
        if not addresses:
            return []
        channels = sorted({channel for channel, _ in addresses})
        values = sorted({address for _, address in addresses})
        wanted = set(addresses)
        found: list[Suppression] = []
        for chunk in chunks(values):
            rows = self.session.scalars(
                select(Suppression).where(
                    Suppression.environment_id == environment_id,
                    Suppression.channel.in_(channels),
                    Suppression.address.in_(chunk),
                )
            ).all()
            found.extend(row for row in rows if (row.channel, row.address) in wanted)
        return found

    # -- writes -------------------------------------------------------------------------------

    def add(self, scope: InEnvironment, rows: Sequence[dict[str, Any]], now: datetime) -> int:
        """Insert the entries not there yet (by channel, address and topic); an entry that
        exists keeps its reason and source. Returns how many were new."""
        added = 0
        for chunk in chunks(rows):
            statement = (
                insert_ignoring_conflicts(self.session, Suppression)
                .values(
                    [
                        {
                            "workspace_id": scope.workspace_id,
                            "environment_id": scope.environment_id,
                            "created_at": now,
                            **row,
                        }
                        for row in chunk
                    ]
                )
                .returning(Suppression.id)
            )
            added += len(self.session.connection().execute(statement).all())
        return added

    def delete(self, environment_id: str, channel: str, address: str, topic_id: str | None) -> int:
        """Delete the address's entries (of one topic only, when `topic_id` is given)."""
        conditions = [
            Suppression.environment_id == environment_id,
            Suppression.channel == channel,
            Suppression.address == address,
        ]
        if topic_id is not None:
            conditions.append(Suppression.topic_id == topic_id)
        return execute_counting(
            self.session,
            delete(Suppression).where(*conditions).execution_options(synchronize_session=False),
        )

    def delete_unsubscribes(
        self, environment_id: str, user_id: str, topic_id: str, reason: str
    ) -> int:
        """Delete the entries a user's one-click unsubscribe from the topic made."""
        return execute_counting(
            self.session,
            delete(Suppression)
            .where(
                Suppression.environment_id == environment_id,
                Suppression.user_id == user_id,
                Suppression.topic_id == topic_id,
                Suppression.reason == reason,
            )
            .execution_options(synchronize_session=False),
        )

    def forget_users(self, environment_id: str, user_ids: Sequence[str]) -> int:
        """Unlink erased users from their entries: the addresses stay suppressed, with no
        user id and a detail that names no one."""
        return execute_counting(
            self.session,
            update(Suppression)
            .where(
                Suppression.environment_id == environment_id,
                Suppression.user_id.in_(sorted(user_ids)),
            )
            .values(user_id=None, detail="unsubscribed (the user was erased since)")
            .execution_options(synchronize_session=False),
        )

    # -- reads --------------------------------------------------------------------------------

    def find(
        self, environment_id: str, channel: str, address: str, topic_ids: Collection[str]
    ) -> Sequence[Suppression]:
        return self.find_rows(
            Suppression,
            Suppression.topic_id.in_(sorted(topic_ids)),
            order_by=(Suppression.id,),
            environment_id=environment_id,
            channel=channel,
            address=address,
        )

    def page(
        self,
        environment_id: str,
        *,
        channel: str | None,
        address_prefixes: Sequence[str],
        topic_id: str | None,
        after_id: int | None,
        limit: int,
    ) -> Sequence[Suppression]:
        """Entries in the order they were added, after `after_id`, filtered by channel,
        the start of the address (any of `address_prefixes`) and the topic ("" for
        every-topic entries)."""
        query = select(Suppression).where(Suppression.environment_id == environment_id)
        if channel is not None:
            query = query.where(Suppression.channel == channel)
        if address_prefixes:
            # LIKE for the index where the database can use it; the exact comparison
            # because SQLite's LIKE ignores case and Postgres' does not.
            query = query.where(
                or_(
                    *(
                        and_(
                            Suppression.address.startswith(prefix, autoescape=True),
                            func.substr(Suppression.address, 1, len(prefix)) == prefix,
                        )
                        for prefix in address_prefixes
                    )
                )
            )
        if topic_id is not None:
            query = query.where(Suppression.topic_id == topic_id)
        return self.session.scalars(keyset_page(query, Suppression.id, after_id, limit)).all()

    # -- soft bounces in a row ------------------------------------------------------------------

    def count_soft_bounce(
        self, scope: InEnvironment, channel: str, address: str, now: datetime
    ) -> int:
        """One more soft bounce of the address; how many in a row now. The row is created
        when missing and counted by one UPDATE, which holds its lock to the commit."""
        key = {"environment_id": scope.environment_id, "channel": channel, "address": address}
        connection = self.session.connection()
        connection.execute(
            insert_ignoring_conflicts(self.session, SoftBounceStreak).values(
                workspace_id=scope.workspace_id, count=0, created_at=now, updated_at=now, **key
            )
        )
        counted = connection.execute(
            update(SoftBounceStreak)
            .where(*(getattr(SoftBounceStreak, name) == value for name, value in key.items()))
            .values(count=SoftBounceStreak.count + 1, updated_at=now)
            .returning(SoftBounceStreak.count)
        )
        return int(counted.scalar_one())

    def end_soft_bounces(self, environment_id: str, channel: str, address: str) -> None:
        """The address took a message: its soft bounces are no longer in a row."""
        execute_counting(
            self.session,
            delete(SoftBounceStreak)
            .where(
                SoftBounceStreak.environment_id == environment_id,
                SoftBounceStreak.channel == channel,
                SoftBounceStreak.address == address,
            )
            .execution_options(synchronize_session=False),
        )
