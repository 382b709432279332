"""Every SQL query on automation templates, their versions and their triggers."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, case, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import InstrumentedAttribute

from tidings.automation.triggers import index_key
from tidings.config import Settings
from tidings.kit.sql import (
    Repository,
    VersionedRepository,
    VersionTable,
    claim_rows,
    execute_counting,
    insert_loaded,
    insert_missing_and_lock,
    insert_missing_in_environment,
)
from tidings.models import (
    Automation,
    AutomationBatch,
    AutomationBatchItem,
    AutomationRun,
    AutomationRunStep,
    AutomationRunWait,
    AutomationSchedule,
    AutomationTrigger,
    AutomationVersion,
    BatchStatus,
    Event,
    RunStatus,
    ThrottleWindow,
)
from tidings.worker.repository import owner_alive
from tidings.workspace.service import Scope


def _environment_id(scope: Scope | str) -> str:
    return scope if isinstance(scope, str) else scope.environment_id


# Where automation.service.triggered_by keeps its answers for the unit of work.
TRIGGERED_CACHE = "tidings.triggered_by"
# What `read_waits_ahead` read in this unit of work: the (environment, recipient)s asked
# about, and those of them with a wait.
_WAITS_READ_AHEAD = "tidings.waits_read_ahead"


# Which automations an event starts: asked once per event group, built once.
_TRIGGERED = (
    select(Automation, AutomationVersion)
    .join(AutomationTrigger, AutomationTrigger.automation_pk == Automation.id)
    .join(
        AutomationVersion,
        (AutomationVersion.automation_pk == Automation.id)
        & (AutomationVersion.version == Automation.current_version),
    )
    .where(
        AutomationTrigger.environment_id == bindparam("environment_id"),
        AutomationTrigger.source == bindparam("source"),
        AutomationTrigger.event == bindparam("event"),
        Automation.enabled.is_(True),
        Automation.deleted_at.is_(None),
    )
    .order_by(Automation.id)
)


_VERSIONS = VersionTable(AutomationVersion, AutomationVersion.automation_pk)


class AutomationRepository(VersionedRepository[Automation, AutomationVersion]):
    versions = _VERSIONS

    def get(self, scope: Scope | str, automation_id: str) -> Automation | None:
        """The live (not deleted) automation."""
        return self.session.scalars(
            select(Automation).where(
                Automation.environment_id == _environment_id(scope),
                Automation.automation_id == automation_id,
                Automation.deleted_at.is_(None),
            )
        ).first()

    def get_or_insert_for_update(
        self, scope: Scope, automation_id: str, now: datetime
    ) -> Automation:
        """The automation row, locked; inserted as deleted (not yet live) when missing."""
        self.session.info.pop(TRIGGERED_CACHE, None)  # about to change: see triggered_by
        automation, _ = insert_missing_in_environment(
            self.session,
            scope,
            Automation,
            ("automation_id", automation_id),
            now,
            name=automation_id,
            enabled=False,
            current_version=0,
            deleted_at=now,
        )
        return automation

    def page(self, scope: Scope, after_id: int | None, limit: int) -> Sequence[Automation]:
        return self.environment_page(
            Automation, scope.environment_id, after_id, limit, Automation.deleted_at.is_(None)
        )

    def current_version(self, scope: Scope | str, automation_id: str) -> AutomationVersion | None:
        """The current version of the live automation, enabled or not."""
        automation = self.get(scope, automation_id)
        if automation is None:
            return None
        return self.version(automation, automation.current_version)

    def add_version(
        self,
        automation: Automation,
        number: int,
        definition: dict[str, Any],
        now: datetime,
        *,
        saved_by: str | None = None,
        restored_from: int | None = None,
    ) -> AutomationVersion:
        version = AutomationVersion(
            automation_pk=automation.id,
            environment_id=automation.environment_id,
            version=number,
            definition=definition,
            saved_by=saved_by,
            restored_from=restored_from,
            created_at=now,
        )
        self.session.add(version)
        self.session.flush()
        return version

    def replace_triggers(self, automation: Automation, triggers: list[dict[str, Any]]) -> None:
        """The trigger index's rows (`triggers.index_key`; schedule triggers have rows of
        their own, kept by automation/schedules.py)."""
        self.session.info.pop(TRIGGERED_CACHE, None)
        keys = [key for key in map(index_key, triggers) if key is not None]
        execute_counting(
            self.session,
            delete(AutomationTrigger).where(AutomationTrigger.automation_pk == automation.id),
        )
        if keys:
            self.session.execute(
                insert(AutomationTrigger),
                [
                    {
                        "automation_pk": automation.id,
                        "environment_id": automation.environment_id,
                        "source": source,
                        "event": event,
                    }
                    for source, event in keys
                ],
            )

    def live_current_version(
        self, automation_pk: int
    ) -> tuple[Automation, AutomationVersion] | None:
        """The automation with its current version, when it is enabled and not deleted."""
        found = self.session.execute(
            select(Automation, AutomationVersion)
            .join(
                AutomationVersion,
                (AutomationVersion.automation_pk == Automation.id)
                & (AutomationVersion.version == Automation.current_version),
            )
            .where(
                Automation.id == automation_pk,
                Automation.enabled.is_(True),
                Automation.deleted_at.is_(None),
            )
        ).first()
        return None if found is None else (found[0], found[1])

    def triggered(
        self, environment_id: str, source: str, event: str
    ) -> list[tuple[Automation, AutomationVersion]]:
        rows = self.session.execute(
            _TRIGGERED, {"environment_id": environment_id, "source": source, "event": event}
        ).all()
        return [(automation, version) for automation, version in rows]

    def automations_by_trigger(
        self, environment_id: str, source: str, *, enabled_only: bool
    ) -> dict[str, list[str]]:
        """For each trigger event name of `source`, the ids of the live automations whose
        current version it starts (the enabled ones only with `enabled_only`), in id order."""
        query = (
            select(AutomationTrigger.event, Automation.automation_id)
            .join(Automation, AutomationTrigger.automation_pk == Automation.id)
            .where(
                AutomationTrigger.environment_id == environment_id,
                AutomationTrigger.source == source,
                Automation.deleted_at.is_(None),
            )
            .order_by(Automation.automation_id)
        )
        if enabled_only:
            query = query.where(Automation.enabled.is_(True))
        rows = self.session.execute(query).all()
        found: dict[str, list[str]] = {}
        for event, automation_id in rows:
            found.setdefault(event, []).append(automation_id)
        return found


# The automation steps that send messages; their output keeps the send's `requestId`.
SENDING_STEPS = ("send", "send-list")


class RunRepository(Repository):
    """Every SQL query on automation runs, their steps and their waits for events."""

    @staticmethod
    def sent_request_ids(
        event_pk: ColumnElement[int] | InstrumentedAttribute[int],
    ) -> Select[tuple[str | None]]:
        """SQL, for a query on events: the `requestId`s of the sends the event's runs made,
        correlated on `event_pk` (the event's runs by ix_automation_run_event, their send
        and send-list steps by run): the messages the event page follows."""
        return (
            select(AutomationRunStep.output["requestId"].as_string())
            .join(AutomationRun, AutomationRun.id == AutomationRunStep.run_pk)
            .where(
                AutomationRun.event_pk == event_pk,
                AutomationRunStep.action.in_(SENDING_STEPS),
            )
            # The event is the enclosing query's, however deep this is nested.
            .correlate_except(AutomationRun, AutomationRunStep)
        )

    def add(self, run: AutomationRun) -> AutomationRun:
        """Insert a new run and keep it in the session as loaded (`insert_loaded`): its id
        is needed at once (its steps and messages point at it), and a flush to get it would
        also write the event group's earlier runs, steps and events, once per started run;
        they are written together when the group commits instead."""
        insert_loaded(self.session, run)
        return run

    def get_for_update(self, run_pk: int) -> AutomationRun | None:
        return self.lock_row(AutomationRun, id=run_pk)

    def by_run_id(self, environment_id: str, run_id: str) -> AutomationRun | None:
        return self.find_row(AutomationRun, environment_id=environment_id, run_id=run_id)

    def version(self, version_pk: int) -> AutomationVersion | None:
        return self.session.get(AutomationVersion, version_pk)

    def page(
        self,
        environment_id: str,
        before_id: int | None,
        limit: int,
        *,
        automation_ids: list[str] | None = None,
        statuses: list[str] | None = None,
        recipient: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        after_id: int | None = None,
    ) -> Sequence[AutomationRun]:
        """Newest first. With `after_id`, the `limit` runs just newer than it instead, oldest
        first (the page before, in a list read newest first)."""
        query = select(AutomationRun).where(AutomationRun.environment_id == environment_id)
        if before_id is not None:
            query = query.where(AutomationRun.id < before_id)
        if after_id is not None:
            query = query.where(AutomationRun.id > after_id)
        if automation_ids:
            query = query.where(AutomationRun.automation_id.in_(automation_ids))
        if statuses:
            query = query.where(AutomationRun.status.in_(statuses))
        if recipient is not None:
            query = query.where(AutomationRun.recipient == recipient)
        if created_from is not None:
            query = query.where(AutomationRun.created_at >= created_from)
        if created_to is not None:
            query = query.where(AutomationRun.created_at <= created_to)
        order = AutomationRun.id.asc() if after_id is not None else AutomationRun.id.desc()
        return self.session.scalars(query.order_by(order).limit(limit)).all()

    def of_events(self, event_pks: Sequence[int]) -> Sequence[AutomationRun]:
        if not event_pks:
            return []
        return self.session.scalars(
            select(AutomationRun)
            .where(AutomationRun.event_pk.in_(event_pks))
            .order_by(AutomationRun.id)
        ).all()

    def step_outputs(
        self, run_pks: Collection[int], action: str
    ) -> Sequence[tuple[int, dict[str, Any] | None]]:
        """(run pk, output) of the runs' steps of one action, in the runs' step order."""
        if not run_pks:
            return []
        rows = self.session.execute(
            select(AutomationRunStep.run_pk, AutomationRunStep.output)
            .where(
                AutomationRunStep.run_pk.in_(sorted(run_pks)),
                AutomationRunStep.action == action,
            )
            .order_by(AutomationRunStep.run_pk, AutomationRunStep.position)
        ).all()
        return [(run_pk, output) for run_pk, output in rows]

    def steps(self, run_pk: int) -> Sequence[AutomationRunStep]:
        return self.find_rows(
            AutomationRunStep, order_by=(AutomationRunStep.position,), run_pk=run_pk
        )

    def step(self, run_pk: int, position: int) -> AutomationRunStep | None:
        return self.find_row(AutomationRunStep, run_pk=run_pk, position=position)

    def active_with_token(
        self, environment_id: str, token: str, excluding: int
    ) -> Sequence[AutomationRun]:
        return self.session.scalars(
            select(AutomationRun)
            .where(
                AutomationRun.environment_id == environment_id,
                AutomationRun.cancelation_token == token,
                AutomationRun.status.in_(RunStatus.ACTIVE),
                AutomationRun.id != excluding,
            )
            .order_by(AutomationRun.id)
            .with_for_update()
        ).all()

    def claim_due(
        self,
        now: datetime,
        stale_before: datetime,
        unclaimed_since: datetime,
        settings: Settings,
        limit: int,
    ) -> list[int]:
        """Claim, for a sweep to re-drive (`kit.sql.claim_rows`), waiting runs whose wake-up
        time has come and processing runs nobody is advancing: untouched since
        `stale_before`, or, while a request is in flight, owned by a process whose lease
        expired (worker/lease.py; `TIDINGS_SENDING_STALE_SECONDS` as a backstop)."""
        waking = AutomationRun.status.in_((RunStatus.WAITING, RunStatus.WAITING_FOR_EVENT)) & (
            AutomationRun.wake_at <= now
        )
        backstop = now - timedelta(seconds=settings.sending_stale_seconds)
        stalled = (
            (AutomationRun.status == RunStatus.PROCESSING)
            # A run waiting out a retry's backoff has wake_at set to the retry time.
            & (AutomationRun.wake_at.is_(None) | (AutomationRun.wake_at <= now))
            & (
                (AutomationRun.owner.is_(None) & (AutomationRun.updated_at <= stale_before))
                | (
                    AutomationRun.owner.is_not(None)
                    & (
                        ~owner_alive(AutomationRun.owner, now, settings)
                        | (AutomationRun.updated_at <= backstop)
                    )
                )
            )
        )
        claimed = claim_rows(
            self.session,
            AutomationRun.id,
            AutomationRun.swept_at,
            waking | stalled,
            environment=AutomationRun.environment_id,
            now=now,
            unclaimed_since=unclaimed_since,
            limit=limit,
        )
        return [run_pk for run_pk, _ in claimed]

    def version_numbers(self, version_pks: set[int]) -> dict[int, int]:
        if not version_pks:
            return {}
        rows = self.session.execute(
            select(AutomationVersion.id, AutomationVersion.version).where(
                AutomationVersion.id.in_(version_pks)
            )
        ).all()
        return {pk: number for pk, number in rows}

    def event_message_ids(self, event_pks: set[int]) -> dict[int, str]:
        if not event_pks:
            return {}
        rows = self.session.execute(
            select(Event.id, Event.message_id).where(Event.id.in_(event_pks))
        ).all()
        return {pk: message_id for pk, message_id in rows}

    def read_waits_ahead(self, keys: Collection[tuple[str, str]]) -> None:
        """Read which of these (environment, recipient)s have any wait, in one query per
        environment, so that `waits_for` answers the others without a query for the rest of
        the unit of work: a group of events reads its users' waits once. `add_wait` keeps
        it true."""
        recipients: dict[str, set[str]] = {}
        for environment_id, recipient in keys:
            recipients.setdefault(environment_id, set()).add(recipient)
        waiting: set[tuple[str, str]] = set()
        with self.session.no_autoflush:
            for environment_id, group in recipients.items():
                rows = self.session.execute(
                    select(AutomationRunWait.environment_id, AutomationRunWait.recipient)
                    .where(
                        AutomationRunWait.environment_id == environment_id,
                        AutomationRunWait.recipient.in_(sorted(group)),
                    )
                    .distinct()
                )
                waiting.update((environment, recipient) for environment, recipient in rows)
        self.session.info[_WAITS_READ_AHEAD] = (set(keys), waiting)

    def add_wait(self, wait: AutomationRunWait) -> None:
        read = self.session.info.get(_WAITS_READ_AHEAD)
        if read is not None:
            read[1].add((wait.environment_id, wait.recipient))
        self.session.add(wait)

    def waits_for(
        self, environment_id: str, recipient: str, source: str, event: str
    ) -> Sequence[tuple[int, int, str, str]]:
        """The waits an event of `recipient` named `event` may resolve, by
        ix_automation_run_wait_lookup: (run_pk, position, match_fields, match_key) each."""
        read = self.session.info.get(_WAITS_READ_AHEAD)
        if read is not None:
            asked, waiting = read
            key = (environment_id, recipient)
            if key in asked and key not in waiting:
                return []
        rows = self.session.execute(
            select(
                AutomationRunWait.run_pk,
                AutomationRunWait.position,
                AutomationRunWait.match_fields,
                AutomationRunWait.match_key,
            )
            .where(
                AutomationRunWait.environment_id == environment_id,
                AutomationRunWait.recipient == recipient,
                AutomationRunWait.source == source,
                AutomationRunWait.event == event,
            )
            .order_by(AutomationRunWait.id)
        ).all()
        return [(run_pk, position, fields, key) for run_pk, position, fields, key in rows]

    def delete_wait(self, run_pk: int, position: int | None = None) -> None:
        """The run's wait (the one of the step at `position` only, when given), if it has one:
        an event or a timeout may have taken it first."""
        statement = delete(AutomationRunWait).where(AutomationRunWait.run_pk == run_pk)
        if position is not None:
            statement = statement.where(AutomationRunWait.position == position)
        # Through the session, which flushes first: the wait may be new in this transaction.
        self.session.execute(statement)

    def redact_recipients(self, environment: str, ids: list[str], now: datetime) -> int:
        """Erasing users: cancel their active runs, drop their open batches and waits, then
        empty every one of their runs' context."""
        # Their open batches (steps/batch.py), with the data of the runs in them.
        batches = select(AutomationBatch.id).where(
            AutomationBatch.environment_id == environment, AutomationBatch.recipient.in_(ids)
        )
        execute_counting(
            self.session,
            delete(AutomationBatchItem).where(AutomationBatchItem.batch_pk.in_(batches)),
        )
        execute_counting(
            self.session,
            delete(AutomationBatch).where(
                AutomationBatch.environment_id == environment, AutomationBatch.recipient.in_(ids)
            ),
        )
        execute_counting(
            self.session,
            delete(AutomationRunWait).where(
                AutomationRunWait.environment_id == environment,
                AutomationRunWait.recipient.in_(ids),
            ),
        )
        execute_counting(
            self.session,
            update(AutomationRun)
            .where(
                AutomationRun.environment_id == environment,
                AutomationRun.recipient.in_(ids),
                AutomationRun.status.in_(RunStatus.ACTIVE),
            )
            .values(
                status=RunStatus.CANCELED,
                error="canceled: the user's data was erased",
                wake_at=None,
                finished_at=now,
                updated_at=now,
            ),
        )
        return execute_counting(
            self.session,
            update(AutomationRun)
            .where(AutomationRun.environment_id == environment, AutomationRun.recipient.in_(ids))
            .values(
                recipient=None,
                context={"data": {}, "profile": {}, "event": {}, "recipient": None, "refs": {}},
            ),
        )


class BatchRepository(Repository):
    """The SQL of batch steps: their batches (`AutomationBatch`) and items."""

    def opened_by(self, run_pk: int, position: int) -> AutomationBatch | None:
        """The batch the run opened at this step, locked: the run waits on it."""
        return self.lock_row(AutomationBatch, opener_run_pk=run_pk, position=position)

    def open_or_lock(
        self,
        run: AutomationRun,
        recipient: str,
        batch_key: str,
        opened_at: datetime,
        closes_at: datetime,
        closes_by: datetime,
    ) -> tuple[AutomationBatch, bool] | None:
        """The open batch of the run's step for this recipient and key, locked; opened by
        this run when there is none (True).

        `insert_missing_and_lock` on the partial unique index of open batches: of two runs
        that open one at once, one inserts it and the other locks it. None when the batch
        closed (or was dropped) while this waited for its lock: it is no longer open, and
        the caller tries again."""
        automation = run.automation_id or "ad-hoc"
        identity = "\n".join((automation, str(run.step_index), recipient, batch_key))
        try:
            return insert_missing_and_lock(
                self.session,
                AutomationBatch,
                {
                    "environment_id": run.environment_id,
                    "key_hash": hashlib.sha256(identity.encode()).hexdigest(),
                    "status": BatchStatus.OPEN,
                },
                automation_id=automation,
                position=run.step_index,
                recipient=recipient,
                batch_key=batch_key,
                opener_run_pk=run.id,
                count=0,
                opened_at=opened_at,
                closes_at=closes_at,
                closes_by=closes_by,
            )
        except NoResultFound:
            return None

    def opener(self, batch: AutomationBatch) -> str | None:
        """The run id of the batch's opener while it waits on the batch (or failed there,
        and may be retried); None once it was canceled or erased."""
        found = self.session.execute(
            select(AutomationRun.run_id, AutomationRun.status, AutomationRun.step_index).where(
                AutomationRun.id == batch.opener_run_pk
            )
        ).first()
        if found is None:
            return None
        run_id, status, step_index = found
        waiting = status in RunStatus.ACTIVE or status == RunStatus.ERROR
        return run_id if waiting and step_index == batch.position else None

    def add_item(self, batch: AutomationBatch, run: AutomationRun, now: datetime) -> None:
        """Add the run's data to the batch, locked, as its next item."""
        batch.count += 1
        data = dict((run.context or {}).get("data") or {})
        self.session.add(
            AutomationBatchItem(
                batch_pk=batch.id, run_pk=run.id, ordinal=batch.count, data=data, added_at=now
            )
        )

    def take_items(self, batch: AutomationBatch) -> list[dict[str, Any]]:
        """The batch's items in order; the batch and its items are deleted (the caller's
        transaction commits the close, or rolls it all back)."""
        items = list(
            self.session.scalars(
                select(AutomationBatchItem.data)
                .where(AutomationBatchItem.batch_pk == batch.id)
                .order_by(AutomationBatchItem.ordinal)
            )
        )
        self.drop(batch)
        return items

    def drop(self, batch: AutomationBatch) -> None:
        self.session.execute(
            delete(AutomationBatchItem).where(AutomationBatchItem.batch_pk == batch.id)
        )
        self.session.delete(batch)
        self.session.flush()


class ThrottleRepository(Repository):
    """The SQL of throttle steps: the count of each key in its current window."""

    def count(
        self, environment_id: str, key: str, now: datetime, ends_at: datetime
    ) -> tuple[int, datetime, datetime]:
        """Count one more in `key`'s window, opening a new one (count 1, until `ends_at`)
        when none is open at `now`; the count, and when the window opened and ends. One
        `INSERT … ON CONFLICT DO UPDATE … RETURNING`: on Postgres the row stays locked until
        the caller's transaction ends, so concurrent counts of one key never read the same
        value; on SQLite there is one writer at a time."""
        table = cast(Table, ThrottleWindow.__table__)
        dialect = self.session.get_bind().dialect.name
        insert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
        new = insert_into(table).values(
            environment_id=environment_id, key=key, count=1, opened_at=now, ends_at=ends_at
        )
        # SET reads the row as it was: a window over by the time of the new count starts
        # afresh.
        over = table.c.ends_at <= new.excluded.opened_at
        statement = new.on_conflict_do_update(
            index_elements=[table.c.environment_id, table.c.key],
            set_={
                "count": case((over, 1), else_=table.c.count + 1),
                "opened_at": case((over, new.excluded.opened_at), else_=table.c.opened_at),
                "ends_at": case((over, new.excluded.ends_at), else_=table.c.ends_at),
            },
        ).returning(table.c.count, table.c.opened_at, table.c.ends_at)
        count, opened_at, window_ends_at = self.session.execute(statement).one()
        return count, opened_at, window_ends_at


class ScheduleRepository(Repository):
    """The SQL of schedule triggers' ticks (automation/schedules.py)."""

    def of_automation(self, automation_pk: int) -> Sequence[AutomationSchedule]:
        return self.find_rows(AutomationSchedule, automation_pk=automation_pk)

    def get(self, schedule_pk: int) -> AutomationSchedule | None:
        return self.session.scalars(
            select(AutomationSchedule)
            .where(AutomationSchedule.id == schedule_pk)
            .execution_options(populate_existing=True)
        ).first()

    def next_fire_at(self) -> datetime | None:
        """The soonest tick of any schedule (flow tests move their clock to it)."""
        return self.session.scalars(
            select(AutomationSchedule.next_fire_at)
            .where(AutomationSchedule.next_fire_at.is_not(None))
            .order_by(AutomationSchedule.next_fire_at)
            .limit(1)
        ).first()

    def due(self, now: datetime, tried: Collection[int], limit: int) -> list[int]:
        """The schedules whose tick is due at `now` or is being fired, not in `tried`,
        soonest first."""
        query = select(AutomationSchedule.id).where(
            (AutomationSchedule.next_fire_at <= now) | AutomationSchedule.firing_tick.is_not(None)
        )
        if tried:
            query = query.where(AutomationSchedule.id.not_in(tried))
        query = query.order_by(AutomationSchedule.next_fire_at, AutomationSchedule.id)
        return list(self.session.scalars(query.limit(limit)))

    def claim(self, schedule_pk: int, expected: dict[str, Any], **values: Any) -> bool:
        """`compare_and_set` on the schedule's row."""
        return self.compare_and_set(AutomationSchedule, schedule_pk, expected, values)
