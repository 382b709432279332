"""Configured providers: validated by each provider's config model, encrypted at rest.

Secrets are write-only: reads mask them, and a PUT that leaves a secret out (or sends the
mask back) keeps the stored value, so a form can be saved without retyping secrets.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import httpx
import orjson
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError
from sqlalchemy.orm import Session

from tidings.errors import BadRequest, Conflict, NotFound
from tidings.kit.outbound import OutboundGuard, OutboundRefused
from tidings.kit.time import utcnow
from tidings.models import ProviderConfiguration
from tidings.provider.base import Provider, ProviderConfig
from tidings.provider.registry import load_all
from tidings.provider.repository import ProviderConfigRepository
from tidings.workspace.service import Scope

MASK = "**********"


@dataclass(frozen=True, slots=True)
class ConfiguredProvider:
    environment_id: str
    name: str
    channel: str
    priority: int
    provider_class: type[Provider[Any]]
    config: ProviderConfig
    created_at: datetime
    updated_at: datetime


def reveal(value: Any) -> Any:
    """A config dump with SecretStr values unwrapped, for encryption."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal(item) for item in value]
    return value


def masked(config: ProviderConfig) -> dict[str, Any]:
    dumped: dict[str, Any] = orjson.loads(config.model_dump_json())
    return dumped


def provider_class(name: str) -> type[Provider[Any]]:
    providers = load_all()
    if name not in providers:
        raise NotFound(
            f"No provider named {name!r}. Known providers: {', '.join(sorted(providers))}.",
            code="unknown_provider",
            field="name",
        )
    return providers[name]


def _secret_fields(model: type[ProviderConfig]) -> set[str]:
    return {name for name, field in model.model_fields.items() if _is_secret(field.annotation)}


def _is_secret(annotation: Any) -> bool:
    """SecretStr, also annotated (`SecretHttpUrl`) or optional."""
    if annotation is SecretStr:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_secret(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return any(_is_secret(arg) for arg in get_args(annotation) if arg is not NoneType)
    return False


def _decrypt(fernet: Fernet, row: ProviderConfiguration) -> dict[str, Any]:
    stored: dict[str, Any] = orjson.loads(fernet.decrypt(row.config_ciphertext))
    return stored


def validate_config(cls: type[Provider[Any]], values: dict[str, Any]) -> ProviderConfig:
    try:
        return cls.config_model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "config"
        raise BadRequest(
            f"config.{field}: {first['msg']}. See GET /providers/catalog for {cls.name}'s fields.",
            code="invalid_provider_config",
            field=f"config.{field}",
        ) from exc


def check_outbound(config: ProviderConfig, outbound: OutboundGuard) -> None:
    """Refuse a config whose server is an internal address the operator has not allowed.

    Only what the config spells out is checked here (an IP address in any spelling, or
    localhost); a host name is checked by the guard each time Tidings connects.
    """
    for target in config.outbound_targets():
        try:
            if target.url is not None:
                outbound.check_url(target.url)
            else:
                outbound.check_literal(target.host, target.port)
        except OutboundRefused as exc:
            raise BadRequest(
                f"config.{target.field}: {exc}.",
                code="outbound_refused",
                field=f"config.{target.field}",
            ) from exc


def configure(
    session: Session,
    scope: Scope,
    fernet: Fernet,
    name: str,
    values: dict[str, Any],
    priority: int | None,
    *,
    outbound: OutboundGuard,
    replace: bool = True,
) -> tuple[ConfiguredProvider, bool]:
    """Configure a provider: create it, or (with `replace`) change it; returns it and
    whether it was created."""
    cls = provider_class(name)
    repository = ProviderConfigRepository(session)
    row = repository.get(scope.environment_id, name)
    if row is not None and not replace:
        raise Conflict(
            f"Provider {name!r} is already configured in this environment: change it with "
            f"PUT or PATCH /providers/{name}.",
            code="provider_configured",
            field="provider",
        )
    if row is not None:
        stored = _decrypt(fernet, row)
        for secret in _secret_fields(cls.config_model):
            if values.get(secret) in (None, MASK) and secret in stored:
                values = {**values, secret: stored[secret]}
    config = validate_config(cls, values)
    check_outbound(config, outbound)
    ciphertext = fernet.encrypt(orjson.dumps(reveal(config.model_dump())))
    now = utcnow()
    created = row is None
    if row is None:
        row = ProviderConfiguration(
            workspace_id=scope.workspace_id,
            environment_id=scope.environment_id,
            name=name,
            channel=cls.channel,
            priority=priority or 0,
            created_at=now,
        )
        repository.add(row)
    elif priority is not None:
        row.priority = priority
    row.config_ciphertext = ciphertext
    row.updated_at = now
    session.flush()
    provider = ConfiguredProvider(
        scope.environment_id, name, cls.channel, row.priority, cls, config, row.created_at, now
    )
    return provider, created


def remove(session: Session, scope: Scope, name: str) -> None:
    if not ProviderConfigRepository(session).delete(scope.environment_id, name):
        raise NotFound(f"Provider {name!r} is not configured.", code="provider_not_configured")


def configured(session: Session, environment_id: str, fernet: Fernet) -> list[ConfiguredProvider]:
    """Every configured provider of an environment, by priority then name."""
    providers = load_all()
    result = []
    for row in ProviderConfigRepository(session).of_environment(environment_id):
        cls = providers.get(row.name)
        if cls is None:
            continue
        config = cls.config_model.model_validate(_decrypt(fernet, row))
        result.append(
            ConfiguredProvider(
                environment_id,
                row.name,
                cls.channel,
                row.priority,
                cls,
                config,
                row.created_at,
                row.updated_at,
            )
        )
    return result


def configs_everywhere(session: Session, name: str, fernet: Fernet) -> list[ProviderConfig]:
    """The configs of provider `name` in every environment (for a vendor's callback that
    names no message, such as an Amazon SNS subscription confirmation)."""
    cls = load_all().get(name)
    if cls is None:
        return []
    return [
        cls.config_model.model_validate(_decrypt(fernet, row))
        for row in ProviderConfigRepository(session).named(name)
    ]


class ConfiguredProviders:
    """`configured()` with the decrypted configs kept between calls, and each configured
    provider built once.

    Each `get()` still reads every row's name, priority and update time (one small query), so
    a provider changed through the API or by another process is picked up at once; only
    decryption and validation are skipped when nothing changed.

    `instance()` builds a provider once per environment, name and configuration, on the one
    `http` client, and keeps it with what it holds between sends (SMTP connections, an access
    token). An instance is closed when `get()` finds its configuration changed or removed
    (by the next `instance()` call: closing may wait on the network, and `get()` runs inside
    the routing transaction), when an instance of another configuration replaces it, and by
    `close()` at shutdown.
    """

    def __init__(self, fernet: Fernet, http: httpx.Client) -> None:
        self.fernet = fernet
        self.http = http
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[Any, ...], list[ConfiguredProvider]]] = {}
        self._instances: dict[tuple[str, str], Provider[Any]] = {}
        self._retired: list[Provider[Any]] = []
        self._closed = False

    def get(self, session: Session, environment_id: str) -> list[ConfiguredProvider]:
        stamp = ProviderConfigRepository(session).stamp(environment_id)
        with self._lock:
            entry = self._entries.get(environment_id)
        if entry is not None and entry[0] == stamp:
            return entry[1]
        providers = configured(session, environment_id, self.fernet)
        current = {provider.name: provider.config for provider in providers}
        with self._lock:
            self._entries[environment_id] = (stamp, providers)
            self._retired.extend(
                self._instances.pop(key)
                for key, instance in list(self._instances.items())
                if key[0] == environment_id and current.get(key[1]) != instance.config
            )
        return providers

    def instance(self, provider: ConfiguredProvider) -> Provider[Any]:
        """The provider built from this configuration, built on first use."""
        key = (provider.environment_id, provider.name)
        with self._lock:
            unwanted, self._retired = self._retired, []
            built = self._instances.get(key)
            if built is None or built.config != provider.config:
                if built is not None:
                    unwanted.append(built)
                built = provider.provider_class(provider.config, self.http)
                if self._closed:
                    unwanted.append(built)  # after shutdown: it sends, then holds no connection
                else:
                    self._instances[key] = built
        for instance in unwanted:
            instance.close()
        return built

    def close(self) -> None:
        """Close every instance (at shutdown)."""
        with self._lock:
            self._closed = True
            unwanted = [*self._retired, *self._instances.values()]
            self._retired.clear()
            self._instances.clear()
        for instance in unwanted:
            instance.close()
