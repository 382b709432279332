"""Providers from a TOML config file, applied when Tidings starts.

`TIDINGS_CONFIG_FILE` names the file; without it, `<data dir>/tidings.toml` is used when it
exists. Each `[providers.<name>]` table configures one provider with the fields of its config
model, plus two optional keys of its own:

```toml
[providers.smtp]
environments = ["production"]   # default: every environment of the workspace
priority = 0                    # lower is tried first within a channel
host = "smtp.example.com"
port = 587
username = "apikey"
password = "${SMTP_PASSWORD}"   # ${NAME} is read from the environment
from_email = "notifications@example.com"
```

`tidings serve` applies the file at every start, so a provider defined in it is managed by
the file: a change made through the API lasts until the next start.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db import Database
from tidings.errors import AppError
from tidings.kit.outbound import OutboundGuard
from tidings.provider.service import configure
from tidings.workspace.repository import WorkspaceRepository
from tidings.workspace.service import Scope, default_workspace

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigFileError(ValueError):
    pass


def config_path(settings: Settings) -> Path | None:
    configured = os.environ.get("TIDINGS_CONFIG_FILE")
    if configured:
        path = Path(configured)
        if not path.exists():
            raise ConfigFileError(f"TIDINGS_CONFIG_FILE={configured}: no such file")
        return path
    default = settings.data_dir / "tidings.toml"
    return default if default.exists() else None


def _interpolate(value: Any, where: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigFileError(f"{where}: the environment variable {name} is not set")
            return os.environ[name]

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, dict):
        return {key: _interpolate(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, where) for item in value]
    return value


def load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: {exc}") from exc
    providers = document.get("providers", {})
    if not isinstance(providers, dict):
        raise ConfigFileError(f"{path}: `providers` must be a table of [providers.<name>]")
    return {
        name: _interpolate(table, f"{path}: providers.{name}")
        for name, table in providers.items()
        if isinstance(table, dict)
    }


def apply(
    database: Database, config_cipher: Fernet, outbound: OutboundGuard, path: Path
) -> list[str]:
    """Configure every provider the file names; returns `name@environment` for each."""
    applied = []
    with database.write() as (session, _):
        for name, table in load(path).items():
            values = dict(table)
            environments = values.pop("environments", None)
            priority = values.pop("priority", None)
            for scope in _scopes(session, environments, f"{path}: providers.{name}"):
                try:
                    configure(
                        session,
                        scope,
                        config_cipher,
                        name,
                        values,
                        priority,
                        outbound=outbound,
                    )
                except AppError as exc:
                    raise ConfigFileError(f"{path}: providers.{name}: {exc.message}") from exc
                applied.append(f"{name}@{scope.environment}")
    return applied


def _scopes(session: Session, environments: Any, where: str) -> list[Scope]:
    workspace = default_workspace(session)
    rows = WorkspaceRepository(session).environments(workspace.id)
    known = {row.name: row for row in rows}
    names = list(known) if environments is None else environments
    if not isinstance(names, list) or any(name not in known for name in names):
        choices = ", ".join(sorted(known))
        raise ConfigFileError(
            f"{where}.environments: must be a list of {choices}; got {environments!r}"
        )
    return [Scope(workspace.id, known[name].id, name, "") for name in names]
