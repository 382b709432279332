"""Slack: chat messages through an incoming webhook or the Web API method `chat.postMessage`.

Two modes, chosen per recipient:

- **Incoming webhook.** `POST <webhook url>` with the JSON body `{"text": ...}`. Slack answers
  `200` with the body `ok`; failures come back as a plain-text error string with a 4xx status
  (`invalid_payload` and `user_not_found` with 400, `action_prohibited` with 403,
  `channel_not_found` with 404, `channel_is_archived` with 410) or `rollup_error` with 500.
  Follows Slack's "Sending messages using incoming webhooks" guide and its changelog entry
  "Improving error conditions for Incoming Webhooks" (2016-05-17).
- **Web API.** `POST {base_url}/api/chat.postMessage` with `Authorization: Bearer <bot token>` and
  the JSON body `{"channel": ..., "text": ...}`. Slack answers HTTP 200 either way: `{"ok": true,
  "channel": ..., "ts": ...}` on success, `{"ok": false, "error": "<code>"}` on failure. Error
  codes that describe a passing condition on Slack's side (`ratelimited`, `service_unavailable`,
  `internal_error`, `fatal_error`, ...) are retried; every other code is permanent. Rate limiting
  is HTTP 429 with `Retry-After` in seconds. A recipient addressed by `email` is first resolved
  with `GET {base_url}/api/users.lookupByEmail`; a `user_id` is posted to directly, which opens
  the app's direct message with that user. Follows the Web API reference pages for
  `chat.postMessage` and `users.lookupByEmail` and the "Rate limits" guide.

The recipient's `slack` object is read as on Courier: `{"incoming_webhook": {"url": ...}}`, or
`{"access_token": ..., "channel" | "user_id" | "email": ...}`. Without its own `access_token`,
a recipient's channel, user or email is reached with the configured bot token. A recipient with
no `slack` object at all gets the configured defaults: the default incoming webhook, else the
bot token with the default channel. A `slack` object this provider cannot use never falls back
to the defaults, so a message meant for one person never lands in a shared channel.

Slack documents no idempotency key for either mode, so none is sent.

Config fields: `base_url`, `bot_token`, `default_channel`, `incoming_webhook_url`,
`timeout_seconds`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from tidings.provider.base import (
    BaseUrl,
    Delivery,
    ProviderConfig,
    SecretHttpUrl,
    SendResult,
    nonempty_str,
    optional_field,
)
from tidings.provider.chat.base import ChatProvider, IncomingWebhook
from tidings.provider.http import (
    accepted,
    base_url_field,
    is_json,
    json_field,
    post,
    refused,
    request,
    text_reason,
    timeout_field,
    web_address,
)
from tidings.provider.registry import register

VENDOR = "Slack"

# Web API error codes that describe a passing condition on Slack's side. Everything else that
# comes back with `ok: false` (bad token, unknown channel, archived channel, ...) is permanent.
RETRYABLE_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "service_unavailable",
        "internal_error",
        "fatal_error",
        "request_timeout",
        "team_added_to_org",
    }
)


class SlackConfig(ProviderConfig):
    base_url: BaseUrl = base_url_field(
        "https://slack.com",
        "Where the Slack Web API lives; methods are called at <base_url>/api/<method>.",
        title="Web API base URL",
    )
    bot_token: SecretStr | None = optional_field(
        "Bot token",
        "Bot user OAuth token (xoxb-...) with the chat:write scope, used for recipients "
        "that give a channel, user_id or email without their own access_token. Looking "
        "recipients up by email also needs users:read.email.",
    )
    default_channel: str | None = optional_field(
        "Default channel",
        "Channel ID (or name) the bot token posts to for recipients without a slack address.",
    )
    incoming_webhook_url: SecretHttpUrl | None = optional_field(
        "Default incoming webhook URL",
        "Incoming webhook used for recipients without a slack address. It is preferred over "
        "the bot token with the default channel.",
    )
    timeout_seconds: float = timeout_field("Slack")


@dataclass(frozen=True, slots=True)
class _WebApi:
    token: str
    channel: str | None = None
    user_id: str | None = None
    email: str | None = None


_Target = IncomingWebhook | _WebApi


def _reason(response: httpx.Response) -> str | None:
    """Slack's error code: the plain-text body of a webhook, or `error` of a Web API reply."""
    if is_json(response):
        error = json_field(response, "error")
        return str(error) if error else None
    return text_reason(response)


@register
class SlackProvider(ChatProvider[SlackConfig, _Target]):
    name = "slack"
    display_name = "Slack"
    docs_url = "https://docs.slack.dev/reference/methods/chat.postMessage"
    address_key = "slack"
    no_address = (
        "the recipient has no usable slack address (an incoming_webhook url, or a channel, "
        "user_id or email with an access_token or the configured bot token), and no default "
        "webhook or default channel is configured"
    )

    def _bot_token(self) -> str | None:
        bot_token = self.config.bot_token
        return bot_token.get_secret_value() if bot_token else None

    def default_target(self) -> _Target | None:
        config = self.config
        if config.incoming_webhook_url is not None:
            return IncomingWebhook(config.incoming_webhook_url.get_secret_value())
        bot_token = self._bot_token()
        if bot_token and config.default_channel:
            return _WebApi(token=bot_token, channel=config.default_channel)
        return None

    def own_target(self, address: dict[str, Any]) -> _Target | None:
        webhook = address.get("incoming_webhook")
        if isinstance(webhook, dict):
            url = web_address(webhook.get("url"))
            return IncomingWebhook(url) if url else None
        token = nonempty_str(address.get("access_token")) or self._bot_token()
        # The token goes into a header: anything but visible ASCII cannot be a Slack token.
        if not token or not token.isascii() or not token.isprintable():
            return None
        channel = nonempty_str(address.get("channel"))
        user_id = nonempty_str(address.get("user_id"))
        email = nonempty_str(address.get("email"))
        if not (channel or user_id or email):
            return None
        return _WebApi(token=token, channel=channel, user_id=user_id, email=email)

    def send_text(self, target: _Target, text: str, delivery: Delivery) -> SendResult:
        if isinstance(target, IncomingWebhook):
            return self._send_webhook(target, text)
        return self._send_web_api(target, text)

    def _send_webhook(self, target: IncomingWebhook, text: str) -> SendResult:
        response = post(
            self.http,
            VENDOR,
            target.url,
            _reason,
            json={"text": text},
            timeout=self.config.timeout_seconds,
        )
        # Incoming webhooks answer 200 "ok" and return no message id.
        return accepted(response)

    def _send_web_api(self, target: _WebApi, text: str) -> SendResult:
        channel = target.channel or target.user_id
        if channel is None:
            assert target.email is not None
            channel = self._user_id_by_email(target.token, target.email)
        reply = self._call(
            "chat.postMessage",
            lambda: self.http.post(
                f"{self.config.base_url}/api/chat.postMessage",
                headers={
                    "Authorization": f"Bearer {target.token}",
                    "Content-Type": "application/json; charset=utf-8",
                },
                json={"channel": channel, "text": text},
                timeout=self.config.timeout_seconds,
            ),
        )
        return accepted(reply, json_field(reply, "ts"))

    def _user_id_by_email(self, token: str, email: str) -> str:
        reply = self._call(
            "users.lookupByEmail",
            lambda: self.http.get(
                f"{self.config.base_url}/api/users.lookupByEmail",
                headers={"Authorization": f"Bearer {token}"},
                params={"email": email},
                timeout=self.config.timeout_seconds,
            ),
        )
        user_id = json_field(reply, "user", "id")
        if not user_id:
            raise refused("Slack users.lookupByEmail returned no user id", reply, retryable=False)
        return str(user_id)

    def _call(self, method: str, call: Callable[[], httpx.Response]) -> httpx.Response:
        """One Web API call: HTTP errors via `request`, then the `ok: false` body errors."""
        response = request(f"{VENDOR} {method}", call, _reason)
        try:
            ok = json_field(response, "ok")
        except ValueError as exc:
            raise refused(
                f"Slack {method} answered {response.status_code} without a JSON body",
                response,
                retryable=True,
            ) from exc
        if ok is True:
            return response
        error = str(json_field(response, "error") or "unknown_error")
        raise refused(
            f"Slack {method} failed: {error}", response, retryable=error in RETRYABLE_ERRORS
        )
