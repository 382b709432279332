"""The SQL of automation_replay and automation_replay_event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update

from tidings.kit.sql import Repository, keyset_page
from tidings.models import AutomationReplay, AutomationReplayEvent, ReplayStatus


class ReplayRepository(Repository):
    def add(self, replay: AutomationReplay) -> AutomationReplay:
        self.session.add(replay)
        self.session.flush()
        return replay

    def get(self, environment_id: str, replay_id: str) -> AutomationReplay | None:
        return self.find_row(AutomationReplay, environment_id=environment_id, replay_id=replay_id)

    def by_pk(self, replay_pk: int) -> AutomationReplay | None:
        return self.session.get(AutomationReplay, replay_pk)

    def newest_of(
        self, environment_id: str, automation_id: str, before_id: int | None, limit: int
    ) -> Sequence[AutomationReplay]:
        """An automation's replays, newest first, from before `before_id`."""
        query = select(AutomationReplay).where(
            AutomationReplay.environment_id == environment_id,
            AutomationReplay.automation_id == automation_id,
        )
        if before_id is not None:
            query = query.where(AutomationReplay.id < before_id)
        return self.session.scalars(query.order_by(AutomationReplay.id.desc()).limit(limit)).all()

    def unfinished_in(self, environment_id: str) -> int:
        return self.count_rows(
            AutomationReplay,
            AutomationReplay.environment_id == environment_id,
            AutomationReplay.status.in_(ReplayStatus.UNFINISHED),
        )

    def set_total(self, replay_pk: int, total: int, truncated: bool) -> None:
        self.session.execute(
            update(AutomationReplay)
            .where(AutomationReplay.id == replay_pk)
            .values(events_total=total, truncated=truncated)
        )

    def claim(self, replay_pk: int, now: datetime, lease_until: datetime) -> bool:
        """Take a replay to run: queued, or running under a lease that expired. One attempt
        more; False when it is finished or another process holds it."""
        taken = self.session.execute(
            update(AutomationReplay)
            .where(
                AutomationReplay.id == replay_pk,
                or_(
                    AutomationReplay.status == ReplayStatus.QUEUED,
                    (AutomationReplay.status == ReplayStatus.RUNNING)
                    & (AutomationReplay.lease_until < now),
                ),
            )
            .values(
                status=ReplayStatus.RUNNING,
                lease_until=lease_until,
                attempts=AutomationReplay.attempts + 1,
                started_at=now,
                events_done=0,
            )
        )
        return bool(getattr(taken, "rowcount", 0))

    def heartbeat(self, replay_pk: int, lease_until: datetime, events_done: int) -> str | None:
        """Hold the lease and store the progress; returns the replay's status (canceled
        when somebody canceled it), None when it is gone."""
        self.session.execute(
            update(AutomationReplay)
            .where(
                AutomationReplay.id == replay_pk,
                AutomationReplay.status == ReplayStatus.RUNNING,
            )
            .values(lease_until=lease_until, events_done=events_done)
        )
        status: str | None = self.session.scalar(
            select(AutomationReplay.status).where(AutomationReplay.id == replay_pk)
        )
        return status

    def finish(self, replay_pk: int, status: str, now: datetime, **values: Any) -> bool:
        """Set a running or queued replay's final status; False when it was finished
        already (canceled meanwhile)."""
        done = self.session.execute(
            update(AutomationReplay)
            .where(
                AutomationReplay.id == replay_pk,
                AutomationReplay.status.in_(ReplayStatus.UNFINISHED),
            )
            .values(status=status, finished_at=now, lease_until=None, **values)
        )
        return bool(getattr(done, "rowcount", 0))

    def stale(self, now: datetime, queued_before: datetime, limit: int) -> Sequence[int]:
        """Replays nobody runs: running under an expired lease, or queued since before
        `queued_before` (their job lost)."""
        return self.session.scalars(
            select(AutomationReplay.id)
            .where(
                or_(
                    (AutomationReplay.status == ReplayStatus.RUNNING)
                    & (AutomationReplay.lease_until < now),
                    (AutomationReplay.status == ReplayStatus.QUEUED)
                    & (AutomationReplay.created_at < queued_before),
                )
            )
            .order_by(AutomationReplay.id)
            .limit(limit)
        ).all()

    def finished_before(self, before: datetime, limit: int) -> Sequence[int]:
        return self.session.scalars(
            select(AutomationReplay.id)
            .where(
                AutomationReplay.status.not_in(ReplayStatus.UNFINISHED),
                AutomationReplay.created_at < before,
            )
            .order_by(AutomationReplay.id)
            .limit(limit)
        ).all()

    def delete(self, replay_pk: int) -> None:
        self.session.execute(delete(AutomationReplay).where(AutomationReplay.id == replay_pk))

    # automation_replay_event

    def add_events(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(AutomationReplayEvent), rows)

    def clear_events(self, replay_pk: int, limit: int) -> int:
        """Delete up to `limit` of a replay's event rows; returns how many."""
        positions = select(AutomationReplayEvent.position).where(
            AutomationReplayEvent.replay_pk == replay_pk
        )
        doomed = self.session.scalars(positions.limit(limit)).all()
        if doomed:
            self.session.execute(
                delete(AutomationReplayEvent).where(
                    AutomationReplayEvent.replay_pk == replay_pk,
                    AutomationReplayEvent.position.in_(doomed),
                )
            )
        return len(doomed)

    def events_page(
        self, replay_pk: int, changes: Sequence[str] | None, after: int | None, limit: int
    ) -> Sequence[AutomationReplayEvent]:
        query = select(AutomationReplayEvent).where(AutomationReplayEvent.replay_pk == replay_pk)
        if changes:
            query = query.where(AutomationReplayEvent.change.in_(changes))
        return self.session.scalars(
            keyset_page(query, AutomationReplayEvent.position, after, limit)
        ).all()
