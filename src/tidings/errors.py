"""One error hierarchy, one JSON shape: `{"code", "message", "field"}`.

`code` is stable and machine-readable; `message` says what was wrong and how to fix it;
`field` names the offending input, or is null.

The errors are the domain's and need no web framework (the CLI raises and catches them too);
`tidings.http_errors` turns them into responses.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson


class AppError(Exception):
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


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


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


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(AppError):
    """429: the message says which limit, and `Retry-After` when to try again."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(
            message,
            code=code,
            headers={"Retry-After": str(retry_after), "X-RateLimit-Reset": str(retry_after)},
        )


class ServiceUnavailable(AppError):
    status_code = 503
    code = "unavailable"


def error_body(code: str, message: str, field: str | None = None) -> bytes:
    return orjson.dumps({"code": code, "message": message, "field": field})
