"""What every HTTP vendor shares: its config's endpoint fields, sending one request through
the guarded client, and turning the outcome into a result or a provider error, the same way
for every vendor."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import Field

from tidings.kit.outbound import OutboundRefused
from tidings.provider.base import (
    EXCERPT_LIMIT,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
    SendResult,
)

TIMEOUT_SECONDS = 10.0
"""How long one call to a vendor may take before it counts as a retryable failure."""


def base_url_field(default: str | None, description: str, *, title: str = "API base URL") -> Any:
    """The `base_url` config field (a `BaseUrl`) of a provider that calls a vendor's API."""
    return Field(default=default, title=title, description=description)


def api_key_field(description: str) -> Any:
    """The `api_key` config field (a `SecretStr`) of a provider that calls a vendor's API
    with the account's API key."""
    return Field(title="API key", description=description)


def timeout_field(answerer: str) -> Any:
    """The `timeout_seconds` config field of a provider that calls one HTTP endpoint."""
    return Field(
        default=TIMEOUT_SECONDS,
        gt=0,
        le=60,
        title="Timeout (seconds)",
        description=(
            f"How long {answerer} may take to answer before the attempt counts as a retryable "
            "failure."
        ),
    )


def present(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that are set (neither None nor empty), in their order: a payload's optional
    fields, which a vendor wants left out rather than sent empty."""
    return {name: value for name, value in fields.items() if value}


def excerpt(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:EXCERPT_LIMIT]}"


def accepted(response: httpx.Response, message_id: Any = None) -> SendResult:
    """The result of a send the vendor accepted, with the message id it gave, if any."""
    return SendResult(
        provider_message_id=str(message_id) if message_id else None,
        response_excerpt=excerpt(response),
    )


def accepted_reply(response: httpx.Response, *id_path: str | int) -> SendResult:
    """The result of a send the vendor accepted, whose message id is the field of its reply
    at `id_path`."""
    return accepted(response, reply_field(response, *id_path))


def refused(reason: str, response: httpx.Response, *, retryable: bool) -> ProviderError:
    """The error for a reply that refuses the message, quoting it."""
    error_type = RetryableProviderError if retryable else PermanentProviderError
    return error_type(reason, response_excerpt=excerpt(response), status_code=response.status_code)


def as_retryable(error: ProviderError) -> RetryableProviderError:
    """The same failure, to be tried again (a refusal that a vendor means as "later")."""
    return RetryableProviderError(
        error.reason, response_excerpt=error.response_excerpt, status_code=error.status_code
    )


def web_address(value: Any) -> str | None:
    """`value` when it is an http(s) URL a recipient gave, else None."""
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value
    return None


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time())


def request(
    vendor: str,
    call: Callable[[], httpx.Response],
    reason_of: Callable[[httpx.Response], str | None] | None = None,
    *,
    retry_if: Callable[[ProviderError], bool] | None = None,
) -> httpx.Response:
    """Make the vendor call; return a 2xx response or raise the matching provider error.

    `reason_of` extracts the vendor's own error text from a failed response. Any answer but
    a 2xx, 429 or 5xx is a permanent refusal, unless `retry_if` holds for it: the vendor
    means it as "later". A target the outbound guard refuses is permanent: asking again
    would be refused again.
    """
    try:
        response = call()
    except OutboundRefused as exc:
        raise PermanentProviderError(f"{vendor} was not called: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise RetryableProviderError(f"{vendor} timed out: {exc}") from exc
    except httpx.TransportError as exc:
        raise RetryableProviderError(f"{vendor} could not be reached: {exc}") from exc
    if response.is_success:
        return response
    reason = None
    if reason_of is not None:
        try:
            reason = reason_of(response)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            reason = None
    reason = reason or response.text[:200] or response.reason_phrase
    message = f"{vendor} answered {response.status_code}: {reason}"
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableProviderError(
            message,
            response_excerpt=excerpt(response),
            status_code=response.status_code,
            retry_after=retry_after_seconds(response),
        )
    refusal = refused(message, response, retryable=False)
    if retry_if is not None and retry_if(refusal):
        raise as_retryable(refusal)
    raise refusal


def post(
    http: httpx.Client,
    vendor: str,
    url: str | httpx.URL,
    reason_of: Callable[[httpx.Response], str | None] | None = None,
    *,
    retry_if: Callable[[ProviderError], bool] | None = None,
    timeout: float = TIMEOUT_SECONDS,
    **sent: Any,
) -> httpx.Response:
    """`request` for one POST of `sent` (`json=`, `data=`, `headers=`, `auth=`, …) to `url`."""
    return request(
        vendor, lambda: http.post(url, timeout=timeout, **sent), reason_of, retry_if=retry_if
    )


def is_json(response: httpx.Response) -> bool:
    """Whether the reply says its body is JSON."""
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def text_reason(response: httpx.Response) -> str | None:
    """A plain-text reply's own words, as the reason of a refusal."""
    return response.text.strip()[:200] or None


def json_field(response: httpx.Response, *path: str | int) -> Any:
    """A nested field of a JSON reply, or None."""
    value: Any = response.json()
    for key in path:
        if isinstance(key, int) and isinstance(value, list) and len(value) > key:
            value = value[key]
        elif isinstance(key, str) and isinstance(value, dict):
            value = value.get(key)
        else:
            return None
    return value


def message_reason(
    message: str, qualifier: str | None = None, template: str = ""
) -> Callable[[httpx.Response], str | None]:
    """A `reason_of` for a vendor whose error reply is a JSON object with its text in the
    field `message` and, optionally, a code or a name in the field `qualifier`: the text, set
    in `template` (with `{message}` and `{qualifier}`) when the reply has a qualifier."""

    def reason(response: httpx.Response) -> str | None:
        text = json_field(response, message)
        if not text:
            return None
        qualified = json_field(response, qualifier) if qualifier else None
        return template.format(message=text, qualifier=qualified) if qualified else str(text)

    return reason


def reply_field(response: httpx.Response, *path: str | int) -> Any:
    """A nested field of an accepted reply, or None (also when the reply is not JSON)."""
    try:
        return json_field(response, *path)
    except ValueError:
        return None
