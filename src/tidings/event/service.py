"""What each event does, and the record of it.

Processing runs after the event is committed and acknowledged, in a job. Processing an event
applies what it means (identify, track, group, alias, delete), diagnoses it, starts the
automations it triggers, and records all of that on the event (status, profile diff,
diagnostics, effects) in the same transaction, so a crash mid-way leaves it `received` and
the sweeper processes it again. A processed event is never processed twice.

How a job's events are grouped into transactions is `tidings.event.batching`'s.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from tidings.automation.runs import (
    advance_in_transaction,
    resume_waiting_runs,
    start_triggered_runs,
    trigger_of,
)
from tidings.db import Database, Outbox
from tidings.eventstore.repository import EventRepository
from tidings.identity.service import erase_user, link, merge_traits, resolve_user
from tidings.kit.time import isoformat, utcnow
from tidings.models import AutomationRun, Event, EventStatus, RunStatus
from tidings.observability import tracing
from tidings.tenant.service import apply_group
from tidings.touched import EVERYTHING, Needs, touch
from tidings.webhook_out import service as webhooks
from tidings.webhook_out.events import EVENT_UNMAPPED, Emission
from tidings.worker.context import WorkerContext
from tidings.workspace.service import Scope

logger = logging.getLogger(__name__)

TOP_LEVEL_EMAIL = "top_level_email"


class ProcessResult(StrEnum):
    """What processing an event came to."""

    PROCESSED = "processed"  # its effects applied and recorded
    SKIPPED = "skipped"  # gone, or no longer `received`: nothing done
    RETRY = "retry"  # failed, and left `received` for another attempt
    FAILED = "failed"  # failed its last attempt: `failed`, with the reason


def _diagnostic(code: str, level: str, message: str) -> dict[str, str]:
    """A finding about an event, as its record keeps it."""
    return {"code": code, "level": level, "message": message}


def _scope_of(event: Event) -> Scope:
    return Scope(event.workspace_id, event.environment_id, "", "")


def _diagnose(event: Event) -> list[dict[str, str]]:
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
            _diagnostic(
                TOP_LEVEL_EMAIL,
                "warning",
                "`email` is at the top level of this identify, where it is not read "
                f"(as on Courier); {where}. Move it into `traits` (traits.email) and send "
                "the event again.",
            )
        )
    if event.type in ("identify", "group") and event.user_id is None:
        found.append(
            _diagnostic(
                "anonymous_only",
                "info",
                f"This {event.type} has only an anonymousId; "
                + (
                    "its traits went to the anonymous profile of that id, which merges into "
                    "the user's profile once an identify carries both `userId` and this "
                    "`anonymousId` (or an alias links them). "
                    if event.type == "identify"
                    else "the anonymous id was used as the member's user id. "
                )
                + "Send `userId` once the user is known.",
            )
        )
    return found


def _traits_outcome(
    session: Session, scope: Scope, key: str, event: Event, *, anonymous: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    traits = event.payload.get("traits") or {}
    at = event.timestamp or event.received_at
    outcome = merge_traits(session, scope, key, traits, at, anonymous=anonymous)
    kind = "anonymous profile" if anonymous else "profile"
    effects = [
        f"{kind} {key!r} updated: {len(outcome.diff)} change(s)"
        if outcome.diff
        else f"{kind} {key!r} unchanged"
    ]
    profile_diff = list(outcome.diff)
    for name in outcome.ignored:
        profile_diff.append({"op": "ignored", "path": f"/{name}", "reason": "stale"})
        effects.append(
            f"trait {name!r} ignored: stale (the stored value was written after this event's "
            "timestamp)"
        )
    return profile_diff, effects


def _apply(session: Session, event: Event) -> tuple[list[dict[str, Any]], list[str]]:
    """The event's effects. Returns the profile diff and a line per effect.

    An event whose anonymousId (or userId) was merged into a user is processed as that user's,
    and its record says so.
    """
    payload = event.payload
    scope = _scope_of(event)
    sent_user, anonymous_id = event.user_id, event.anonymous_id
    effects: list[str] = []
    user = resolve_user(session, scope, sent_user, anonymous_id)
    if user is not None and user != sent_user:
        event.user_id = user
        merged = sent_user if sent_user is not None else anonymous_id
        effects.append(f"processed as user {user!r} ({merged!r} was merged into it)")
    if event.type == "identify":
        if sent_user is not None and anonymous_id is not None and user is not None:
            effects += link(session, scope, anonymous_id, user)
        if user is None:
            assert anonymous_id is not None
            profile_diff, more = _traits_outcome(
                session, scope, anonymous_id, event, anonymous=True
            )
        else:
            profile_diff, more = _traits_outcome(session, scope, user, event)
        return profile_diff, effects + more
    if event.type == "alias":
        previous = payload.get("previousId") or anonymous_id
        if user is None or previous is None:
            return [], [*effects, "nothing to merge: an alias needs previousId and userId"]
        return [], effects + link(session, scope, str(previous), user)
    if event.type == "delete":
        assert user is not None
        removed = erase_user(session, scope, user)
        return [], [
            *effects,
            f"user {user!r} erased: "
            + ", ".join(f"{count} {what}" for what, count in removed.items()),
        ]
    if event.type == "group":
        group_id = str(payload["groupId"])
        member = user or anonymous_id
        return [], effects + apply_group(
            session, scope, group_id, payload.get("traits") or {}, member
        )
    if event.type == "track":
        return [], [
            *effects,
            f"listed as {event.name!r}; its properties are the data of what it triggers",
        ]
    return [], [*effects, f"stored and listed as {event.name!r}"]


def _start_automations(session: Session, event: Event) -> tuple[list[AutomationRun], list[str]]:
    """Start the runs the event triggers; returns them and a line per run (or unmapped)."""
    runs = start_triggered_runs(session, event)
    source, name = trigger_of(event)
    if not runs:
        return [], [f"unmapped: no enabled automation has the trigger {source} {name!r}"]
    return runs, [f"started automation {run.automation_id!r} (run {run.run_id})" for run in runs]


def _note_for_audiences(session: Session, event: Event) -> None:
    """Note the event's user for the audiences that read what it changed: they are
    evaluated, with the other users of this transaction, just before it commits
    (tidings/touched.py), and what came of it is added to the event's effects."""
    user = event.user_id
    if user is None or event.type == "delete":
        return
    changed = (
        EVERYTHING
        if event.type == "alias" or (event.type == "identify" and event.anonymous_id)
        else Needs(
            traits=event.type == "identify",
            first_seen=event.type == "identify",
            events=frozenset({event.name}) if event.type == "track" else frozenset(),
            tenants=event.type == "group",
            last_seen=True,
        )
    )
    touch(session, event.environment_id, [user], changed, event=event)


def _unmapped_event(event: Event) -> Emission:
    """The `event.unmapped` outbound webhook event: no enabled automation has its trigger."""
    source, name = trigger_of(event)
    return Emission(
        event.environment_id,
        EVENT_UNMAPPED,
        {
            "message_id": event.message_id,
            "source": event.source,
            "type": event.type,
            "event": event.name,
            "trigger": f"{source}/{name}",
            "user_id": event.user_id,
            "anonymous_id": event.anonymous_id,
            "received_at": isoformat(event.received_at),
        },
    )


def process_event(
    database: Database,
    event_id: int,
    max_attempts: int,
    context: WorkerContext | None = None,
) -> ProcessResult:
    """Process one event in a transaction of its own: apply its effects, then start the
    automations it triggers. A failure is recorded on the event, in a transaction of its
    own.

    The runs that still need a job, and what the others made, are dispatched once this has
    committed (the unit of work's outbox).
    """
    try:
        with database.write() as (session, outbox):
            return process_in(session, event_id, context, outbox)
    except Exception as exc:
        logger.exception("processing event %s failed", event_id)
        return _record_failure(database, event_id, exc, max_attempts)


def process_in(
    session: Session,
    event_id: int,
    context: WorkerContext | None,
    outbox: Outbox,
    isolated: bool = True,
) -> ProcessResult:
    """The event's processing in the caller's transaction (processed, or skipped if it is
    gone or no longer `received`); the runs that still need a job go to `outbox`.
    `isolated`: see `advance_in_transaction`."""
    event = EventRepository(session).get_locked(event_id)
    if event is None or event.status != EventStatus.RECEIVED:
        return ProcessResult.SKIPPED
    if tracing.enabled:
        return tracing.traced(
            "processing",
            lambda: _process_loaded(session, event, context, outbox, isolated),
            lambda _: {"effects": len(event.effects)},
            parent=tracing.stored_in_event(event.payload),
            attributes={
                "event_id": event.id,
                "event_type": event.type,
                "event_name": event.name,
                "message_id": event.message_id,
                "environment_id": event.environment_id,
            },
        )
    return _process_loaded(session, event, context, outbox, isolated)


def _process_loaded(
    session: Session,
    event: Event,
    context: WorkerContext | None,
    outbox: Outbox,
    isolated: bool,
) -> ProcessResult:
    with tracing.span("identity", attributes={"event_type": event.type}):
        profile_diff, effects = _apply(session, event)
    diagnostics = _diagnose(event)
    # The waits it ends first: a run it starts never matches the event that started it.
    resumed = resume_waiting_runs(session, event)
    runs, run_effects = _start_automations(session, event)
    if not runs:
        webhooks.emit(session, outbox, _unmapped_event(event))
    run_effects = [
        f"ended the wait-for-event step of run {run.run_id} ({run.automation_id or 'ad hoc'})"
        for run in resumed
    ] + run_effects
    runs = [run for run in resumed if run.status == RunStatus.PROCESSING] + runs
    _note_for_audiences(session, event)
    pending = (
        advance_in_transaction(session, context, runs, outbox, isolated=isolated)
        if context is not None
        else [run.id for run in runs]
    )
    for run_pk in pending:
        outbox.add_run(run_pk)
    event.diagnostics = diagnostics
    event.profile_diff = profile_diff
    event.effects = effects + run_effects
    event.status = EventStatus.PROCESSED
    event.error = None
    event.attempts = event.attempts + 1
    event.processed_at = utcnow()
    return ProcessResult.PROCESSED


def _record_failure(
    database: Database, event_id: int, exc: Exception, max_attempts: int
) -> ProcessResult:
    with database.write() as (session, _):
        event = EventRepository(session).get_for_update(event_id)
        if event is None or event.status != EventStatus.RECEIVED:
            return ProcessResult.SKIPPED
        event.attempts = event.attempts + 1
        event.error = f"{type(exc).__name__}: {exc}"[:2000]
        if event.attempts >= max_attempts:
            event.status = EventStatus.FAILED
            event.processed_at = utcnow()
            return ProcessResult.FAILED
    return ProcessResult.RETRY


def preview_data(event: Event) -> dict[str, Any]:
    """What a received event gives a template preview or a test send: its properties (a
    track) or traits (an identify)."""
    source = event.payload.get("properties") or event.payload.get("traits") or {}
    return source if isinstance(source, dict) else {}


def segment_event_data(session: Session, scope: Scope, message_id: str) -> dict[str, Any] | None:
    """`preview_data` of a received Segment event; None when the environment has none."""
    event = EventRepository(session).by_message_id(scope, "segment", message_id)
    return None if event is None else preview_data(event)
