"""List rules, in Courier's semantics.

- A list id is one to four dot-separated parts, such as `acme.eng.oncall`; every id is its own
  list (subscribing to `acme.eng` does not subscribe to `acme`).
- Patterns (`*` for one whole part, `**` only as the last part) are for reading and sending,
  never for naming a list. Matching is `pattern_regex`, the same rule a send with
  `to.list_pattern` uses (tidings.message.recipients).
- Subscribing creates a missing list, named after its id.
- Preferences given with a subscription replace the stored ones; leaving them out keeps them,
  except on `PUT /lists/{id}/subscriptions`, which makes the list exactly what was sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tidings.errors import BadRequest, NotFound, found, not_in_environment
from tidings.kit.time import utcnow
from tidings.list.repository import ListRepository
from tidings.models import ListSubscription, RecipientList
from tidings.touched import Needs, touch
from tidings.workspace.service import Scope

MAX_ID_LENGTH = 300
MAX_LIST_ID_PARTS = 4
# Lists scanned per query while filtering by pattern.
PATTERN_SCAN = 500
# What a subscription's change can change in an audience (tidings/touched.py).
LISTS_CHANGED = Needs(lists=True)
_FORBIDDEN_IN_ID = re.compile(r"[\s*#]")


@dataclass(frozen=True, slots=True)
class SubscriberSpec:
    """One user to subscribe, with the preferences to store (None: none given)."""

    user_id: str
    preferences: dict[str, Any] | None = None


def pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = pattern.split(".")
    if any(part == "**" for part in parts[:-1]):
        raise BadRequest(
            f"list_pattern {pattern!r}: `**` may only be the last part, e.g. `acme.**`.",
            code="invalid_list_pattern",
            field="to.list_pattern",
        )
    expression = ""
    for index, part in enumerate(parts):
        separator = r"\." if index else ""
        if part == "**":
            expression += r"(?:\..+)?" if index else ".+"
        elif part == "*":
            expression += separator + r"[^.]+"
        else:
            expression += separator + re.escape(part)
    return re.compile(f"^{expression}$")


def check_list_id(list_id: str, field: str = "list_id") -> None:
    """Raise BadRequest (naming `field`) unless `list_id` is a valid id for a list."""
    if not list_id:
        raise BadRequest(
            f"{field} is empty: give a list id such as `acme.eng`.",
            code="invalid_list_id",
            field=field,
        )
    problem = None
    if len(list_id) > MAX_ID_LENGTH:
        problem = f"is {len(list_id)} characters long; the limit is {MAX_ID_LENGTH}"
    elif "*" in list_id:
        problem = (
            "contains `*`. Wildcards are for reading and sending only: use "
            "GET /lists?pattern=… or a send's `to.list_pattern`"
        )
    elif _FORBIDDEN_IN_ID.search(list_id):
        problem = "contains a space or `#`; use letters, digits, `-`, `_` and dots"
    elif any(part == "" for part in list_id.split(".")):
        problem = "has an empty part (a leading, trailing or doubled dot)"
    elif len(list_id.split(".")) > MAX_LIST_ID_PARTS:
        problem = f"has more than {MAX_LIST_ID_PARTS} dot-separated parts"
    if problem is not None:
        raise BadRequest(
            f"{field} {list_id[:80]!r} {problem}. A list id is 1 to {MAX_LIST_ID_PARTS} "
            "dot-separated parts, such as `acme.eng.oncall`.",
            code="invalid_list_id",
            field=field,
        )


def check_user_id(user_id: str, field: str = "user_id") -> None:
    if not user_id or len(user_id) > MAX_ID_LENGTH:
        raise BadRequest(
            f"{field} must be 1 to {MAX_ID_LENGTH} characters long.",
            code="invalid_user_id",
            field=field,
        )


def compile_pattern(pattern: str, field: str = "pattern") -> re.Pattern[str]:
    """The regex for a list pattern; BadRequest naming `field` when the pattern is invalid."""
    problem = None
    parts = pattern.split(".")
    if len(pattern) > MAX_ID_LENGTH:
        problem = f"is longer than {MAX_ID_LENGTH} characters"
    elif any(part == "" for part in parts):
        problem = "has an empty part (a leading, trailing or doubled dot)"
    elif any("*" in part and part not in ("*", "**") for part in parts):
        problem = "uses `*` inside a part; a wildcard must be a whole part, as in `acme.*`"
    elif _FORBIDDEN_IN_ID.search(pattern.replace("*", "")):
        problem = "contains a space or `#`, which no list id can contain"
    if problem is None:
        try:
            return pattern_regex(pattern)
        except BadRequest:
            problem = "has `**` before the last part; `**` may only end a pattern"
    raise BadRequest(
        f"{field} {pattern[:80]!r} {problem}. `*` matches one part and a trailing `**` any "
        "number of parts: `acme.*`, `acme.**`.",
        code="invalid_list_pattern",
        field=field,
    )


_not_found = not_in_environment(
    "list",
    "PUT /lists/{list_id} or by subscribing a user to it",
    code="list_not_found",
    field="list_id",
)


def get_list(session: Session, scope: Scope, list_id: str) -> RecipientList:
    check_list_id(list_id)
    return found(
        ListRepository(session).get(scope, list_id),
        _not_found(list_id),
    )


def put_list(
    session: Session,
    scope: Scope,
    list_id: str,
    name: str,
    preferences: dict[str, Any] | None = None,
) -> None:
    """Create the list, or rename it (the last write wins)."""
    check_list_id(list_id)
    if preferences is not None:
        raise BadRequest(
            "List-level preferences are not supported yet. Leave `preferences` out, and set "
            "preferences per subscriber with PUT /lists/{list_id}/subscriptions/{user_id}.",
            code="list_preferences_unsupported",
            field="preferences",
        )
    recipient_list = ListRepository(session).get_or_create_for_update(scope, list_id, name)
    if recipient_list.name != name:
        recipient_list.name = name
        recipient_list.updated_at = utcnow()


def delete_list(session: Session, scope: Scope, list_id: str) -> None:
    """Delete the list and every subscription to it."""
    check_list_id(list_id)
    if not ListRepository(session).delete(scope, list_id):
        raise _not_found(list_id)


def restore_list(session: Session, scope: Scope, list_id: str) -> None:
    """Courier restores soft-deleted lists; Tidings deletes for good, so only a live list
    "restores" (a no-op)."""
    check_list_id(list_id)
    if ListRepository(session).get(scope, list_id) is None:
        raise NotFound(
            f"No list {list_id!r} to restore: deleting a list removes it and its "
            "subscriptions for good. Create it again with PUT /lists/{list_id}.",
            code="list_not_found",
            field="list_id",
        )


def find_lists(
    session: Session, scope: Scope, pattern: str | None, after_id: int | None, limit: int
) -> list[RecipientList]:
    """Up to `limit` lists matching `pattern` (all when None) after the cursor."""
    regex = compile_pattern(pattern) if pattern else None
    prefix = ""
    if pattern:
        literal = []
        for part in pattern.split("."):
            if part in ("*", "**"):
                break
            literal.append(part)
        prefix = ".".join(literal)
    repository = ListRepository(session)
    matches: list[RecipientList] = []
    cursor = after_id
    while True:
        batch = repository.page(scope, prefix, cursor, PATTERN_SCAN)
        for row in batch:
            if regex is None or regex.match(row.list_id):
                matches.append(row)
                if len(matches) == limit:
                    return matches
        if len(batch) < PATTERN_SCAN:
            return matches
        cursor = batch[-1].id


def list_subscriptions(
    session: Session, scope: Scope, list_id: str, after_id: int | None, limit: int
) -> Sequence[ListSubscription]:
    get_list(session, scope, list_id)
    return ListRepository(session).subscriptions(scope, list_id, after_id, limit)


def _last_wins(subscribers: Sequence[SubscriberSpec]) -> dict[str, dict[str, Any] | None]:
    wanted: dict[str, dict[str, Any] | None] = {}
    for subscriber in subscribers:
        check_user_id(subscriber.user_id, "recipientId")
        wanted[subscriber.user_id] = subscriber.preferences
    return wanted


def subscribe(
    session: Session,
    scope: Scope,
    list_id: str,
    user_id: str,
    preferences: dict[str, Any] | None = None,
) -> None:
    """Subscribe the user to the list, creating the list (named after its id) if missing.

    Idempotent. Preferences, when given, replace the subscription's stored ones; None keeps
    them. Raises BadRequest for an invalid list id or user id.
    """
    check_user_id(user_id)
    add_subscribers(session, scope, list_id, [SubscriberSpec(user_id, preferences)])


def add_subscribers(
    session: Session, scope: Scope, list_id: str, subscribers: Sequence[SubscriberSpec]
) -> None:
    """Subscribe these users too (creating the list if missing); other subscribers stay."""
    check_list_id(list_id)
    wanted = _last_wins(subscribers)
    repository = ListRepository(session)
    repository.ensure_lists(scope, [list_id])
    repository.add_subscriptions(scope, [(list_id, user_id) for user_id in wanted], utcnow())
    for user_id, preferences in wanted.items():
        if preferences is not None:
            repository.set_preferences(scope, list_id, user_id, preferences)
    touch(session, scope.environment_id, wanted, LISTS_CHANGED)


def replace_subscribers(
    session: Session, scope: Scope, list_id: str, subscribers: Sequence[SubscriberSpec]
) -> None:
    """Make the list's subscribers exactly `subscribers` (creating the list if missing).

    Users who stay keep their subscription date; their preferences become what was sent.
    """
    check_list_id(list_id)
    wanted = _last_wins(subscribers)
    repository = ListRepository(session)
    repository.get_or_create_for_update(scope, list_id, list_id)
    existing = repository.subscribers(scope, list_id)
    repository.delete_subscriptions_by_id(
        [row_id for user_id, (row_id, _) in existing.items() if user_id not in wanted]
    )
    touch(session, scope.environment_id, set(existing) ^ set(wanted), LISTS_CHANGED)
    repository.add_subscriptions(
        scope, [(list_id, user_id) for user_id in wanted if user_id not in existing], utcnow()
    )
    for user_id, preferences in wanted.items():
        stored = existing[user_id][1] if user_id in existing else None
        if preferences != stored:
            repository.set_preferences(scope, list_id, user_id, preferences)


def unsubscribe(session: Session, scope: Scope, list_id: str, user_id: str) -> bool:
    """Remove the user from the list. Idempotent: False when they were not subscribed."""
    check_list_id(list_id)
    check_user_id(user_id)
    touch(session, scope.environment_id, [user_id], LISTS_CHANGED)
    return ListRepository(session).delete_subscription(scope, list_id, user_id)


def user_lists(
    session: Session, scope: Scope, user_id: str, after_id: int | None, limit: int
) -> Sequence[tuple[ListSubscription, RecipientList]]:
    check_user_id(user_id)
    return ListRepository(session).user_subscriptions(scope, user_id, after_id, limit)


def subscribe_user_to_lists(
    session: Session,
    scope: Scope,
    user_id: str,
    lists: Sequence[tuple[str, dict[str, Any] | None]],
) -> None:
    """Subscribe the user to each (list_id, preferences), creating missing lists.

    Every list id is checked before anything is written; a bad one is a BadRequest naming
    `lists[i].listId`.
    """
    check_user_id(user_id)
    wanted: dict[str, dict[str, Any] | None] = {}
    for index, (list_id, preferences) in enumerate(lists):
        check_list_id(list_id, f"lists[{index}].listId")
        wanted[list_id] = preferences
    repository = ListRepository(session)
    repository.ensure_lists(scope, list(wanted))
    repository.add_subscriptions(scope, [(list_id, user_id) for list_id in wanted], utcnow())
    for list_id, preferences in wanted.items():
        if preferences is not None:
            repository.set_preferences(scope, list_id, user_id, preferences)
    touch(session, scope.environment_id, [user_id], LISTS_CHANGED)


def unsubscribe_user_from_all(session: Session, scope: Scope, user_id: str) -> int:
    """Remove every list subscription of the user; returns how many there were."""
    check_user_id(user_id)
    touch(session, scope.environment_id, [user_id], LISTS_CHANGED)
    return ListRepository(session).delete_user_subscriptions(scope, user_id)
