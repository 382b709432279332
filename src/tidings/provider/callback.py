"""What the vendors' status-callback parsers share: reading the body, and checking the
credentials a vendor sends (basic auth, an HMAC), each the same way for every vendor."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any
from urllib.parse import parse_qsl

from pydantic import SecretStr

from tidings.errors import BadRequest, Unauthorized
from tidings.kit import json_input
from tidings.kit.json_input import check_form_fields
from tidings.provider.base import ProviderConfig, StatusCallback


def json_body(callback: StatusCallback, shape: str) -> Any:
    """The callback's JSON body; 400 `invalid_json` when it is not JSON. `shape` says what the
    vendor posts ("Postmark posts one JSON record per webhook")."""
    try:
        return json_input.loads(callback.body)
    except json_input.JSONDecodeError as exc:
        raise BadRequest(
            f"The request body is not valid JSON. {shape}.", code="invalid_json"
        ) from exc


def json_object(callback: StatusCallback, shape: str) -> dict[str, Any]:
    """The callback's JSON body, which must be an object (400 `invalid_request` otherwise)."""
    body = json_body(callback, shape)
    if not isinstance(body, dict):
        raise BadRequest(
            f"The body must be a JSON object. {shape}.", code="invalid_request", field="body"
        )
    return body


def form_fields(body: bytes, shape: str) -> list[tuple[str, str]]:
    """A form-encoded callback body's fields, in order; 400 `invalid_request` when it is not
    UTF-8. `shape` says what the vendor posts."""
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"The body is not UTF-8 form data. {shape}.", code="invalid_request", field="body"
        ) from exc
    check_form_fields(fields)
    return fields


def labelled(label: str, words: str) -> str:
    """A report's detail: `label`, followed by the vendor's own words when it gave any."""
    return f"{label}: {words}" if words else label


def text(value: Any) -> str:
    """A payload value as text: "" for None, str() otherwise."""
    return "" if value is None else str(value)


def compare(expected: str, given: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(expected.encode(), given.encode())


def missing_credential(vendor: str, field: str, where: str) -> Unauthorized:
    """401 for a callback whose vendor has no callback credential configured in the message's
    environment: nothing can vouch for it."""
    return Unauthorized(
        f"The {vendor} provider of the message's environment has no {field}, so this callback "
        f"cannot be checked. {where}",
        code="callback_not_configured",
        field=field,
    )


def invalid_signature(message: str, field: str) -> Unauthorized:
    """401 `invalid_signature` for a callback whose signature is missing or does not verify
    with the configured secret; `message` says which and how to fix it."""
    return Unauthorized(message, code="invalid_signature", field=field)


def configured_secret(config: ProviderConfig | None, field: str, vendor: str, where: str) -> str:
    """The secret a callback's signature is checked with: the `field` of the vendor's provider
    config in the message's environment (`config`, None when there is none). 401
    `callback_not_configured` when it is not set; `where` says where to find it."""
    secret = getattr(config, field, None)
    if not isinstance(secret, SecretStr):
        raise missing_credential(vendor, field, where)
    return secret.get_secret_value()


def check_basic_auth(
    callback: StatusCallback, vendor: str, username: str | None, password: SecretStr | None
) -> None:
    """The callback's `Authorization: Basic` credentials must be `username` and `password`
    (401 otherwise): vendors that document basic auth on the webhook URL send them."""
    if not username or password is None:
        raise missing_credential(
            vendor,
            "webhook_username",
            f"Set webhook_username and webhook_password, and put them in the webhook URL "
            f"configured at {vendor} (https://USER:PASSWORD@your-host/callbacks/...).",
        )
    header = callback.header("Authorization") or ""
    scheme, _, encoded = header.partition(" ")
    given = ""
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            given = ""
    expected = f"{username}:{password.get_secret_value()}"
    if not given or not compare(expected, given):
        raise Unauthorized(
            f"The callback's basic-auth credentials are missing or do not match the {vendor} "
            "provider's webhook_username and webhook_password. Put them in the webhook URL "
            f"configured at {vendor}.",
            code="invalid_credentials",
            field="Authorization",
        )
