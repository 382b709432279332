"""Every SQL query on signed sources."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from tidings.kit.sql import Repository
from tidings.models import Environment, SignedSource
from tidings.workspace.service import Scope


class SignedSourceRepository(Repository):
    def get(self, scope: Scope, source_id: str) -> SignedSource | None:
        return self.find_row(SignedSource, id=source_id, environment_id=scope.environment_id)

    def id_named(self, scope: Scope, name: str) -> str | None:
        return self.session.scalars(
            select(SignedSource.id).where(
                SignedSource.environment_id == scope.environment_id, SignedSource.name == name
            )
        ).first()

    def listing(self, scope: Scope) -> Sequence[SignedSource]:
        return self.session.scalars(
            select(SignedSource)
            .where(SignedSource.environment_id == scope.environment_id)
            .order_by(SignedSource.created_at, SignedSource.id)
        ).all()

    def with_environment_name(self, source_id: str) -> tuple[SignedSource, str] | None:
        """The source, in whichever environment, and that environment's name."""
        found = self.session.execute(
            select(SignedSource, Environment.name)
            .join(Environment, Environment.id == SignedSource.environment_id)
            .where(SignedSource.id == source_id)
        ).first()
        return None if found is None else (found[0], found[1])

    def add(self, row: SignedSource) -> None:
        self.session.add(row)
        self.session.flush()

    def delete(self, row: SignedSource) -> None:
        self.session.delete(row)

    def record_signature_failure(self, source_id: str, at: datetime) -> None:
        self.session.execute(
            update(SignedSource)
            .where(SignedSource.id == source_id)
            .values(
                signature_failures=SignedSource.signature_failures + 1,
                last_signature_failure_at=at,
            )
        )
