"""FastAPI dependencies shared by every domain: the runtime, read sessions, and the caller.

Endpoints that write open `runtime.database.write()` themselves, so the commit happens
before the response is sent: a 2xx always means the data is committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tidings.errors import Unauthorized
from tidings.runtime import Runtime
from tidings.workspace.keys import key_from_authorization
from tidings.workspace.service import Scope, resolve_keys

MISSING_KEY_MESSAGE = (
    "Missing API key. Send it as `Authorization: Bearer <key>` (or Basic auth with the key as "
    "the username); `tidings keys list` prints your keys."
)
INVALID_KEY_MESSAGE = (
    "Unknown or revoked API key. Copy a current key from `tidings keys list` or the Studio "
    "Segment integration page."
)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def read_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.database.read() as session:
        yield session


ReadSession = Annotated[Session, Depends(read_session)]


def authenticate(request: Request, runtime: RuntimeDep) -> Scope:
    key = key_from_authorization(request.headers.get("authorization"))
    if key is None:
        raise Unauthorized(MISSING_KEY_MESSAGE, code="missing_api_key")
    with runtime.database.read() as session:
        scope = resolve_keys(session, runtime.cipher, [key]).get(key)
    if scope is None:
        raise Unauthorized(INVALID_KEY_MESSAGE, code="invalid_api_key")
    return scope


Caller = Annotated[Scope, Depends(authenticate)]
