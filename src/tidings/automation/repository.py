"""Every SQL query on automation templates, their versions and their triggers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from tidings.kit.sql import execute_counting, insert_ignoring_conflicts
from tidings.models import Automation, AutomationTrigger, AutomationVersion
from tidings.workspace.service import Scope


def _environment_id(scope: Scope | str) -> str:
    return scope if isinstance(scope, str) else scope.environment_id


class AutomationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

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
        execute_counting(
            self.session,
            insert_ignoring_conflicts(self.session, Automation).values(
                workspace_id=scope.workspace_id,
                environment_id=scope.environment_id,
                automation_id=automation_id,
                name=automation_id,
                enabled=False,
                current_version=0,
                created_at=now,
                updated_at=now,
                deleted_at=now,
            ),
        )
        return self.session.scalars(
            select(Automation)
            .where(
                Automation.environment_id == scope.environment_id,
                Automation.automation_id == automation_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()

    def page(self, scope: Scope, after_id: int | None, limit: int) -> Sequence[Automation]:
        query = select(Automation).where(
            Automation.environment_id == scope.environment_id, Automation.deleted_at.is_(None)
        )
        if after_id is not None:
            query = query.where(Automation.id > after_id)
        return self.session.scalars(query.order_by(Automation.id).limit(limit)).all()

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

    def add_version(
        self, automation: Automation, number: int, definition: dict[str, Any], now: datetime
    ) -> AutomationVersion:
        version = AutomationVersion(
            automation_pk=automation.id,
            environment_id=automation.environment_id,
            version=number,
            definition=definition,
            created_at=now,
        )
        self.session.add(version)
        self.session.flush()
        return version

    def replace_triggers(self, automation: Automation, triggers: list[dict[str, str]]) -> None:
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
            select(Automation, AutomationVersion)
            .join(AutomationTrigger, AutomationTrigger.automation_pk == Automation.id)
            .join(
                AutomationVersion,
                (AutomationVersion.automation_pk == Automation.id)
                & (AutomationVersion.version == Automation.current_version),
            )
            .where(
                AutomationTrigger.environment_id == environment_id,
                AutomationTrigger.source == source,
                AutomationTrigger.event == event,
                Automation.enabled.is_(True),
                Automation.deleted_at.is_(None),
            )
            .order_by(Automation.id)
        ).all()
        return [(automation, version) for automation, version in rows]
