"""`tidings keys` with scopes, what `tidings serve` prints, and the database file's mode."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from tests.conftest import Serve, cli_keys, run_cli
from tests.processes import HTTP_TIMEOUT
from tidings.config import Settings
from tidings.migrate import upgrade
from tidings.runtime import Runtime, build_runtime
from tidings.workspace import service as workspace_service


def test_keys_create_takes_a_scope_and_list_shows_it(settings: Settings, runtime: Runtime) -> None:
    created = run_cli(
        settings, "keys", "create", "--env", "production", "--scope", "ingest", "--json"
    )
    assert created.returncode == 0, created.stderr
    ingest = json.loads(created.stdout)
    assert ingest["scope"] == "ingest"
    assert ingest["environment"] == "production"
    assert ingest["key"].startswith("tdg_live_")

    default = run_cli(settings, "keys", "create", "--env", "test", "--json")
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["scope"] == "secret"

    scopes = {key["id"]: key["scope"] for key in cli_keys(settings)}
    assert scopes[ingest["id"]] == "ingest"
    assert list(scopes.values()).count("secret") == 3  # the two first keys and the new one

    plain = run_cli(settings, "keys", "list")
    assert plain.returncode == 0, plain.stderr
    line = next(line for line in plain.stdout.splitlines() if line.startswith(ingest["id"]))
    assert line.split()[:4] == [ingest["id"], "production", "ingest", "active"]

    unknown = run_cli(settings, "keys", "create", "--env", "test", "--scope", "admin")
    assert unknown.returncode != 0
    assert "'admin' is not one of 'secret', 'ingest'" in unknown.stderr


def test_serve_prints_the_keys_only_when_it_creates_them(
    serve: Serve, settings: Settings, tmp_path: Path
) -> None:
    serve("first.log").stop()
    keys = cli_keys(settings)
    assert len(keys) == 2
    first = (tmp_path / "first.log").read_text()
    for key in keys:
        assert key["key"] in first
    assert "New secret API keys" in first

    server = serve("second.log")
    debug = httpx.post(
        f"{server.url}/debug",
        headers={"Authorization": f"Bearer {keys[0]['key']}"},
        timeout=HTTP_TIMEOUT,
    )
    assert debug.status_code == 200
    server.stop()
    second = (tmp_path / "second.log").read_text()
    for key in keys:
        assert key["key"] not in second
    assert "API keys: `tidings keys list` prints them." in second


def test_the_sqlite_files_are_created_for_the_owner_only(tmp_path: Path) -> None:
    runtime = build_runtime(Settings(data_dir=tmp_path / "data"))
    try:
        upgrade(runtime.database)
        with runtime.database.write() as (session, _):
            workspace_service.bootstrap(session, runtime.cipher)
        database = tmp_path / "data" / "tidings.db"
        files = [database, *(database.with_name(f"tidings.db-{end}") for end in ("wal", "shm"))]
        with runtime.database.read() as session:
            workspace_service.list_keys(session, runtime.cipher)
            for path in files:  # all three exist while a connection is open
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        runtime.close()
    assert stat.S_IMODE((tmp_path / "data" / "secret_key").stat().st_mode) == 0o600
