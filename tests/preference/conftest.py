"""Fixtures for the preference tests: the caller scopes and the unsubscribe signing key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import Keys
from tidings.config import Settings
from tidings.kit.crypto import load_or_create_secret
from tidings.preference.service import unsubscribe_key
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
def signing_key(runtime: Runtime, settings: Settings) -> bytes:
    """The key the server signs with: derived from the data directory's server secret."""
    return unsubscribe_key(load_or_create_secret(settings.data_dir, None))
