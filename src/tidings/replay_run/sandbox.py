"""The sandbox a replay runs in, and how both sides' messages are read.

The sandbox is a flow test's engine (tidings.flowtest): a temporary SQLite database holding
the environment's notification templates and the automation (the definition given, enabled);
events are fed in the order they were stored, each on a virtual clock at its received time
(never before the clock), with the profiles of their users as they are today copied in before
them; then the clock runs on through every delay. Nothing is sent (capturing providers), and
nothing is written to the real database. fetch-data and webhook steps are not called: every
request is answered 200 with an empty JSON object, so fetch-data merges nothing. Only the work
the events cause runs: schedules do not tick, and audiences are neither kept nor re-checked
(a run an audience starts is no event's).

Both sides' messages are read the same way (`effects_of`): the automation's runs started by
the events, the messages their send steps accepted, one entry per channel the message was
routed to, with its rendered subject.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from tidings.automation import membership
from tidings.automation.apply import Document
from tidings.automation.repository import RunRepository
from tidings.eventstore.repository import EventRepository
from tidings.flowtest.engine import AgendaOptions, FlowRunner
from tidings.flowtest.runner import Workspace
from tidings.flowtest.spec import FlowTest, TimedEvent
from tidings.kit.sql import chunks
from tidings.kit.time import VirtualClock, use_thread_clock
from tidings.message.repository import MessageRepository
from tidings.models import Event
from tidings.notification.repository import NotificationRepository
from tidings.notification.service import fields_of
from tidings.profile.repository import ProfileRepository
from tidings.workspace.service import Scope

# Templates copied into the sandbox at most (an environment's whole set, normally).
MAX_TEMPLATES = 10_000
# Jobs the sandbox may run per event replayed, before it stops as a runaway.
JOBS_PER_EVENT = 200


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
        return asdict(self)


@dataclass
class Effects:
    """What an automation did (or would do) for a set of events, by event messageId: its
    runs and its messages."""

    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    messages: dict[str, list[Effect]] = field(default_factory=dict)


def effects_of(
    session: Session, environment_id: str, events: Sequence[Event], automation_id: str
) -> Effects:
    """The automation's runs started by these events, and the messages of their send steps."""
    found = Effects()
    event_ids = {event.id: event.message_id for event in events}
    runs = RunRepository(session)
    run_event: dict[int, str] = {}
    for chunk in chunks(list(event_ids)):
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
    for chunk in chunks(list(run_event)):
        for run_pk, output in runs.step_outputs(chunk, "send"):
            answer = output or {}
            ids = [answer["messageId"]] if "messageId" in answer else answer.get("messageIds", [])
            for message_id in ids if isinstance(ids, list) else []:
                message_event[str(message_id)] = run_event[run_pk]
    messages = MessageRepository(session)
    for message_ids in chunks(sorted(message_event)):
        rows = messages.by_message_ids(environment_id, list(message_ids))
        channels = messages.channels_of([row.id for row in rows.values()])
        for message_id in message_ids:
            row = rows.get(message_id)
            if row is None:
                continue
            rendered = (row.output or {}).get("channels") or {}
            for channel in channels[row.id] or sorted(rendered) or ["(not routed)"]:
                subject = (rendered.get(channel) or {}).get("subject")
                event = message_event[message_id]
                found.messages.setdefault(event, []).append(
                    Effect(
                        event=event,
                        recipient=row.recipient,
                        channel=channel,
                        template=row.notification_id,
                        subject=subject if isinstance(subject, str) else None,
                    )
                )
    return found


def templates_of(session: Session, scope: Scope) -> list[Document]:
    """The environment's notification templates, as documents for the sandbox."""
    templates = []
    for row in NotificationRepository(session).page(scope, None, MAX_TEMPLATES):
        body = {k: v for k, v in fields_of(row).items() if v is not None and k != "topic_id"}
        templates.append(Document("notification", row.notification_id, body, "replay"))
    return templates


def profiles_of(
    session: Session, environment_id: str, user_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The users' profile data as it is today (users without a profile left out)."""
    profiles: dict[str, dict[str, Any]] = {}
    for chunk in chunks(user_ids):
        data = ProfileRepository(session).data_of_users([(environment_id, user) for user in chunk])
        profiles.update({user: value for (_, user), value in data.items() if value is not None})
    return profiles


def _requests_skipped() -> httpx.MockTransport:
    """fetch-data and webhook requests in a replay: not made; an empty JSON object answers."""
    return httpx.MockTransport(lambda request: httpx.Response(200, json={}))


class Sandbox:
    """One replay's sandbox, in a temporary directory (`root`), open from `__enter__` to
    `__exit__`. Feed it events in order (`feed`), run the clock on (`finish`), then read what
    it did (`effects`)."""

    def __init__(
        self,
        root: Path,
        automation_id: str,
        definition: dict[str, Any],
        templates: list[Document],
        start: datetime,
        *,
        max_events: int,
        check: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self.automation_id = automation_id
        self.documents = [
            *templates,
            Document("automation", automation_id, definition, "the replayed definition"),
        ]
        self.start = start
        self.clock = VirtualClock(start)
        self.options = AgendaOptions(
            max_jobs=max(max_events, 1) * JOBS_PER_EVENT,
            background=False,
            record=False,
            check=check,
        )
        self._stack = ExitStack()
        self._copied: set[str] = set()
        self._fed = 0
        self.runner: FlowRunner | None = None
        self.scope: Scope | None = None

    def __enter__(self) -> Sandbox:
        stack = self._stack
        try:
            runtime = stack.enter_context(Workspace(self.root).runtime())
            # No audience is re-checked here (see the module): nor is membership kept.
            runtime.database.before_commit.remove(membership.refresh_touched)
            stack.enter_context(use_thread_clock(self.clock.now))
            test = FlowTest(
                name=f"replay of {self.automation_id}",
                source="replay",
                start=self.start,
                documents=self.documents,
                events=[],
                until=None,
                expected_messages=None,
                expected_runs=None,
            )
            runner = FlowRunner(
                runtime, test, self.clock, transport=_requests_skipped(), options=self.options
            )
            stack.callback(runner.close)
            runner.setup()
            self.runner = runner
            self.scope = runner.scope()
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _parts(self) -> tuple[FlowRunner, Scope]:
        if self.runner is None or self.scope is None:
            raise RuntimeError("the sandbox is not open")
        return self.runner, self.scope

    def feed(self, events: Sequence[Event], profiles: dict[str, dict[str, Any]]) -> None:
        """Copy in the profiles of users not seen before, then feed the events."""
        runner, scope = self._parts()
        fresh = {user: data for user, data in profiles.items() if user not in self._copied}
        if fresh:
            with runner.runtime.database.write() as (session, _):
                repository = ProfileRepository(session)
                for user_id, data in fresh.items():
                    profile, _ = repository.get_or_create_for_update(scope, user_id)
                    repository.save(profile, data)
            self._copied.update(fresh)
        timed = [
            TimedEvent(event.received_at - self.start, dict(event.payload)) for event in events
        ]
        runner.feed(timed, first=self._fed)
        self._fed += len(events)

    def finish(self) -> None:
        self._parts()[0].finish()

    def effects(self, message_ids: Sequence[str]) -> Effects:
        """What the sandbox did for these events (by messageId)."""
        runner, scope = self._parts()
        with runner.runtime.database.read() as session:
            events = EventRepository(session).by_message_ids(
                scope.environment_id, "segment", message_ids
            )
            return effects_of(session, scope.environment_id, events, self.automation_id)
