"""Every SQL query on workspaces, environments and API keys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.models import ApiKey, Environment, Workspace


class WorkspaceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def first_workspace(self) -> Workspace | None:
        return self.session.scalars(select(Workspace).order_by(Workspace.created_at)).first()

    def environments(self, workspace_id: str) -> Sequence[Environment]:
        return self.session.scalars(
            select(Environment)
            .where(Environment.workspace_id == workspace_id)
            .order_by(Environment.name)
        ).all()

    def environment_by_name(self, workspace_id: str, name: str) -> Environment | None:
        return self.session.scalars(
            select(Environment).where(
                Environment.workspace_id == workspace_id, Environment.name == name
            )
        ).first()

    def environment(self, environment_id: str) -> Environment | None:
        return self.session.get(Environment, environment_id)

    def workspace(self, workspace_id: str) -> Workspace | None:
        return self.session.get(Workspace, workspace_id)

    def keys(self, workspace_id: str) -> Sequence[tuple[ApiKey, Environment]]:
        rows = self.session.execute(
            select(ApiKey, Environment)
            .join(Environment, Environment.id == ApiKey.environment_id)
            .where(ApiKey.workspace_id == workspace_id)
            .order_by(ApiKey.created_at, ApiKey.id)
        ).all()
        return [(row[0], row[1]) for row in rows]

    def key(self, key_id: str) -> ApiKey | None:
        return self.session.get(ApiKey, key_id)

    def keys_by_hash(self, hashes: Iterable[str]) -> Sequence[tuple[ApiKey, str]]:
        rows = self.session.execute(
            select(ApiKey, Environment.name)
            .join(Environment, Environment.id == ApiKey.environment_id)
            .where(ApiKey.key_hash.in_(list(hashes)))
        ).all()
        return [(row[0], row[1]) for row in rows]

    def active_key_ids(self, key_ids: Iterable[str]) -> set[str]:
        return set(
            self.session.scalars(
                select(ApiKey.id).where(ApiKey.id.in_(list(key_ids)), ApiKey.revoked_at.is_(None))
            ).all()
        )

    def add(self, row: Workspace | Environment | ApiKey) -> None:
        self.session.add(row)
