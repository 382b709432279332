"""The `tidings` command.

Only click is imported here; each command imports what it needs, so that `tidings --help` and
the short commands (`keys`, `admin create`, `migrate`) answer without loading the web app,
the job engine or Alembic. tests/test_cli.py keeps it so.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from tidings.workspace.scopes import ENVIRONMENTS, KEY_SCOPES, SECRET

if TYPE_CHECKING:
    from datetime import datetime

    from tidings.config import Settings
    from tidings.db import Database
    from tidings.runtime import Runtime
    from tidings.workspace.keys import KeyCipher

P = ParamSpec("P")
T = TypeVar("T")


def _settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from tidings.config import Settings

    values = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"TIDINGS_{str(error['loc'][0]).upper()}: {error['msg']}" for error in exc.errors()
        )
        raise click.ClickException(f"invalid setting: {problems}") from exc


# How long a thread holding the interpreter keeps it while another waits (Python's default:
# 5 ms). A serving process runs the event loop, the ingest writer, consumer and delivery
# threads; each time one comes back from SQLite or a socket it waits for the interpreter, and
# a message's way through crosses several such hand-overs, so with the default each request
# and message could wait milliseconds at each. Shorter turns cost a little more switching and
# keep those waits short (docs/architecture.md, "Short turns at the interpreter").
SWITCH_INTERVAL_SECONDS = 0.0002


def _prepare(settings: Settings) -> Runtime:
    """The whole runtime, on a migrated database: for the commands that run the app or jobs,
    whose threads take shorter turns at the interpreter (SWITCH_INTERVAL_SECONDS)."""
    from tidings.migrate import upgrade
    from tidings.runtime import build_runtime

    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    runtime = build_runtime(settings)
    upgrade(runtime.database)
    return runtime


@dataclass(frozen=True)
class _Store:
    """What the short commands need of a runtime: the migrated database and the key cipher."""

    database: Database
    cipher: KeyCipher


def _open_store(settings: Settings) -> _Store:
    from tidings.db import Database, create_database_engine
    from tidings.kit.crypto import load_or_create_secret
    from tidings.migrate import upgrade
    from tidings.workspace.keys import KeyCipher

    secret = load_or_create_secret(
        settings.data_dir,
        settings.secret_key.get_secret_value() if settings.secret_key else None,
    )
    database = Database(create_database_engine(settings))
    upgrade(database)
    return _Store(database, KeyCipher.from_secret(secret))


def _apply_config_file(runtime: Runtime) -> None:
    from tidings.provider import config_file

    try:
        path = config_file.config_path(runtime.settings)
        if path is not None:
            applied = config_file.apply(
                runtime.database, runtime.config_cipher, runtime.outbound, path
            )
            click.echo(f"  Providers from {path}: {', '.join(applied) or 'none'}")
    except config_file.ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc


def _configure_logging(settings: Settings) -> None:
    """The log's format, and the observability the environment asks for: traces
    (`OTEL_TRACES_EXPORTER`; OpenTelemetry is imported only then) and the metrics port."""
    from tidings.observability import tracing

    if settings.log_format == "json":
        from tidings.observability.logging import JsonFormatter

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=logging.INFO, handlers=[handler])
    else:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    logging.getLogger("huey").setLevel(logging.WARNING)
    tracing.setup_from_environment()


def _serve_metrics(runtime: Runtime) -> None:
    from tidings.scrape.server import serve_metrics

    settings = runtime.settings
    if serve_metrics(settings, runtime.database) is not None:
        click.echo(f"  Metrics: http://{settings.metrics_host}:{settings.metrics_port}/metrics")


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where Tidings keeps its SQLite files and secret [env TIDINGS_DATA_DIR; ./.tidings].",
)


@click.group()
@click.version_option(package_name="tidings")
def main() -> None:
    """Tidings: self-hosted notifications from your Segment events."""


@main.command()
@click.option("--host", default=None, help="Interface to listen on [env TIDINGS_HOST; 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env TIDINGS_PORT; 8000].")
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help="Log every request, not only the refused ones [env TIDINGS_ACCESS_LOG; off].",
)
@data_dir_option
def serve(
    host: str | None, port: int | None, access_log: bool | None, data_dir: Path | None
) -> None:
    """Run the API with an in-process job consumer."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from tidings.app import create_app
    from tidings.workspace import service as workspace_service

    settings = _settings(host=host, port=port, access_log=access_log, data_dir=data_dir)
    _configure_logging(settings)
    runtime = _prepare(settings)
    with runtime.database.write() as (session, _):
        created = workspace_service.bootstrap(session, runtime.cipher)
    url = f"http://{settings.host}:{settings.port}"
    click.echo(f"Tidings is starting on {url}")
    click.echo(f"  Segment destination endpoint: {url}/inbound/segment")
    click.echo(f"  API reference: {url}/docs")
    click.echo(f"  Database: {_redact(settings.resolved_database_url())}")
    if created:
        click.echo("  Created the default workspace with a test and a production environment.")
    _apply_config_file(runtime)
    click.echo(f"  Studio: {url}/studio")
    _print_sign_in_link(runtime, url)
    _serve_metrics(runtime)
    if created:
        # Printed once, when they are made: a log of every start would hold them all.
        click.echo(
            "  New secret API keys (paste one into Segment's Courier destination, field "
            "'API Key'; shown only now, `tidings keys list` shows them again):"
        )
        for key in created:
            click.echo(f"    {key.environment:<10} {key.key}   (id {key.id})")
    else:
        click.echo("  API keys: `tidings keys list` prints them.")
    sys.stdout.flush()
    app = create_app(runtime, consumer_workers=settings.consumer_threads(embedded=True))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
    )
    if settings.access_log:
        # Its lines are at INFO; the server's own stay at WARNING.
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # the port is taken, say: uvicorn has logged why
        sys.exit(STARTUP_FAILURE)


def _print_sign_in_link(runtime: Runtime, url: str) -> None:
    """While no admin exists, each start prints a new one-time link to create the first one."""
    from tidings.studio import auth

    with runtime.database.write() as (session, _):
        if auth.has_admins(session):
            return
        token = auth.create_sign_in_link_token(session)
    click.echo(f"  One-time sign-in link (valid 24 hours): {url}/studio/sign-in/link?token={token}")


@main.command()
@data_dir_option
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Consumer threads [env TIDINGS_CONSUMER_WORKERS; 2 in a worker].",
)
def worker(data_dir: Path | None, workers: int | None) -> None:
    """Run job consumers only (scale out with several of these)."""
    settings = _settings(data_dir=data_dir, consumer_workers=workers)
    _configure_logging(settings)
    runtime = _prepare(settings)
    _serve_metrics(runtime)
    runtime.jobs.start_lease()
    try:
        runtime.jobs.recover()
        threads = settings.consumer_threads(embedded=False)
        click.echo(f"Tidings worker: {threads} consumer thread(s)")
        runtime.jobs.consumer(threads, embedded=False).run()
    finally:
        runtime.jobs.stop_lease()


@main.command()
@data_dir_option
def migrate(data_dir: Path | None) -> None:
    """Apply database migrations and exit."""
    _open_store(_settings(data_dir=data_dir))
    click.echo("Database is up to date.")


@main.group()
def keys() -> None:
    """List, create and revoke API keys."""


def _print_keys(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "revoked" if row["revoked"] else "active"
        click.echo(
            f"{row['id']}  {row['environment']:<10}  {row['scope']:<6}  {state:<7}  {row['key']}"
        )


@keys.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys_list(data_dir: Path | None, as_json: bool) -> None:
    """List the API keys of the default workspace."""
    from tidings.workspace import service as workspace_service

    store = _open_store(_settings(data_dir=data_dir))
    with store.database.read() as session:
        rows = [key.as_dict() for key in _run(workspace_service.list_keys, session, store.cipher)]
    _print_keys(rows, as_json)


@keys.command("create")
@data_dir_option
@click.option("--env", "environment", type=click.Choice(ENVIRONMENTS), required=True)
@click.option(
    "--scope",
    type=click.Choice(KEY_SCOPES),
    default=SECRET,
    show_default=True,
    help="secret: the whole API (keep it on servers). ingest: only the Tracking API, "
    "/inbound/segment and /debug (safe in analytics.js on a web page).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys_create(data_dir: Path | None, environment: str, scope: str, as_json: bool) -> None:
    """Create an API key for an environment."""
    from tidings.workspace import service as workspace_service

    store = _open_store(_settings(data_dir=data_dir))
    with store.database.write() as (session, _):
        key = _run(workspace_service.create_key, session, store.cipher, environment, scope)
    if as_json:
        click.echo(json.dumps(key.as_dict(), indent=2))
    else:
        _print_keys([key.as_dict()], False)


@keys.command("revoke")
@data_dir_option
@click.argument("key_id")
def keys_revoke(data_dir: Path | None, key_id: str) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    from tidings.workspace import service as workspace_service

    store = _open_store(_settings(data_dir=data_dir))
    with store.database.write() as (session, _):
        _run(workspace_service.revoke_key, session, key_id)
    click.echo(f"Revoked {key_id}.")


def _run(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call `function`; an AppError becomes the command's error message."""
    from tidings.errors import AppError

    try:
        return function(*args, **kwargs)
    except AppError as exc:
        raise click.ClickException(exc.message) from exc


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@main.command("apply")
@data_dir_option
@click.option(
    "--env",
    "environment",
    type=click.Choice(ENVIRONMENTS),
    default="test",
    show_default=True,
)
@click.argument("path", type=click.Path(path_type=Path, exists=True))
def apply_definitions(data_dir: Path | None, environment: str, path: Path) -> None:
    """Apply automations, notification templates and audiences from a YAML file or
    directory."""
    from tidings.automation.apply import apply_path

    runtime = _prepare(_settings(data_dir=data_dir))
    with runtime.database.write() as (session, outbox):
        lines = _run(apply_path, session, outbox, environment, path, runtime.outbound)
    for line in lines:
        click.echo(line)


@main.command("test")
@click.option(
    "--definitions",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Definitions (as `tidings apply` reads them) for the tests that give none.",
)
@click.option(
    "--junit-xml",
    "junit_xml",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the results to this file as JUnit XML.",
)
@click.option("--show", is_flag=True, help="Print every test's messages and runs.")
@click.argument("path", type=click.Path(path_type=Path, exists=True))
def run_flow_tests(
    path: Path, definitions: Path | None, junit_xml: Path | None, show: bool
) -> None:
    """Run the flow tests of a *.test.yaml file or directory on a virtual clock; exit 1 on a
    mismatch, with a diff (docs/testing.md)."""
    from tidings.flowtest import runner
    from tidings.flowtest.spec import SpecError, load_tests

    try:
        tests = load_tests(path, definitions)
    except SpecError as exc:
        raise click.ClickException(str(exc)) from exc
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    results = runner.run_tests(tests)
    click.echo(runner.text_report(results, show=show))
    if junit_xml is not None:
        junit_xml.write_bytes(runner.junit_xml(results))
    if not tests or not all(result.passed for result in results):
        sys.exit(1)


@main.command("replay")
@data_dir_option
@click.option("--environment", default="test", show_default=True)
@click.option("--from", "start", required=True, help="ISO-8601 time: events received from it.")
@click.option("--to", "end", required=True, help="ISO-8601 time: events received before it.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--version", type=click.IntRange(1), default=None, help="Default: the current.")
@click.option(
    "--definition",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="A draft definition (YAML or JSON, as PUT /automations/{id} takes it).",
)
@click.option("--samples", type=click.IntRange(0, 50), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the replay as JSON.")
@click.argument("automation_id")
def replay_automation(
    data_dir: Path | None,
    environment: str,
    start: str,
    end: str,
    limit: int,
    version: int | None,
    definition: Path | None,
    samples: int,
    as_json: bool,
    automation_id: str,
) -> None:
    """Replay an automation's stored events through a version or a draft definition in a
    sandbox, in this process, and print what would change (docs/automations.md, "Replay").
    The replay is stored as the API's are: its events' results can be read at
    /automations/{id}/replays/{replay_id}/events."""
    import json

    from tidings.automation.apply import environment_scope
    from tidings.replay import service
    from tidings.replay_run import runner

    times = {name: _timestamp(value, name) for name, value in (("--from", start), ("--to", end))}
    draft = _draft(definition) if definition is not None else None
    settings = _settings(data_dir=data_dir)
    runtime = _prepare(settings)
    request = service.ReplayRequest(
        automation_id=automation_id,
        start=times["--from"],
        end=times["--to"],
        limit=limit,
        version=version,
        definition=draft,
        samples=samples,
    )
    with runtime.database.write() as (session, _):
        scope = _run(environment_scope, session, environment)
        # No outbox: this process runs the replay, not a worker's replay process.
        replay_pk = _run(service.start, session, None, scope, request, runtime.outbound).id

    def progress(done: int) -> None:
        click.echo(f"\rreplayed {done} events", nl=False, err=True)

    try:
        runner.run(
            runtime.database, replay_pk, timeout=settings.replay_timeout_seconds, progress=progress
        )
    except KeyboardInterrupt:
        with runtime.database.write() as (session, _):
            service.cancel(
                session, scope, automation_id, service.by_pk(session, replay_pk).replay_id
            )
        raise
    click.echo("", err=True)
    with runtime.database.read() as session:
        replay = service.view(service.by_pk(session, replay_pk))
    click.echo(json.dumps(replay, indent=2) if as_json else service.summary(replay))
    if replay["status"] != "done":
        sys.exit(1)


def _timestamp(value: str, option: str) -> datetime:
    from tidings.kit.time import parse_timestamp

    parsed = parse_timestamp(value)
    if parsed is None:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time", param_hint=option)
    return parsed


def _draft(definition: Path) -> dict[str, Any]:
    """A draft definition from a YAML or JSON file, as PUT /automations/{id} takes it."""
    import yaml

    draft = yaml.safe_load(definition.read_text(encoding="utf-8"))
    if not isinstance(draft, dict):
        raise click.ClickException(f"{definition}: the definition must be a mapping")
    draft.pop("kind", None)
    draft.pop("id", None)
    return draft


@main.group()
def admin() -> None:
    """Studio admins."""


@admin.command("create")
@data_dir_option
@click.argument("email")
@click.password_option(
    "--password",
    prompt="Password",
    help="The password (prompted for, hidden, when not given; read from stdin when piped).",
)
def admin_create(data_dir: Path | None, email: str, password: str) -> None:
    """Create a Studio admin, or set a new password for an existing one."""
    from tidings.studio import auth
    from tidings.workspace import service as workspace_service

    store = _open_store(_settings(data_dir=data_dir))
    with store.database.write() as (session, _):
        workspace_service.bootstrap(session, store.cipher)
        admin_user, created = _run(auth.set_admin_password, session, email, password)
        email = admin_user.email
    click.echo(f"{'Created admin' if created else 'New password set for'} {email}.")
