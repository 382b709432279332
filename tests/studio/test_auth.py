"""Admin accounts, one-time links and sessions, without a browser."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from tidings.errors import BadRequest, Unauthorized
from tidings.kit.crypto import sha256_hex
from tidings.kit.time import utcnow
from tidings.models import AdminSession, AdminSignInToken, AdminUser
from tidings.runtime import Runtime
from tidings.studio import auth


def test_passwords_are_argon2_hashes_and_wrong_ones_are_refused(runtime: Runtime) -> None:
    with runtime.database.write() as (session, _):
        admin, created = auth.set_admin_password(session, " Admin@Example.com ", "long enough 1")
        assert created is True
        assert admin.email == "admin@example.com"
        assert admin.password_hash.startswith("$argon2id$")
        assert PasswordHasher().verify(admin.password_hash, "long enough 1")
    with runtime.database.write() as (session, _):
        assert auth.verify_credentials(session, "ADMIN@example.com", "long enough 1").id == admin.id
        for email, password in (
            ("admin@example.com", "wrong password"),
            ("nobody@example.com", "long enough 1"),
        ):
            with pytest.raises(Unauthorized) as refused:
                auth.verify_credentials(session, email, password)
            assert refused.value.code == "invalid_credentials"
        with pytest.raises(BadRequest) as short:
            auth.set_admin_password(session, "admin@example.com", "short")
        assert short.value.field == "password"
        with pytest.raises(BadRequest) as bad_email:
            auth.set_admin_password(session, "not-an-email", "long enough 1")
        assert bad_email.value.field == "email"


def test_sign_in_link_is_stored_hashed_single_use_and_expires(runtime: Runtime) -> None:
    with runtime.database.write() as (session, _):
        assert auth.has_admins(session) is False
        token = auth.create_sign_in_link_token(session)
        expired = auth.create_sign_in_link_token(session)
        rows = session.scalars(select(AdminSignInToken)).all()
        assert {row.token_hash for row in rows} == {sha256_hex(token), sha256_hex(expired)}
        for row in rows:
            if row.token_hash == sha256_hex(expired):
                row.expires_at = utcnow() - timedelta(seconds=1)
    with runtime.database.write() as (session, _):
        assert auth.sign_in_link_is_valid(session, token) is True
        admin = auth.use_sign_in_link(session, token, "first@example.com", "first password")
        assert admin.email == "first@example.com"
    with runtime.database.write() as (session, _):
        assert auth.has_admins(session) is True
        for spent in (token, expired, "made-up"):
            assert auth.sign_in_link_is_valid(session, spent) is False
            with pytest.raises(Unauthorized) as refused:
                auth.use_sign_in_link(session, spent, "other@example.com", "other password")
            assert refused.value.code == "sign_in_link_invalid"
    with runtime.database.read() as session:
        assert session.scalars(select(AdminUser.email)).all() == ["first@example.com"]


def test_sessions_end_on_sign_out_expiry_and_password_change(runtime: Runtime) -> None:
    with runtime.database.write() as (session, _):
        admin, _ = auth.set_admin_password(session, "admin@example.com", "long enough 1")
        first = auth.start_session(session, admin)
        second = auth.start_session(session, admin)
        stale = auth.start_session(session, admin)
        row = session.scalars(
            select(AdminSession).where(AdminSession.token_hash == sha256_hex(stale))
        ).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
    with runtime.database.write() as (session, _):
        signed_in = auth.resolve_session(session, first)
        assert signed_in is not None
        assert signed_in.email == "admin@example.com"
        assert signed_in.scope.environment == "test"
        assert auth.resolve_session(session, stale) is None
        auth.switch_environment(session, signed_in, "production")
    with runtime.database.write() as (session, _):
        switched = auth.resolve_session(session, first)
        assert switched is not None
        assert switched.scope.environment == "production"
        auth.end_session(session, first)
    with runtime.database.write() as (session, _):
        assert auth.resolve_session(session, first) is None
        assert auth.resolve_session(session, second) is not None
        auth.set_admin_password(session, "admin@example.com", "a new password")
    with runtime.database.read() as session:
        assert auth.resolve_session(session, second) is None
