"""Every SQL query on notification templates."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, select

from tidings.kit.sql import Repository, execute_counting
from tidings.models import Notification, SubscriptionTopic
from tidings.workspace.service import Scope

# The templates `exists` found in this unit of work.
_FOUND = "tidings.templates_found"


# The two lookups each routed message makes, built once.
_GET = select(Notification).where(
    Notification.environment_id == bindparam("environment_id"),
    Notification.notification_id == bindparam("notification_id"),
)
_EXISTS = select(Notification.id).where(
    Notification.environment_id == bindparam("environment_id"),
    Notification.notification_id == bindparam("notification_id"),
)


class NotificationRepository(Repository):
    def get(self, scope: Scope | str, notification_id: str) -> Notification | None:
        environment_id = scope if isinstance(scope, str) else scope.environment_id
        return self.session.scalars(
            _GET, {"environment_id": environment_id, "notification_id": notification_id}
        ).first()

    def exists(self, scope: Scope | str, notification_id: str) -> bool:
        """Whether the template exists, without loading its content. A template found is
        remembered for the rest of the unit of work (a job sending it to many users)."""
        environment_id = scope if isinstance(scope, str) else scope.environment_id
        found: set[tuple[str, str]] = self.session.info.setdefault(_FOUND, set())
        if (environment_id, notification_id) in found:
            return True
        exists = (
            self.session.scalars(
                _EXISTS, {"environment_id": environment_id, "notification_id": notification_id}
            ).first()
            is not None
        )
        if exists:
            found.add((environment_id, notification_id))
        return exists

    def page(self, scope: Scope, after_id: int | None, limit: int) -> Sequence[Notification]:
        return self.environment_page(Notification, scope.environment_id, after_id, limit)

    def topic_exists(self, scope: Scope, topic_id: str) -> bool:
        return (
            self.session.scalars(
                select(SubscriptionTopic.id).where(
                    SubscriptionTopic.environment_id == scope.environment_id,
                    SubscriptionTopic.topic_id == topic_id,
                )
            ).first()
            is not None
        )

    def add(self, notification: Notification) -> None:
        self.session.add(notification)

    def delete(self, scope: Scope, notification_id: str) -> bool:
        self.session.info.get(_FOUND, set()).discard((scope.environment_id, notification_id))
        return bool(
            execute_counting(
                self.session,
                delete(Notification).where(
                    Notification.environment_id == scope.environment_id,
                    Notification.notification_id == notification_id,
                ),
            )
        )
