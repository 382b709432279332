"""FastAPI dependencies shared by every domain: the process's long-lived objects, each on
its own, read sessions, and the caller.

Endpoints that write open `database.write()` themselves, so the commit happens
before the response is sent: a 2xx always means the data is committed.

Every API router is built with `route_class=routing.ApiRoute`, so a route that takes a
`Caller` (or an `IngestCaller`) checks the API key before FastAPI reads and validates the
body: an unauthenticated request is a 401 whatever its body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

import httpx
from cryptography.fernet import Fernet
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from sqlalchemy.orm import Session
from starlette.types import Scope as ASGIScope

from tidings.config import Settings
from tidings.db import Database
from tidings.errors import Forbidden, TooManyRequests, Unauthorized
from tidings.kit.outbound import OutboundGuard
from tidings.kit.ratelimit import TokenBuckets
from tidings.workspace.keys import KeyCipher, key_from_authorization
from tidings.workspace.limits import AuthLimits
from tidings.workspace.scopes import SECRET
from tidings.workspace.service import Scope, resolve_keys

MISSING_KEY_MESSAGE = (
    "Missing API key. Send it as `Authorization: Bearer <key>` (or Basic auth with the key as "
    "the username); `tidings keys list` prints your keys."
)
INVALID_KEY_MESSAGE = (
    "Unknown or revoked API key. Copy a current key from `tidings keys list` or the Studio "
    "Segment integration page."
)
INSUFFICIENT_SCOPE_MESSAGE = (
    "This endpoint needs a `secret` key; this is an `ingest` key, which can only send events "
    "(the Tracking API, /inbound/segment and /debug). Call it from your server with a secret "
    "key: `tidings keys create --env ENV --scope secret`."
)

# Where a request's authenticated caller is kept, so the key is checked once per request.
_CALLER = "tidings.caller"

T = TypeVar("T")


# create_app puts each long-lived object the endpoints use on `app.state`, by this name; an
# endpoint asks for the ones it needs.


def app_state(name: str, kind: type[T]) -> Callable[[Request], T]:
    """The dependency that gives the object `create_app` put on `app.state` as `name`
    (`kind` is its type, for the checker)."""

    def get(request: Request) -> T:
        value: T = getattr(request.app.state, name)
        return value

    return get


get_database = app_state("database", Database)
get_settings = app_state("settings", Settings)
get_key_cipher = app_state("key_cipher", KeyCipher)
# The key that provider configurations and signed-source secrets are encrypted under.
get_config_cipher = app_state("config_cipher", Fernet)
get_outbound = app_state("outbound", OutboundGuard)
# The outbound client on that guard, for requests whose target comes from input.
get_http = app_state("http", httpx.Client)
get_auth_limits = app_state("auth_limits", AuthLimits)
# The server secret (inbox tokens are signed under it).
get_secret = app_state("secret", bytes)
get_unsubscribe_key = app_state("unsubscribe_key", bytes)
get_engagement_key = app_state("engagement_key", bytes)


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
KeyCipherDep = Annotated[KeyCipher, Depends(get_key_cipher)]
ConfigCipherDep = Annotated[Fernet, Depends(get_config_cipher)]
OutboundDep = Annotated[OutboundGuard, Depends(get_outbound)]
HttpDep = Annotated[httpx.Client, Depends(get_http)]
AuthLimitsDep = Annotated[AuthLimits, Depends(get_auth_limits)]
SecretDep = Annotated[bytes, Depends(get_secret)]
UnsubscribeKeyDep = Annotated[bytes, Depends(get_unsubscribe_key)]
EngagementKeyDep = Annotated[bytes, Depends(get_engagement_key)]


def read_session(database: DatabaseDep) -> Iterator[Session]:
    with database.read() as session:
        yield session


ReadSession = Annotated[Session, Depends(read_session)]


def client_address(scope: ASGIScope) -> str:
    """The peer's address: uvicorn puts a trusted proxy's `X-Forwarded-For` there
    (`FORWARDED_ALLOW_IPS`)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def refuse_locked_client(limits: AuthLimits, client: str, key: str) -> None:
    """429 while `client` has spent its failed API key checks (TIDINGS_AUTH_FAILURE_LIMIT),
    unless `key` is one this process accepted lately: a guess cannot be one of those, and
    other senders at the same address (Segment's servers) keep going."""
    failures = limits.api_clients
    wait = failures.wait(client)
    if wait and key not in limits.accepted_keys:
        raise TooManyRequests(
            "Too many requests with a wrong API key from this address: after "
            f"{failures.burst:g} failures it is refused for a while "
            f"(TIDINGS_AUTH_FAILURE_LIMIT). Check the key (`tidings keys list`) and retry "
            f"after {wait} s.",
            retry_after=wait,
            code="too_many_failed_authentications",
        )


def invalid_key(failures: TokenBuckets, client: str) -> Unauthorized:
    """The 401 for a key that is unknown or revoked, counted against the client."""
    failures.take(client)
    return Unauthorized(INVALID_KEY_MESSAGE, code="invalid_api_key")


def presented_key(authorization: str | None) -> str:
    key = key_from_authorization(authorization)
    if key is None:
        raise Unauthorized(MISSING_KEY_MESSAGE, code="missing_api_key")
    return key


def _caller(request: Request) -> Scope:
    cached = request.scope.get(_CALLER)
    if isinstance(cached, Scope):
        return cached
    limits = get_auth_limits(request)
    client = client_address(request.scope)
    key = presented_key(request.headers.get("authorization"))
    refuse_locked_client(limits, client, key)
    with get_database(request).read() as session:
        scope = resolve_keys(session, get_key_cipher(request), [key]).get(key)
    if scope is None:
        raise invalid_key(limits.api_clients, client)
    limits.accepted_keys.add(key)
    request.scope[_CALLER] = scope
    return scope


def accepted_key_id(scope: ASGIScope) -> str | None:
    """The public id of the key this request was accepted with, once its check passed."""
    caller = scope.get(_CALLER)
    return caller.key_id if isinstance(caller, Scope) else None


def authenticate(request: Request) -> Scope:
    """The caller of an API endpoint: a `secret` key (an `ingest` key gets 403)."""
    scope = _caller(request)
    if scope.key_scope != SECRET:
        raise Forbidden(INSUFFICIENT_SCOPE_MESSAGE, code="insufficient_scope")
    return scope


def authenticate_ingest(request: Request) -> Scope:
    """The caller of an ingest endpoint: any key, `secret` or `ingest`."""
    return _caller(request)


Caller = Annotated[Scope, Depends(authenticate)]
IngestCaller = Annotated[Scope, Depends(authenticate_ingest)]

_KEY_CHECKS: tuple[Callable[..., Scope], ...] = (authenticate, authenticate_ingest)


def key_check(dependant: Dependant) -> Callable[..., Scope] | None:
    """The key dependency (`authenticate` or `authenticate_ingest`) a route depends on."""
    for dependency in dependant.dependencies:
        if dependency.call in _KEY_CHECKS:
            return dependency.call
        found = key_check(dependency)
        if found is not None:
            return found
    return None
