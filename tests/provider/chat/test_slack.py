"""Slack provider against a loopback fake of Slack's webhook and Web API.

Vendor shapes checked here, and where they come from:
- Incoming webhooks: POST JSON `{"text"}`; 200 body `ok`; error strings `invalid_payload` (400),
  `action_prohibited` (403), `channel_not_found` (404), `channel_is_archived` (410),
  `rollup_error` (500): https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks
  and slackapi/python-slack-sdk slack_sdk/webhook/client.py (JSON body, response kept as text).
- chat.postMessage: POST https://slack.com/api/chat.postMessage, JSON body with
  `Authorization: Bearer`, replies `{"ok": true, "channel", "ts", "message"}` or
  `{"ok": false, "error"}` at HTTP 200: https://api.slack.com/methods/chat.postMessage,
  https://docs.slack.dev/apis/web-api (JSON bodies need the Authorization header),
  slack-ruby/slack-api-ref methods/chat/chat.postMessage.json (reply examples, error codes).
- users.lookupByEmail: `email` argument, reply `{"ok": true, "user": {"id"}}`, error
  `users_not_found`: slack-ruby/slack-api-ref methods/users/users.lookupByEmail.json.
- Rate limits: HTTP 429 with `Retry-After` in seconds: https://docs.slack.dev/apis/web-api/rate-limits
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import wait_for
from tests.processes import WAIT_SECONDS, scaled
from tidings.provider.base import (
    Delivery,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from tidings.provider.chat.slack import SlackConfig, SlackProvider
from tidings.provider.registry import load_all

BOT_TOKEN = "xoxb-1111-2222-bot-secret"
USER_TOKEN = "xoxb-9999-8888-recipient-secret"
HOOK_PATH = "/services/T00000000/B00000000/hooksecretXXXXXXXXXXXX"
TEXT = "Your order #1234 has shipped."


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def base_url(httpserver: HTTPServer) -> str:
    return httpserver.url_for("/").rstrip("/")


def make(http: httpx.Client, **config: Any) -> SlackProvider:
    return SlackProvider(SlackConfig(**config), http)


def delivery(recipient: dict[str, Any], text: str = TEXT) -> Delivery:
    return Delivery(
        message_id="msg_1",
        idempotency_key="msg_1:slack:0",
        channel="chat",
        recipient=recipient,
        content={"text": text},
    )


def assert_secret_free(error: ProviderError, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in str(error)
        assert secret not in error.reason
        assert secret not in error.response_excerpt


def refused_url(path: str = "/") -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def test_registered_as_chat_provider() -> None:
    providers = load_all()
    assert providers["slack"] is SlackProvider
    assert SlackProvider.channel == "chat"


# --- incoming webhook -------------------------------------------------------------------------


def test_incoming_webhook_posts_text(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_oneshot_request(
        HOOK_PATH, method="POST", json={"text": TEXT}
    ).respond_with_data("ok", content_type="text/html")
    provider = make(http)
    recipient = {"slack": {"incoming_webhook": {"url": httpserver.url_for(HOOK_PATH)}}}

    result = provider.send(delivery(recipient))

    httpserver.check_assertions()
    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == {"text": TEXT}
    assert "Authorization" not in request.headers
    assert result.provider_message_id is None
    assert result.response_excerpt == "HTTP 200: ok"


def test_default_incoming_webhook_serves_recipients_without_slack(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_oneshot_request(
        HOOK_PATH, method="POST", json={"text": TEXT}
    ).respond_with_data("ok")
    provider = make(http, incoming_webhook_url=httpserver.url_for(HOOK_PATH))

    assert provider.can_deliver({"email": "ada@example.com"})
    provider.send(delivery({"email": "ada@example.com"}))

    httpserver.check_assertions()
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ],
)
def test_incoming_webhook_refusals_are_permanent(
    httpserver: HTTPServer, http: httpx.Client, status: int, error: str
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data(
        error, status=status, content_type="text/html"
    )
    hook_url = httpserver.url_for(HOOK_PATH)
    provider = make(http, incoming_webhook_url=hook_url)

    with pytest.raises(PermanentProviderError) as caught:
        provider.send(delivery({}))

    assert error in caught.value.reason
    assert caught.value.status_code == status
    assert error in caught.value.response_excerpt
    assert_secret_free(caught.value, hook_url, "hooksecret")


def test_incoming_webhook_rollup_error_is_retryable(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data(
        "rollup_error", status=500
    )
    provider = make(http, incoming_webhook_url=httpserver.url_for(HOOK_PATH))

    with pytest.raises(RetryableProviderError) as caught:
        provider.send(delivery({}))

    assert "rollup_error" in caught.value.reason
    assert caught.value.status_code == 500


def test_incoming_webhook_rate_limit_carries_retry_after(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_request(HOOK_PATH, method="POST").respond_with_data(
        "rate_limited", status=429, headers={"Retry-After": "7"}
    )
    provider = make(http, incoming_webhook_url=httpserver.url_for(HOOK_PATH))

    with pytest.raises(RetryableProviderError) as caught:
        provider.send(delivery({}))

    assert caught.value.retry_after == 7.0
    assert caught.value.status_code == 429


def test_refused_connection_is_retryable(http: httpx.Client) -> None:
    url = refused_url(HOOK_PATH)
    provider = make(http, incoming_webhook_url=url)

    with pytest.raises(RetryableProviderError) as caught:
        provider.send(delivery({}))

    assert "could not be reached" in caught.value.reason
    assert_secret_free(caught.value, url, "hooksecret")


def test_timeout_is_retryable(httpserver: HTTPServer, http: httpx.Client) -> None:
    release = threading.Event()

    def stall(request: Request) -> Response:
        release.wait(scaled(WAIT_SECONDS))  # until the provider has timed out
        return Response("ok")

    httpserver.expect_request(HOOK_PATH).respond_with_handler(stall)
    provider = make(http, incoming_webhook_url=httpserver.url_for(HOOK_PATH), timeout_seconds=0.05)
    try:
        with pytest.raises(RetryableProviderError) as caught:
            provider.send(delivery({}))
    finally:
        release.set()
    # The stalled request is logged when its handler returns: wait for that here, or it
    # lands in the next test's log.
    wait_for(lambda: len(httpserver.log) == 1, what="the stalled request to finish")

    assert "timed out" in caught.value.reason


# --- Web API chat.postMessage -----------------------------------------------------------------


def post_message_reply(channel: str, ts: str = "1503435956.000247") -> dict[str, Any]:
    return {
        "ok": True,
        "channel": channel,
        "ts": ts,
        "message": {
            "text": TEXT,
            "username": "ecto1",
            "bot_id": "B19LU7CSY",
            "type": "message",
            "subtype": "bot_message",
            "ts": ts,
        },
    }


def test_web_api_posts_to_channel_with_bot_token(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_oneshot_request(
        "/api/chat.postMessage",
        method="POST",
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
        json={"channel": "C1H9RESGL", "text": TEXT},
    ).respond_with_json(post_message_reply("C1H9RESGL"))
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    result = provider.send(delivery({"slack": {"channel": "C1H9RESGL"}}))

    httpserver.check_assertions()
    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert json.loads(request.get_data()) == {"channel": "C1H9RESGL", "text": TEXT}
    assert result.provider_message_id == "1503435956.000247"
    assert '"ok":true' in result.response_excerpt.replace(" ", "")
    assert BOT_TOKEN not in result.response_excerpt


def test_recipient_access_token_wins_over_bot_token(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_oneshot_request(
        "/api/chat.postMessage",
        method="POST",
        headers={"Authorization": f"Bearer {USER_TOKEN}"},
        json={"channel": "C0RECIPIENT", "text": TEXT},
    ).respond_with_json(post_message_reply("C0RECIPIENT", "1700000000.000100"))
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)
    recipient = {"slack": {"access_token": USER_TOKEN, "channel": "C0RECIPIENT"}}

    result = provider.send(delivery(recipient))

    httpserver.check_assertions()
    assert result.provider_message_id == "1700000000.000100"


def test_user_id_is_posted_to_as_the_channel(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_oneshot_request(
        "/api/chat.postMessage", method="POST", json={"channel": "U0G9QF9C6", "text": TEXT}
    ).respond_with_json(post_message_reply("D0APPDM01"))
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    result = provider.send(delivery({"slack": {"user_id": "U0G9QF9C6"}}))

    httpserver.check_assertions()
    assert result.provider_message_id == "1503435956.000247"


def test_email_is_resolved_with_users_lookup_by_email(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_ordered_request(
        "/api/users.lookupByEmail",
        method="GET",
        query_string={"email": "spengler@ghostbusters.example.com"},
        headers={"Authorization": f"Bearer {USER_TOKEN}"},
    ).respond_with_json({"ok": True, "user": {"id": "W012A3CDE", "name": "spengler"}})
    httpserver.expect_ordered_request(
        "/api/chat.postMessage",
        method="POST",
        headers={"Authorization": f"Bearer {USER_TOKEN}"},
        json={"channel": "W012A3CDE", "text": TEXT},
    ).respond_with_json(post_message_reply("D0APPDM02"))
    provider = make(http, base_url=base_url(httpserver))
    recipient = {
        "slack": {"access_token": USER_TOKEN, "email": "spengler@ghostbusters.example.com"}
    }

    result = provider.send(delivery(recipient))

    httpserver.check_assertions()
    assert len(httpserver.log) == 2
    assert result.provider_message_id == "1503435956.000247"


def test_unknown_email_is_permanent(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_oneshot_request("/api/users.lookupByEmail").respond_with_json(
        {"ok": False, "error": "users_not_found"}
    )
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    with pytest.raises(PermanentProviderError) as caught:
        provider.send(delivery({"slack": {"email": "nobody@example.com"}}))

    assert "users_not_found" in caught.value.reason
    assert len(httpserver.log) == 1  # nothing was posted
    assert_secret_free(caught.value, BOT_TOKEN)


def test_default_channel_serves_recipients_without_slack(
    httpserver: HTTPServer, http: httpx.Client
) -> None:
    httpserver.expect_oneshot_request(
        "/api/chat.postMessage", method="POST", json={"channel": "C0ALERTS", "text": TEXT}
    ).respond_with_json(post_message_reply("C0ALERTS"))
    provider = make(
        http, base_url=base_url(httpserver), bot_token=BOT_TOKEN, default_channel="C0ALERTS"
    )

    provider.send(delivery({"user_id": "u1"}))

    httpserver.check_assertions()


@pytest.mark.parametrize("error", ["channel_not_found", "invalid_auth", "not_in_channel"])
def test_ok_false_is_permanent(httpserver: HTTPServer, http: httpx.Client, error: str) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        {"ok": False, "error": error}
    )
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    with pytest.raises(PermanentProviderError) as caught:
        provider.send(delivery({"slack": {"channel": "C0MISSING"}}))

    assert error in caught.value.reason
    assert caught.value.status_code == 200
    assert error in caught.value.response_excerpt
    assert_secret_free(caught.value, BOT_TOKEN)


@pytest.mark.parametrize("error", ["ratelimited", "service_unavailable", "fatal_error"])
def test_transient_ok_false_is_retryable(
    httpserver: HTTPServer, http: httpx.Client, error: str
) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        {"ok": False, "error": error}
    )
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    with pytest.raises(RetryableProviderError) as caught:
        provider.send(delivery({"slack": {"channel": "C1H9RESGL"}}))

    assert error in caught.value.reason
    assert_secret_free(caught.value, BOT_TOKEN)


def test_http_429_carries_retry_after(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "30"}
    )
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    with pytest.raises(RetryableProviderError) as caught:
        provider.send(delivery({"slack": {"channel": "C1H9RESGL"}}))

    assert caught.value.retry_after == 30.0
    assert caught.value.status_code == 429
    assert "ratelimited" in caught.value.reason


def test_http_5xx_is_retryable(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_data(
        "upstream connect error", status=503
    )
    provider = make(http, base_url=base_url(httpserver), bot_token=BOT_TOKEN)

    with pytest.raises(RetryableProviderError) as caught:
        provider.send(delivery({"slack": {"channel": "C1H9RESGL"}}))

    assert caught.value.status_code == 503
    assert caught.value.retry_after is None
    assert_secret_free(caught.value, BOT_TOKEN)


# --- addresses and config ---------------------------------------------------------------------


def test_can_deliver_follows_the_address_rules(http: httpx.Client) -> None:
    bare = make(http)
    with_token = make(http, bot_token=BOT_TOKEN)
    hook = {"slack": {"incoming_webhook": {"url": "https://hooks.slack.com/services/T/B/x"}}}

    assert bare.can_deliver(hook)
    assert bare.can_deliver({"slack": {"access_token": USER_TOKEN, "channel": "C1"}})
    assert not bare.can_deliver({"slack": {"channel": "C1"}})  # no token anywhere
    assert not bare.can_deliver({"email": "ada@example.com"})
    assert with_token.can_deliver({"slack": {"email": "ada@example.com"}})
    assert not with_token.can_deliver({"slack": {"access_token": USER_TOKEN}})  # no destination
    assert not with_token.can_deliver({"email": "ada@example.com"})  # no default channel
    assert not with_token.can_deliver({"discord": {"channel_id": "1"}})
    assert not bare.can_deliver({"slack": {"access_token": "xoxb-\n1", "channel": "C1"}})
    assert not bare.can_deliver({"slack": {"incoming_webhook": {"url": "hooks.slack.com/x"}}})


def test_unusable_slack_address_does_not_fall_back_to_defaults(http: httpx.Client) -> None:
    provider = make(http, incoming_webhook_url="https://hooks.slack.com/services/T/B/x")

    assert provider.can_deliver({})
    assert not provider.can_deliver({"slack": {"channel": "C1"}})


def test_missing_address_is_permanent(http: httpx.Client) -> None:
    with pytest.raises(PermanentProviderError, match="no usable slack address"):
        make(http).send(delivery({"email": "ada@example.com"}))


def test_missing_text_is_permanent(http: httpx.Client) -> None:
    provider = make(http, incoming_webhook_url="https://hooks.slack.com/services/T/B/x")
    with pytest.raises(PermanentProviderError, match="no text"):
        provider.send(delivery({}, text=""))


def test_config_secrets_are_masked() -> None:
    hook = "https://hooks.slack.com/services/T000/B000/hooksecretXXXX"
    config = SlackConfig(bot_token=BOT_TOKEN, incoming_webhook_url=hook, default_channel="C1")

    dumped = config.model_dump_json()
    for shown in (dumped, repr(config), str(config)):
        assert BOT_TOKEN not in shown
        assert "hooksecret" not in shown
    assert "**********" in dumped
    assert config.bot_token is not None
    assert config.bot_token.get_secret_value() == BOT_TOKEN


def test_config_rejects_unknown_fields_and_bad_urls() -> None:
    with pytest.raises(ValueError, match="extra"):
        SlackConfig(token=BOT_TOKEN)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="http"):
        SlackConfig(incoming_webhook_url="hooks.slack.com/services/T/B/x")
