"""Audiences: saving a condition, reading members, and the audience a send or schedule names.

An audience is saved with Tidings' `condition` (audience/conditions.py) or with Courier's
`filter`, which is read as the condition it means. Saving a new condition bumps the
audience's version and starts a scan of every profile (automation/membership.py); the members
stay as they were until the scan reaches them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tidings.audience.conditions import ConditionError, from_courier, parse
from tidings.audience.repository import AudienceRepository
from tidings.db import Outbox
from tidings.errors import BadRequest, found
from tidings.kit.missing import Missing
from tidings.kit.time import utcnow
from tidings.models import Audience, AudienceMember
from tidings.workspace.service import Scope

_missing_audience = Missing(
    "audience", "Create it with PUT /audiences/{id}.", code="unknown_audience", field="audience_id"
)

MAX_ID_LENGTH = 200
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


def check_audience_id(audience_id: str, field: str = "audience_id") -> None:
    if not audience_id or len(audience_id) > MAX_ID_LENGTH or not _ID.match(audience_id):
        raise BadRequest(
            f"{field} {audience_id[:80]!r} is not an audience id: use 1 to {MAX_ID_LENGTH} "
            "letters, digits, `.`, `_`, `:` and `-`, starting with a letter or digit, such as "
            "`pricing-hot`.",
            code="invalid_audience_id",
            field=field,
        )


@dataclass(frozen=True, slots=True)
class AudienceInput:
    """A PUT's body: the name, and exactly one of `condition` or Courier's `filter` (with
    its optional top-level `operator`)."""

    name: str | None
    description: str | None
    condition: Any
    filter: Any
    operator: str | None


def definition_of(given: AudienceInput) -> dict[str, Any]:
    """The stored definition: the condition (read from the filter when one was given) and
    the filter as given; raises BadRequest naming the field that is wrong."""
    if (given.condition is None) == (given.filter is None):
        raise BadRequest(
            "Give the audience either `condition` (Tidings' conditions, e.g. "
            '{"all": [{"trait": "plan", "equals": "free"}, {"event": "Viewed Pricing", '
            '"at_least": 2, "within": "7 days"}]}) or Courier\'s `filter`, not both and not '
            "neither.",
            code="invalid_condition",
            field="condition",
        )
    field = "condition"
    try:
        if given.filter is not None:
            field = "filter"
            courier = dict(given.filter) if isinstance(given.filter, dict) else given.filter
            if given.operator is not None and isinstance(courier, dict):
                courier = {**courier, "operator": given.operator}
            condition = from_courier(courier)
            parse(condition)
            return {"condition": condition, "filter": courier}
        parse(given.condition)
    except ConditionError as exc:
        path = f"{field}{exc.at}"
        raise BadRequest(f"{path}: {exc.reason}", code="invalid_condition", field=path) from exc
    return {"condition": given.condition}


def put_audience(
    session: Session, outbox: Outbox, scope: Scope, audience_id: str, given: AudienceInput
) -> tuple[Audience, str]:
    """Create or replace the audience; returns it and `created`, `updated` or `unchanged`.
    A new or changed condition starts a scan."""
    check_audience_id(audience_id)
    definition = definition_of(given)
    now = utcnow()
    repository = AudienceRepository(session)
    name = given.name or audience_id
    audience, created = repository.get_or_create_for_update(
        scope,
        audience_id,
        now,
        name=name,
        description=given.description,
        definition=definition,
        version=1,
        scan_version=0,
        scanned=0,
        scan_total=0,
    )
    changed = created or audience.definition.get("condition") != definition["condition"]
    outcome = "created" if created else "updated"
    if not created:
        if (audience.name, audience.description, audience.definition) == (
            name,
            given.description,
            definition,
        ):
            outcome = "unchanged"
        audience.name = name
        audience.description = given.description
        if changed:
            audience.version = audience.version + 1
        audience.definition = definition
        if outcome != "unchanged":
            audience.updated_at = now
    session.flush()
    if changed:
        outbox.add_scan(audience.id)
    return audience, outcome


def get_audience(session: Session, scope: Scope, audience_id: str) -> Audience:
    return found(
        AudienceRepository(session).get(scope.environment_id, audience_id),
        _missing_audience(audience_id[:80]),
    )


def delete_audience(session: Session, scope: Scope, audience_id: str) -> None:
    """Delete the audience, its members and their history. Automations it triggers stay,
    and start no more runs."""
    audience = get_audience(session, scope, audience_id)
    AudienceRepository(session).delete(audience)


def member_ids(session: Session, environment_id: str, audience_id: str, field: str) -> list[str]:
    """The audience's current members, in entry order (a send's `to.audience_id`)."""
    repository = AudienceRepository(session)
    audience = repository.get(environment_id, audience_id)
    if audience is None:
        raise BadRequest(
            f"{field}: no audience {audience_id[:80]!r}. Create it with PUT /audiences/{{id}}.",
            code="unknown_audience",
            field=field,
        )
    return repository.member_user_ids(audience.id)


def scan_state(audience: Audience) -> str:
    """`scanning` while the members are being computed for the current condition, else
    `ready`."""
    done = audience.scan_version == audience.version and audience.scan_finished_at is not None
    return "ready" if done else "scanning"


def audiences_page(
    session: Session, scope: Scope, after_id: int | None, limit: int
) -> Sequence[Audience]:
    return AudienceRepository(session).page(scope.environment_id, after_id, limit)


def member_count(session: Session, audience: Audience) -> int:
    return AudienceRepository(session).member_count(audience.id)


def members_page(
    session: Session, audience: Audience, after_id: int | None, limit: int
) -> Sequence[AudienceMember]:
    return AudienceRepository(session).members_page(audience.id, after_id, limit)


def stays_page(
    session: Session, audience: Audience, after_id: int | None, limit: int, user_id: str | None
) -> Sequence[AudienceMember]:
    return AudienceRepository(session).stays_page(audience.id, after_id, limit, user_id)
