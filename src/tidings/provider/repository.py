"""Every query on provider_configuration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select

from tidings.kit.sql import Repository
from tidings.models import ProviderConfiguration

# Asked once per routing transaction, built once.
_STAMP = (
    select(
        ProviderConfiguration.name,
        ProviderConfiguration.priority,
        ProviderConfiguration.updated_at,
    )
    .where(ProviderConfiguration.environment_id == bindparam("environment_id"))
    .order_by(ProviderConfiguration.name)
)


class ProviderConfigRepository(Repository):
    def get(self, environment_id: str, name: str) -> ProviderConfiguration | None:
        return self.find_row(ProviderConfiguration, environment_id=environment_id, name=name)

    def add(self, row: ProviderConfiguration) -> None:
        self.session.add(row)

    def delete(self, environment_id: str, name: str) -> bool:
        """Whether there was one to delete."""
        return bool(
            self.delete_rows(ProviderConfiguration, environment_id=environment_id, name=name)
        )

    def of_environment(self, environment_id: str) -> Sequence[ProviderConfiguration]:
        """Every configuration of an environment, by priority then name."""
        return self.find_rows(
            ProviderConfiguration,
            order_by=(ProviderConfiguration.priority, ProviderConfiguration.name),
            environment_id=environment_id,
        )

    def named(self, name: str) -> Sequence[ProviderConfiguration]:
        """The configurations of one provider in every environment."""
        return self.find_rows(
            ProviderConfiguration, order_by=(ProviderConfiguration.environment_id,), name=name
        )

    def stamp(self, environment_id: str) -> tuple[tuple[str, int, datetime], ...]:
        """Name, priority and update time of each configuration: what changed, cheaply."""
        rows = self.session.execute(_STAMP, {"environment_id": environment_id})
        return tuple((name, priority, updated_at) for name, priority, updated_at in rows)
