"""Profile rules, in Courier's semantics: POST merges, PUT replaces, PATCH applies JSON Patch.

Merging follows RFC 7386 (JSON Merge Patch): nested objects merge key by key, a `null`
value removes that key, and arrays and scalars replace what was there. Segment identify
traits merge the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch
from sqlalchemy.orm import Session

from tidings.errors import BadRequest, found, not_in_environment
from tidings.kit.jsondoc import diff, merge_patch
from tidings.kit.time import utcnow
from tidings.models import Profile
from tidings.profile.repository import ProfileRepository
from tidings.touched import Needs, touch
from tidings.workspace.service import Scope

TRAITS_CHANGED = Needs(traits=True, first_seen=True)

profile_not_found = not_in_environment(
    "profile for user_id",
    "POST /profiles/{user_id}, or send a Segment identify for that userId",
    code="profile_not_found",
    field="user_id",
)


def _touch(profile: Profile, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Record an API write's time on each top-level trait it changed (see identity/service.py)."""
    stamp = utcnow().isoformat()
    times = dict(profile.trait_times or {})
    for key in set(before) | set(after):
        if before.get(key) != after.get(key):
            times[key] = stamp
    profile.trait_times = times


def get_profile(session: Session, scope: Scope, user_id: str) -> dict[str, Any]:
    return found(ProfileRepository(session).get(scope, user_id), profile_not_found(user_id)).data


def _rewrite(
    session: Session,
    scope: Scope,
    user_id: str,
    rewrite: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Store `rewrite` of the profile's traits (the profile is created empty when missing),
    stamp the traits it changed, and return the diff."""
    repository = ProfileRepository(session)
    profile, _ = repository.get_or_create_for_update(scope, user_id)
    before = profile.data
    after = rewrite(before)
    repository.save(profile, after)
    _touch(profile, before, after)
    changes = diff(before, after)
    if changes:
        touch(session, scope.environment_id, [user_id], TRAITS_CHANGED)
    return changes


def merge_profile(
    session: Session, scope: Scope, user_id: str, patch: dict[str, Any]
) -> list[dict[str, Any]]:
    """Merge `patch` into the profile (creating it), returning the diff."""
    return _rewrite(session, scope, user_id, lambda before: merge_patch(before, patch))


def replace_profile(
    session: Session, scope: Scope, user_id: str, document: dict[str, Any]
) -> list[dict[str, Any]]:
    return _rewrite(session, scope, user_id, lambda _: dict(document))


def patch_profile(
    session: Session, scope: Scope, user_id: str, operations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Apply RFC 6902 operations; the profile is created when missing, as on Courier."""
    return _rewrite(session, scope, user_id, lambda before: _apply_patch(before, operations))


def _apply_patch(before: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        after = jsonpatch.JsonPatch(operations).apply(before)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise BadRequest(
            f"A `test` operation failed: {exc}. The profile was not changed.",
            code="patch_test_failed",
            field="patch",
        ) from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise BadRequest(
            f"The JSON Patch cannot be applied: {exc}. Each operation needs `op` "
            "(add, remove, replace, copy, move or test) and a `path` such as `/email` that "
            "exists where the operation requires it.",
            code="invalid_patch",
            field="patch",
        ) from exc
    if not isinstance(after, dict):
        raise BadRequest(
            "The patch would turn the profile into something other than an object.",
            code="invalid_patch",
            field="patch",
        )
    return after
