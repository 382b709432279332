"""A dispatcher that records what committed units of work asked for, instead of queueing it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tidings.db import Database, Dispatcher, Outbox


class RecordingDispatcher:
    def __init__(self) -> None:
        self.outboxes: list[Outbox] = []

    def dispatch(self, outbox: Outbox) -> None:
        self.outboxes.append(outbox)

    @property
    def event_ids(self) -> list[int]:
        return [i for outbox in self.outboxes for _, ids in outbox.events for i in ids]

    @property
    def message_ids(self) -> list[str]:
        return [m for outbox in self.outboxes for m, _, _ in outbox.messages]

    @property
    def runs(self) -> list[int]:
        return [run_pk for outbox in self.outboxes for run_pk, _ in outbox.runs]


@contextmanager
def recording(database: Database) -> Iterator[RecordingDispatcher]:
    """Record the database's outboxes for the duration, then restore its dispatcher."""
    recorder = RecordingDispatcher()
    previous: Dispatcher | None = database.dispatcher
    database.dispatcher = recorder
    try:
        yield recorder
    finally:
        database.dispatcher = previous
