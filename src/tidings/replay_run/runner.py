"""Carrying a replay out (`run`), in a replay process or in `tidings replay`:

1. claim the replay (queued, or running under an expired lease: a crash) and hold its lease
   from a heartbeat thread, which stores the progress and notices a cancel;
2. feed the window's events, CHUNK at a time and in the order they were stored, into a
   sandbox (replay_run/sandbox.py), then run its clock on through every delay;
3. read both sides' messages a chunk of events at a time, and store each event's result
   (automation_replay_event) with the running counts and samples of the diff.

Live first: every quarter of a second of its work, a replay looks at the live events, and
while one has waited 0.1 s to be processed it pauses (LIVE_* below): on a machine that live
traffic keeps busy, the replay waits, and its time limit runs on.

Memory stays bounded by the chunk, whatever the window: the sandbox lives on disk. The
diff key is (event messageId, recipient, channel, template); an entry on both sides whose
subject differs is "changed".
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tidings.db import Database
from tidings.eventstore.repository import EventRepository
from tidings.flowtest.engine import FlowError
from tidings.kit.time import utcnow
from tidings.models import Event, ReplayStatus
from tidings.replay import service
from tidings.replay.repository import ReplayRepository
from tidings.replay_run.sandbox import (
    Effect,
    Effects,
    Sandbox,
    effects_of,
    profiles_of,
    templates_of,
)
from tidings.workspace.service import Scope

logger = logging.getLogger(__name__)

# Events fed, compared and stored per step.
CHUNK = 500
# Messages kept per event and side in its stored result (the counts count them all).
MESSAGES_KEPT = 100
# Live first: every LIVE_LOOK_SECONDS of its work, a replay looks at the live events; while
# one received in the last LIVE_RECENT_SECONDS has waited LIVE_LAG_SECONDS to be processed,
# it pauses, LIVE_PAUSE_SECONDS at a time.
LIVE_LOOK_SECONDS = 0.25
LIVE_RECENT_SECONDS = 30.0
LIVE_LAG_SECONDS = 0.1
LIVE_PAUSE_SECONDS = 0.1
# A running replay's lease, renewed by its heartbeat every HEARTBEAT_SECONDS.
LEASE_SECONDS = 60.0
HEARTBEAT_SECONDS = 5.0

MEMORY_ERROR = (
    "the replay ran out of memory (TIDINGS_REPLAY_MEMORY_MB); replay a shorter window or "
    "fewer events"
)


class Stopped(Exception):
    """The replay stops: canceled, or past its time limit (the message says which)."""


class _Heartbeat:
    """Holds a running replay's lease and stores its progress, from a thread of its own;
    `check` raises Stopped once the replay was canceled or its time is up."""

    def __init__(
        self,
        database: Database,
        replay_pk: int,
        timeout: float,
        progress: Callable[[int], None] | None = None,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.database = database
        self.progress = progress
        self.pause = pause
        self.replay_pk = replay_pk
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.done = 0
        self.canceled = False
        # Seconds paused for live events, and when to look at them next.
        self.paused = 0.0
        self._next_look = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="replay-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.beat()
            except Exception:  # the next beat tries again; the lease is a minute long
                logger.warning("a replay's heartbeat failed", exc_info=True)

    def beat(self) -> None:
        lease_until = utcnow() + timedelta(seconds=LEASE_SECONDS)
        with self.database.write() as (session, _):
            status = ReplayRepository(session).heartbeat(self.replay_pk, lease_until, self.done)
        if status != ReplayStatus.RUNNING:
            self.canceled = True

    def check(self) -> None:
        """Raise Stopped if the replay must stop; first, give way to live events."""
        if self.progress is not None:
            self.progress(self.done)
        self._stop_if_due()
        if time.monotonic() < self._next_look:
            return
        while self._live_events_wait():
            self.paused += LIVE_PAUSE_SECONDS
            self.pause(LIVE_PAUSE_SECONDS)
            self._stop_if_due()
        self._next_look = time.monotonic() + LIVE_LOOK_SECONDS

    def _stop_if_due(self) -> None:
        if self.canceled:
            raise Stopped("canceled")
        if time.monotonic() > self.deadline:
            raise Stopped(
                f"the replay took longer than its limit of {self.timeout:.0f} s "
                "(TIDINGS_REPLAY_TIMEOUT_SECONDS); replay a shorter window or fewer events"
            )

    def _live_events_wait(self) -> bool:
        """Whether a live event received in the last LIVE_RECENT_SECONDS has waited
        LIVE_LAG_SECONDS or more to be processed. (Older ones waiting are retries or stuck
        work, not live traffic: they must not stop a replay.) Real time, not the sandbox's."""
        now = datetime.now(UTC)
        with self.database.read() as session:
            return EventRepository(session).any_waiting(
                now - timedelta(seconds=LIVE_RECENT_SECONDS),
                now - timedelta(seconds=LIVE_LAG_SECONDS),
            )


@dataclass
class _Diff:
    """The running counts and samples of a replay's diff, and each event's stored row."""

    samples: int
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("added", "removed", "changed", "unchanged"), 0)
    )
    kept: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"added": [], "removed": [], "changed": []}
    )
    messages: dict[str, int] = field(default_factory=lambda: {"would": 0, "did": 0})

    def _sample(self, kind: str, value: dict[str, Any]) -> None:
        self.counts[kind] += 1
        if len(self.kept[kind]) < self.samples:
            self.kept[kind].append(value)

    def event(self, after: list[Effect], before: list[Effect]) -> str:
        """Count one event's messages; returns its kind of change."""
        would = {effect.key(): effect for effect in after}
        did = {effect.key(): effect for effect in before}
        self.messages["would"] += len(would)
        self.messages["did"] += len(did)
        kinds = set()
        for key, effect in would.items():
            old = did.get(key)
            if old is None:
                self._sample("added", effect.as_dict())
                kinds.add("added")
            elif old.subject != effect.subject:
                self._sample("changed", {**effect.as_dict(), "subject_before": old.subject})
                kinds.add("changed")
            else:
                self.counts["unchanged"] += 1
        for key, effect in did.items():
            if key not in would:
                self._sample("removed", effect.as_dict())
                kinds.add("removed")
        if not would and not did:
            return "none"
        if not kinds:
            return "same"
        return kinds.pop() if len(kinds) == 1 else "changed"

    def rows(
        self, replay_pk: int, position: int, events: Sequence[Event], would: Effects, did: Effects
    ) -> list[dict[str, Any]]:
        rows = []
        for offset, event in enumerate(events):
            after = would.messages.get(event.message_id, [])
            before = did.messages.get(event.message_id, [])
            rows.append(
                {
                    "replay_pk": replay_pk,
                    "position": position + offset,
                    "event_id": event.message_id,
                    "type": event.type,
                    "name": event.name,
                    "user_id": event.user_id,
                    "received_at": event.received_at,
                    "change": self.event(after, before),
                    "runs": would.runs.get(event.message_id, []),
                    "messages": [effect.as_dict() for effect in after[:MESSAGES_KEPT]],
                    "before": [effect.as_dict() for effect in before[:MESSAGES_KEPT]],
                }
            )
        return rows

    def result(self) -> dict[str, Any]:
        return {"counts": self.counts, "samples": self.kept, "messages": self.messages}


@dataclass(frozen=True)
class _Job:
    """What a claimed replay needs, read once."""

    pk: int
    scope: Scope
    automation_id: str
    definition: dict[str, Any]
    start: datetime
    end: datetime
    limit: int
    samples: int


def _claim(database: Database, replay_pk: int) -> _Job | None:
    now = utcnow()
    with database.write() as (session, _):
        repository = ReplayRepository(session)
        if not repository.claim(replay_pk, now, now + timedelta(seconds=LEASE_SECONDS)):
            return None
        replay = repository.by_pk(replay_pk)
        assert replay is not None
        job = _Job(
            pk=replay.id,
            scope=Scope(replay.workspace_id, replay.environment_id, "", ""),
            automation_id=replay.automation_id,
            definition=dict(replay.definition),
            start=replay.window_start,
            end=replay.window_end,
            limit=replay.event_limit,
            samples=replay.sample_count,
        )
    # An earlier attempt (its process died) may have stored some events' results.
    service.clear_results(database, replay_pk)
    with database.read() as session:
        total = EventRepository(session).count_received(
            job.scope.environment_id, "segment", job.start, job.end, job.limit + 1
        )
    with database.write() as (session, _):
        ReplayRepository(session).set_total(replay_pk, min(total, job.limit), total > job.limit)
    return job


def _feed(database: Database, job: _Job, sandbox: Sandbox, beat: _Heartbeat) -> list[int]:
    """Feed the window's events into the sandbox; returns their ids, in order."""
    fed: list[int] = []
    environment_id = job.scope.environment_id
    while len(fed) < job.limit:
        beat.check()
        with database.read() as session:
            events = EventRepository(session).received_page(
                environment_id,
                "segment",
                job.start,
                job.end,
                fed[-1] if fed else 0,
                min(CHUNK, job.limit - len(fed)),
            )
            users = sorted({event.user_id for event in events if event.user_id})
            profiles = profiles_of(session, environment_id, users)
        if not events:
            break
        sandbox.feed(events, profiles)
        fed.extend(event.id for event in events)
        beat.done = len(fed)
    return fed


def _compare(
    database: Database, job: _Job, sandbox: Sandbox, fed: list[int], beat: _Heartbeat
) -> _Diff:
    diff = _Diff(job.samples)
    for position in range(0, len(fed), CHUNK):
        beat.check()
        with database.read() as session:
            events = EventRepository(session).by_ids(fed[position : position + CHUNK])
            did = effects_of(session, job.scope.environment_id, events, job.automation_id)
        would = sandbox.effects([event.message_id for event in events])
        rows = diff.rows(job.pk, position, events, would, did)
        with database.write() as (session, _):
            ReplayRepository(session).add_events(rows)
    return diff


def run(
    database: Database,
    replay_pk: int,
    *,
    timeout: float,
    progress: Callable[[int], None] | None = None,
    pause: Callable[[float], None] = time.sleep,
) -> str | None:
    """Carry out a replay (claimed here, unless it is finished or another process holds
    it: then None); returns its final status. Never raises for the replay's own failures:
    they are stored on it (`error`)."""
    job = _claim(database, replay_pk)
    if job is None:
        return None
    status, values = ReplayStatus.DONE, {}
    with _Heartbeat(database, replay_pk, timeout, progress, pause) as beat:
        try:
            with database.read() as session:
                templates = templates_of(session, job.scope)
            with (
                tempfile.TemporaryDirectory(prefix="tidings-replay-") as root,
                Sandbox(
                    Path(root),
                    job.automation_id,
                    job.definition,
                    templates,
                    job.start,
                    max_events=job.limit,
                    check=beat.check,
                ) as sandbox,
            ):
                fed = _feed(database, job, sandbox, beat)
                sandbox.finish()
                diff = _compare(database, job, sandbox, fed, beat)
            values = {"result": diff.result(), "events_done": len(fed)}
        except Stopped as exc:
            if beat.canceled:
                return ReplayStatus.CANCELED
            status, values = ReplayStatus.FAILED, {"error": str(exc)}
        except FlowError as exc:
            status, values = ReplayStatus.FAILED, {"error": f"the replay could not run: {exc}"}
        except MemoryError:
            status, values = ReplayStatus.FAILED, {"error": MEMORY_ERROR}
    with database.write() as (session, _):
        if not ReplayRepository(session).finish(replay_pk, status, utcnow(), **values):
            return ReplayStatus.CANCELED
    return status
