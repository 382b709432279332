"""Every SQL query on subscription topics and user preferences."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select

from tidings.kit.sql import Repository, execute_counting, insert_missing_and_lock
from tidings.kit.time import utcnow
from tidings.models import Notification, SubscriptionTopic, UserPreference


class PreferenceRepository(Repository):
    def topic(self, environment_id: str, topic_id: str) -> SubscriptionTopic | None:
        return self.find_row(SubscriptionTopic, environment_id=environment_id, topic_id=topic_id)

    def topic_for_update(
        self, workspace_id: str, environment_id: str, topic_id: str, name: str, default_status: str
    ) -> tuple[SubscriptionTopic, bool]:
        """The topic row, locked for this transaction; inserted with these values when missing."""
        now = utcnow()
        return insert_missing_and_lock(
            self.session,
            SubscriptionTopic,
            {"environment_id": environment_id, "topic_id": topic_id},
            workspace_id=workspace_id,
            name=name,
            default_status=default_status,
            created_at=now,
            updated_at=now,
        )

    def topics(
        self, environment_id: str, after_id: int | None, limit: int
    ) -> Sequence[SubscriptionTopic]:
        return self.environment_page(SubscriptionTopic, environment_id, after_id, limit)

    def notifications_using(self, environment_id: str, topic_id: str, limit: int) -> list[str]:
        return list(
            self.session.scalars(
                select(Notification.notification_id)
                .where(
                    Notification.environment_id == environment_id,
                    Notification.topic_id == topic_id,
                )
                .order_by(Notification.notification_id)
                .limit(limit)
            ).all()
        )

    def delete_topic(self, environment_id: str, topic_id: str) -> bool:
        """Delete the topic and every user's preference for it."""
        removed = self.delete_rows(
            SubscriptionTopic, environment_id=environment_id, topic_id=topic_id
        )
        self.delete_rows(UserPreference, environment_id=environment_id, topic_id=topic_id)
        return bool(removed)

    def preference(self, environment_id: str, user_id: str, topic_id: str) -> UserPreference | None:
        return self.find_row(
            UserPreference, environment_id=environment_id, user_id=user_id, topic_id=topic_id
        )

    def preferences_for(
        self, environment_id: str, user_id: str, topic_ids: Sequence[str]
    ) -> dict[str, UserPreference]:
        if not topic_ids:
            return {}
        rows = self.session.scalars(
            select(UserPreference).where(
                UserPreference.environment_id == environment_id,
                UserPreference.user_id == user_id,
                UserPreference.topic_id.in_(list(topic_ids)),
            )
        ).all()
        return {row.topic_id: row for row in rows}

    def save_preference(
        self,
        workspace_id: str,
        environment_id: str,
        user_id: str,
        topic_id: str,
        status: str,
        has_custom_routing: bool,
        custom_routing: list[str],
    ) -> UserPreference:
        """Insert or replace the user's preference for the topic."""
        now = utcnow()
        preference, _ = insert_missing_and_lock(
            self.session,
            UserPreference,
            {"environment_id": environment_id, "user_id": user_id, "topic_id": topic_id},
            workspace_id=workspace_id,
            status=status,
            has_custom_routing=has_custom_routing,
            custom_routing=custom_routing,
            updated_at=now,
        )
        preference.status = status
        preference.has_custom_routing = has_custom_routing
        preference.custom_routing = custom_routing
        preference.updated_at = now
        return preference

    def delete_preference(self, environment_id: str, user_id: str, topic_id: str) -> bool:
        removed = execute_counting(
            self.session,
            delete(UserPreference).where(
                UserPreference.environment_id == environment_id,
                UserPreference.user_id == user_id,
                UserPreference.topic_id == topic_id,
            ),
        )
        return bool(removed)
