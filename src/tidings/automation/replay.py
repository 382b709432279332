"""Replay: an automation's stored Segment events run again through a version or a draft in a
sandbox, and what it would do compared with what the live automation did (docs/automations.md,
"Replay").

The sandbox is a flow test (tidings.flowtest): a temporary SQLite database holding the
environment's notification templates, the automation (the definition given, enabled) and the
events' users' profiles as they are today; the events are fed in their received order on a
virtual clock at each one's received time, and the clock runs on through every delay. Nothing
is sent (capturing providers), and nothing is written to the real database. fetch-data and
webhook steps are not called: every request is answered 200 with an empty JSON object, so
fetch-data merges nothing.

The messages on both sides are read the same way: the automation's runs started by the
events, the messages their send steps accepted, one entry per channel the message was routed
to, with its rendered subject. The diff key is (event messageId, recipient, channel,
template); an entry on both sides whose subject differs is "changed".
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from tidings.automation import service
from tidings.automation.apply import Document
from tidings.automation.repository import RunRepository
from tidings.db import Database
from tidings.errors import BadRequest
from tidings.event.repository import EventRepository
from tidings.flowtest.engine import FlowError, FlowRunner
from tidings.flowtest.runner import Workspace
from tidings.flowtest.spec import FlowTest, TimedEvent
from tidings.kit.time import EARLIEST, LATEST, VirtualClock, isoformat, use_thread_clock
from tidings.message.repository import MessageRepository
from tidings.models import Event
from tidings.notification.repository import NotificationRepository
from tidings.notification.service import fields_of
from tidings.profile.repository import ProfileRepository
from tidings.workspace.service import Scope

# Events one synchronous replay takes at most, and samples of each kind of change it shows.
MAX_EVENTS = 10_000
MAX_SAMPLES = 50
# Templates copied into the sandbox at most (an environment's whole set, normally).
MAX_TEMPLATES = 10_000
# Rows per IN (...) list when reading runs, messages and profiles.
CHUNK = 500


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


@dataclass(frozen=True)
class Effect:
    """One message on one channel, as a result of one event."""

    event: str
    recipient: str | None
    channel: str
    template: str | None
    subject: str | None

    def key(self) -> tuple[str, str, str, str]:
        return (self.event, self.recipient or "", self.channel, self.template or "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "recipient": self.recipient,
            "channel": self.channel,
            "template": self.template,
            "subject": self.subject,
        }


@dataclass
class Effects:
    """What an automation did (or would do) for a set of events: its runs and messages."""

    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    messages: list[Effect] = field(default_factory=list)


@dataclass
class ReplayResult:
    automation_id: str
    definition: str
    start: datetime
    end: datetime
    events: list[Event]
    truncated: bool
    would: Effects
    did: Effects
    samples: int

    def diff(self) -> dict[str, Any]:
        before = {effect.key(): effect for effect in self.did.messages}
        after = {effect.key(): effect for effect in self.would.messages}
        added = [after[key] for key in after if key not in before]
        removed = [before[key] for key in before if key not in after]
        changed = [
            (before[key], after[key])
            for key in after
            if key in before and before[key].subject != after[key].subject
        ]
        n = self.samples
        return {
            "counts": {
                "added": len(added),
                "removed": len(removed),
                "changed": len(changed),
                "unchanged": len(after) - len(added) - len(changed),
            },
            "samples": {
                "added": [effect.as_dict() for effect in added[:n]],
                "removed": [effect.as_dict() for effect in removed[:n]],
                "changed": [
                    {**new.as_dict(), "subject_before": old.subject} for old, new in changed[:n]
                ],
            },
        }

    def as_dict(self) -> dict[str, Any]:
        by_event: dict[str, list[Effect]] = {}
        for effect in self.would.messages:
            by_event.setdefault(effect.event, []).append(effect)
        return {
            "automation_id": self.automation_id,
            "definition": self.definition,
            "from": isoformat(self.start),
            "to": isoformat(self.end),
            "event_count": len(self.events),
            "truncated": self.truncated,
            "events": [
                {
                    "event": event.message_id,
                    "type": event.type,
                    "name": event.name,
                    "user_id": event.user_id,
                    "received_at": isoformat(event.received_at),
                    "runs": self.would.runs.get(event.message_id, []),
                    "messages": [effect.as_dict() for effect in by_event.get(event.message_id, [])],
                }
                for event in self.events
            ],
            "diff": self.diff(),
        }


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for index in range(0, len(values), CHUNK):
        yield values[index : index + CHUNK]


def effects_of(
    session: Session, environment_id: str, events: Sequence[Event], automation_id: str
) -> Effects:
    """The automation's runs started by these events, and the messages of their send steps."""
    found = Effects()
    event_ids = {event.id: event.message_id for event in events}
    runs = RunRepository(session)
    run_event: dict[int, str] = {}
    for chunk in _chunks(list(event_ids)):
        for run in runs.of_events(chunk):
            if run.automation_id != automation_id or run.event_pk is None:
                continue
            event = event_ids[run.event_pk]
            run_event[run.id] = event
            entry = {"run_id": run.run_id, "status": str(run.status)}
            if run.error:
                entry["error"] = run.error
            found.runs.setdefault(event, []).append(entry)
    message_event: dict[str, str] = {}
    for chunk in _chunks(list(run_event)):
        for run_pk, output in runs.step_outputs(chunk, "send"):
            answer = output or {}
            ids = [answer["messageId"]] if "messageId" in answer else answer.get("messageIds", [])
            for message_id in ids if isinstance(ids, list) else []:
                message_event[str(message_id)] = run_event[run_pk]
    messages = MessageRepository(session)
    for chunk in _chunks(sorted(message_event)):
        rows = messages.by_message_ids(environment_id, list(chunk))
        channels = messages.channels_of([row.id for row in rows.values()])
        for message_id in chunk:
            row = rows.get(message_id)
            if row is None:
                continue
            rendered = (row.output or {}).get("channels") or {}
            for channel in channels[row.id] or sorted(rendered) or ["(not routed)"]:
                subject = (rendered.get(channel) or {}).get("subject")
                found.messages.append(
                    Effect(
                        event=message_event[message_id],
                        recipient=row.recipient,
                        channel=channel,
                        template=row.notification_id,
                        subject=subject if isinstance(subject, str) else None,
                    )
                )
    return found


@dataclass
class _Inputs:
    label: str
    definition: dict[str, Any]
    templates: list[Document]
    events: list[Event]
    truncated: bool
    profiles: dict[str, dict[str, Any]]
    did: Effects


def _read_inputs(session: Session, scope: Scope, request: ReplayRequest) -> _Inputs:
    automation, current = service.get(session, scope, request.automation_id)
    if request.definition is not None:
        label, definition = "draft", dict(request.definition)
    elif request.version is not None:
        version = service.get_version(session, scope, request.automation_id, request.version)
        label, definition = f"version {version.version}", dict(version.definition)
    else:
        label, definition = f"version {current.version}", dict(current.definition)
    # Replayed as if enabled: a disabled draft is still worth comparing.
    definition["enabled"] = True
    templates = []
    for row in NotificationRepository(session).page(scope, None, MAX_TEMPLATES):
        body = {k: v for k, v in fields_of(row).items() if v is not None and k != "topic_id"}
        templates.append(Document("notification", row.notification_id, body, "replay"))
    events = list(
        EventRepository(session).received_between(
            scope.environment_id, "segment", request.start, request.end, request.limit + 1
        )
    )
    truncated = len(events) > request.limit
    events = events[: request.limit]
    users = sorted({event.user_id for event in events if event.user_id})
    profiles: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(users):
        data = ProfileRepository(session).data_of_users(
            [(scope.environment_id, user) for user in chunk]
        )
        profiles.update({user: value for (_, user), value in data.items() if value is not None})
    did = effects_of(session, scope.environment_id, events, automation.automation_id)
    return _Inputs(label, definition, templates, events, truncated, profiles, did)


def _requests_skipped() -> httpx.MockTransport:
    """fetch-data and webhook requests in a replay: not made; an empty JSON object answers."""
    return httpx.MockTransport(lambda request: httpx.Response(200, json={}))


def _simulate(automation_id: str, inputs: _Inputs) -> Effects:
    if not inputs.events:
        return Effects()
    start = inputs.events[0].received_at
    documents = [
        *inputs.templates,
        Document("automation", automation_id, inputs.definition, "the replayed definition"),
    ]
    test = FlowTest(
        name=f"replay of {automation_id}",
        source="replay",
        start=start,
        documents=documents,
        events=[
            TimedEvent(event.received_at - start, dict(event.payload)) for event in inputs.events
        ],
        until=None,
        expected_messages=None,
        expected_runs=None,
    )
    clock = VirtualClock(start)
    with tempfile.TemporaryDirectory(prefix="tidings-replay-") as root:
        workspace = Workspace(Path(root))
        with workspace.runtime() as runtime, use_thread_clock(clock.now):
            runner = FlowRunner(runtime, test, clock, transport=_requests_skipped())
            try:
                runner.setup()
                scope = runner.scope()
                with runtime.database.write() as (session, _):
                    profiles = ProfileRepository(session)
                    for user_id, data in inputs.profiles.items():
                        profile, _ = profiles.get_or_create_for_update(scope, user_id)
                        profiles.save(profile, data)
                runner.play()
                with runtime.database.read() as session:
                    events = EventRepository(session).received_between(
                        scope.environment_id, "segment", EARLIEST, LATEST, len(inputs.events)
                    )
                    return effects_of(session, scope.environment_id, events, automation_id)
            finally:
                runner.close()


def replay(database: Database, scope: Scope, request: ReplayRequest) -> ReplayResult:
    """Run the request's events through its definition in a sandbox and compare."""
    if request.end <= request.start:
        raise BadRequest("to must be after from.", field="to")
    if not 1 <= request.limit <= MAX_EVENTS:
        raise BadRequest(f"limit must be 1 to {MAX_EVENTS}.", field="limit")
    if not 0 <= request.samples <= MAX_SAMPLES:
        raise BadRequest(f"samples must be 0 to {MAX_SAMPLES}.", field="samples")
    with database.read() as session:
        inputs = _read_inputs(session, scope, request)
    try:
        would = _simulate(request.automation_id, inputs)
    except FlowError as exc:
        raise BadRequest(f"the replay could not run: {exc}", code="replay_failed") from exc
    return ReplayResult(
        automation_id=request.automation_id,
        definition=inputs.label,
        start=request.start,
        end=request.end,
        events=inputs.events,
        truncated=inputs.truncated,
        would=would,
        did=inputs.did,
        samples=request.samples,
    )


def summary(result: dict[str, Any]) -> str:
    """A replay's result (as_dict) as text, for the terminal."""
    diff = result["diff"]
    counts = diff["counts"]
    would = sum(len(event["messages"]) for event in result["events"])
    lines = [
        f"Replay of {result['automation_id']} ({result['definition']}) over "
        f"{result['event_count']} events from {result['from']} to {result['to']}"
        + (" (truncated at the limit)" if result["truncated"] else ""),
        f"would send {would} messages: {counts['added']} added, {counts['removed']} removed, "
        f"{counts['changed']} changed, {counts['unchanged']} unchanged",
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
