"""Every SQL query on inbox messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update

from tidings.kit.sql import Repository, execute_counting, insert_ignoring_conflicts
from tidings.models import InboxMessage

Status = Literal["unread", "read", "archived"]


class InboxRepository(Repository):
    def insert_once(self, values: dict[str, Any]) -> InboxMessage:
        """Insert the row unless (environment_id, message_id) exists; return the stored row."""
        self.session.execute(insert_ignoring_conflicts(self.session, InboxMessage).values(values))
        return self.session.scalars(
            select(InboxMessage)
            .where(
                InboxMessage.environment_id == values["environment_id"],
                InboxMessage.message_id == values["message_id"],
            )
            .execution_options(populate_existing=True)
        ).one()

    def get(self, environment_id: str, user_id: str, message_id: str) -> InboxMessage | None:
        return self.session.scalars(
            select(InboxMessage).where(
                InboxMessage.environment_id == environment_id,
                InboxMessage.user_id == user_id,
                InboxMessage.message_id == message_id,
            )
        ).first()

    def page(
        self,
        environment_id: str,
        user_id: str,
        status: Status | None,
        before_id: int | None,
        limit: int,
    ) -> Sequence[InboxMessage]:
        """Newest first. Without a status, everything but archived messages."""
        query = select(InboxMessage).where(
            InboxMessage.environment_id == environment_id, InboxMessage.user_id == user_id
        )
        if status == "archived":
            query = query.where(InboxMessage.archived_at.is_not(None))
        else:
            query = query.where(InboxMessage.archived_at.is_(None))
        if status == "unread":
            query = query.where(InboxMessage.read_at.is_(None))
        elif status == "read":
            query = query.where(InboxMessage.read_at.is_not(None))
        if before_id is not None:
            query = query.where(InboxMessage.id < before_id)
        return self.session.scalars(query.order_by(InboxMessage.id.desc()).limit(limit)).all()

    def count_unread(self, environment_id: str, user_id: str) -> int:
        return self.count_rows(
            InboxMessage,
            InboxMessage.environment_id == environment_id,
            InboxMessage.user_id == user_id,
            InboxMessage.read_at.is_(None),
            InboxMessage.archived_at.is_(None),
        )

    def mark_all_read(self, environment_id: str, user_id: str, now: datetime) -> int:
        return execute_counting(
            self.session,
            update(InboxMessage)
            .where(
                InboxMessage.environment_id == environment_id,
                InboxMessage.user_id == user_id,
                InboxMessage.read_at.is_(None),
            )
            .values(read_at=now)
            .execution_options(synchronize_session=False),
        )

    def newest_id(self, environment_id: str, user_id: str) -> int:
        """The id of the user's newest message, or 0 when they have none."""
        newest = self.session.scalar(
            select(func.max(InboxMessage.id)).where(
                InboxMessage.environment_id == environment_id, InboxMessage.user_id == user_id
            )
        )
        return int(newest or 0)

    def newer_than(
        self, environment_id: str, user_id: str, after_id: int, limit: int
    ) -> Sequence[InboxMessage]:
        """Messages stored after `after_id`, oldest first, archived ones left out."""
        return self.session.scalars(
            select(InboxMessage)
            .where(
                InboxMessage.environment_id == environment_id,
                InboxMessage.user_id == user_id,
                InboxMessage.id > after_id,
                InboxMessage.archived_at.is_(None),
            )
            .order_by(InboxMessage.id)
            .limit(limit)
        ).all()
