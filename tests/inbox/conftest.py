"""Fixtures for the inbox tests: caller scopes, the server secret, and storing as the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import Keys
from tidings.config import Settings
from tidings.inbox import service
from tidings.kit.crypto import load_or_create_secret
from tidings.kit.time import utcnow
from tidings.models import InboxMessage
from tidings.runtime import Runtime
from tidings.workspace.service import Scope, resolve_keys


@dataclass
class Scopes:
    test: Scope
    production: Scope


@pytest.fixture
def scopes(runtime: Runtime, keys: Keys) -> Scopes:
    with runtime.database.read() as session:
        resolved = resolve_keys(session, runtime.cipher, [keys.test, keys.production])
    return Scopes(test=resolved[keys.test], production=resolved[keys.production])


@pytest.fixture
def secret(runtime: Runtime, settings: Settings) -> bytes:
    """The server secret the runtime built: the data directory's secret file."""
    return load_or_create_secret(settings.data_dir, None)


def token_for(secret: bytes, scope: Scope, user_id: str, hours: float = 1) -> str:
    expires_at = utcnow() + timedelta(hours=hours)
    return service.inbox_token(secret, scope.environment_id, user_id, expires_at, scope.key_id)


def user_headers(secret: bytes, scope: Scope, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(secret, scope, user_id)}"}


def deliver(
    runtime: Runtime,
    scope: Scope,
    user_id: str,
    message_id: str,
    title: str = "Hello",
    body: str = "You have news.",
    action_url: str = "",
    data: dict[str, Any] | None = None,
) -> InboxMessage:
    """Store a message the way the delivery pipeline does: in its own committed unit of work."""
    with runtime.database.write() as (session, _):
        return service.store(
            session,
            scope.environment_id,
            scope.workspace_id,
            user_id,
            message_id,
            {"title": title, "body": body, "action_url": action_url},
            data or {},
        )
