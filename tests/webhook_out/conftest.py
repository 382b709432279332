"""Outbound webhook tests: a short request timeout, and the loopback receiver."""

from __future__ import annotations

import pytest

from tests.webhook_out.receiver import receiver  # noqa: F401 - a fixture for these tests
from tidings.config import Settings

TIMEOUT_SECONDS = 1.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"webhook_timeout_seconds": TIMEOUT_SECONDS, "webhook_threads": 2}
    )
