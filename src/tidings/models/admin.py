"""Studio's admins, their one-time sign-in links and their sessions.

Passwords are argon2 hashes; sign-in link and session tokens are stored as SHA-256 hashes, so
a copy of the database opens no session.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, KeyedRow, UTCDateTime
from tidings.models.stamped import Stamped


class AdminUser(Stamped, Base):
    """A person who can sign in to Studio."""

    __tablename__ = "admin_user"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))


class AdminSignInToken(KeyedRow, Base):
    """A one-time sign-in link: single use, expiring, kept as a hash."""

    __tablename__ = "admin_sign_in_token"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AdminSession(KeyedRow, Base):
    """A signed-in Studio session and the environment it is looking at."""

    __tablename__ = "admin_session"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin_user_id: Mapped[str] = mapped_column(
        ForeignKey("admin_user.id", ondelete="CASCADE"), index=True
    )
    environment_id: Mapped[str] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
