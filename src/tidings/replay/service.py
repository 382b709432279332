"""Replays (docs/automations.md, "Replay"): what a version or a draft of an automation would
have done with the Segment events of a window, against what the automation did.

`start` stores a replay `queued` (the API's POST, Studio's "What would change"), and its
job hands it to a replay process (replay/process.py); `tidings replay` stores one and runs
it in its own process. replay_run/runner.py carries a replay out, wherever it runs. `keep`
queues again the replays nobody runs; `expire` deletes old ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tidings.automation import service as automations
from tidings.automation.service import DefinitionError
from tidings.db import Database, Outbox
from tidings.errors import BadRequest, Conflict, not_in_environment
from tidings.kit.ids import new_id
from tidings.kit.outbound import OutboundGuard
from tidings.kit.time import isoformat, utcnow
from tidings.models import AutomationReplay, AutomationReplayEvent, ReplayStatus
from tidings.replay.repository import ReplayRepository
from tidings.workspace.service import Scope

logger = logging.getLogger(__name__)

# Events one replay takes at most, and samples of each kind of change it keeps.
MAX_EVENTS = 100_000
MAX_SAMPLES = 50
# Replays queued or running at once in an environment.
MAX_UNFINISHED = 3
# A replay taken this many times (its process died each time) fails.
MAX_ATTEMPTS = 3
# A replay queued this long is queued again (no replay process was free, or its job was lost).
QUEUED_WAIT_SECONDS = 30.0
# Result rows deleted per transaction.
CLEAR_CHUNK = 5_000
# Finished replays are deleted this long after they were asked for.
KEEP = timedelta(days=7)

STOPPED_ERROR = (
    f"the replay's process stopped {MAX_ATTEMPTS} times before it finished (a crash, or the "
    "machine ran out of memory); replay a shorter window or fewer events"
)

missing_replay = not_in_environment(
    "replay",
    "POST /automations/{id}/replay",
    code="replay_not_found",
    field="replay_id",
)


@dataclass(frozen=True)
class ReplayRequest:
    automation_id: str
    start: datetime
    end: datetime
    limit: int = 1000
    version: int | None = None
    # A draft definition (as PUT /automations/{id} takes it); else `version`, else the current.
    definition: dict[str, Any] | None = None
    samples: int = 10


def _definition(
    session: Session, scope: Scope, request: ReplayRequest, outbound: OutboundGuard
) -> tuple[str, dict[str, Any]]:
    """The label and definition to replay, checked as PUT /automations/{id} checks one."""
    _, current = automations.get(session, scope, request.automation_id)
    if request.definition is not None:
        try:
            definition = automations.validate_definition(
                request.automation_id, request.definition, outbound=outbound
            )
            automations.check_references(
                session, scope, request.automation_id, definition, current=current.definition
            )
        except DefinitionError as exc:
            raise BadRequest(
                f"definition.{exc.message}", code=exc.code, field=f"definition.{exc.field}"
            ) from exc
        label = "draft"
    elif request.version is not None:
        version = automations.get_version(session, scope, request.automation_id, request.version)
        label, definition = f"version {version.version}", dict(version.definition)
    else:
        label, definition = f"version {current.version}", dict(current.definition)
    # Replayed as if enabled: a disabled draft is still worth comparing.
    return label, {**definition, "enabled": True}


def start(
    session: Session,
    outbox: Outbox | None,
    scope: Scope,
    request: ReplayRequest,
    outbound: OutboundGuard,
) -> AutomationReplay:
    """Store a replay, queued for a replay process (the outbox's job); without an outbox,
    claimed for the caller, who runs it (`run`) at once."""
    if request.end <= request.start:
        raise BadRequest("to must be after from.", field="to")
    if not 1 <= request.limit <= MAX_EVENTS:
        raise BadRequest(f"limit must be 1 to {MAX_EVENTS}.", field="limit")
    if not 0 <= request.samples <= MAX_SAMPLES:
        raise BadRequest(f"samples must be 0 to {MAX_SAMPLES}.", field="samples")
    label, definition = _definition(session, scope, request, outbound)
    repository = ReplayRepository(session)
    if repository.unfinished_in(scope.environment_id) >= MAX_UNFINISHED:
        raise Conflict(
            f"{MAX_UNFINISHED} replays are queued or running in this environment. Wait for "
            "one to finish, or cancel one (DELETE /automations/{id}/replays/{replay_id}).",
            code="too_many_replays",
        )
    now = utcnow()
    replay = repository.add(
        AutomationReplay(
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            replay_id=new_id("rpl"),
            automation_id=request.automation_id,
            label=label,
            definition=definition,
            window_start=request.start,
            window_end=request.end,
            event_limit=request.limit,
            sample_count=request.samples,
            status=ReplayStatus.QUEUED,
            events_done=0,
            truncated=False,
            attempts=0,
            created_at=now,
        )
    )
    if outbox is not None:
        outbox.add_replay(replay.id)
    return replay


def get(session: Session, scope: Scope, automation_id: str, replay_id: str) -> AutomationReplay:
    replay = ReplayRepository(session).get(scope.environment_id, replay_id)
    if replay is None or replay.automation_id != automation_id:
        raise missing_replay(replay_id)
    return replay


def by_pk(session: Session, replay_pk: int) -> AutomationReplay:
    replay = ReplayRepository(session).by_pk(replay_pk)
    if replay is None:
        raise missing_replay(str(replay_pk))
    return replay


def cancel(session: Session, scope: Scope, automation_id: str, replay_id: str) -> bool:
    """Cancel an unfinished replay (True), or delete a finished one and its results."""
    replay = get(session, scope, automation_id, replay_id)
    repository = ReplayRepository(session)
    if replay.status in ReplayStatus.UNFINISHED:
        repository.finish(replay.id, ReplayStatus.CANCELED, utcnow())
        return True
    repository.delete(replay.id)
    return False


def keep(database: Database, *, queued_for: float = QUEUED_WAIT_SECONDS) -> int:
    """Queue again the replays nobody runs: queued for over `queued_for` seconds (no process
    was free, or the job was lost; 0 once a process has just been freed), or running under
    an expired lease (their process died); one that has been taken MAX_ATTEMPTS times fails
    instead. Returns how many were queued."""
    now = utcnow()
    queued = 0
    with database.write() as (session, outbox):
        repository = ReplayRepository(session)
        for replay_pk in repository.stale(now, now - timedelta(seconds=queued_for), 100):
            replay = repository.by_pk(replay_pk)
            if replay is None:
                continue
            if replay.attempts >= MAX_ATTEMPTS:
                repository.finish(replay_pk, ReplayStatus.FAILED, now, error=STOPPED_ERROR)
            else:
                outbox.add_replay(replay_pk)
                queued += 1
    return queued


def fail(database: Database, replay_pk: int, error: str) -> None:
    """Mark a replay failed when its process ended without finishing it."""
    with database.write() as (session, _):
        ReplayRepository(session).finish(replay_pk, ReplayStatus.FAILED, utcnow(), error=error)


def expire(database: Database, now: datetime, *, limit: int = 10) -> int:
    """Delete replays finished and asked for more than KEEP ago, their event rows a few
    thousand per transaction; returns how many replays."""
    with database.read() as session:
        doomed = ReplayRepository(session).finished_before(now - KEEP, limit)
    for replay_pk in doomed:
        clear_results(database, replay_pk)
        with database.write() as (session, _):
            ReplayRepository(session).delete(replay_pk)
    return len(doomed)


def clear_results(database: Database, replay_pk: int) -> None:
    """Delete a replay's event rows, CLEAR_CHUNK per transaction."""
    while True:
        with database.write() as (session, _):
            if ReplayRepository(session).clear_events(replay_pk, CLEAR_CHUNK) < CLEAR_CHUNK:
                return


# -- Views -----------------------------------------------------------------------------------


def view(replay: AutomationReplay) -> dict[str, Any]:
    result = replay.result or {}
    return {
        "replay_id": replay.replay_id,
        "automation_id": replay.automation_id,
        "definition": replay.label,
        "from": isoformat(replay.window_start),
        "to": isoformat(replay.window_end),
        "limit": replay.event_limit,
        "status": replay.status,
        "progress": {"events_done": replay.events_done, "events_total": replay.events_total},
        "truncated": replay.truncated,
        "attempts": replay.attempts,
        "error": replay.error,
        "created_at": isoformat(replay.created_at),
        "started_at": isoformat(replay.started_at) if replay.started_at else None,
        "finished_at": isoformat(replay.finished_at) if replay.finished_at else None,
        "messages": result.get("messages"),
        "diff": (
            {"counts": result["counts"], "samples": result["samples"]}
            if "counts" in result
            else None
        ),
    }


def event_view(row: AutomationReplayEvent) -> dict[str, Any]:
    return {
        "event": row.event_id,
        "type": row.type,
        "name": row.name,
        "user_id": row.user_id,
        "received_at": isoformat(row.received_at),
        "change": row.change,
        "runs": row.runs,
        "messages": row.messages,
        "before": row.before,
    }


def summary(replay: dict[str, Any]) -> str:
    """A finished replay's view as text, for the terminal."""
    head = (
        f"Replay of {replay['automation_id']} ({replay['definition']}) over "
        f"{replay['progress']['events_done']} events from {replay['from']} to {replay['to']}"
        + (" (truncated at the limit)" if replay["truncated"] else "")
    )
    if replay["status"] != ReplayStatus.DONE:
        return f"{head}: {replay['status']}" + (f": {replay['error']}" if replay["error"] else "")
    diff = replay["diff"]
    counts = diff["counts"]
    lines = [
        head,
        f"would send {replay['messages']['would']} messages: {counts['added']} added, "
        f"{counts['removed']} removed, {counts['changed']} changed, "
        f"{counts['unchanged']} unchanged",
    ]

    def line(sample: dict[str, Any]) -> str:
        return (
            f"  {sample['event']} -> {sample['recipient']} {sample['channel']} "
            f"{sample['template']}: {sample['subject']!r}"
        )

    for kind in ("added", "removed", "changed"):
        samples = diff["samples"][kind]
        if samples:
            lines.append(f"{kind}:")
            for sample in samples:
                lines.append(line(sample))
                if kind == "changed":
                    lines.append(f"    was: {sample['subject_before']!r}")
    return "\n".join(lines)
