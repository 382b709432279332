"""Identity: anonymous visitors, merging them into users, stale traits, and erasure. Above
the domains whose rows a merge moves and an erasure removes or redacts.

Rules (docs/segment-destination.md, "Identity"):

- An identify with only an `anonymousId` stores its traits on an anonymous profile keyed by
  that id.
- An identify with both a `userId` and an `anonymousId`, or an alias from `previousId` to
  `userId`, merges the other id into the user: its traits, its events, its list
  subscriptions, tenant memberships and preferences; then the id is recorded as an alias, and
  later events carrying it are processed as the user's.
- Merge conflicts: a trait only the merged profile has is added; a trait both have keeps the
  value written later (by `trait_times`); on a tie, or when a time is unknown, the user's
  value stays.
- An id already merged into one user is not merged into another: the first identify wins
  (a shared device where a second person logs in does not fold one user into another).
- Each top-level trait remembers when it was written: an identify's timestamp (or its
  receive time), or the request time of a profile API write. An identify older than the
  stored value leaves that trait alone, and the event's record says "ignored: stale".
- Erasure (a Segment `delete`, or `DELETE /profiles/{id}`) removes the profile, its aliases,
  subscriptions, memberships, preferences and inbox, and strips personal data from the
  user's stored events and messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tidings.audience.repository import AudienceRepository
from tidings.automation.repository import RunRepository
from tidings.eventstore.repository import EventRepository
from tidings.kit.jsondoc import diff, merge_patch
from tidings.kit.time import parse_timestamp, utcnow
from tidings.message.repository import MessageRepository
from tidings.profile.repository import ProfileRepository
from tidings.profile.service import profile_not_found
from tidings.suppression.repository import SuppressionRepository
from tidings.workspace.service import Scope


@dataclass
class TraitOutcome:
    diff: list[dict[str, Any]]
    ignored: list[str] = field(default_factory=list)


def resolve_user(
    session: Session, scope: Scope, user_id: str | None, anonymous_id: str | None
) -> str | None:
    """The user an event belongs to: its userId (or the user it was merged into), else the
    user its anonymousId was merged into, else None."""
    repository = ProfileRepository(session)
    if user_id is not None:
        return repository.alias_target(scope, user_id) or user_id
    if anonymous_id is not None:
        return repository.alias_target(scope, anonymous_id)
    return None


def _newer(left: str | None, right: str | None) -> bool:
    """Whether time `left` is strictly later than `right` (unknown times are never newer)."""
    left_time, right_time = parse_timestamp(left), parse_timestamp(right)
    return left_time is not None and right_time is not None and left_time > right_time


def merge_traits(
    session: Session,
    scope: Scope,
    key: str,
    traits: dict[str, Any],
    at: datetime,
    *,
    anonymous: bool = False,
) -> TraitOutcome:
    """Merge identify traits (RFC 7386) written at `at`, skipping each trait whose stored
    value was written later."""
    repository = ProfileRepository(session)
    profile, created = repository.get_or_create_for_update(scope, key)
    if created:
        profile.anonymous = anonymous
    times = dict(profile.trait_times or {})
    stamp = at.isoformat()
    accepted: dict[str, Any] = {}
    ignored = []
    for name, value in traits.items():
        if _newer(times.get(name), stamp):
            ignored.append(name)
            continue
        accepted[name] = value
        times[name] = stamp
    before = profile.data
    after = merge_patch(before, accepted)
    profile.trait_times = times
    repository.save(profile, after)
    return TraitOutcome(diff(before, after), ignored)


def link(session: Session, scope: Scope, alias_id: str, user_id: str) -> list[str]:
    """Merge `alias_id` (an anonymousId or a previousId) into `user_id`; a line per effect."""
    if alias_id == user_id:
        return []
    repository = ProfileRepository(session)
    owner = repository.alias_target(scope, alias_id)
    if owner == user_id:
        return []
    if owner is not None:
        return [
            f"{alias_id!r} was already merged into user {owner!r}; it is not merged into "
            f"{user_id!r} too"
        ]
    effects = []
    source = repository.get(scope, alias_id)
    if source is not None:
        target, _ = repository.get_or_create_for_update(scope, user_id)
        target_times = dict(target.trait_times or {})
        source_times = source.trait_times or {}
        taken = {}
        for name, value in source.data.items():
            if name not in target.data or _newer(source_times.get(name), target_times.get(name)):
                taken[name] = value
                if name in source_times:
                    target_times[name] = source_times[name]
        before = target.data
        target.trait_times = target_times
        repository.save(target, {**before, **taken})
        repository.delete_profile_row(scope, alias_id)
        effects.append(
            f"profile {alias_id!r} merged into {user_id!r}: {len(taken)} trait(s) taken, "
            f"{len(source.data) - len(taken)} kept from {user_id!r}"
        )
    moved = repository.move_identity(scope, alias_id, user_id)
    # The merged user's audiences are evaluated afresh; the alias is in none of its own.
    AudienceRepository(session).forget_users(scope.environment_id, [alias_id])
    if any(moved.values()):
        effects.append(
            f"moved from {alias_id!r} to {user_id!r}: "
            + ", ".join(f"{count} {what}" for what, count in moved.items() if count)
        )
    repository.add_alias(scope, alias_id, user_id)
    effects.append(f"{alias_id!r} is now an alias of {user_id!r}")
    return effects


def erase_user(session: Session, scope: Scope, user_id: str) -> dict[str, int]:
    """Remove the user (and every id merged into it) and the rows that are theirs, and strip
    their personal data from stored events, messages and automation runs (those rows stay,
    for counts); returns what was removed, by kind."""
    environment, now = scope.environment_id, utcnow()
    ids, removed = ProfileRepository(session).erase(scope, user_id)
    removed["event(s) redacted"] = EventRepository(session).redact_users(environment, ids)
    removed["message(s) redacted"] = MessageRepository(session).redact_recipients(
        environment, ids, now
    )
    removed["automation run(s) redacted"] = RunRepository(session).redact_recipients(
        environment, ids, now
    )
    removed["audience stay(s)"] = AudienceRepository(session).forget_users(environment, ids)
    # Their addresses stay suppressed: erasure must not let mail reach them again.
    removed["suppression(s) unlinked"] = SuppressionRepository(session).forget_users(
        environment, ids
    )
    return removed


def delete_profile(session: Session, scope: Scope, user_id: str) -> dict[str, int]:
    """Erase the user as a Segment `delete` does (`erase_user`); 404 without a profile."""
    repository = ProfileRepository(session)
    if repository.get(scope, user_id) is None:
        raise profile_not_found(user_id)
    return erase_user(session, scope, user_id)
