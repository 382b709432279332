"""Studio admins: passwords (argon2), one-time sign-in links and sessions.

Tokens (sign-in links and sessions) are random, shown once, and stored as SHA-256 hashes.
A sign-in link is single use and expires; using it creates the first admin's account.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from tidings.errors import BadRequest, TooManyRequests, Unauthorized
from tidings.kit.crypto import sha256_hex
from tidings.kit.ids import new_id
from tidings.kit.time import utcnow
from tidings.models import AdminSession, AdminSignInToken, AdminUser, Environment
from tidings.studio.repository import StudioRepository
from tidings.workspace.service import Scope, default_workspace

if TYPE_CHECKING:
    from tidings.workspace.limits import AuthLimits

SIGN_IN_LINK_LIFETIME = timedelta(hours=24)
SESSION_LIFETIME = timedelta(days=14)
MIN_PASSWORD_LENGTH = 10
DEFAULT_ENVIRONMENT = "test"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_hasher = PasswordHasher()

INVALID_CREDENTIALS = "Wrong email or password. `tidings admin create EMAIL` sets a new password."


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The admin behind a request, and the environment Studio shows them."""

    admin_id: str
    email: str
    session_id: int
    scope: Scope


def _check_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise BadRequest(f"{email!r} is not an email address.", field="email")
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(
            f"The password needs at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def set_admin_password(session: Session, email: str, password: str) -> tuple[AdminUser, bool]:
    """Create the admin, or give an existing one a new password. Returns (admin, created)."""
    email = _check_email(email)
    _check_password(password)
    repository = StudioRepository(session)
    now = utcnow()
    admin = repository.admin_by_email(email)
    created = admin is None
    if admin is None:
        admin = AdminUser(
            id=new_id("adm"),
            workspace_id=default_workspace(session).id,
            email=email,
            created_at=now,
        )
        session.add(admin)
    admin.password_hash = hash_password(password)
    admin.updated_at = now
    if not created:
        # A new password ends every session opened with the old one.
        repository.delete_sessions_of(admin.id)
    session.flush()
    return admin, created


def has_admins(session: Session) -> bool:
    return StudioRepository(session).count_admins() > 0


def create_sign_in_link_token(session: Session) -> str:
    """A new one-time sign-in token; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AdminSignInToken(
            workspace_id=default_workspace(session).id,
            token_hash=sha256_hex(token),
            created_at=now,
            expires_at=now + SIGN_IN_LINK_LIFETIME,
        )
    )
    session.flush()
    return token


def sign_in_link_is_valid(session: Session, token: str) -> bool:
    row = StudioRepository(session).sign_in_token(sha256_hex(token))
    return row is not None and row.used_at is None and row.expires_at > utcnow()


def use_sign_in_link(session: Session, token: str, email: str, password: str) -> AdminUser:
    """Spend a sign-in link (once) on creating or resetting an admin account."""
    row = StudioRepository(session).sign_in_token(sha256_hex(token), for_update=True)
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise Unauthorized(
            "This sign-in link was already used or has expired. Restart `tidings serve` for a "
            "new one, or run `tidings admin create EMAIL`.",
            code="sign_in_link_invalid",
        )
    admin, _ = set_admin_password(session, email, password)
    row.used_at = utcnow()
    return admin


def sign_in(
    session: Session, limits: AuthLimits, client: str, email: str, password: str
) -> AdminUser:
    """`verify_credentials` behind the sign-in lockout.

    Wrong passwords are counted per account and per client address; once either has spent
    its allowance (TIDINGS_SIGN_IN_FAILURE_LIMIT, TIDINGS_SIGN_IN_CLIENT_FAILURE_LIMIT) every
    attempt is refused with 429 until the lockout has passed, the right password included:
    the password is not even checked, so a guess during the lockout learns nothing.
    An unknown email is locked like a real one, so a lockout does not tell which exist.
    """
    account = email.strip().lower()
    wait = max(limits.accounts.wait(account), limits.sign_in_clients.wait(client))
    if wait:
        raise TooManyRequests(
            "Too many wrong passwords: sign-in is locked for this account or from this "
            f"address. Try again in {_duration(wait)}; `tidings admin create EMAIL` sets a "
            "new password if it is lost.",
            retry_after=wait,
            code="sign_in_locked",
        )
    try:
        return verify_credentials(session, email, password)
    except Unauthorized:
        limits.accounts.take(account)
        limits.sign_in_clients.take(client)
        raise


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def verify_credentials(session: Session, email: str, password: str) -> AdminUser:
    admin = StudioRepository(session).admin_by_email(email.strip().lower())
    if admin is None:
        # Same work as a real check, so timing does not tell which emails exist.
        with contextlib.suppress(VerificationError):
            _hasher.verify(_dummy_hash(), password)
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    try:
        _hasher.verify(admin.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials") from exc
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = hash_password(password)
    return admin


def start_session(session: Session, admin: AdminUser) -> str:
    """Open a session for the admin; returns its token (for the signed cookie)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    environment = StudioRepository(session).environment(admin.workspace_id, DEFAULT_ENVIRONMENT)
    session.add(
        AdminSession(
            token_hash=sha256_hex(token),
            admin_user_id=admin.id,
            environment_id=environment.id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return token


def resolve_session(session: Session, token: str) -> SignedIn | None:
    found = StudioRepository(session).session_with_admin(sha256_hex(token))
    if found is None:
        return None
    row, admin, environment = found
    if row.expires_at <= utcnow():
        return None
    return SignedIn(
        admin_id=admin.id,
        email=admin.email,
        session_id=row.id,
        scope=Scope(admin.workspace_id, environment.id, environment.name, f"studio:{admin.id}"),
    )


def end_session(session: Session, token: str) -> None:
    StudioRepository(session).delete_session(sha256_hex(token))


def switch_environment(session: Session, signed_in: SignedIn, name: str) -> Environment:
    repository = StudioRepository(session)
    environment = repository.environment(signed_in.scope.workspace_id, name)
    row = session.get(AdminSession, signed_in.session_id)
    if row is not None:
        row.environment_id = environment.id
    return environment


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the email is unknown (made once, not at import)."""
    return _hasher.hash(secrets.token_hex(16))
