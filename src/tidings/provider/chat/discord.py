"""Discord: chat messages through a channel webhook, or as a bot to a channel or a user.

- **Webhook.** `POST <webhook url>?wait=true` with the JSON body `{"content": ...}` (Discord's
  "Execute Webhook"). No authentication: the token is part of the URL. With `wait=true` Discord
  confirms the message was saved and answers 200 with the message object, whose `id` is the
  provider message id.
- **Bot.** `POST {base_url}/api/v10/channels/{channel_id}/messages` with
  `Authorization: Bot <token>` and `{"content": ..., "nonce": ..., "enforce_nonce": true}`
  ("Create Message"). Discord de-duplicates on the nonce for a few minutes, returning the
  message already created instead of posting it twice, so the nonce is derived from the
  delivery's idempotency key. A recipient addressed by `user_id` first gets a DM channel
  through `POST {base_url}/api/v10/users/@me/channels` with `{"recipient_id": ...}` ("Create
  DM"), which returns the existing one when there is one.

Failures come back as JSON `{"code": <int>, "message": "...", "errors"?: {...}}` with a 4xx
status; the reason quotes `message`, the code, and the first field error. Rate limiting is HTTP
429 with a `Retry-After` header and the body `{"message", "retry_after" (seconds, float),
"global"}`; the header wins and the body is the fallback. Follows discord/discord-api-docs:
docs/resources/webhook (Execute Webhook), docs/resources/message (Create Message),
docs/resources/user (Create DM), docs/topics/rate-limits and
docs/topics/opcodes-and-status-codes (JSON error codes).

The recipient's `discord` object is `{"webhook_url": ...}`, or as on Courier `{"channel_id":
...}` / `{"user_id": ...}`, which need the configured bot token. A recipient without a
`discord` object is sent to the configured default webhook. A `discord` object this provider
cannot use never falls back to the default webhook.

Config fields: `base_url`, `bot_token`, `webhook_url`, `timeout_seconds`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx
from pydantic import SecretStr

from tidings.provider.base import (
    BaseUrl,
    Delivery,
    ProviderConfig,
    RetryableProviderError,
    SecretHttpUrl,
    SendResult,
    nonempty_str,
    optional_field,
)
from tidings.provider.chat.base import ChatProvider, IncomingWebhook
from tidings.provider.http import (
    accepted,
    base_url_field,
    json_field,
    refused,
    reply_field,
    request,
    timeout_field,
    web_address,
)
from tidings.provider.registry import register

VENDOR = "Discord"
API_VERSION = "v10"
# Discord accepts a nonce of at most 25 characters.
NONCE_LENGTH = 25


def _user_agent() -> str:
    # Discord asks bots to identify themselves as "DiscordBot ($url, $versionNumber)".
    try:
        release = version("tidings")
    except PackageNotFoundError:
        release = "0"
    return f"DiscordBot (tidings, {release})"


class DiscordConfig(ProviderConfig):
    base_url: BaseUrl = base_url_field(
        "https://discord.com",
        "Where the Discord HTTP API lives; bot calls go to <base_url>/api/v10/...",
    )
    bot_token: SecretStr | None = optional_field(
        "Bot token",
        "Token of the bot that posts to recipients given as channel_id or user_id. The bot "
        "needs Send Messages in the channel, or a server shared with the user.",
    )
    webhook_url: SecretHttpUrl | None = optional_field(
        "Default webhook URL", "Channel webhook used for recipients without a discord address."
    )
    timeout_seconds: float = timeout_field("Discord")


@dataclass(frozen=True, slots=True)
class _Bot:
    token: str
    channel_id: str | None = None
    user_id: str | None = None


_Target = IncomingWebhook | _Bot


def _id_field(value: Any) -> str | None:
    # Discord ids are snowflakes; profiles may hold them as numbers.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return nonempty_str(value)


def _first_field_error(errors: Any, path: str = "") -> str | None:
    """The first `_errors` entry of Discord's nested error tree, as "field.path: message"."""
    if not isinstance(errors, dict):
        return None
    listed = errors.get("_errors")
    if isinstance(listed, list) and listed and isinstance(listed[0], dict):
        return f"{path or 'body'}: {listed[0].get('message', '')}".strip()
    for key, value in errors.items():
        found = _first_field_error(value, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def _reason(response: httpx.Response) -> str | None:
    message = json_field(response, "message")
    if not message:
        return None
    parts = [str(message)]
    code = json_field(response, "code")
    if code is not None:
        parts.append(f"(code {code})")
    detail = _first_field_error(json_field(response, "errors"))
    if detail:
        parts.append(f"- {detail}")
    return " ".join(parts)


def nonce_for(idempotency_key: str) -> str:
    """A Create Message nonce for the delivery: the key itself, or a digest when too long."""
    if len(idempotency_key) <= NONCE_LENGTH:
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:NONCE_LENGTH]


@register
class DiscordProvider(ChatProvider[DiscordConfig, _Target]):
    name = "discord"
    display_name = "Discord"
    docs_url = "https://discord.com/developers/docs/resources/webhook#execute-webhook"
    address_key = "discord"
    no_address = (
        "the recipient has no usable discord address (a webhook_url, or a channel_id or "
        "user_id with the configured bot token), and no default webhook is configured"
    )

    def default_target(self) -> _Target | None:
        webhook_url = self.config.webhook_url
        return IncomingWebhook(webhook_url.get_secret_value()) if webhook_url is not None else None

    def own_target(self, address: dict[str, Any]) -> _Target | None:
        webhook_url = web_address(address.get("webhook_url"))
        if webhook_url:
            return IncomingWebhook(webhook_url)
        if self.config.bot_token is None:
            return None
        token = self.config.bot_token.get_secret_value()
        channel_id = _id_field(address.get("channel_id"))
        if channel_id:
            return _Bot(token=token, channel_id=channel_id)
        user_id = _id_field(address.get("user_id"))
        if user_id:
            return _Bot(token=token, user_id=user_id)
        return None

    def send_text(self, target: _Target, text: str, delivery: Delivery) -> SendResult:
        if isinstance(target, IncomingWebhook):
            return self._send_webhook(target, text)
        return self._send_as_bot(target, text, delivery.idempotency_key)

    def _send_webhook(self, target: IncomingWebhook, text: str) -> SendResult:
        # Execute Webhook has no nonce, so webhook sends cannot be de-duplicated by Discord.
        response = self._call(
            "webhook",
            lambda: self.http.post(
                # Merge, not replace: the URL may already carry `thread_id`.
                httpx.URL(target.url).copy_merge_params({"wait": "true"}),
                headers={"User-Agent": _user_agent()},
                json={"content": text},
                timeout=self.config.timeout_seconds,
            ),
        )
        return self._result(response)

    def _send_as_bot(self, target: _Bot, text: str, idempotency_key: str) -> SendResult:
        headers = {"Authorization": f"Bot {target.token}", "User-Agent": _user_agent()}
        api = f"{self.config.base_url}/api/{API_VERSION}"
        channel_id = target.channel_id
        if channel_id is None:
            assert target.user_id is not None
            user_id = target.user_id
            dm = self._call(
                "create DM",
                lambda: self.http.post(
                    f"{api}/users/@me/channels",
                    headers=headers,
                    json={"recipient_id": user_id},
                    timeout=self.config.timeout_seconds,
                ),
            )
            channel_id = _id_field(reply_field(dm, "id"))
            if channel_id is None:
                raise refused("Discord create DM returned no channel id", dm, retryable=False)
        response = self._call(
            "create message",
            lambda: self.http.post(
                f"{api}/channels/{channel_id}/messages",
                headers=headers,
                json={
                    "content": text,
                    "nonce": nonce_for(idempotency_key),
                    "enforce_nonce": True,
                },
                timeout=self.config.timeout_seconds,
            ),
        )
        return self._result(response)

    def _call(self, what: str, call: Callable[[], httpx.Response]) -> httpx.Response:
        """Make the call; on a 429 without `Retry-After`, take `retry_after` from the body."""
        last: list[httpx.Response] = []

        def recorded() -> httpx.Response:
            response = call()
            last.append(response)
            return response

        try:
            return request(f"{VENDOR} {what}", recorded, _reason)
        except RetryableProviderError as exc:
            if exc.status_code == 429 and exc.retry_after is None and last:
                body_retry = reply_field(last[-1], "retry_after")
                if isinstance(body_retry, int | float) and not isinstance(body_retry, bool):
                    exc.retry_after = max(0.0, float(body_retry))
            raise

    @staticmethod
    def _result(response: httpx.Response) -> SendResult:
        has_body = response.status_code != 204 and response.content
        return accepted(response, _id_field(reply_field(response, "id")) if has_body else None)
