from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, UTCDateTime
from tidings.models.stamped import Stamped


class SignedSource(Stamped, Base):
    """A sender that signs its requests (Segment's Webhooks destination), per environment.

    Its shared secrets (one, or two during a rotation) are kept encrypted as one JSON list;
    `signature_failures` counts the requests refused for a missing or wrong signature.
    """

    __tablename__ = "signed_source"
    __table_args__ = (UniqueConstraint("environment_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    secrets_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    signature_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_signature_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
