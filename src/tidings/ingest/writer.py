"""Group commit for ingest.

Requests hand their events to one writer task per process. While one batch is being
written, new requests queue up, and the next transaction takes them all: one commit (and
one fsync) serves many requests. A request is answered only after its batch has committed.

Each batch, in one transaction:
1. resolves the presented API keys (one query), so revocation takes effect at once;
2. inserts the events with `ON CONFLICT DO NOTHING` on (environment, source, messageId);
   rows that did not insert are duplicates and change nothing;
3. commits, then hands the new event ids to the job engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from tidings.db import Database
from tidings.ingest.validation import ValidEvent
from tidings.kit.sql import insert_ignoring_conflicts
from tidings.kit.time import utcnow
from tidings.models import Event, EventStatus
from tidings.workspace.keys import KeyCipher
from tidings.workspace.service import Scope, resolve_keys

logger = logging.getLogger(__name__)

MAX_BATCH = 2000


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    UNAUTHORIZED = "unauthorized"


@dataclass(frozen=True, slots=True)
class IngestItem:
    key: str
    event: ValidEvent


@dataclass(frozen=True, slots=True)
class IngestResult:
    outcome: Outcome
    message_id: str
    event_id: int | None = None
    scope: Scope | None = None


class IngestWriter:
    def __init__(
        self,
        database: Database,
        cipher: KeyCipher,
        on_committed: Callable[[list[int]], None],
    ) -> None:
        self.database = database
        self.cipher = cipher
        self.on_committed = on_committed
        self._pending: list[tuple[list[IngestItem], asyncio.Future[list[IngestResult]]]] = []
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ingest-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("Tidings is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, items: list[IngestItem]) -> list[IngestResult]:
        """Write the items durably; returns one result per item, in order."""
        future: asyncio.Future[list[IngestResult]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch = self._take_batch()
            if not batch:
                continue
            if self._pending:
                self._wakeup.set()
            items = [item for request_items, _ in batch for item in request_items]
            try:
                results = await loop.run_in_executor(self._executor, self.write, items)
            except Exception as exc:
                logger.exception("ingest batch of %d events failed", len(items))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for request_items, future in batch:
                end = start + len(request_items)
                if not future.done():
                    future.set_result(results[start:end])
                start = end

    def _take_batch(self) -> list[tuple[list[IngestItem], asyncio.Future[list[IngestResult]]]]:
        batch: list[tuple[list[IngestItem], asyncio.Future[list[IngestResult]]]] = []
        count = 0
        while self._pending and (not batch or count + len(self._pending[0][0]) <= MAX_BATCH):
            entry = self._pending.pop(0)
            batch.append(entry)
            count += len(entry[0])
        return batch

    def write(self, items: Sequence[IngestItem]) -> list[IngestResult]:
        """One transaction for the whole batch. Runs on the writer thread."""
        now = utcnow()
        with self.database.write() as session:
            scopes = resolve_keys(session, self.cipher, (item.key for item in items))
            rows: list[dict[str, object]] = []
            seen: set[tuple[str, str, str]] = set()
            for item in items:
                scope = scopes.get(item.key)
                if scope is None:
                    continue
                identity = (scope.environment_id, item.event.source, item.event.message_id)
                if identity in seen:
                    continue
                seen.add(identity)
                event = item.event
                rows.append(
                    {
                        "workspace_id": scope.workspace_id,
                        "environment_id": scope.environment_id,
                        "source": event.source,
                        "message_id": event.message_id,
                        "type": event.type,
                        "name": event.name,
                        "user_id": event.user_id,
                        "anonymous_id": event.anonymous_id,
                        "payload": event.payload,
                        "timestamp": event.timestamp,
                        "received_at": now,
                        "status": EventStatus.RECEIVED,
                        "attempts": 0,
                        "diagnostics": [],
                        "profile_diff": [],
                        "effects": [],
                    }
                )
            inserted: dict[tuple[str, str, str], int] = {}
            if rows:
                statement = insert_ignoring_conflicts(session, Event).returning(
                    Event.id, Event.environment_id, Event.source, Event.message_id
                )
                for row in session.execute(statement, rows):
                    inserted[(row.environment_id, row.source, row.message_id)] = row.id
        new_ids = sorted(inserted.values())
        if new_ids:
            try:
                self.on_committed(new_ids)
            except Exception:
                # The events are committed; the sweeper re-drives them.
                logger.exception("could not enqueue processing for %d events", len(new_ids))
        results = []
        for item in items:
            scope = scopes.get(item.key)
            if scope is None:
                results.append(IngestResult(Outcome.UNAUTHORIZED, item.event.message_id))
                continue
            identity = (scope.environment_id, item.event.source, item.event.message_id)
            event_id = inserted.pop(identity, None)
            if event_id is not None:
                results.append(
                    IngestResult(Outcome.ACCEPTED, item.event.message_id, event_id, scope)
                )
            else:
                results.append(IngestResult(Outcome.DUPLICATE, item.event.message_id, None, scope))
        return results
