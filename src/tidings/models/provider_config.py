from __future__ import annotations

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, EnvironmentRow
from tidings.models.stamped import Stamped


class ProviderConfiguration(EnvironmentRow, Stamped, Base):
    """A configured provider of one environment; its config JSON is encrypted at rest."""

    __tablename__ = "provider_configuration"
    __table_args__ = (UniqueConstraint("environment_id", "name"),)

    name: Mapped[str] = mapped_column(String(60))
    channel: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    config_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
