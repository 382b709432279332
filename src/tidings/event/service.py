"""What each event does, and the record of it.

Processing runs after the event is committed and acknowledged, in a job. Each event is
processed in its own transaction, which also writes its processing record (status, profile
diff, diagnostics, effects), so a crash mid-way leaves the event `received` and the sweeper
processes it again. A processed event is never processed twice.

Per-user order: before an event is processed, the same user's earlier unprocessed events are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from tidings.automation.runs import start_triggered_runs, trigger_of
from tidings.db import Database
from tidings.event.repository import EventRepository
from tidings.kit.time import utcnow
from tidings.models import Event, EventStatus
from tidings.profile.service import merge_profile
from tidings.tenant.service import apply_group
from tidings.workspace.service import Scope

logger = logging.getLogger(__name__)

TOP_LEVEL_EMAIL = "top_level_email"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    level: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "level": self.level, "message": self.message}


def _scope_of(event: Event) -> Scope:
    return Scope(event.workspace_id, event.environment_id, "", "")


def _diagnose(event: Event) -> list[Diagnostic]:
    payload = event.payload
    found = []
    if event.type == "identify" and "email" in payload:
        traits = payload.get("traits") or {}
        where = (
            "traits.email is set and was used instead"
            if isinstance(traits, dict) and "email" in traits
            else "the profile got no email from this event"
        )
        found.append(
            Diagnostic(
                TOP_LEVEL_EMAIL,
                "warning",
                "`email` is at the top level of this identify, where it is not read "
                f"(as on Courier); {where}. Move it into `traits` (traits.email) and send "
                "the event again.",
            )
        )
    if event.type in ("identify", "group") and event.user_id is None:
        found.append(
            Diagnostic(
                "anonymous_only",
                "info",
                f"This {event.type} has only an anonymousId; "
                + (
                    "its traits were not stored, because profiles are keyed by userId. "
                    if event.type == "identify"
                    else "the anonymous id was used as the member's user id. "
                )
                + "Send `userId` once the user is known.",
            )
        )
    return found


def _apply(session: Session, event: Event) -> tuple[list[dict[str, Any]], list[str]]:
    """The event's effects. Returns the profile diff and a line per effect."""
    payload = event.payload
    scope = _scope_of(event)
    if event.type == "identify":
        traits = payload.get("traits") or {}
        if event.user_id is None:
            return [], ["no profile change (anonymous identify)"]
        profile_diff = merge_profile(session, scope, event.user_id, traits)
        effects = [
            f"profile {event.user_id!r} updated: {len(profile_diff)} change(s)"
            if profile_diff
            else f"profile {event.user_id!r} unchanged"
        ]
        return profile_diff, effects
    if event.type == "group":
        group_id = str(payload["groupId"])
        member = event.user_id or event.anonymous_id
        return [], apply_group(session, scope, group_id, payload.get("traits") or {}, member)
    if event.type == "track":
        return [], [f"listed as {event.name!r}; its properties are the data of what it triggers"]
    if event.type == "alias":
        return [], ["stored; identity stitching is not applied yet"]
    return [], [f"stored and listed as {event.name!r}"]


def _start_automations(session: Session, event: Event) -> tuple[list[int], list[str]]:
    """Start the runs the event triggers; returns their ids and a line per run (or unmapped)."""
    runs = start_triggered_runs(session, event)
    source, name = trigger_of(event)
    if not runs:
        return [], [f"unmapped: no enabled automation has the trigger {source} {name!r}"]
    return [run.id for run in runs], [
        f"started automation {run.automation_id!r} (run {run.run_id})" for run in runs
    ]


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    processed: list[int]
    retry: list[int]
    failed: list[int]
    runs: list[int] = field(default_factory=list)


def process_events(
    database: Database, event_ids: Iterable[int], max_attempts: int
) -> ProcessOutcome:
    outcome = ProcessOutcome([], [], [])
    for event_id in sorted(set(event_ids)):
        _process_with_predecessors(database, event_id, max_attempts, outcome)
    return outcome


def _process_with_predecessors(
    database: Database, event_id: int, max_attempts: int, outcome: ProcessOutcome
) -> None:
    with database.read() as session:
        event = session.get(Event, event_id)
        if event is None or event.status != EventStatus.RECEIVED:
            return
        earlier = list(EventRepository(session).earlier_pending_of_user(event, limit=100))
    for earlier_id in [*earlier, event_id]:
        result = process_event(database, earlier_id, max_attempts, outcome.runs)
        lists = {"processed": outcome.processed, "retry": outcome.retry, "failed": outcome.failed}
        lists.get(result, []).append(earlier_id)


def process_event(
    database: Database, event_id: int, max_attempts: int, started_runs: list[int] | None = None
) -> str:
    """Process one event: apply its effects, then start the automations it triggers.

    Returns processed, skipped, retry or failed. The ids of the runs it started are appended
    to `started_runs`, for the caller to enqueue once this has committed.
    """
    try:
        with database.write() as session:
            event = EventRepository(session).get_for_update(event_id)
            if event is None or event.status != EventStatus.RECEIVED:
                return "skipped"
            diagnostics = [item.as_dict() for item in _diagnose(event)]
            profile_diff, effects = _apply(session, event)
            run_ids, run_effects = _start_automations(session, event)
            event.diagnostics = diagnostics
            event.profile_diff = profile_diff
            event.effects = effects + run_effects
            event.status = EventStatus.PROCESSED
            event.error = None
            event.attempts = event.attempts + 1
            event.processed_at = utcnow()
        if started_runs is not None:
            started_runs.extend(run_ids)
        return "processed"
    except Exception as exc:
        logger.exception("processing event %s failed", event_id)
        return _record_failure(database, event_id, exc, max_attempts)


def _record_failure(database: Database, event_id: int, exc: Exception, max_attempts: int) -> str:
    with database.write() as session:
        event = EventRepository(session).get_for_update(event_id)
        if event is None or event.status != EventStatus.RECEIVED:
            return "skipped"
        event.attempts = event.attempts + 1
        event.error = f"{type(exc).__name__}: {exc}"[:2000]
        if event.attempts >= max_attempts:
            event.status = EventStatus.FAILED
            event.processed_at = utcnow()
            return "failed"
    return "retry"


def stale_event_ids(database: Database, older_than_seconds: float, limit: int) -> list[int]:
    """Events still `received` after the given age: their job was lost, or is late."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with database.read() as session:
        return list(EventRepository(session).stale_pending(cutoff, limit))
