"""Every SQL query on lists and list subscriptions."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from tidings.kit.sql import (
    Repository,
    chunks,
    execute_counting,
    insert_ignoring_conflicts,
    insert_missing_in_environment,
    keyset_page,
)
from tidings.kit.time import utcnow
from tidings.models import ListSubscription, RecipientList
from tidings.workspace.service import Scope


class ListRepository(Repository):
    def get(self, scope: Scope, list_id: str) -> RecipientList | None:
        return self.find_row(RecipientList, environment_id=scope.environment_id, list_id=list_id)

    def exists(self, environment_id: str, list_id: str) -> bool:
        return (
            self.session.scalars(
                select(RecipientList.id).where(
                    RecipientList.environment_id == environment_id,
                    RecipientList.list_id == list_id,
                )
            ).first()
            is not None
        )

    def list_ids(self, environment_id: str) -> Sequence[str]:
        """The id of every list in the environment."""
        return self.session.scalars(
            select(RecipientList.list_id).where(RecipientList.environment_id == environment_id)
        ).all()

    def get_or_create_for_update(self, scope: Scope, list_id: str, name: str) -> RecipientList:
        """The list row, locked for this transaction; created with `name` when missing."""
        recipient_list, _ = insert_missing_in_environment(
            self.session, scope, RecipientList, ("list_id", list_id), utcnow(), name=name
        )
        return recipient_list

    def ensure_lists(self, scope: Scope, list_ids: Sequence[str]) -> None:
        """Create the lists that do not exist yet, each named after its id."""
        now = utcnow()
        for chunk in chunks(sorted(set(list_ids))):
            self.session.execute(
                insert_ignoring_conflicts(self.session, RecipientList).values(
                    [
                        {
                            "workspace_id": scope.workspace_id,
                            "environment_id": scope.environment_id,
                            "list_id": list_id,
                            "name": list_id,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for list_id in chunk
                    ]
                ),
            )

    def page(
        self, scope: Scope, prefix: str, after_id: int | None, limit: int
    ) -> Sequence[RecipientList]:
        """Lists whose id starts with `prefix`, in creation order, after `after_id`."""
        conditions = [RecipientList.list_id.startswith(prefix, autoescape=True)] if prefix else []
        return self.environment_page(
            RecipientList, scope.environment_id, after_id, limit, *conditions
        )

    def _delete(self, model: type[Any], *conditions: Any) -> int:
        """Delete the `model` rows matching `conditions` by statement; rows the session has
        loaded are left as they are."""
        return execute_counting(
            self.session,
            delete(model).where(*conditions).execution_options(synchronize_session=False),
        )

    def delete(self, scope: Scope, list_id: str) -> bool:
        self._delete(
            ListSubscription,
            ListSubscription.environment_id == scope.environment_id,
            ListSubscription.list_id == list_id,
        )
        removed = self._delete(
            RecipientList,
            RecipientList.environment_id == scope.environment_id,
            RecipientList.list_id == list_id,
        )
        return bool(removed)

    # Subscriptions

    def subscriptions(
        self, scope: Scope, list_id: str, after_id: int | None, limit: int
    ) -> Sequence[ListSubscription]:
        return self.environment_page(
            ListSubscription,
            scope.environment_id,
            after_id,
            limit,
            ListSubscription.list_id == list_id,
        )

    def subscribers(
        self, scope: Scope, list_id: str
    ) -> dict[str, tuple[int, dict[str, Any] | None]]:
        """Every subscriber of the list: user_id → (row id, preferences)."""
        rows = self.session.execute(
            select(
                ListSubscription.user_id, ListSubscription.id, ListSubscription.preferences
            ).where(
                ListSubscription.environment_id == scope.environment_id,
                ListSubscription.list_id == list_id,
            )
        ).all()
        return {user_id: (row_id, preferences) for user_id, row_id, preferences in rows}

    def member_ids(self, environment_id: str, list_ids: Sequence[str]) -> list[str]:
        """The users subscribed to any of the lists, in subscription order (a user on two of
        them is there twice)."""
        if not list_ids:
            return []
        return list(
            self.session.scalars(
                select(ListSubscription.user_id)
                .where(
                    ListSubscription.environment_id == environment_id,
                    ListSubscription.list_id.in_(list_ids),
                )
                .order_by(ListSubscription.id)
            )
        )

    def subscriber_ids_after(self, environment_id: str, after: str, limit: int) -> list[str]:
        """The next `limit` distinct subscribed user ids after `after`, in id order."""
        return self.distinct_user_ids_after(ListSubscription, environment_id, after, limit)

    def list_ids_of_users(
        self, environment_id: str, user_ids: Collection[str]
    ) -> dict[str, set[str]]:
        """The lists each of the users is subscribed to (users on none are left out)."""
        return self.values_by_user(ListSubscription.list_id, environment_id, user_ids)

    def add_subscriptions(
        self, scope: Scope, pairs: Sequence[tuple[str, str]], created_at: datetime
    ) -> None:
        """Subscribe each (list_id, user_id); pairs already subscribed stay as they are."""
        for chunk in chunks(pairs):
            self.session.execute(
                insert_ignoring_conflicts(self.session, ListSubscription).values(
                    [
                        {
                            "workspace_id": scope.workspace_id,
                            "environment_id": scope.environment_id,
                            "list_id": list_id,
                            "user_id": user_id,
                            "preferences": None,
                            "created_at": created_at,
                        }
                        for list_id, user_id in chunk
                    ]
                ),
            )

    def set_preferences(
        self, scope: Scope, list_id: str, user_id: str, preferences: dict[str, Any] | None
    ) -> None:
        execute_counting(
            self.session,
            update(ListSubscription)
            .where(
                ListSubscription.environment_id == scope.environment_id,
                ListSubscription.list_id == list_id,
                ListSubscription.user_id == user_id,
            )
            .values(preferences=preferences)
            .execution_options(synchronize_session=False),
        )

    def delete_subscriptions_by_id(self, row_ids: Sequence[int]) -> None:
        for chunk in chunks(row_ids):
            self._delete(ListSubscription, ListSubscription.id.in_(chunk))

    def delete_subscription(self, scope: Scope, list_id: str, user_id: str) -> bool:
        removed = self._delete(
            ListSubscription,
            ListSubscription.environment_id == scope.environment_id,
            ListSubscription.list_id == list_id,
            ListSubscription.user_id == user_id,
        )
        return bool(removed)

    def user_subscriptions(
        self, scope: Scope, user_id: str, after_id: int | None, limit: int
    ) -> Sequence[tuple[ListSubscription, RecipientList]]:
        """The user's subscriptions with their lists, in subscription order."""
        query = (
            select(ListSubscription, RecipientList)
            .join(
                RecipientList,
                (RecipientList.environment_id == ListSubscription.environment_id)
                & (RecipientList.list_id == ListSubscription.list_id),
            )
            .where(
                ListSubscription.environment_id == scope.environment_id,
                ListSubscription.user_id == user_id,
            )
        )
        rows = self.session.execute(keyset_page(query, ListSubscription.id, after_id, limit)).all()
        return [(subscription, recipient_list) for subscription, recipient_list in rows]

    def delete_user_subscriptions(self, scope: Scope, user_id: str) -> int:
        return self._delete(
            ListSubscription,
            ListSubscription.environment_id == scope.environment_id,
            ListSubscription.user_id == user_id,
        )
