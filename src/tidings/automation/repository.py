"""Every SQL query on automation templates, their versions and their triggers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, insert, select
from sqlalchemy.orm import InstrumentedAttribute

from tidings.config import Settings
from tidings.kit.sql import (
    Repository,
    claim_rows,
    execute_counting,
    insert_loaded,
    insert_missing_in_environment,
)
from tidings.models import (
    Automation,
    AutomationRun,
    AutomationRunStep,
    AutomationRunWait,
    AutomationTrigger,
    AutomationVersion,
    Event,
    RunStatus,
)
from tidings.worker.repository import owner_alive
from tidings.workspace.service import Scope


def _environment_id(scope: Scope | str) -> str:
    return scope if isinstance(scope, str) else scope.environment_id


# Where automation.service.triggered_by keeps its answers for the unit of work.
TRIGGERED_CACHE = "tidings.triggered_by"


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


class AutomationRepository(Repository):
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

    def version(self, automation: Automation, number: int) -> AutomationVersion | None:
        return self.session.scalars(
            select(AutomationVersion).where(
                AutomationVersion.automation_pk == automation.id,
                AutomationVersion.version == number,
            )
        ).first()

    def version_page(
        self, automation: Automation, after_version: int | None, limit: int
    ) -> Sequence[AutomationVersion]:
        query = select(AutomationVersion).where(AutomationVersion.automation_pk == automation.id)
        if after_version is not None:
            query = query.where(AutomationVersion.version > after_version)
        return self.session.scalars(query.order_by(AutomationVersion.version).limit(limit)).all()

    def versions_before(
        self, automation: Automation, before_version: int | None, limit: int
    ) -> Sequence[AutomationVersion]:
        """Versions newest first, before `before_version` when given."""
        query = select(AutomationVersion).where(AutomationVersion.automation_pk == automation.id)
        if before_version is not None:
            query = query.where(AutomationVersion.version < before_version)
        return self.session.scalars(
            query.order_by(AutomationVersion.version.desc()).limit(limit)
        ).all()

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
        """The event triggers' rows (schedule triggers have rows of their own, kept by
        automation/schedules.py)."""
        self.session.info.pop(TRIGGERED_CACHE, None)
        triggers = [trigger for trigger in triggers if "event" in trigger]
        execute_counting(
            self.session,
            delete(AutomationTrigger).where(AutomationTrigger.automation_pk == automation.id),
        )
        if triggers:
            self.session.execute(
                insert(AutomationTrigger),
                [
                    {
                        "automation_pk": automation.id,
                        "environment_id": automation.environment_id,
                        "source": trigger["source"],
                        "event": trigger["event"],
                    }
                    for trigger in triggers
                ],
            )

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
        return self.session.scalars(
            select(AutomationRun)
            .where(AutomationRun.id == run_pk)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def by_run_id(self, environment_id: str, run_id: str) -> AutomationRun | None:
        return self.session.scalars(
            select(AutomationRun).where(
                AutomationRun.environment_id == environment_id, AutomationRun.run_id == run_id
            )
        ).first()

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

    def steps(self, run_pk: int) -> Sequence[AutomationRunStep]:
        return self.session.scalars(
            select(AutomationRunStep)
            .where(AutomationRunStep.run_pk == run_pk)
            .order_by(AutomationRunStep.position)
        ).all()

    def step(self, run_pk: int, position: int) -> AutomationRunStep | None:
        return self.session.scalars(
            select(AutomationRunStep).where(
                AutomationRunStep.run_pk == run_pk, AutomationRunStep.position == position
            )
        ).first()

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

    def add_wait(self, wait: AutomationRunWait) -> None:
        self.session.add(wait)

    def waits_for(
        self, environment_id: str, recipient: str, source: str, event: str
    ) -> Sequence[tuple[int, int, str, str]]:
        """The waits an event of `recipient` named `event` may resolve, by
        ix_automation_run_wait_lookup: (run_pk, position, match_fields, match_key) each."""
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
