"""The short commands load only what they need: `tidings --help`, `keys` and `admin create`
run without the web framework, the job engine, Alembic, Liquid or the HTTP client, which
made up most of their start-up, and with only the tables they use. Each command runs in a
fresh interpreter that then prints the modules it loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from tests.conftest import Keys, server_environment
from tidings.config import Settings
from tidings.migrate import alembic_config, head_revision
from tidings.runtime import Runtime
from tidings.studio import auth

HEAVY = {"fastapi", "starlette", "uvicorn", "huey", "alembic", "liquid", "httpx", "httpcore"}
# Tracing and metrics: OpenTelemetry is imported only when tracing is on (docs/observability.md).
HEAVY |= {"opentelemetry", "prometheus_client"}
DATABASE = {"sqlalchemy", "pydantic", "pydantic_settings", "cryptography", "argon2"}
WORKSPACE_TABLES = {"tidings.models.base", "tidings.models.workspace"}
ADMIN_TABLES = {"tidings.models.admin", "tidings.models.stamped"}

_RUN = """
import json, sys
from tidings.cli import main
code = main(sys.argv[1:], standalone_mode=False)
print(json.dumps({"code": code, "loaded": sorted(sys.modules)}))
"""


def _run(settings: Settings, *args: str) -> tuple[str, set[str]]:
    """The command's output, and the modules its process loaded (each package's among them)."""
    result = subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        env=server_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    *output, last = result.stdout.splitlines()
    report = json.loads(last)
    assert report["code"] in (0, None), result.stderr
    return "\n".join(output), set(report["loaded"])


def _tables(settings: Settings, loaded: set[str]) -> set[str]:
    """The model modules among `loaded`, and on SQLite the Postgres dialect if loaded: a short
    command needs only the tables it reads and writes."""
    postgres = {"sqlalchemy.dialects.postgresql"} if settings.is_sqlite else set()
    return {name for name in loaded if name.startswith("tidings.models.")} | (loaded & postgres)


@pytest.mark.backend_independent  # --help opens no database
def test_help_loads_neither_the_app_nor_the_database(settings: Settings) -> None:
    output, loaded = _run(settings, "--help")
    assert "keys" in output
    assert "admin" in output
    assert loaded & (HEAVY | DATABASE) == set()


def test_the_keys_commands_load_no_web_job_or_migration_code(
    settings: Settings, runtime: Runtime, keys: Keys
) -> None:
    output, loaded = _run(settings, "keys", "create", "--env", "production", "--json")
    created = json.loads(output)
    assert created["environment"] == "production"
    assert loaded & HEAVY == set()
    assert _tables(settings, loaded) == WORKSPACE_TABLES

    output, loaded = _run(settings, "keys", "list")
    assert {keys.test, keys.production, created["key"]} <= set(output.split())
    assert loaded & HEAVY == set()
    assert _tables(settings, loaded) == WORKSPACE_TABLES

    output, loaded = _run(settings, "keys", "revoke", created["id"])
    assert output == f"Revoked {created['id']}."
    assert loaded & HEAVY == set()
    assert _tables(settings, loaded) == WORKSPACE_TABLES


def test_admin_create_loads_no_web_job_or_migration_code(
    settings: Settings, runtime: Runtime
) -> None:
    output, loaded = _run(settings, "admin", "create", "ada@example.com", "--password", "a" * 12)
    assert output == "Created admin ada@example.com."
    assert loaded & HEAVY == set()
    assert _tables(settings, loaded) == WORKSPACE_TABLES | ADMIN_TABLES
    with runtime.database.read() as session:
        admin = auth.verify_credentials(session, "ada@example.com", "a" * 12)
    assert admin.email == "ada@example.com"


def test_a_short_command_on_a_new_database_migrates_it_first(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    output, loaded = _run(settings, "admin", "create", "ada@example.com", "--password", "a" * 12)
    assert output == "Created admin ada@example.com."
    assert "alembic" in loaded
    output, loaded = _run(settings, "keys", "list", "--json")
    assert {key["environment"] for key in json.loads(output)} == {"test", "production"}
    assert "alembic" not in loaded


def test_the_head_read_from_the_revision_files_is_alembics() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
