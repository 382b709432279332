"""One error hierarchy, one JSON shape: `{"code", "message", "field"}`.

`code` is stable and machine-readable; `message` says what was wrong and how to fix it;
`field` names the offending input, or is null.

The errors are the domain's and need no web framework (the CLI raises and catches them too);
`tidings.http_errors` turns them into responses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson


class AppError(Exception):
    """The base of every error with an answer of its own. A subclass declares its status and
    default code in its class line: `class NotFound(AppError, status_code=404,
    code="not_found")`."""

    status_code = 400
    code = "bad_request"
    # The public id of the API key the refused request was made with, once the key was
    # accepted: the refusal's log line names it (never the key itself).
    key_id: str | None = None

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.headers = headers

    def __init_subclass__(
        cls, *, status_code: int | None = None, code: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status_code is not None:
            cls.status_code = status_code
        if code is not None:
            cls.code = code


class BadRequest(AppError, status_code=400, code="bad_request"):
    """The input is wrong; the message says how to fix it."""


class Unauthorized(AppError, status_code=401, code="unauthorized"):
    """No valid credentials came with the request."""


class Forbidden(AppError, status_code=403, code="forbidden"):
    """The credentials do not allow this."""


class NotFound(AppError, status_code=404, code="not_found"):
    """What the request names does not exist here."""


Row = TypeVar("Row")


def found(row: Row | None, missing: NotFound) -> Row:
    """`row`, looked up by what the request names; `missing` (a 404 that says how to find
    or create it) when the lookup found nothing."""
    if row is None:
        raise missing
    return row


def not_in_environment(
    kind: str, create_with: str, *, code: str, field: str
) -> Callable[[str], NotFound]:
    """The 404 for a `kind` of thing missing from the caller's environment, as a function of
    the missing id: it names the id and says how to create it."""

    def missing(identifier: str) -> NotFound:
        return NotFound(
            f"No {kind} {identifier!r} in this environment. Create it with {create_with}.",
            code=code,
            field=field,
        )

    return missing


class Conflict(AppError, status_code=409, code="conflict"):
    """The request clashes with the current state."""


class PayloadTooLarge(AppError, status_code=413, code="payload_too_large"):
    """The body is over a limit."""


class TooManyRequests(AppError, status_code=429, code="rate_limited"):
    """The message says which limit, and `Retry-After` when to try again."""

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(
            message,
            code=code,
            headers={"Retry-After": str(retry_after), "X-RateLimit-Reset": str(retry_after)},
        )


class ServiceUnavailable(AppError, status_code=503, code="unavailable"):
    """Tidings cannot take the request now; try again later."""


def error_body(code: str, message: str, field: str | None = None) -> bytes:
    return orjson.dumps({"code": code, "message": message, "field": field})
