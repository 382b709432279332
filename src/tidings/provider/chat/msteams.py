"""Microsoft Teams: chat messages through an incoming webhook or a Workflows webhook.

`POST <webhook url>` with the Adaptive Card message envelope that both kinds of webhook accept
(Workflows accept nothing else):

    {"type": "message",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null,
                      "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                                  "type": "AdaptiveCard", "version": "1.2",
                                  "body": [{"type": "TextBlock", "text": ..., "wrap": true}]}}]}

Follows MicrosoftDocs/msteams-docs, msteams-platform/webhooks-and-connectors/how-to/
connectors-using.md ("Send Adaptive Cards using an Incoming Webhook"; "Rate limiting for
connectors") and the Workflows notes on the same page.

Replies: a legacy connector answers 200 with the body `1`; a Workflows ("When a Teams webhook
request is received") URL answers 202 with an empty body. Either way Teams returns no message
id. A legacy connector reports some failures, throttling among them, as a 200 whose body reads
"Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error
<status> ..." (Microsoft's rate-limit guidance says connectors "do not throw 429s" and to look
for that text); such a reply is retried for 429 and 5xx and is permanent otherwise. Plain
4xx replies carry a text (legacy) or a JSON `{"error": {"code", "message"}}` (Workflows) reason.

Teams webhooks document no idempotency key, so none is sent.

The recipient's `ms_teams` object is read for `webhook_url`. Courier's bot-framework addresses
(`tenant_id`, `service_url`, `conversation_id`, ...) are not supported by this provider. A
recipient without an `ms_teams` object is sent to the configured default webhook; an
`ms_teams` object without a `webhook_url` never falls back to it.

Config fields: `webhook_url`, `timeout_seconds`.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    ProviderConfig,
    RetryableProviderError,
    SecretHttpUrl,
    SendResult,
    optional_field,
)
from tidings.provider.chat.base import ChatProvider
from tidings.provider.http import (
    accepted,
    excerpt,
    is_json,
    json_field,
    post,
    text_reason,
    timeout_field,
    web_address,
)
from tidings.provider.registry import register

VENDOR = "Microsoft Teams"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
DELIVERY_FAILED = "Webhook message delivery failed"
_EMBEDDED_STATUS = re.compile(r"HTTP error (\d{3})")


class MSTeamsConfig(ProviderConfig):
    webhook_url: SecretHttpUrl | None = optional_field(
        "Default webhook URL",
        "Incoming webhook or Workflows webhook URL used for recipients without an "
        "ms_teams.webhook_url. It carries its own credentials, so it is kept secret.",
    )
    timeout_seconds: float = timeout_field("Teams")


def adaptive_card_message(text: str) -> dict[str, Any]:
    """The message envelope with one Adaptive Card that shows `text`."""
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": ADAPTIVE_CARD,
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "body": [{"type": "TextBlock", "text": text, "wrap": True}],
                },
            }
        ],
    }


def _reason(response: httpx.Response) -> str | None:
    if is_json(response):
        message = json_field(response, "error", "message") or json_field(response, "message")
        code = json_field(response, "error", "code")
        if message:
            return f"{code}: {message}" if code else str(message)
    return text_reason(response)


@register
class MSTeamsProvider(ChatProvider[MSTeamsConfig, str]):
    name = "msteams"
    display_name = "Microsoft Teams"
    docs_url = (
        "https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/"
        "connectors-using"
    )
    address_key = "ms_teams"
    no_address = "the recipient has no ms_teams.webhook_url and no default webhook is configured"

    def default_target(self) -> str | None:
        default = self.config.webhook_url
        return default.get_secret_value() if default is not None else None

    def own_target(self, address: dict[str, Any]) -> str | None:
        return web_address(address.get("webhook_url"))

    def send_text(self, target: str, text: str, delivery: Delivery) -> SendResult:
        response = post(
            self.http,
            VENDOR,
            target,
            _reason,
            json=adaptive_card_message(text),
            timeout=self.config.timeout_seconds,
        )
        body = response.text.strip()
        if DELIVERY_FAILED in body:
            self._raise_embedded_failure(response, body)
        return accepted(response)

    @staticmethod
    def _raise_embedded_failure(response: httpx.Response, body: str) -> None:
        match = _EMBEDDED_STATUS.search(body)
        status = int(match.group(1)) if match else None
        message = f"{VENDOR} answered {response.status_code}: {body[:200]}"
        if status is None or status == 429 or status >= 500:
            raise RetryableProviderError(
                message, response_excerpt=excerpt(response), status_code=status
            )
        raise PermanentProviderError(
            message, response_excerpt=excerpt(response), status_code=status
        )
