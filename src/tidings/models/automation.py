from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import (
    Base,
    BigIntegerKey,
    EnvironmentRow,
    JSONValue,
    KeyedRow,
    UTCDateTime,
    partial_index,
)

# Loaded for `AutomationRun.event_pk`, whose foreign key names its table (models/__init__.py).
from tidings.models.event import Event  # noqa: F401


class Automation(EnvironmentRow, Base):
    """An automation template: its id, and which saved version is current.

    A deleted automation keeps its row (`deleted_at` set) and its versions, so runs that
    started from one of them can still read it; saving the id again continues the numbering.
    """

    __tablename__ = "automation"
    __table_args__ = (UniqueConstraint("environment_id", "automation_id"),)

    automation_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AutomationVersion(KeyedRow, Base):
    """One saved definition, never changed after insert: a run points at the one it began with."""

    __tablename__ = "automation_version"
    __table_args__ = (UniqueConstraint("automation_pk", "version"),)

    automation_pk: Mapped[int] = mapped_column(ForeignKey("automation.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    # Who saved it (a Studio admin's email, an API key id, `cli`) and the version a restore
    # copied, when known.
    saved_by: Mapped[str | None] = mapped_column(String(320), nullable=True)
    restored_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AutomationTrigger(KeyedRow, Base):
    """The current version's triggers, one row each, so an event finds its automations by index."""

    __tablename__ = "automation_trigger"
    __table_args__ = (
        UniqueConstraint("automation_pk", "source", "event"),
        Index("ix_automation_trigger_event", "environment_id", "source", "event"),
    )

    automation_pk: Mapped[int] = mapped_column(ForeignKey("automation.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(300))


class RunStatus:
    """Courier's run statuses; steps also use SKIPPED. WAITING_FOR_EVENT is a run (and its
    step) paused at a wait-for-event step: its `wake_at` is the step's timeout."""

    PROCESSING = "PROCESSING"
    WAITING = "WAITING"
    WAITING_FOR_EVENT = "WAITING_FOR_EVENT"
    PROCESSED = "PROCESSED"
    CANCELED = "CANCELED"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"
    # A throttle step let no more runs through in its window: the run ends at that step.
    THROTTLED = "THROTTLED"
    # A batch step added the run's data to a batch another run opened: the run ends there.
    BATCHED = "BATCHED"

    ACTIVE = (PROCESSING, WAITING, WAITING_FOR_EVENT)


class AutomationRun(KeyedRow, Base):
    """One run of an automation: where it is, what it knows, and why it stopped.

    `step_index` is the next step to run. Each step's effect and the move past it commit in one
    transaction, so a re-driven run never repeats a step that finished. `context` holds the
    run's `data`, `profile`, `event`, `recipient`, `brand`, `template` and the step outputs
    under `refs`. A template run points at the version it started with; an ad hoc run keeps
    its steps in `definition`.
    """

    __tablename__ = "automation_run"
    __table_args__ = (
        UniqueConstraint("run_id"),
        Index("ix_automation_run_listing", "environment_id", "id"),
        Index("ix_automation_run_automation", "environment_id", "automation_id", "id"),
        Index("ix_automation_run_recipient", "environment_id", "recipient", "id"),
        Index("ix_automation_run_token", "environment_id", "cancelation_token", "status"),
        Index("ix_automation_run_event", "event_pk"),
        Index("ix_automation_run_due", "status", "wake_at"),
    )

    run_id: Mapped[str] = mapped_column(String(40))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    automation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    version_pk: Mapped[int | None] = mapped_column(
        ForeignKey("automation_version.id", ondelete="SET NULL"), nullable=True
    )
    definition: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    source: Mapped[str] = mapped_column(String(400))
    event_pk: Mapped[int | None] = mapped_column(
        ForeignKey("event.id", ondelete="SET NULL"), nullable=True
    )
    parent_run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    recipient: Mapped[str | None] = mapped_column(String(300), nullable=True)
    cancelation_token: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    step_count: Mapped[int] = mapped_column(Integer)
    context: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The lease (models/worker.py) of the process whose request (fetch-data, a send-list's
    # data source) is in flight for the current step; None between steps.
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # When a sweep last claimed it for re-driving (jobs/engine.py): sweepers never take the
    # same row at once, and one row is not re-driven again while its claim holds.
    swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AutomationRunStep(KeyedRow, Base):
    """One step of a run, written when the step starts and again when it ends."""

    __tablename__ = "automation_run_step"
    __table_args__ = (UniqueConstraint("run_pk", "position"),)

    run_pk: Mapped[int] = mapped_column(ForeignKey("automation_run.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))
    ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ThrottleWindow(KeyedRow, Base):
    """A throttle step's count (steps/throttle.py): how many runs reached it for one key
    since its window opened. The window opens with the first run after the last one ended
    (Knock's throttle window) and lasts the step's period; the count is raised with one
    `INSERT … ON CONFLICT DO UPDATE … RETURNING` in the run's transaction, so it is rolled
    back with the run's step and concurrent runs on Postgres wait for each other's count."""

    __tablename__ = "throttle_window"
    __table_args__ = (UniqueConstraint("environment_id", "key"),)

    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    # `<automation>/user/<recipient>`, `<automation>/global` or `key/<throttle_key>`.
    key: Mapped[str] = mapped_column(String(1000))
    count: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AutomationRunWait(KeyedRow, Base):
    """A run paused at a wait-for-event step, found by the events that may resume it.

    One row per waiting run, there exactly while the run is WAITING_FOR_EVENT: the step
    inserts it with the run's move to that status, and whatever resolves the step (a
    matching event, the timeout, a cancel) deletes it in the same transaction, the run row
    locked. An event looks its waits up by (environment, recipient, source, event name)
    through `ix_automation_run_wait_lookup`, then compares `match_key`, a hash of the step's
    rendered match values at `match_fields` (steps/wait_for_event.py), with the same hash of
    the event's properties: it reads only its own recipient's waits for that event name.
    """

    __tablename__ = "automation_run_wait"
    __table_args__ = (
        UniqueConstraint("run_pk"),
        Index(
            "ix_automation_run_wait_lookup",
            "environment_id",
            "recipient",
            "source",
            "event",
            "match_key",
        ),
    )

    run_pk: Mapped[int] = mapped_column(ForeignKey("automation_run.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(String(300))
    # The step's position in the run: a wait whose run has moved on is stale.
    position: Mapped[int] = mapped_column(Integer)
    # The matched property paths, sorted, one a line ("" when any event of the name matches).
    match_fields: Mapped[str] = mapped_column(Text)
    match_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BatchStatus:
    """An `AutomationBatch`'s status: `open` takes runs; `closing` takes none, for its opener
    to close it (its window passed, or `max_items` was reached)."""

    OPEN = "open"
    CLOSING = "closing"


class AutomationBatch(KeyedRow, Base):
    """A batch step's open batch (steps/batch.py): the runs of one key that reached the step
    while it was open, collected for the run that opened it.

    The key is (environment, automation, step position, recipient, rendered batch_key),
    hashed into `key_hash`; at most one batch of a key is `open` (a partial unique index),
    so two runs can't both open one. A batch stops taking runs when it is `closing` (its
    window passed or `max_items` was reached, and its opener is to close it). Its opener
    closes it in the transaction that records the step's output: the batch and its items
    are deleted there, so an item is in the output of exactly one close."""

    __tablename__ = "automation_batch"
    __table_args__ = (
        partial_index(
            "uq_automation_batch_open",
            "environment_id",
            "key_hash",
            where="status = 'open'",
            unique=True,
        ),
        UniqueConstraint("opener_run_pk", "position"),
    )

    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64))
    automation_id: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(300))
    batch_key: Mapped[str] = mapped_column(String(1000))
    # `open`, or `closing`: no more runs join, its opener closes it when it wakes.
    status: Mapped[str] = mapped_column(String(20))
    opener_run_pk: Mapped[int] = mapped_column(ForeignKey("automation_run.id", ondelete="CASCADE"))
    count: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When it closes; a sliding window moves it with each run that joins, up to closes_by.
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closes_by: Mapped[datetime] = mapped_column(UTCDateTime())


class AutomationBatchItem(KeyedRow, Base):
    """One run's data in a batch, `ordinal` its place (1 for the opener's)."""

    __tablename__ = "automation_batch_item"
    __table_args__ = (UniqueConstraint("batch_pk", "ordinal"),)

    batch_pk: Mapped[int] = mapped_column(ForeignKey("automation_batch.id", ondelete="CASCADE"))
    run_pk: Mapped[int] = mapped_column(ForeignKey("automation_run.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AutomationSchedule(KeyedRow, Base):
    """A schedule trigger of an enabled automation's current version, and its next tick
    (automation/schedules.py).

    The rows follow the automation's saves (create, update, enable, disable, restore) and
    delete: only an enabled live automation has them. A tick is claimed by a
    compare-and-set of `next_fire_at` in the transaction that starts its first runs, so two
    processes never fire one tick and a crash before the commit leaves it due. A list
    target starts its runs in chunks: `firing_tick` is the tick being fired and
    `firing_after` the last subscription it has started a run for, each chunk moving it on
    by compare-and-set with its runs."""

    __tablename__ = "automation_schedule"
    __table_args__ = (Index("ix_automation_schedule_due", "next_fire_at"),)

    automation_pk: Mapped[int] = mapped_column(ForeignKey("automation.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    # The trigger as the definition stores it: source, cron, timezone, target, data.
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    next_fire_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_tick: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    firing_tick: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    firing_after: Mapped[int | None] = mapped_column(BigIntegerKey, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
