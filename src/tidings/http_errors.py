"""The one JSON error shape over HTTP: error responses, the app's exception handlers, the
log line of every error answer and the OpenAPI document's error answers."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from tidings.dependencies import accepted_key_id, client_address
from tidings.errors import AppError, BadRequest, error_body

logger = logging.getLogger(__name__)


def new_error_id() -> str:
    """A random id for one unexpected failure: the answer shows it, the log line holds it,
    so a report of the answer finds the traceback."""
    return "err_" + secrets.token_hex(8)


def log_error_answer(
    scope: Scope,
    status: int,
    code: str,
    key_id: str | None,
    *,
    error_id: str | None = None,
    exc_info: BaseException | None = None,
) -> None:
    """One line for each error the API answers, at WARNING for a 4xx and ERROR for a 5xx:
    the status, method, path (never the query string), the error's code, the public id of
    the key when the request's key was accepted, and the client's address. Never the key,
    the Authorization header, a `token` in the path or the body. Every error answer is built
    through here: the exception handlers below, `tidings.ingest.fastpath`,
    `tidings.app.TidingsAPI`, the unsubscribe page and Studio's error page. An unexpected
    failure's line ends with its `error_id`; with `exc_info`, the traceback follows it."""
    level = logging.WARNING if status < 500 else logging.ERROR
    if not logger.isEnabledFor(level):
        return
    path = scope.get("path", "")
    token = scope.get("path_params", {}).get("token")
    if isinstance(token, str) and token:  # an unsubscribe link's, say: a capability
        path = path.replace(token, "<token>")
    if not path.isprintable():  # decoded from %0A and the like: one line stays one line
        path = ascii(path)
    logger.log(
        level,
        "%s %d %s %s code=%s key_id=%s client=%s%s",
        "refused" if status < 500 else "failed",
        status,
        scope.get("method", "-"),
        path,
        code,
        key_id or "-",
        client_address(scope),
        f" error_id={error_id}" if error_id else "",
        exc_info=exc_info,
    )


def error_response(error: AppError) -> Response:
    """The error's response, not logged: for a page that answers an error in its own way."""
    return Response(
        error_body(error.code, error.message, error.field),
        status_code=error.status_code,
        media_type="application/json",
        headers=error.headers,
    )


INTERNAL_ERROR = "internal_error"
INTERNAL_ERROR_BODY = error_body(
    INTERNAL_ERROR,
    "Tidings failed to answer this request; the error is in the tidings serve log. Send it "
    "again later.",
)


async def internal_error(request: Request, _exc: Exception) -> Response:
    """The app's answer to an unexpected exception (a bug), logged with an error id that the
    answer's message names: Starlette then raises it on, for the server to log its
    traceback. Installed on the main app only; Studio answers its own pages' failures with
    an HTML page (`tidings.studio.app.ErrorPage`), so each failure is logged once."""
    error_id = new_error_id()
    log_error_answer(
        request.scope, 500, INTERNAL_ERROR, accepted_key_id(request.scope), error_id=error_id
    )
    body = error_body(
        INTERNAL_ERROR,
        f"Tidings failed to answer this request; the error is in the tidings serve log under "
        f"error_id={error_id}. Send it again later.",
    )
    return Response(body, status_code=500, media_type="application/json")


def answer_error(scope: Scope, error: AppError) -> Response:
    """The error's response, logged."""
    log_error_answer(scope, error.status_code, error.code, error.key_id or accepted_key_id(scope))
    return error_response(error)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return answer_error(request.scope, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
    field = _location(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return answer_error(
            request.scope,
            BadRequest(
                "The request body is not valid JSON. Send a JSON object.",
                code="invalid_json",
            ),
        )
    message = f"{field}: {first.get('msg', 'invalid value')}. Fix this field and send again."
    return answer_error(request.scope, BadRequest(message, field=field, code="invalid_request"))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404:
        message = "No such endpoint. See /docs for the API reference."
    elif exc.status_code == 405:
        message = "This endpoint does not take that HTTP method. See /docs for the API reference."
    log_error_answer(request.scope, exc.status_code, code, accepted_key_id(request.scope))
    return Response(
        error_body(code, message),
        status_code=exc.status_code,
        media_type="application/json",
        headers=getattr(exc, "headers", None),
    )


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error: `code` is stable, `message` says what was wrong and how to "
    "fix it, `field` names the offending input (or is null).",
    "required": ["code", "message", "field"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "field": {"type": ["string", "null"]},
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_LOCAL_DEFS = "#/$defs/"


def _hoist_definitions(node: Any, schemas: dict[str, Any], names: dict[str, str]) -> None:
    """Move each inline `$defs` (a body schema from `model_json_schema()`) into
    `components/schemas` and point its `#/$defs/Name` references there: in an OpenAPI
    document they would point at the document's root, where nothing is, and ReDoc then
    refuses the whole document. A name already taken by another schema gets a suffix."""
    if isinstance(node, list):
        for item in node:
            _hoist_definitions(item, schemas, names)
        return
    if not isinstance(node, dict):
        return
    definitions = node.pop("$defs", None)
    if isinstance(definitions, dict):
        names = dict(names)
        for name, definition in definitions.items():
            free, number = name, 1
            while schemas.get(free, definition) != definition:
                number += 1
                free = f"{name}{number}"
            names[name] = free
        for name, definition in definitions.items():
            schemas[names[name]] = definition
            _hoist_definitions(definition, schemas, names)
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_LOCAL_DEFS):
        name = ref.removeprefix(_LOCAL_DEFS)
        node["$ref"] = f"#/components/schemas/{names.get(name, name)}"
    for value in list(node.values()):
        _hoist_definitions(value, schemas, names)


def document_errors(app: FastAPI) -> None:
    """Declare the real error answers in the OpenAPI document: every operation's 4xx in the
    one shape (FastAPI's default 422 is never sent: validation errors are 400), and the
    ingest routes' 503 when nothing could be stored. Inline `$defs` move to the components
    (`_hoist_definitions`), so that every reference in the document resolves."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Error"] = _ERROR_SCHEMA
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                responses["4XX"] = _error_response(
                    "Refused: the error says what was wrong and how to fix it."
                )
                if path.startswith(("/inbound/", "/v1/")):
                    responses["503"] = _error_response("Nothing was stored; send it again later.")
        _hoist_definitions(schema.get("paths", {}), schemas, {})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
