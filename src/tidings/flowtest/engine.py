"""The engine of a flow test: Tidings' own job functions on a virtual clock, in one thread.

The runner stands in for the job queue and the sweeper, and nothing else:
- every committed unit of work's outbox comes to `Agenda.dispatch` (the database's
  dispatcher), which keeps each job it asks for (an event to process, a run to advance at its
  `wake_at`, a message at its `send_at`, a retry) at its time instead of queueing it;
- the clock (`kit.time.utcnow`, which every module reads) stands still while the due jobs
  run, one at a time, each by the same plain function a Huey task calls
  (`process_events`, `runs.advance_run`, `pipeline.process_messages`, …);
- then it jumps to the next time something is due: a job's time, a schedule's next tick
  (`schedules.fire_due`), an audience member's re-check (`membership.check_due`).

So a two-day delay takes no time, and two runs of a test do the same thing in the same
order. Providers are not called: every channel has a capturing provider (`Capture`) and
the runner records each message the engine sends, with the virtual time it was sent at.
fetch-data requests get the test's canned answers (`http`), or a 404.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from tidings.automation import membership, runs, schedules
from tidings.automation.apply import apply_documents, environment_scope
from tidings.automation.repository import RunRepository
from tidings.broadcast import service as broadcasts
from tidings.db import Outbox
from tidings.errors import AppError
from tidings.event.batching import process_events
from tidings.flowtest.spec import FlowTest, HttpStub, TimedEvent, format_offset
from tidings.ingest.validation import validate_segment_event
from tidings.ingest.writer import IngestItem, IngestWriter
from tidings.ingest.writer import Outcome as IngestOutcome
from tidings.kit.time import VirtualClock
from tidings.message import pipeline
from tidings.message.repository import MessageRepository
from tidings.models.message import DeliveryStatus
from tidings.provider.base import CHANNELS, Delivery, Provider, ProviderConfig, SendResult
from tidings.provider.service import ConfiguredProvider, ConfiguredProviders
from tidings.runtime import Runtime
from tidings.worker.context import WorkerContext
from tidings.workspace import service as workspace_service
from tidings.workspace.service import Scope

logger = logging.getLogger(__name__)

# Jobs one test may run before it is stopped as a runaway (a run invoking itself forever).
MAX_JOBS = 20_000
# Without `until`, the clock runs on after the last event until nothing is due, at most this.
IDLE_HORIZON = timedelta(days=366)
# An event's processing that asks to be retried is retried this much later (JobEngine's).
EVENT_RETRY = timedelta(seconds=2)


class FlowError(RuntimeError):
    """The test could not be run to its end (bad definitions, a runaway); not a mismatch."""


class CaptureConfig(ProviderConfig):
    pass


class Capture(Provider[CaptureConfig]):
    """Accepts every message and sends nothing; the runner records what was sent."""

    name: ClassVar[str] = "flowtest"
    channel: ClassVar[str] = "email"
    display_name: ClassVar[str] = "Flow test capture"

    def send(self, delivery: Delivery) -> SendResult:
        return SendResult(provider_message_id=f"flowtest-{delivery.message_id}")


# One capturing provider per channel that has vendors (the inbox needs none).
CAPTURES: dict[str, type[Capture]] = {
    channel: type(
        f"Capture{channel.title()}",
        (Capture,),
        {"name": f"flowtest-{channel}", "channel": channel},
    )
    for channel in CHANNELS
    if channel != "inbox"
}


class CaptureProviders(ConfiguredProviders):
    """Every environment has exactly the capturing providers, whatever is configured."""

    def __init__(self, fernet: Fernet, http: httpx.Client, at: datetime) -> None:
        super().__init__(fernet, http)
        self._at = at

    def get(self, session: Session, environment_id: str) -> list[ConfiguredProvider]:
        return [
            ConfiguredProvider(
                environment_id=environment_id,
                name=cls.name,
                channel=channel,
                priority=0,
                provider_class=cls,
                config=CaptureConfig(),
                created_at=self._at,
                updated_at=self._at,
            )
            for channel, cls in CAPTURES.items()
        ]


def stub_transport(stubs: list[HttpStub]) -> httpx.MockTransport:
    """fetch-data's requests answered from the test's `http` list: the first stub of the
    request's method and URL (the query compared only when the stub has one), else 404."""

    def answer(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        for stub in stubs:
            wanted = stub.url if "?" in stub.url else url.split("?", 1)[0]
            if stub.method == request.method and stub.url == wanted:
                return httpx.Response(stub.status, json=stub.body)
        return httpx.Response(
            404, json={"error": f"the flow test has no http stub for {request.method} {url}"}
        )

    return httpx.MockTransport(answer)


@dataclass
class SentMessage:
    """One message as a provider received it, at the virtual time it was sent."""

    at: timedelta
    message_id: str
    to: str | None
    channel: str
    template: str | None
    address: str | None
    content: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        content = self.content
        body = content.get("text") or content.get("body") or content.get("html")
        if not isinstance(body, str):
            body = json.dumps(body, sort_keys=True) if body is not None else None
        values: dict[str, Any] = {
            "at": self.at,
            "to": self.to,
            "channel": self.channel,
            "template": self.template,
            "address": self.address,
            "subject": content.get("subject"),
            "title": content.get("title"),
            "body": body,
        }
        return {key: value for key, value in values.items() if value is not None}


@dataclass
class FlowOutcome:
    messages: list[SentMessage] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    jobs: int = 0


@dataclass(frozen=True)
class AgendaOptions:
    """How a flow's agenda runs. A flow test takes the defaults; a replay (replay_run/sandbox.py)
    runs only what its events cause, without recording sends, under a larger job budget and
    a check of its own (its deadline, a cancel)."""

    max_jobs: int = MAX_JOBS
    # Fire schedules' ticks and audiences' re-checks: work no event causes.
    background: bool = True
    # Keep each message sent in `FlowOutcome.messages`.
    record: bool = True
    # Called before each job; it raises to stop the flow.
    check: Callable[[], None] | None = None


@dataclass(order=True)
class _Job:
    at: datetime
    sequence: int
    kind: str = field(compare=False)
    argument: Any = field(compare=False)


class Agenda:
    """The job queue of a flow test: the database's dispatcher, keeping each job at its
    time, and the loop that runs them on the virtual clock."""

    def __init__(
        self, runtime: Runtime, context: WorkerContext, clock: VirtualClock, options: AgendaOptions
    ) -> None:
        self.runtime = runtime
        self.database = runtime.database
        self.context = context
        self.clock = clock
        self.options = options
        self.start = clock.now()
        self._jobs: list[_Job] = []
        self._sequence = itertools.count()
        self.outcome = FlowOutcome()

    # tidings.db.Dispatcher
    def dispatch(self, outbox: Outbox) -> None:
        for _, event_ids in outbox.events:
            self._add("events", event_ids)
        for message_id, at, _ in [*outbox.messages, *outbox.bulk_messages]:
            self._add("message", message_id, at)
        for run_pk, at in outbox.runs:
            self._add("run", run_pk, at)
        for delivery_id, at in outbox.deliveries:
            self._add("delivery", delivery_id, at)
        for audience_pk in outbox.scans:
            self._add("scan", audience_pk)
        for broadcast_pk, cursor, at in outbox.broadcasts:
            self._add("broadcast", (broadcast_pk, cursor), at)
        # Outbound webhooks and inbox streams have no receiver in a flow test.

    def _add(self, kind: str, argument: Any, at: datetime | None = None) -> None:
        now = self.clock.now()
        due = now if at is None or at < now else at
        heapq.heappush(self._jobs, _Job(due, next(self._sequence), kind, argument))

    def run_due(self) -> None:
        """Run everything due at the clock's time, including what that makes due."""
        background = self.options.background
        while True:
            now = self.clock.now()
            fired = background and schedules.fire_due(self.database, now) > 0
            checked = background and membership.check_due(self.database, now) > 0
            ran = False
            while self._jobs and self._jobs[0].at <= now:
                self._run(heapq.heappop(self._jobs))
                ran = True
            if not (fired or checked or ran):
                return

    def next_time(self, *, with_schedules: bool) -> datetime | None:
        times = [self._jobs[0].at] if self._jobs else []
        if not self.options.background:
            return min(times) if times else None
        check = membership.next_check(self.database)
        if check is not None:
            times.append(check)
        if with_schedules:
            tick = schedules.next_due(self.database)
            if tick is not None:
                times.append(tick)
        return min(times) if times else None

    def run_until(self, limit: datetime | None) -> None:
        """Run the due jobs, moving the clock from one due time to the next, up to `limit`
        (then the clock is set to it); with no limit, until nothing is due (schedules
        aside: they tick forever) or IDLE_HORIZON has passed."""
        horizon = limit if limit is not None else self.clock.now() + IDLE_HORIZON
        while True:
            self.run_due()
            following = self.next_time(with_schedules=limit is not None)
            if following is None or following > horizon:
                break
            if following <= self.clock.now():
                # Due, and run_due left it: it failed (its error is in the log).
                raise FlowError(
                    f"work due at {format_offset(following - self.start)} failed to run; "
                    "see the log above"
                )
            self.clock.set(following)
        if limit is not None and limit > self.clock.now():
            self.clock.set(limit)

    def _run(self, job: _Job) -> None:
        self.outcome.jobs += 1
        limit = self.options.max_jobs
        if self.outcome.jobs > limit:
            raise FlowError(f"stopped after {limit} jobs: does a run invoke itself forever?")
        if self.options.check is not None:
            self.options.check()
        context = self.context
        if job.kind == "events":
            result = process_events(
                self.database, job.argument, self.runtime.settings.event_max_attempts, context
            )
            if result.retry:
                self._add("events", result.retry, self.clock.now() + EVENT_RETRY)
        elif job.kind == "run":
            runs.advance_run(context, job.argument)
        elif job.kind == "message":
            for attempt in pipeline.process_messages(context, [job.argument]):
                self._deliver(attempt)
        elif job.kind == "delivery":
            started = pipeline.start_attempt(context, job.argument)
            if started is not None:
                self._deliver(started)
        elif job.kind == "scan":
            membership.scan(self.database, job.argument)
        elif job.kind == "broadcast":
            broadcast_pk, cursor = job.argument
            broadcasts.advance(
                self.database,
                broadcast_pk,
                cursor,
                rate=self.runtime.settings.broadcast_rate,
                message_timeout=timedelta(seconds=self.runtime.settings.message_timeout_seconds),
            )

    def _deliver(self, attempt: pipeline.Attempt) -> None:
        status = pipeline.attempt_delivery(self.context, attempt)
        if status != DeliveryStatus.SENT or not self.options.record:
            return
        with self.database.read() as session:
            message = MessageRepository(session).get(attempt.environment_id, attempt.message_id)
            template = message.notification_id if message is not None else None
        address = None
        provider = CAPTURES.get(attempt.channel)
        if provider is not None:
            found = provider(CaptureConfig(), self.context.http).address(attempt.delivery.recipient)
            address = found if isinstance(found, str) else None
        self.outcome.messages.append(
            SentMessage(
                at=self.clock.now() - self.start,
                message_id=attempt.message_id,
                to=attempt.recipient,
                channel=attempt.channel,
                template=template,
                address=address,
                content=dict(attempt.delivery.content),
            )
        )


class FlowRunner:
    """Runs one flow test on a fresh, migrated database (the runtime given)."""

    def __init__(
        self,
        runtime: Runtime,
        test: FlowTest,
        clock: VirtualClock,
        transport: httpx.BaseTransport | None = None,
        options: AgendaOptions | None = None,
    ) -> None:
        self.runtime = runtime
        self.test = test
        self.clock = clock
        # fetch-data's and webhooks' requests: the test's stubs, unless a transport is given.
        http = httpx.Client(transport=transport or stub_transport(test.http))
        self.http = http
        base = runtime.jobs.context
        context = WorkerContext(
            runtime.database,
            runtime.settings,
            runtime.config_cipher,
            http,
            unsubscribe_key=base.unsubscribe_key,
            engagement_key=base.engagement_key,
            base_url=base.base_url,
        )
        # The context's providers are built in its __post_init__; a flow test's capture.
        object.__setattr__(
            context, "providers", CaptureProviders(runtime.config_cipher, http, clock.now())
        )
        self.context = context
        self.agenda = Agenda(runtime, context, clock, options or AgendaOptions())
        runtime.database.dispatcher = self.agenda
        self.writer = IngestWriter(runtime.database, runtime.cipher)
        self.key = ""
        self._counter = itertools.count(1)

    def close(self) -> None:
        asyncio.run(self.writer.stop())  # closes its SQLite connection (it runs no thread here)
        self.http.close()

    def setup(self) -> None:
        with self.runtime.database.write() as (session, _):
            workspace_service.bootstrap(session, self.runtime.cipher)
        with self.runtime.database.read() as session:
            views = workspace_service.list_keys(session, self.runtime.cipher)
        self.key = next(view.key for view in views if view.environment == "test" and view.key)
        if self.test.documents:
            with self.runtime.database.write() as (session, outbox):
                apply_documents(
                    session,
                    outbox,
                    environment_scope(session, "test"),
                    self.test.documents,
                    self.runtime.outbound,
                )
        self.agenda.run_due()

    def run(self) -> FlowOutcome:
        self.setup()
        return self.play()

    def play(self) -> FlowOutcome:
        """Feed the events at their times, then run the clock on (after `setup`)."""
        start = self.clock.now()
        self.feed(self.test.events)
        self.agenda.run_until(start + self.test.until if self.test.until is not None else None)
        self.agenda.outcome.runs = self._runs()
        return self.agenda.outcome

    def feed(self, events: Iterable[TimedEvent], first: int = 0) -> None:
        """Ingest each event at its time (an offset from the flow's start; never before the
        clock's time), running what falls due in between; `first` numbers them in errors."""
        start = self.agenda.start
        for index, event in enumerate(events, first):
            at = start + event.at
            if at > self.clock.now():
                self.agenda.run_until(at)
            try:
                self._ingest(event.body)
            except AppError as exc:
                where = f"events[{index}] (at {format_offset(event.at)})"
                raise FlowError(f"{where}: {exc.message}") from exc
            self.agenda.run_due()

    def finish(self) -> None:
        """Run the clock on after the last event until nothing is due (IDLE_HORIZON)."""
        self.agenda.run_until(None)

    def scope(self) -> Scope:
        """The environment the test's definitions and events are in."""
        with self.runtime.database.read() as session:
            return environment_scope(session, "test")

    def _ingest(self, body: dict[str, Any]) -> None:
        payload = dict(body)
        payload.setdefault("messageId", f"flowtest-{next(self._counter)}")
        payload.setdefault("timestamp", self.clock.now().isoformat().replace("+00:00", "Z"))
        event = validate_segment_event(payload)
        (result,) = self.writer.write([IngestItem(key=self.key, event=event)])
        if result.outcome is not IngestOutcome.ACCEPTED:
            raise FlowError(f"the event {payload['messageId']} was {result.outcome.value}")

    def _runs(self) -> list[dict[str, Any]]:
        with self.runtime.database.read() as session:
            scope = environment_scope(session, "test")
            rows = RunRepository(session).page(scope.environment_id, None, MAX_JOBS)
            found = []
            for run in reversed(rows):  # oldest first
                entry = {"automation": run.automation_id, "user": run.recipient}
                entry["status"] = str(run.status)
                if run.error:
                    entry["error"] = run.error
                found.append({k: v for k, v in entry.items() if v is not None})
            return found
