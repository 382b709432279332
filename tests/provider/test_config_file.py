"""Providers configured from the TOML config file at start."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import Serve, cli_keys
from tests.processes import HTTP_TIMEOUT
from tidings.config import Settings
from tidings.provider import config_file
from tidings.runtime import Runtime

CONFIG = """
[providers.smtp]
environments = ["production"]
priority = 3
host = "smtp.example.org"
port = 2525
security = "none"
username = "mailer"
password = "${TIDINGS_TEST_SMTP_PASSWORD}"
from_email = "notifications@example.org"
"""


def test_serve_applies_the_config_file(serve: Serve, settings: Settings, tmp_path: Path) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "tidings.toml").write_text(CONFIG)
    server = serve(TIDINGS_TEST_SMTP_PASSWORD="s3cret-from-env")
    keys = {k["environment"]: k["key"] for k in cli_keys(settings)}
    production = httpx.get(
        f"{server.url}/providers/smtp",
        headers={"Authorization": f"Bearer {keys['production']}"},
        timeout=HTTP_TIMEOUT,
    )
    assert production.status_code == 200, production.text
    body = production.json()
    assert body["priority"] == 3
    assert body["config"]["host"] == "smtp.example.org"
    assert body["config"]["password"] == "**********"
    assert "s3cret-from-env" not in production.text
    test_env = httpx.get(
        f"{server.url}/providers/smtp",
        headers={"Authorization": f"Bearer {keys['test']}"},
        timeout=HTTP_TIMEOUT,
    )
    assert test_env.status_code == 404
    server.stop()
    assert "Providers from" in (tmp_path / "serve.log").read_text()


def test_config_file_errors_name_the_place(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tidings.toml"
    monkeypatch.delenv("TIDINGS_TEST_SMTP_PASSWORD", raising=False)
    path.write_text(CONFIG)
    with pytest.raises(config_file.ConfigFileError, match="TIDINGS_TEST_SMTP_PASSWORD is not set"):
        config_file.apply(runtime.database, runtime.config_cipher, runtime.outbound, path)
    path.write_text('[providers.smtp]\nhost = "x"\n')
    with pytest.raises(config_file.ConfigFileError, match=r"providers\.smtp: config\.from_email"):
        config_file.apply(runtime.database, runtime.config_cipher, runtime.outbound, path)
    path.write_text("[providers.carrier-pigeon]\nspeed = 1\n")
    with pytest.raises(config_file.ConfigFileError, match="No provider named 'carrier-pigeon'"):
        config_file.apply(runtime.database, runtime.config_cipher, runtime.outbound, path)
    path.write_text("[providers.smtp\n")
    with pytest.raises(config_file.ConfigFileError, match=r"tidings\.toml"):
        config_file.apply(runtime.database, runtime.config_cipher, runtime.outbound, path)
