"""Push notifications through the Expo push service.

Sends `content.title`, `content.body` and `content.data` to the recipient's Expo push tokens
(`expo.token`, or the list `expo.tokens`) with `POST {base_url}/--/api/v2/push/send`, a JSON
array holding one message `{to, title, body, data}` per token, `Accept: application/json`, and
`Authorization: Bearer <access token>` when the project has enhanced push security enabled.

Expo answers 200 with `{"data": [ticket, …]}`, one push ticket per message in order: either
`{"status": "ok", "id": …}` (the id is the receipt id, used as the provider message id) or
`{"status": "error", "message": …, "details": {"error": "DeviceNotRegistered"}}`. Ticket errors
DeviceNotRegistered, InvalidCredentials, MessageTooBig and MismatchSenderId are permanent;
MessageRateExceeded is retryable. When the whole request fails, the reply carries
`{"errors": [{code, message}]}` (with a 4xx/5xx status, or 200); TOO_MANY_REQUESTS is retryable.
With several tokens the send succeeds if any ticket is ok; the provider message id is then the
comma-separated list of receipt ids.

Follows https://docs.expo.dev/push-notifications/sending-notifications/ (expo/expo
`docs/pages/push-notifications/sending-notifications.mdx`) and the official Node SDK
(expo/expo-server-sdk-node `src/ExpoClient.ts`).

Config: optional `access_token` (secret) and `base_url`.

Expo documents no idempotency key for push/send, so `delivery.idempotency_key` is not sent.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from tidings.provider.base import (
    BaseUrl,
    Delivery,
    ProviderConfig,
    ProviderError,
    SendResult,
    optional_field,
    retryable_first,
)
from tidings.provider.http import accepted, base_url_field, post, refused, reply_field
from tidings.provider.push.base import PushProvider, push_notification, push_tokens
from tidings.provider.registry import register

RETRYABLE_TICKET_ERRORS = {"MessageRateExceeded"}
RETRYABLE_REQUEST_ERRORS = {"TOO_MANY_REQUESTS"}


class ExpoConfig(ProviderConfig):
    access_token: SecretStr | None = optional_field(
        "Access token",
        "An Expo access token; required only when enhanced push security is enabled "
        "for the project in the Expo dashboard.",
    )
    base_url: BaseUrl = base_url_field("https://exp.host", "Base URL of the Expo push API.")


def expo_tokens(recipient: dict[str, Any]) -> list[str]:
    expo = recipient.get("expo")
    if not isinstance(expo, dict):
        return []
    tokens = expo.get("tokens")
    values = list(tokens) if isinstance(tokens, list) else []
    values.append(expo.get("token"))
    return push_tokens(values)


def _request_errors(response: httpx.Response) -> list[dict[str, Any]]:
    errors = reply_field(response, "errors")
    if not isinstance(errors, list):
        return []
    return [error for error in errors if isinstance(error, dict)]


def _describe(error: dict[str, Any]) -> str:
    return ": ".join(str(error[key]) for key in ("code", "message") if error.get(key))


def _reason(response: httpx.Response) -> str | None:
    return "; ".join(_describe(error) for error in _request_errors(response)) or None


@register
class ExpoProvider(PushProvider[ExpoConfig]):
    name = "expo"
    display_name = "Expo push notifications"
    docs_url = "https://docs.expo.dev/push-notifications/sending-notifications/"
    no_tokens = "Expo: the recipient has no expo.token or expo.tokens"

    def address(self, recipient: dict[str, Any]) -> list[str]:
        return expo_tokens(recipient)

    def send_push(self, delivery: Delivery, tokens: list[str]) -> SendResult:
        config = self.config
        content: dict[str, Any] = dict(push_notification(delivery))
        data = delivery.content.get("data")
        if isinstance(data, dict) and data:
            content["data"] = data
        messages = [{"to": token, **content} for token in tokens]

        headers = {"Accept": "application/json"}
        if config.access_token is not None:
            headers["Authorization"] = f"Bearer {config.access_token.get_secret_value()}"
        url = f"{config.base_url.rstrip('/')}/--/api/v2/push/send"
        response = post(self.http, "Expo", url, _reason, json=messages, headers=headers)

        receipt_ids: list[str] = []
        errors: list[ProviderError] = []
        for entry in _tickets(response):
            ticket = entry if isinstance(entry, dict) else {}
            if ticket.get("status") == "ok" and ticket.get("id"):
                receipt_ids.append(str(ticket["id"]))
            else:
                errors.append(_ticket_error(ticket, response))
        if not receipt_ids:
            raise retryable_first(errors)
        return accepted(response, ",".join(receipt_ids))


def _tickets(response: httpx.Response) -> list[Any]:
    """The push tickets of an accepted request, one per message."""
    request_errors = _request_errors(response)
    if request_errors:
        reason = "Expo refused the request: " + "; ".join(map(_describe, request_errors))
        retryable = any(e.get("code") in RETRYABLE_REQUEST_ERRORS for e in request_errors)
        raise refused(reason, response, retryable=retryable)

    tickets = reply_field(response, "data")
    if isinstance(tickets, dict):  # a single message may get a single ticket object
        tickets = [tickets]
    if not isinstance(tickets, list) or not tickets:
        raise refused("Expo answered without push tickets", response, retryable=False)
    return tickets


def _ticket_error(ticket: dict[str, Any], response: httpx.Response) -> ProviderError:
    details = ticket.get("details")
    code = details.get("error") if isinstance(details, dict) else None
    message = ticket.get("message") or "no message"
    reason = f"Expo refused the push: {message}" + (f" ({code})" if code else "")
    return refused(reason, response, retryable=code in RETRYABLE_TICKET_ERRORS)
