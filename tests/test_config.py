"""Settings that depend on the command that reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tidings.cli import main
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


def test_a_malformed_outbound_allowance_stops_a_command_with_the_entry_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIDINGS_OUTBOUND_ALLOW", "127.0.0.1,bad host")
    result = CliRunner().invoke(main, ["migrate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "invalid setting: TIDINGS_OUTBOUND_ALLOW" in result.output
    assert "'bad host' is not a host name, IP address or CIDR range" in result.output
    assert not (tmp_path / "tidings.db").exists()
