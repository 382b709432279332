"""Discord provider against a loopback fake of Discord's webhook and bot endpoints.

Vendor shapes checked here, and where they come from (discord/discord-api-docs):
- docs/resources/webhook.mdx, "Execute Webhook": POST /webhooks/{id}/{token}, no auth, JSON
  params `content` (up to 2000 characters) and others; query `wait=true` returns the created
  message object instead of 204.
- docs/resources/message.mdx, "Create Message": POST /channels/{channel.id}/messages with
  `nonce` (up to 25 characters) and `enforce_nonce` (a repeated nonce returns the existing
  message instead of creating another).
- docs/resources/user.mdx, "Create DM": POST /users/@me/channels with `recipient_id`, returns
  the DM channel object (the existing one if there is one).
- docs/topics/rate-limits.md: HTTP 429 with `Retry-After` and the JSON body
  `{"message": "You are being rate limited.", "retry_after": 64.57, "global": false}`.
- docs/topics/opcodes-and-status-codes.md: error bodies `{"code", "message", "errors"?}`, e.g.
  10003 Unknown channel, 10015 Unknown webhook, 50035 Invalid Form Body.
- Bot auth header `Authorization: Bot <token>`: docs/reference.md (authentication).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from tidings.provider.chat.discord import DiscordConfig, DiscordProvider, nonce_for
from tidings.provider.registry import load_all

BOT_TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.bot-secret-ZnCjm1XVW7vRze4b7Cq4se7kKWs"
HOOK_PATH = "/api/webhooks/223704706495545344/hooksecret3d89bb7572e0fb30d8128367b3b1b44"
TEXT = "Deploy finished: 42 tests passed."
KEY = "msg_1:discord:0"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def base_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for("/").rstrip("/")


def make(http: httpx.Client, **config: Any) -> DiscordProvider:
    return DiscordProvider(DiscordConfig(**config), http)


def delivery(recipient: dict[str, Any], text: str = TEXT, key: str = KEY) -> Delivery:
    return Delivery(
        message_id="msg_1",
        idempotency_key=key,
        channel="chat",
        recipient=recipient,
        content={"text": text},
    )


def message_object(message_id: str, channel_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": 0,
        "content": TEXT,
        "channel_id": channel_id,
        "author": {"id": "223704706495545344", "username": "Tidings", "bot": True},
        "attachments": [],
        "embeds": [],
        "mentions": [],
        "pinned": False,
        "tts": False,
        "timestamp": "2026-11-28T10:00:00.000000+00:00",
        **extra,
    }


def assert_secret_free(error: ProviderError, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in str(error)
        assert secret not in error.reason
        assert secret not in error.response_excerpt


def test_registered_as_chat_provider() -> None:
    assert load_all()["discord"] is DiscordProvider
    assert DiscordProvider.channel == "chat"


# --- webhooks ---------------------------------------------------------------------------------


def test_webhook_posts_content_and_waits_for_the_message(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_oneshot_request(
        HOOK_PATH, method="POST", query_string={"wait": "true"}, json={"content": TEXT}
    ).respond_with_json(
        message_object("1100000000000000001", "199737254929760256", webhook_id="2237")
    )
    recipient = {"discord": {"webhook_url": httpserver.url_for(HOOK_PATH)}}

    result = make(http).send(delivery(recipient))

    httpserver.check_assertions()
    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("DiscordBot (")
    assert "Authorization" not in request.headers
    assert json.loads(request.get_data()) == {"content": TEXT}
    assert result.provider_message_id == "1100000000000000001"
    assert "1100000000000000001" in result.response_excerpt


def test_webhook_keeps_its_own_query_parameters(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_oneshot_request(
        HOOK_PATH, method="POST", query_string={"thread_id": "777", "wait": "true"}
    ).respond_with_json(message_object("1100000000000000002", "777"))
    recipient = {"discord": {"webhook_url": httpserver.url_for(HOOK_PATH) + "?thread_id=777"}}

    result = make(http).send(delivery(recipient))

    httpserver.check_assertions()
    assert result.provider_message_id == "1100000000000000002"


def test_default_webhook_serves_recipients_without_discord(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_oneshot_request(HOOK_PATH, method="POST").respond_with_json(
        message_object("1100000000000000003", "199737254929760256")
    )
    provider = make(http, webhook_url=httpserver.url_for(HOOK_PATH))

    assert provider.can_deliver({"email": "ada@example.com"})
    result = provider.send(delivery({"email": "ada@example.com"}))

    httpserver.check_assertions()
    assert result.provider_message_id == "1100000000000000003"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"message": "Unknown Webhook", "code": 10015}, "Unknown Webhook (code 10015)"),
        (401, {"message": "Invalid Webhook Token", "code": 50027}, "Invalid Webhook Token"),
        (
            400,
            {
                "code": 50035,
                "message": "Invalid Form Body",
                "errors": {
                    "content": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_MAX_LENGTH",
                                "message": "Must be 2000 or fewer in length.",
                            }
                        ]
                    }
                },
            },
            "Invalid Form Body (code 50035) - content: Must be 2000 or fewer in length.",
        ),
    ],
)
def test_webhook_refusals_are_permanent(
    httpserver: HTTPServer, http: httpx.Client, status: int, body: dict[str, Any], expected: str
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_json(body, status=status)
    hook_url = httpserver.url_for(HOOK_PATH)

    with pytest.raises(PermanentProviderError) as caught:
        make(http, webhook_url=hook_url).send(delivery({}))

    assert expected in caught.value.reason
    assert caught.value.status_code == status
    assert_secret_free(caught.value, hook_url, "hooksecret")


def test_rate_limit_uses_retry_after_header(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_json(
        {"message": "You are being rate limited.", "retry_after": 64.57, "global": False},
        status=429,
        headers={"Retry-After": "65", "X-RateLimit-Scope": "user"},
    )

    with pytest.raises(RetryableProviderError) as caught:
        make(http, webhook_url=httpserver.url_for(HOOK_PATH)).send(delivery({}))

    assert caught.value.retry_after == 65.0
    assert caught.value.status_code == 429
    assert "You are being rate limited." in caught.value.reason


def test_rate_limit_falls_back_to_body_retry_after(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_json(
        {"message": "The resource is being rate limited.", "retry_after": 1.25, "global": False},
        status=429,
    )

    with pytest.raises(RetryableProviderError) as caught:
        make(http, webhook_url=httpserver.url_for(HOOK_PATH)).send(delivery({}))

    assert caught.value.retry_after == 1.25


def test_server_error_is_retryable(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data(
        "upstream error", status=502
    )
    hook_url = httpserver.url_for(HOOK_PATH)

    with pytest.raises(RetryableProviderError) as caught:
        make(http, webhook_url=hook_url).send(delivery({}))

    assert caught.value.status_code == 502
    assert caught.value.retry_after is None
    assert_secret_free(caught.value, hook_url, "hooksecret")


def test_refused_connection_is_retryable(http: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    hook_url = f"http://127.0.0.1:{port}{HOOK_PATH}"

    with pytest.raises(RetryableProviderError) as caught:
        make(http, webhook_url=hook_url).send(delivery({}))

    assert "could not be reached" in caught.value.reason
    assert_secret_free(caught.value, "hooksecret")


# --- bot --------------------------------------------------------------------------------------


def test_bot_posts_to_channel_with_nonce(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_oneshot_request(
        "/api/v10/channels/199737254929760256/messages",
        method="POST",
        headers={"Authorization": f"Bot {BOT_TOKEN}"},
        json={"content": TEXT, "nonce": KEY, "enforce_nonce": True},
    ).respond_with_json(message_object("1200000000000000001", "199737254929760256"))
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    result = provider.send(delivery({"discord": {"channel_id": "199737254929760256"}}))

    httpserver.check_assertions()
    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.headers["Authorization"] == f"Bot {BOT_TOKEN}"
    assert request.headers["User-Agent"].startswith("DiscordBot (")
    assert result.provider_message_id == "1200000000000000001"
    assert BOT_TOKEN not in result.response_excerpt


def test_bot_opens_a_dm_for_user_id(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_ordered_request(
        "/api/v10/users/@me/channels",
        method="POST",
        headers={"Authorization": f"Bot {BOT_TOKEN}"},
        json={"recipient_id": "190320984123768832"},
    ).respond_with_json(
        {"id": "319674150115610528", "type": 1, "recipients": [{"id": "190320984123768832"}]}
    )
    httpserver.expect_ordered_request(
        "/api/v10/channels/319674150115610528/messages",
        method="POST",
        headers={"Authorization": f"Bot {BOT_TOKEN}"},
        json={"content": TEXT, "nonce": KEY, "enforce_nonce": True},
    ).respond_with_json(message_object("1200000000000000002", "319674150115610528"))
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    result = provider.send(delivery({"discord": {"user_id": 190320984123768832}}))

    httpserver.check_assertions()
    assert len(httpserver.log) == 2
    assert result.provider_message_id == "1200000000000000002"


def test_a_dm_reply_without_a_channel_id_is_a_refusal(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    """A 2xx "Create DM" reply that is not JSON, or names no channel, refuses the send with
    the vendor's words; no message is posted."""
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)
    replies = (("<html>OK</html>", "text/html"), ('{"type": 1}', "application/json"))
    for body, content_type in replies:
        httpserver.expect_oneshot_request("/api/v10/users/@me/channels").respond_with_data(
            body, content_type=content_type
        )
        with pytest.raises(PermanentProviderError) as caught:
            provider.send(delivery({"discord": {"user_id": "190320984123768832"}}))
        assert "returned no channel id" in caught.value.reason
        assert body in caught.value.response_excerpt
    assert [request.path for request, _ in httpserver.log] == ["/api/v10/users/@me/channels"] * 2


def test_long_idempotency_keys_become_stable_25_character_nonces(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    key = "message_01JDK8Q0Y7X3M2N4P5R6S7T8V9:discord:3"
    nonce = nonce_for(key)
    assert len(nonce) == 25
    assert nonce == nonce_for(key)
    assert nonce != nonce_for(key + "x")
    httpserver.expect_oneshot_request(
        "/api/v10/channels/42/messages",
        json={"content": TEXT, "nonce": nonce, "enforce_nonce": True},
    ).respond_with_json(message_object("1200000000000000003", "42"))
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    provider.send(delivery({"discord": {"channel_id": "42"}}, key=key))

    httpserver.check_assertions()


def test_bot_refusal_is_permanent(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request("/api/v10/channels/42/messages").respond_with_json(
        {"message": "Missing Permissions", "code": 50013}, status=403
    )
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    with pytest.raises(PermanentProviderError) as caught:
        provider.send(delivery({"discord": {"channel_id": "42"}}))

    assert "Missing Permissions (code 50013)" in caught.value.reason
    assert_secret_free(caught.value, BOT_TOKEN)


def test_bot_global_rate_limit_is_retryable(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request("/api/v10/channels/42/messages").respond_with_json(
        {"message": "You are being rate limited.", "retry_after": 64.57, "global": True},
        status=429,
        headers={"Retry-After": "65", "X-RateLimit-Global": "true"},
    )
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    with pytest.raises(RetryableProviderError) as caught:
        provider.send(delivery({"discord": {"channel_id": "42"}}))

    assert caught.value.retry_after == 65.0
    assert_secret_free(caught.value, BOT_TOKEN)


# --- addresses and config ---------------------------------------------------------------------


def test_can_deliver_follows_the_address_rules(http: httpx.Client) -> None:
    bare = make(http)
    with_bot = make(http, bot_token=BOT_TOKEN)
    with_default = make(http, webhook_url="https://discord.com/api/webhooks/1/abc")
    hook = {"discord": {"webhook_url": "https://discord.com/api/webhooks/1/abc"}}

    assert bare.can_deliver(hook)
    assert not bare.can_deliver({"discord": {"channel_id": "42"}})  # needs the bot token
    assert with_bot.can_deliver({"discord": {"channel_id": "42"}})
    assert with_bot.can_deliver({"discord": {"user_id": "7"}})
    assert not with_bot.can_deliver({"discord": {}})
    assert not with_bot.can_deliver({"email": "ada@example.com"})
    assert with_default.can_deliver({"email": "ada@example.com"})
    assert not with_default.can_deliver({"discord": {"channel_id": "42"}})  # no silent fallback
    assert not bare.can_deliver({"slack": {"channel": "C1"}})


def test_missing_address_is_permanent(http: httpx.Client) -> None:
    with pytest.raises(PermanentProviderError, match="no usable discord address"):
        make(http).send(delivery({"email": "ada@example.com"}))


def test_config_secrets_are_masked() -> None:
    hook = "https://discord.com/api/webhooks/1/hooksecret-abc"
    config = DiscordConfig(bot_token=BOT_TOKEN, webhook_url=hook)

    for shown in (config.model_dump_json(), repr(config), str(config)):
        assert BOT_TOKEN not in shown
        assert "hooksecret" not in shown
    assert "**********" in config.model_dump_json()
