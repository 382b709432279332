from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from tidings.dependencies import Caller, ConfigCipherDep, DatabaseDep, OutboundDep, ReadSession
from tidings.errors import NotFound
from tidings.provider import service
from tidings.provider.registry import load_all
from tidings.routing import ApiRoute

router = APIRouter(prefix="/providers", tags=["providers"], route_class=ApiRoute)


class ProviderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] = Field(description="Fields of the provider's config model.")
    priority: int | None = Field(
        default=None, description="Lower is tried first within a channel (default 0)."
    )


class ProviderView(BaseModel):
    name: str
    channel: str
    priority: int
    config: dict[str, Any] = Field(description="The config, with secrets masked.")


class CatalogEntry(BaseModel):
    name: str
    channel: str
    display_name: str
    docs_url: str
    config_schema: dict[str, Any]


def _view(provider: service.ConfiguredProvider) -> ProviderView:
    return ProviderView(
        name=provider.name,
        channel=provider.channel,
        priority=provider.priority,
        config=service.masked(provider.config),
    )


@router.get("/catalog", response_model=list[CatalogEntry])
def catalog() -> list[CatalogEntry]:
    """Every provider Tidings has, with the JSON Schema of its config."""
    return [
        CatalogEntry(
            name=cls.name,
            channel=cls.channel,
            display_name=cls.display_name,
            docs_url=cls.docs_url,
            config_schema=cls.config_model.model_json_schema(),
        )
        for cls in sorted(load_all().values(), key=lambda cls: (cls.channel, cls.name))
    ]


@router.get("", response_model=list[ProviderView])
def list_providers(
    caller: Caller, session: ReadSession, config_cipher: ConfigCipherDep
) -> list[ProviderView]:
    return [
        _view(provider)
        for provider in service.configured(session, caller.environment_id, config_cipher)
    ]


@router.get("/{name}", response_model=ProviderView)
def get_provider(
    name: str, caller: Caller, session: ReadSession, config_cipher: ConfigCipherDep
) -> ProviderView:
    for provider in service.configured(session, caller.environment_id, config_cipher):
        if provider.name == name:
            return _view(provider)
    service.provider_class(name)
    raise NotFound(f"Provider {name!r} is not configured.", code="provider_not_configured")


@router.put(
    "/{name}",
    response_model=ProviderView,
    responses={201: {"model": ProviderView, "description": "Created."}},
)
def put_provider(
    name: str,
    body: ProviderBody,
    caller: Caller,
    config_cipher: ConfigCipherDep,
    database: DatabaseDep,
    outbound: OutboundDep,
    response: Response,
) -> ProviderView:
    """Configure a provider for this environment. Omitted secrets keep their stored value."""
    with database.write() as (session, _):
        provider, created = service.configure(
            session,
            caller,
            config_cipher,
            name,
            dict(body.config),
            body.priority,
            outbound=outbound,
        )
    response.status_code = 201 if created else 200
    return _view(provider)


@router.delete("/{name}", status_code=204)
def delete_provider(name: str, caller: Caller, database: DatabaseDep) -> Response:
    with database.write() as (session, _):
        service.remove(session, caller, name)
    return Response(status_code=204)
