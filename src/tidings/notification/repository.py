"""Every SQL query on notification templates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select

from tidings.kit.sql import (
    VersionedRepository,
    VersionTable,
    insert_missing_in_environment,
)
from tidings.models import AdminUser, Notification, NotificationVersion, SubscriptionTopic
from tidings.workspace.service import Scope

# What a template version holds: the whole template but its id.
TEMPLATE_FIELDS = ("name", "content", "routing", "strict", "topic_id", "tracking")
# How Studio's scopes name their admin (tidings.studio.auth): "studio:<admin id>".
_STUDIO_KEY = "studio:"

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


_VERSIONS = VersionTable(NotificationVersion, NotificationVersion.notification_pk)


class NotificationRepository(VersionedRepository[Notification, NotificationVersion]):
    versions = _VERSIONS

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

    def save(
        self,
        scope: Scope,
        notification_id: str,
        fields: dict[str, Any],
        now: datetime,
        *,
        saved_by: str | None,
        restored_from: int | None = None,
    ) -> tuple[Notification, NotificationVersion, bool]:
        """The one write of a template: its row (inserted when missing, locked) takes `fields`
        (`TEMPLATE_FIELDS`) and version N+1 records them. True when the template is new."""
        notification, created = insert_missing_in_environment(
            self.session,
            scope,
            Notification,
            ("notification_id", notification_id),
            now,
            name=notification_id,
            content={},
            routing=None,
            strict=False,
            topic_id=None,
            tracking=None,
        )
        for name in TEMPLATE_FIELDS:
            setattr(notification, name, fields[name])
        notification.updated_at = now
        version = NotificationVersion(
            notification_pk=notification.id,
            environment_id=notification.environment_id,
            version=self.latest_version_number(notification) + 1,
            saved_by=saved_by,
            restored_from=restored_from,
            created_at=now,
            **{name: fields[name] for name in TEMPLATE_FIELDS},
        )
        self.session.add(version)
        self.session.flush()
        return notification, version, created

    def latest_version_number(self, notification: Notification) -> int:
        """The number of the template's newest version, the one it is now (0: none yet)."""
        number = self.session.scalar(
            select(func.max(NotificationVersion.version)).where(
                NotificationVersion.notification_pk == notification.id
            )
        )
        return int(number or 0)

    def savers(self, notifications: Sequence[Notification]) -> dict[int, tuple[str, str]]:
        """Who saved each template first and last (Courier's `creator` and `updater`), by
        the template's key, in one query; "" where no one was recorded."""
        keys = [notification.id for notification in notifications]
        if not keys:
            return {}
        bounds = (
            select(
                NotificationVersion.notification_pk,
                func.min(NotificationVersion.version).label("first"),
                func.max(NotificationVersion.version).label("last"),
            )
            .where(NotificationVersion.notification_pk.in_(keys))
            .group_by(NotificationVersion.notification_pk)
            .subquery()
        )
        rows = self.session.execute(
            select(
                NotificationVersion.notification_pk,
                NotificationVersion.version == bounds.c.first,
                NotificationVersion.saved_by,
            ).join(
                bounds,
                (NotificationVersion.notification_pk == bounds.c.notification_pk)
                & (
                    (NotificationVersion.version == bounds.c.first)
                    | (NotificationVersion.version == bounds.c.last)
                ),
            )
        ).all()
        found: dict[int, tuple[str, str]] = {}
        for key, is_first, saved_by in rows:
            creator, updater = found.get(key, ("", ""))
            if is_first:
                creator = saved_by or ""
            if not is_first or not updater:
                updater = saved_by or ""
            found[key] = (creator, updater)
        return found

    def saved_by(self, scope: Scope) -> str | None:
        """Who a save is recorded as: a Studio admin's email, else the API key id (`cli` for
        `tidings apply`); None when the scope names no one."""
        if scope.key_id.startswith(_STUDIO_KEY):
            email = self.session.scalar(
                select(AdminUser.email).where(AdminUser.id == scope.key_id[len(_STUDIO_KEY) :])
            )
            if email is not None:
                return email
        return scope.key_id or None

    def delete(self, scope: Scope, notification_id: str) -> bool:
        self.session.info.get(_FOUND, set()).discard((scope.environment_id, notification_id))
        return bool(
            self.delete_rows(
                Notification,
                environment_id=scope.environment_id,
                notification_id=notification_id,
            )
        )
