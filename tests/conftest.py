"""Shared fixtures.

The suite runs on SQLite by default, each test on a copy of a database migrated once. With
`TIDINGS_TEST_DATABASE_URL` set to a Postgres URL (and optionally `TIDINGS_TEST_JOB_STORAGE`
to a Redis URL), every test runs on Postgres, in a schema migrated once for the session and
emptied before each test. Under pytest-xdist (`make test` runs four workers) each worker
process has its own template database, schema and queue names.

Only the `settings` fixture hands a test the configured database and job storage: a test
whose fixtures do not include it (a pure unit test, a provider against a local fake) runs
the same on every backend. `--backend-dependent-only`, which `make test` gives the Postgres
run, deselects those, and the tests marked `backend_independent` (they take `settings` for
a data directory only): the SQLite run has already run them, and they would only repeat.
"""

from __future__ import annotations

import contextlib
import graphlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from tests import processes
from tests.processes import wait_for
from tests.smtp_sink import smtp_sink  # noqa: F401 - a fixture for every test module
from tidings.app import create_app
from tidings.config import Settings
from tidings.migrate import upgrade
from tidings.runtime import Runtime, build_runtime
from tidings.workspace import service as workspace_service

TEST_DATABASE_URL = os.environ.get("TIDINGS_TEST_DATABASE_URL")
TEST_JOB_STORAGE = os.environ.get("TIDINGS_TEST_JOB_STORAGE", "sqlite")
# The fakes every test sends to (pytest-httpserver, the SMTP sink, fake vendors) listen on
# loopback, which the outbound guard refuses unless allowed. Tests of the guard itself build
# settings without this.
LOOPBACK_ALLOWED = "127.0.0.1,::1,localhost"


BACKEND_INDEPENDENT = "backend_independent"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend-dependent-only",
        action="store_true",
        help="Run only the tests that meet the configured database or job storage: those "
        f"that use the `settings` fixture and are not marked {BACKEND_INDEPENDENT}.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{BACKEND_INDEPENDENT}: the test uses the `settings` fixture, but not its database or "
        "job storage (--backend-dependent-only leaves it out)",
    )


def depends_on_backend(item: pytest.Item) -> bool:
    """Whether the configured database or job storage can change what `item` does: only
    through the `settings` fixture (its `fixturenames` is the whole fixture closure)."""
    fixtures: list[str] = getattr(item, "fixturenames", [])
    return "settings" in fixtures and item.get_closest_marker(BACKEND_INDEPENDENT) is None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--backend-dependent-only"):
        return
    if not TEST_DATABASE_URL:
        raise pytest.UsageError("--backend-dependent-only needs TIDINGS_TEST_DATABASE_URL")
    deselected = [item for item in items if not depends_on_backend(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if depends_on_backend(item)]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The session's safety net: whatever a test started and did not reap (an interrupted
    teardown, say) is killed here (tests/processes.py)."""
    processes.reap_all()


def _plain_postgres_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per session, copied into each test's data dir:
    migrating every test's database from scratch would cost a large share of the run."""
    data_dir = tmp_path_factory.mktemp("migrated") / "data"
    runtime = build_runtime(Settings(data_dir=data_dir))
    upgrade(runtime.database)
    runtime.close()
    path = data_dir / "tidings.db"
    assert (
        not path.with_name("tidings.db-wal").exists()
        or not path.with_name("tidings.db-wal").stat().st_size
    ), "the template database still has a write-ahead log"
    return path


def _schema_url(schema: str) -> str:
    assert TEST_DATABASE_URL
    separator = "&" if "?" in TEST_DATABASE_URL else "?"
    return f"{TEST_DATABASE_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgres_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """With TIDINGS_TEST_DATABASE_URL: a schema migrated once for the session, emptied before
    each test (far cheaper than creating and migrating a schema per test). Its tables come
    referencing ones first, the order in which `_empty_schema` deletes their rows."""
    assert TEST_DATABASE_URL
    schema = f"test_{secrets.token_hex(4)}"
    plain = _plain_postgres_url(TEST_DATABASE_URL)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    runtime = build_runtime(
        Settings(
            data_dir=tmp_path_factory.mktemp("postgres") / "data",
            database_url=_schema_url(schema),
        )
    )
    upgrade(runtime.database)
    runtime.close()
    with psycopg.connect(plain, autocommit=True) as conn:
        tables = _referencing_first(conn, schema)
    yield schema, tables
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _referencing_first(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    """The schema's tables but Alembic's, each before the tables its foreign keys reference."""
    names = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> 'alembic_version'",
        (schema,),
    ).fetchall()
    references = conn.execute(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c "
        "WHERE c.contype = 'f' AND c.connamespace = %s::regnamespace",
        (schema,),
    ).fetchall()
    # regclass::text is schema-qualified only off the search path: keep the bare name.
    referenced: dict[str, set[str]] = {row[0]: set() for row in names}
    for child, parent in references:
        child, parent = child.split(".")[-1].strip('"'), parent.split(".")[-1].strip('"')
        if child != parent:
            referenced[child].add(parent)
    return list(reversed(list(graphlib.TopologicalSorter(referenced).static_order())))


def _empty_schema(conn: psycopg.Connection[Any], schema: str, tables: list[str]) -> None:
    """The schema as the migrations left it: the rows of every table that holds any deleted,
    referencing tables first, in one transaction, and every sequence used reset as RESTART
    IDENTITY would reset it. A DELETE of a test's few rows costs a small fraction of a
    TRUNCATE, which gives each table it empties new files."""
    probes = " UNION ALL ".join(
        f'SELECT {index} WHERE EXISTS (SELECT FROM "{schema}"."{table}")'
        for index, table in enumerate(tables)
    )
    holding = {row[0] for row in conn.execute(probes)}
    with conn.transaction():
        for index, table in enumerate(tables):
            if index in holding:
                conn.execute(f'DELETE FROM "{schema}"."{table}"')
    conn.execute(
        "SELECT setval(format('%%I.%%I', schemaname, sequencename), start_value, false) "
        "FROM pg_sequences WHERE schemaname = %s AND last_value IS NOT NULL",
        (schema,),
    )


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    suffix = secrets.token_hex(4)
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "job_storage": TEST_JOB_STORAGE,
        "job_queue": f"tidings-test-{suffix}",
        "sweep_stale_seconds": 30.0,
        "retry_base_seconds": 0.05,
        "outbound_allow": LOOPBACK_ALLOWED,
    }
    if TEST_DATABASE_URL:
        schema, tables = request.getfixturevalue("postgres_schema")
        with psycopg.connect(_plain_postgres_url(TEST_DATABASE_URL), autocommit=True) as conn:
            # Fail, rather than hang, if an earlier test left a connection holding a lock.
            conn.execute("SET lock_timeout = '20s'")
            _empty_schema(conn, schema, tables)
        values["database_url"] = _schema_url(schema)
    else:
        (tmp_path / "data").mkdir()
        shutil.copyfile(
            request.getfixturevalue("migrated_sqlite"), tmp_path / "data" / "tidings.db"
        )
    return Settings(**values)


@dataclass
class Keys:
    test: str
    production: str
    test_id: str
    production_id: str


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(settings)
    upgrade(runtime.database)
    with runtime.database.write() as (session, _):
        workspace_service.bootstrap(session, runtime.cipher)
    yield runtime
    if settings.job_storage != "sqlite":
        runtime.jobs.huey.flush()
    runtime.close()


@pytest.fixture
def keys(runtime: Runtime) -> Keys:
    with runtime.database.read() as session:
        views = workspace_service.list_keys(session, runtime.cipher)
    by_env = {view.environment: view for view in views}
    return Keys(
        test=by_env["test"].key or "",
        production=by_env["production"].key or "",
        test_id=by_env["test"].id,
        production_id=by_env["production"].id,
    )


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """The app in-process, with its job consumer running, as `tidings serve` runs it, but
    with two consumer threads rather than serve's one, so that the tests also meet two
    threads processing at once (as a `tidings worker` does)."""
    with TestClient(create_app(runtime, consumer_workers=2)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIDINGS_")}
    env.update(
        {
            "TIDINGS_DATA_DIR": str(settings.data_dir),
            "TIDINGS_JOB_STORAGE": settings.job_storage,
            "TIDINGS_JOB_QUEUE": settings.job_queue,
            "TIDINGS_OUTBOUND_ALLOW": settings.outbound_allow,
        }
    )
    if settings.database_url:
        env["TIDINGS_DATABASE_URL"] = settings.database_url
    env.update(extra)
    return env


def run_cli(
    settings: Settings, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return processes.run(
        [sys.executable, "-m", "tidings", *args], env=server_environment(settings), input=input
    )


def start_tidings(settings: Settings, log_path: Path, *args: str, **env: str) -> processes.Child:
    """`tidings <args>` (`worker`, say) in a process group of its own, its output appended to
    `log_path`; the caller reaps it (processes.stop or .kill) in a finalizer."""
    return processes.start(
        [sys.executable, "-m", "tidings", *args],
        env=server_environment(settings, **env),
        log_path=log_path,
    )


class LiveServer:
    """`tidings serve` in a subprocess on a free port. `start` again after `kill` or `stop`
    restarts it on the same port, appending to the same log."""

    def __init__(self, settings: Settings, log_path: Path, **env: str) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = env
        self.process: processes.Child | None = None

    def start(self) -> LiveServer:
        """Start it and wait until /health answers: up to processes.START_SECONDS (scaled),
        failing at once, with the log, if the process exits first. If the wait fails or is
        interrupted, the process is stopped before the exception goes on."""
        self.process = start_tidings(
            self.settings, self.log_path, "serve", "--port", str(self.port), **self.env
        )
        try:
            wait_for(
                self._healthy,
                timeout=processes.START_SECONDS,
                what=f"tidings serve on {self.url}",
                details=self.log,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def log(self) -> str:
        return f"--- {self.log_path.name} ---\n{self.log_path.read_text(errors='replace')}"

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(
                f"tidings serve exited early with status {self.process.returncode}\n{self.log()}"
            )
        try:
            return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing."""
        assert self.process is not None
        processes.kill(self.process)

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), SIGKILL if it lingers. Safe to call again."""
        if self.process is not None:
            processes.stop(self.process)


Serve = Callable[..., LiveServer]
Worker = Callable[..., processes.Child]


@pytest.fixture
def serve(settings: Settings, tmp_path: Path) -> Iterator[Serve]:
    """Starts `tidings serve` on the test's settings: `serve("first.log", TIDINGS_X="1")`.
    Every server it started is stopped when the test ends, however it ends."""
    with contextlib.ExitStack() as stops:  # each stop runs, even if another one fails

        def start(log_name: str = "serve.log", **env: str) -> LiveServer:
            server = LiveServer(settings, tmp_path / log_name, **env)
            stops.callback(server.stop)
            return server.start()

        yield start


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Worker]:
    """Starts `tidings worker` on the test's settings: `worker("worker-1.log", TIDINGS_X="1")`.
    Every worker it started is stopped when the test ends, however it ends."""
    with contextlib.ExitStack() as stops:

        def start(log_name: str = "worker.log", **env: str) -> processes.Child:
            process = start_tidings(settings, tmp_path / log_name, "worker", **env)
            stops.callback(processes.stop, process)
            return process

        yield start


@pytest.fixture
def live_server(serve: Serve) -> LiveServer:
    return serve()


def cli_keys(settings: Settings) -> list[dict[str, Any]]:
    import json

    result = run_cli(settings, "keys", "list", "--json")
    assert result.returncode == 0, result.stderr
    keys: list[dict[str, Any]] = json.loads(result.stdout)
    return keys
