"""Every SQL query on profiles."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, cast, delete, or_, select, update

from tidings.kit.sql import (
    Repository,
    execute_counting,
    insert_ignoring_conflicts,
    insert_missing_in_environment,
    starts_or_contains,
)
from tidings.kit.time import utcnow
from tidings.models import (
    Event,
    InboxMessage,
    ListSubscription,
    Profile,
    ProfileAlias,
    TenantMembership,
    UserPreference,
)
from tidings.workspace.service import Scope

# Tables whose rows belong to one user id, moved on a merge and removed on erasure.
_USER_ROWS: tuple[Any, ...] = (ListSubscription, TenantMembership, UserPreference)


# The statements of an event's first lookups, built once (building one per call cost more
# than running it).
_GET_PROFILE = select(Profile).where(
    Profile.environment_id == bindparam("environment_id"), Profile.user_id == bindparam("user_id")
)
_ALIAS_TARGET = select(ProfileAlias.user_id).where(
    ProfileAlias.environment_id == bindparam("environment_id"),
    ProfileAlias.alias_id == bindparam("alias_id"),
)


_PROFILES_OF = select(Profile).where(Profile.user_id.in_(bindparam("user_ids", expanding=True)))
_ALIAS_TARGETS_OF = select(
    ProfileAlias.environment_id, ProfileAlias.alias_id, ProfileAlias.user_id
).where(ProfileAlias.alias_id.in_(bindparam("alias_ids", expanding=True)))

# The profile data of a routing group's recipients, read at once.
_PROFILE_DATA = select(Profile.environment_id, Profile.user_id, Profile.data).where(
    Profile.user_id.in_(bindparam("user_ids", expanding=True))
)


# What `read_ahead` read in this unit of work: the profile (None: none) and the alias target
# (None: not an alias) of each (environment, id). Every write below forgets it.
_READ_AHEAD = "tidings.profiles_read_ahead"
_NOT_READ = object()


class ProfileRepository(Repository):
    def read_ahead(self, keys: Collection[tuple[str, str]]) -> None:
        """Read the profiles and alias targets of these (environment, id)s in two queries,
        for `get` and `alias_target` to answer from for the rest of the unit of work: a group
        of events reads its users once, rather than twice per event."""
        ids = sorted({identifier for _, identifier in keys})
        if not ids:
            return
        profiles: dict[tuple[str, str], Profile | None] = dict.fromkeys(keys)
        aliases: dict[tuple[str, str], str | None] = dict.fromkeys(keys)
        with self.session.no_autoflush:  # as in get()
            for profile in self.session.scalars(_PROFILES_OF, {"user_ids": ids}):
                if (profile.environment_id, profile.user_id) in profiles:
                    profiles[(profile.environment_id, profile.user_id)] = profile
            for environment_id, alias_id, user_id in self.session.execute(
                _ALIAS_TARGETS_OF, {"alias_ids": ids}
            ):
                if (environment_id, alias_id) in aliases:
                    aliases[(environment_id, alias_id)] = user_id
        self.session.info[_READ_AHEAD] = (profiles, aliases)

    def _forget(self) -> None:
        """Drop what `read_ahead` read: a write may have changed it."""
        self.session.info.pop(_READ_AHEAD, None)

    def _read(self, which: int, environment_id: str, identifier: str) -> Any:
        read = self.session.info.get(_READ_AHEAD)
        if read is None:
            return _NOT_READ
        return read[which].get((environment_id, identifier), _NOT_READ)

    def get(self, scope: Scope, user_id: str) -> Profile | None:
        read = self._read(0, scope.environment_id, user_id)
        if read is not _NOT_READ:
            profile: Profile | None = read
            return profile
        # No autoflush, here and in alias_target: profile and alias rows are only ever
        # inserted and deleted by statements, which run at once, so nothing pending in the
        # session can change these answers. In a group of events (tidings.event.batching)
        # these are an event's first queries, and an autoflush here cost each event a
        # flush of its own (much of a flush's cost is fixed) for the previous event's
        # leftovers; they now go out with the event's next flush.
        with self.session.no_autoflush:
            return self.session.scalars(
                _GET_PROFILE, {"environment_id": scope.environment_id, "user_id": user_id}
            ).first()

    def data_of_users(
        self, users: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any] | None]:
        """The profile data of each (environment, user id), None for a user without a
        profile, in one query."""
        found: dict[tuple[str, str], dict[str, Any] | None] = dict.fromkeys(users)
        if not found:
            return found
        rows = self.session.execute(
            _PROFILE_DATA, {"user_ids": sorted({user_id for _, user_id in found})}
        )
        for environment_id, user_id, data in rows:
            if (environment_id, user_id) in found:
                found[(environment_id, user_id)] = dict(data)
        return found

    def audience_facts(
        self, environment_id: str, user_ids: Collection[str]
    ) -> dict[str, tuple[dict[str, Any], datetime]]:
        """Each user's traits and when its profile was created (first seen), for the users
        that have a profile."""
        rows = self.session.execute(
            select(Profile.user_id, Profile.data, Profile.created_at).where(
                Profile.environment_id == environment_id,
                Profile.user_id.in_(sorted(user_ids)),
            )
        )
        return {user_id: (dict(data or {}), created_at) for user_id, data, created_at in rows}

    def user_ids_after(self, environment_id: str, after: str, limit: int) -> list[str]:
        """The next `limit` user ids (not anonymous visitors) with a profile, after `after`
        in id order."""
        return list(
            self.session.scalars(
                select(Profile.user_id)
                .where(
                    Profile.environment_id == environment_id,
                    Profile.user_id > after,
                    Profile.anonymous.is_(False),
                )
                .order_by(Profile.user_id)
                .limit(limit)
            )
        )

    def count_users(self, environment_id: str) -> int:
        return self.count_rows(
            Profile, Profile.environment_id == environment_id, Profile.anonymous.is_(False)
        )

    def search(self, scope: Scope, query: str, limit: int) -> Sequence[Profile]:
        """Profiles whose user id starts with the query, or whose JSON holds it (e.g. an
        email), most recently updated first."""
        return self.search_page(scope, query, None, limit)

    def search_page(
        self, scope: Scope, query: str, before: tuple[datetime, int] | None, limit: int
    ) -> Sequence[Profile]:
        """`search`, after the (updated_at, id) of the previous page's last profile when
        given: the order is by both, so that profiles updated at the same time page too."""
        statement = select(Profile).where(Profile.environment_id == scope.environment_id)
        if before is not None:
            updated_at, profile_id = before
            statement = statement.where(
                or_(
                    Profile.updated_at < updated_at,
                    (Profile.updated_at == updated_at) & (Profile.id < profile_id),
                )
            )
        if query:
            statement = statement.where(
                starts_or_contains(Profile.user_id, cast(Profile.data, String), query)
            )
        return self.session.scalars(
            statement.order_by(Profile.updated_at.desc(), Profile.id.desc()).limit(limit)
        ).all()

    def get_or_create_for_update(self, scope: Scope, user_id: str) -> tuple[Profile, bool]:
        """The profile row, locked for this transaction; created empty when missing."""
        profile, created = insert_missing_in_environment(
            self.session, scope, Profile, ("user_id", user_id), utcnow(), data={}
        )
        if created:
            self._forget()
        return profile, created

    def save(self, profile: Profile, data: dict[str, Any]) -> None:
        profile.data = data
        profile.updated_at = utcnow()

    def delete_profile_row(self, scope: Scope, user_id: str) -> None:
        self._forget()
        self.delete_rows(Profile, environment_id=scope.environment_id, user_id=user_id)

    def alias_target(self, scope: Scope, alias_id: str) -> str | None:
        """The user `alias_id` was merged into, if any."""
        read = self._read(1, scope.environment_id, alias_id)
        if read is not _NOT_READ:
            target: str | None = read
            return target
        with self.session.no_autoflush:  # as in get()
            return self.session.scalars(
                _ALIAS_TARGET, {"environment_id": scope.environment_id, "alias_id": alias_id}
            ).first()

    def add_alias(self, scope: Scope, alias_id: str, user_id: str) -> None:
        self._forget()
        environment = scope.environment_id
        # Ids already merged into `alias_id` now belong to `user_id` too.
        execute_counting(
            self.session,
            update(ProfileAlias)
            .where(ProfileAlias.environment_id == environment, ProfileAlias.user_id == alias_id)
            .values(user_id=user_id),
        )
        execute_counting(
            self.session,
            insert_ignoring_conflicts(self.session, ProfileAlias).values(
                environment_id=environment, alias_id=alias_id, user_id=user_id, created_at=utcnow()
            ),
        )

    def _move_rows(self, table: Any, environment: str, old: str, new: str) -> int:
        """Re-key `old`'s rows to `new`, dropping those `new` already has (unique keys)."""
        rows = self.session.execute(
            select(table.__table__).where(table.environment_id == environment, table.user_id == old)
        ).mappings()
        moved = 0
        for row in list(rows):
            values = {key: value for key, value in row.items() if key != "id"}
            values["user_id"] = new
            moved += execute_counting(
                self.session, insert_ignoring_conflicts(self.session, table).values(**values)
            )
        execute_counting(
            self.session,
            delete(table).where(table.environment_id == environment, table.user_id == old),
        )
        return moved

    def move_identity(self, scope: Scope, old: str, new: str) -> dict[str, int]:
        """Give `old`'s events, subscriptions, memberships, preferences and inbox to `new`."""
        self._forget()
        environment = scope.environment_id
        moved = {
            "event(s)": execute_counting(
                self.session,
                update(Event)
                .where(
                    Event.environment_id == environment,
                    or_(
                        (Event.anonymous_id == old) & Event.user_id.is_(None),
                        Event.user_id == old,
                    ),
                )
                .values(user_id=new),
            ),
            "list subscription(s)": self._move_rows(ListSubscription, environment, old, new),
            "tenant membership(s)": self._move_rows(TenantMembership, environment, old, new),
            "preference(s)": self._move_rows(UserPreference, environment, old, new),
            "inbox message(s)": execute_counting(
                self.session,
                update(InboxMessage)
                .where(InboxMessage.environment_id == environment, InboxMessage.user_id == old)
                .values(user_id=new),
            ),
        }
        return moved

    def erase(self, scope: Scope, user_id: str) -> tuple[list[str], dict[str, int]]:
        """Remove a user, every id merged into it, and the rows that belong to them; the
        ids (the user's first), and what was removed, by kind. Their events, messages and
        runs are their repositories' to redact (`identity.service.erase_user`)."""
        self._forget()
        environment = scope.environment_id
        aliases = self.session.scalars(
            select(ProfileAlias.alias_id).where(
                ProfileAlias.environment_id == environment, ProfileAlias.user_id == user_id
            )
        ).all()
        ids = [user_id, *aliases]
        return ids, {
            **self._delete_identity(environment, user_id, ids),
            **self._delete_user_rows(environment, ids),
        }

    def _delete_identity(self, environment: str, user_id: str, ids: list[str]) -> dict[str, int]:
        """The profiles of the user and its merged ids, and its aliases either way."""
        return {
            "profile(s)": execute_counting(
                self.session,
                delete(Profile).where(
                    Profile.environment_id == environment, Profile.user_id.in_(ids)
                ),
            ),
            "alias(es)": execute_counting(
                self.session,
                delete(ProfileAlias).where(
                    ProfileAlias.environment_id == environment,
                    or_(ProfileAlias.user_id == user_id, ProfileAlias.alias_id == user_id),
                ),
            ),
        }

    def _delete_user_rows(self, environment: str, ids: list[str]) -> dict[str, int]:
        """The rows that belong to these user ids: subscriptions, memberships, preferences
        and the inbox."""
        removed: dict[str, int] = {}
        for table, label in zip(
            (*_USER_ROWS, InboxMessage),
            ("list subscription(s)", "tenant membership(s)", "preference(s)", "inbox message(s)"),
            strict=True,
        ):
            removed[label] = execute_counting(
                self.session,
                delete(table).where(table.environment_id == environment, table.user_id.in_(ids)),
            )
        return removed
