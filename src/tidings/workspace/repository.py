"""Every SQL query on workspaces, environments and API keys."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, exists, select

from tidings.kit.sql import Repository
from tidings.models import ApiKey, Environment, Workspace


class WorkspaceRepository(Repository):
    def first_workspace(self) -> Workspace | None:
        return self.session.scalars(select(Workspace).order_by(Workspace.created_at)).first()

    def environments(self, workspace_id: str) -> Sequence[Environment]:
        return self.find_rows(Environment, order_by=(Environment.name,), workspace_id=workspace_id)

    def environment_by_name(self, workspace_id: str, name: str) -> Environment | None:
        return self.find_row(Environment, workspace_id=workspace_id, name=name)

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
        return set(self.session.scalars(_active_key_ids(key_ids)).all())

    def add(self, row: Workspace | Environment | ApiKey) -> None:
        self.session.add(row)


def _active_key_ids(key_ids: Iterable[str]) -> Select[str]:
    return select(ApiKey.id).where(ApiKey.id.in_(list(key_ids)), ApiKey.revoked_at.is_(None))


def key_is_active(key_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether `key_id` names an API key that exists and is not revoked: a condition for a
    statement on another table (the ingest insert stores an event only while its key is)."""
    return exists().where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))


def active_key_ids_on(connection: Connection, key_ids: Collection[str]) -> set[str]:
    """`WorkspaceRepository.active_key_ids` on a connection outside any Session. On SQLite
    that is the ingest writer's own, in autocommit: queried on its driver cursor, so that no
    transaction begins."""
    if connection.dialect.name != "sqlite":
        return set(connection.execute(_active_key_ids(key_ids)).scalars())
    cursor = connection.connection.cursor()
    try:
        cursor.execute(
            f"SELECT id FROM api_key WHERE id IN ({', '.join('?' for _ in key_ids)}) "
            "AND revoked_at IS NULL",
            list(key_ids),
        )
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()
