from __future__ import annotations

from typing import Annotated, Any

from cryptography.fernet import Fernet
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from tidings.dependencies import Caller, ConfigCipherDep, DatabaseDep, OutboundDep, ReadSession
from tidings.errors import BadRequest, NotFound
from tidings.kit.pagination import Paging
from tidings.kit.time import epoch_ms
from tidings.provider import service
from tidings.provider.base import Provider
from tidings.provider.registry import load_all
from tidings.routing import ApiRoute
from tidings.workspace.service import Scope

router = APIRouter(prefix="/providers", tags=["providers"], route_class=ApiRoute)


TITLE_FIELDS = ("title", "alias")


class ProviderBody(BaseModel):
    """A provider's configuration. `settings` and `provider` are Courier's names: a Courier
    client's body is taken as it is."""

    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] | None = Field(
        default=None, description="Fields of the provider's config model."
    )
    settings: dict[str, Any] | None = Field(
        default=None, description="Courier's name for `config`: give one of the two."
    )
    provider: str | None = Field(
        default=None, description="The provider's key (Courier's field); the path's, if given."
    )
    priority: int | None = Field(
        default=None, description="Lower is tried first within a channel (default 0)."
    )
    title: str | None = Field(default=None, description="Not kept by Tidings: leave it out.")
    alias: str | None = Field(default=None, description="Not kept by Tidings: leave it out.")

    def values(self, name: str | None, *, required: bool = True) -> dict[str, Any]:
        """The config given, checked against the provider named by the path (or, without
        one, by `provider`)."""
        for field in TITLE_FIELDS:
            if getattr(self, field) is not None:
                raise BadRequest(
                    f"Tidings keeps one configuration per provider, named by the provider: "
                    f"it has no {field}. Leave `{field}` out.",
                    field=field,
                )
        if name is not None and self.provider is not None and self.provider != name:
            raise BadRequest(
                f"`provider` is {self.provider!r} but the path names {name!r}; they must be "
                "the same (or leave `provider` out).",
                field="provider",
            )
        if self.config is not None and self.settings is not None:
            raise BadRequest(
                "Give the config once: as `config`, or as `settings` (Courier's name), not both.",
                field="settings",
            )
        given = self.config if self.config is not None else self.settings
        if given is None and required:
            raise BadRequest(
                "The provider's fields are missing: give them as `config` (or `settings`). "
                "GET /providers/catalog lists each provider's fields.",
                field="config",
            )
        return dict(given or {})


class ProviderView(BaseModel):
    """A configured provider, in Tidings' fields and Courier's (`id`, `provider`,
    `settings`, `title`, `created`, `updated`)."""

    name: str
    channel: str
    priority: int
    config: dict[str, Any] = Field(description="The config, with secrets masked.")
    id: str = Field(description="Courier's configuration id: the provider's key, as `name`.")
    provider: str = Field(description="The provider's key, as `name`.")
    settings: dict[str, Any] = Field(description="Courier's name for `config`.")
    title: str = Field(description="The provider's display name.")
    alias: str | None = None
    created: int = Field(description="When it was configured, in epoch milliseconds.")
    updated: int = Field(description="When it was last changed, in epoch milliseconds.")


class ProviderList(BaseModel):
    results: list[ProviderView]
    paging: Paging


class CatalogSetting(BaseModel):
    type: str
    required: bool
    values: list[str] | None = None


class CatalogEntry(BaseModel):
    provider: str = Field(description="The provider's key.")
    name: str = Field(description="Its display name.")
    channel: str
    description: str
    settings: dict[str, CatalogSetting] = Field(
        description="Its config fields: type, whether required, and an enum's values."
    )
    docs_url: str
    config_schema: dict[str, Any] = Field(description="The JSON Schema of its config.")


class Catalog(BaseModel):
    results: list[CatalogEntry]
    paging: Paging


ONE_PAGE = Paging(cursor=None, more=False)


def _view(provider: service.ConfiguredProvider) -> ProviderView:
    config = service.masked(provider.config)
    return ProviderView(
        name=provider.name,
        channel=provider.channel,
        priority=provider.priority,
        config=config,
        id=provider.name,
        provider=provider.name,
        settings=config,
        title=provider.provider_class.display_name,
        created=epoch_ms(provider.created_at),
        updated=epoch_ms(provider.updated_at),
    )


def _catalog_entry(cls: type[Provider[Any]]) -> CatalogEntry:
    schema = cls.config_model.model_json_schema()
    required = set(schema.get("required", []))
    settings = {}
    for field, spec in schema.get("properties", {}).items():
        values = spec.get("enum")
        kind = "enum" if values else spec.get("type") or ("secret" if "writeOnly" in spec else "")
        settings[field] = CatalogSetting(
            type=kind or "any",
            required=field in required,
            values=[str(value) for value in values] if values else None,
        )
    return CatalogEntry(
        provider=cls.name,
        name=cls.display_name,
        channel=cls.channel,
        description=(cls.__doc__ or cls.display_name).strip().splitlines()[0],
        settings=settings,
        docs_url=cls.docs_url,
        config_schema=schema,
    )


@router.get("/catalog", response_model=Catalog)
def catalog(
    channel: Annotated[str | None, Query(max_length=50, description="Only this channel.")] = None,
    keys: Annotated[
        str | None, Query(max_length=2000, description="Only these providers, comma-separated.")
    ] = None,
    name: Annotated[
        str | None, Query(max_length=200, description="Display names containing this.")
    ] = None,
) -> Catalog:
    """Every provider Tidings has, with its config fields and their JSON Schema (Courier's
    shape, with Tidings' `docs_url` and `config_schema`)."""
    wanted = {key.strip() for key in keys.split(",")} if keys else None
    entries = [
        _catalog_entry(cls)
        for cls in sorted(load_all().values(), key=lambda cls: (cls.channel, cls.name))
        if (channel is None or cls.channel == channel.lower())
        and (wanted is None or cls.name in wanted)
        and (name is None or name.lower() in cls.display_name.lower())
    ]
    return Catalog(results=entries, paging=ONE_PAGE)


@router.get("", response_model=ProviderList)
def list_providers(
    caller: Caller, session: ReadSession, config_cipher: ConfigCipherDep
) -> ProviderList:
    """The environment's providers, on one page (there is one configuration per provider)."""
    return ProviderList(
        results=[
            _view(provider)
            for provider in service.configured(session, caller.environment_id, config_cipher)
        ],
        paging=ONE_PAGE,
    )


def _configured(
    session: Session, caller: Scope, config_cipher: Fernet, name: str
) -> service.ConfiguredProvider:
    for provider in service.configured(session, caller.environment_id, config_cipher):
        if provider.name == name:
            return provider
    service.provider_class(name)
    raise NotFound(f"Provider {name!r} is not configured.", code="provider_not_configured")


@router.get("/{name}", response_model=ProviderView)
def get_provider(
    name: str, caller: Caller, session: ReadSession, config_cipher: ConfigCipherDep
) -> ProviderView:
    return _view(_configured(session, caller, config_cipher, name))


class _ConfigWriter:
    """What configuring a provider takes: the caller's environment, the config cipher, the
    database and the outbound guard."""

    def __init__(
        self,
        caller: Caller,
        config_cipher: ConfigCipherDep,
        database: DatabaseDep,
        outbound: OutboundDep,
    ) -> None:
        self.caller = caller
        self.config_cipher = config_cipher
        self.database = database
        self.outbound = outbound

    def save(
        self, name: str, body: ProviderBody, *, replace: bool = True, patch: bool = False
    ) -> tuple[service.ConfiguredProvider, bool]:
        """Configure the provider `name` from the body, in one write; returns it and whether
        it was created. With `replace` False, one already configured is a conflict; with
        `patch`, it must be configured, and the body's fields are laid over its stored ones."""
        with self.database.write() as (session, _):
            if patch:
                configured = _configured(session, self.caller, self.config_cipher, name)
                stored = configured.config.model_dump()
                values = {**service.reveal(stored), **body.values(name, required=False)}
            else:
                values = body.values(name)
            return service.configure(
                session,
                self.caller,
                self.config_cipher,
                name,
                values,
                body.priority,
                outbound=self.outbound,
                replace=replace,
            )


ConfigWriter = Annotated[_ConfigWriter, Depends(_ConfigWriter)]


@router.post("", status_code=201, response_model=ProviderView)
def create_provider(body: ProviderBody, writer: ConfigWriter) -> ProviderView:
    """Configure a provider named by `provider` (Courier's create); 409 if it already is."""
    if body.provider is None:
        raise BadRequest(
            'Name the provider to configure in `provider`, e.g. "smtp" '
            "(GET /providers/catalog lists them).",
            field="provider",
        )
    provider, _created = writer.save(body.provider, body, replace=False)
    return _view(provider)


@router.put(
    "/{name}",
    response_model=ProviderView,
    responses={201: {"model": ProviderView, "description": "Created."}},
)
def put_provider(
    name: str, body: ProviderBody, writer: ConfigWriter, response: Response
) -> ProviderView:
    """Configure a provider for this environment. Omitted secrets keep their stored value."""
    provider, created = writer.save(name, body)
    response.status_code = 201 if created else 200
    return _view(provider)


@router.patch("/{name}", response_model=ProviderView)
def patch_provider(name: str, body: ProviderBody, writer: ConfigWriter) -> ProviderView:
    """Change some fields of a configured provider (Courier's patch): the fields given
    replace the stored ones, the others are kept."""
    provider, _created = writer.save(name, body, patch=True)
    return _view(provider)


@router.delete("/{name}", status_code=204)
def delete_provider(name: str, caller: Caller, database: DatabaseDep) -> Response:
    with database.write() as (session, _):
        service.remove(session, caller, name)
    return Response(status_code=204)
