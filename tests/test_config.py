"""Settings that depend on the command that reads them."""

from __future__ import annotations

import pytest

from tidings.config import Settings


def test_serve_runs_one_consumer_thread_and_a_worker_two(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TIDINGS_CONSUMER_WORKERS", raising=False)
    settings = Settings()
    assert settings.consumer_threads(embedded=True) == 1
    assert settings.consumer_threads(embedded=False) == 2


@pytest.mark.parametrize("value", ["0", "3"])
def test_the_environment_sets_both(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TIDINGS_CONSUMER_WORKERS", value)
    settings = Settings()
    assert settings.consumer_threads(embedded=True) == int(value)
    assert settings.consumer_threads(embedded=False) == int(value)
