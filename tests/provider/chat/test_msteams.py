"""Microsoft Teams provider against a loopback fake of an incoming / Workflows webhook.

Vendor shapes checked here, and where they come from:
- The Adaptive Card envelope `{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": {AdaptiveCard}}]}`
  and the legacy success body `1`: MicrosoftDocs/msteams-docs
  msteams-platform/webhooks-and-connectors/how-to/connectors-using.md ("Send adaptive cards
  using an incoming webhook", "Post a message to the webhook using cURL").
- Throttling reported inside a 200 ("Connectors do not throw 429s"; look for "Microsoft Teams
  endpoint returned HTTP error 429"): the same file, "Rate limiting for connectors".
- Workflows accept Adaptive Cards only: learn.microsoft.com/microsoftteams/platform/
  webhooks-and-connectors/how-to/connectors-using ("Known issues").
- Workflows ("When a Teams webhook request is received") answer 202 Accepted with no body:
  reported in robusta-dev/robusta#2113, nicholas-fedor/shoutrrr#900, fluxcd/flagger#1887.
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
from tidings.provider.chat.msteams import MSTeamsConfig, MSTeamsProvider, adaptive_card_message
from tidings.provider.registry import load_all

LEGACY_PATH = "/webhookb2/0000-1111@2222/IncomingWebhook/legacysecret0123456789/3333"
WORKFLOW_PATH = "/workflows/abc123/triggers/manual/paths/invoke"
WORKFLOW_QUERY = "api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=workflowsecretSIG"
TEXT = "Nightly export finished: 1,204 rows."

EXPECTED_CARD = {
    "type": "message",
    "attachments": [
        {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.2",
                "body": [{"type": "TextBlock", "text": TEXT, "wrap": True}],
            },
        }
    ],
}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def make(http: httpx.Client, **config: Any) -> MSTeamsProvider:
    return MSTeamsProvider(MSTeamsConfig(**config), http)


def delivery(recipient: dict[str, Any], text: str = TEXT) -> Delivery:
    return Delivery(
        message_id="msg_1",
        idempotency_key="msg_1:msteams:0",
        channel="chat",
        recipient=recipient,
        content={"text": text},
    )


def assert_secret_free(error: ProviderError, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in str(error)
        assert secret not in error.reason
        assert secret not in error.response_excerpt


def test_registered_as_chat_provider() -> None:
    assert load_all()["msteams"] is MSTeamsProvider
    assert MSTeamsProvider.channel == "chat"


def test_adaptive_card_envelope_matches_the_documented_shape() -> None:
    assert adaptive_card_message(TEXT) == EXPECTED_CARD


def test_legacy_incoming_webhook_answers_1(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_oneshot_request(
        LEGACY_PATH, method="POST", json=EXPECTED_CARD
    ).respond_with_data("1", content_type="text/plain")
    recipient = {"ms_teams": {"webhook_url": httpserver.url_for(LEGACY_PATH)}}

    result = make(http).send(delivery(recipient))

    httpserver.check_assertions()
    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == EXPECTED_CARD
    assert result.provider_message_id is None
    assert result.response_excerpt == "HTTP 200: 1"


def test_workflows_webhook_answers_202(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_oneshot_request(
        WORKFLOW_PATH,
        method="POST",
        query_string=WORKFLOW_QUERY,
        json=EXPECTED_CARD,
    ).respond_with_data("", status=202)
    url = f"{httpserver.url_for(WORKFLOW_PATH)}?{WORKFLOW_QUERY}"
    provider = make(http, webhook_url=url)

    assert provider.can_deliver({"email": "ada@example.com"})
    result = provider.send(delivery({"email": "ada@example.com"}))

    httpserver.check_assertions()
    assert result.provider_message_id is None
    assert result.response_excerpt == "HTTP 202: "


def test_throttling_inside_a_200_is_retryable(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(LEGACY_PATH, method="POST").respond_with_data(
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP "
        "error 429 with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef"
    )
    url = httpserver.url_for(LEGACY_PATH)

    with pytest.raises(RetryableProviderError) as caught:
        make(http, webhook_url=url).send(delivery({}))

    assert "HTTP error 429" in caught.value.reason
    assert caught.value.status_code == 429
    assert_secret_free(caught.value, url, "legacysecret")


def test_refusal_inside_a_200_is_permanent(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(LEGACY_PATH, method="POST").respond_with_data(
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP "
        "error 413 with ContextId MS-CV=MgTIReCgJ0q+XzbEJhgT8Q.0.."
    )

    with pytest.raises(PermanentProviderError) as caught:
        make(http, webhook_url=httpserver.url_for(LEGACY_PATH)).send(delivery({}))

    assert "HTTP error 413" in caught.value.reason
    assert caught.value.status_code == 413


def test_legacy_4xx_text_is_permanent(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(LEGACY_PATH, method="POST").respond_with_data(
        "Bad payload received by generic incoming webhook.", status=400, content_type="text/plain"
    )
    url = httpserver.url_for(LEGACY_PATH)

    with pytest.raises(PermanentProviderError) as caught:
        make(http, webhook_url=url).send(delivery({}))

    assert "Bad payload received by generic incoming webhook." in caught.value.reason
    assert caught.value.status_code == 400
    assert_secret_free(caught.value, url, "legacysecret")


def test_workflows_json_error_is_permanent(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(WORKFLOW_PATH, method="POST").respond_with_json(
        {
            "error": {
                "code": "DirectApiAuthorizationRequired",
                "message": "The request must be authenticated only by Shared Access scheme.",
            }
        },
        status=401,
    )
    url = f"{httpserver.url_for(WORKFLOW_PATH)}?{WORKFLOW_QUERY}"

    with pytest.raises(PermanentProviderError) as caught:
        make(http, webhook_url=url).send(delivery({}))

    assert "DirectApiAuthorizationRequired: The request must be authenticated" in (
        caught.value.reason
    )
    assert_secret_free(caught.value, "workflowsecretSIG")


def test_http_429_carries_retry_after(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(WORKFLOW_PATH, method="POST").respond_with_json(
        {"error": {"code": "WorkflowTriggerIsThrottled", "message": "Rate limit exceeded."}},
        status=429,
        headers={"Retry-After": "12"},
    )

    with pytest.raises(RetryableProviderError) as caught:
        make(http, webhook_url=httpserver.url_for(WORKFLOW_PATH)).send(delivery({}))

    assert caught.value.retry_after == 12.0
    assert "Rate limit exceeded." in caught.value.reason


def test_server_error_is_retryable(httpserver: HTTPServer, http: httpx.Client) -> None:
    httpserver.expect_request(LEGACY_PATH, method="POST").respond_with_data(
        "Service Unavailable", status=503
    )

    with pytest.raises(RetryableProviderError) as caught:
        make(http, webhook_url=httpserver.url_for(LEGACY_PATH)).send(delivery({}))

    assert caught.value.status_code == 503
    assert caught.value.retry_after is None


def test_refused_connection_is_retryable(http: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}{LEGACY_PATH}"

    with pytest.raises(RetryableProviderError) as caught:
        make(http, webhook_url=url).send(delivery({}))

    assert "could not be reached" in caught.value.reason
    assert_secret_free(caught.value, "legacysecret")


def test_can_deliver_follows_the_address_rules(http: httpx.Client) -> None:
    bare = make(http)
    with_default = make(http, webhook_url="https://example.webhook.office.com/webhookb2/x")
    bot_address = {"ms_teams": {"tenant_id": "t", "service_url": "https://smba", "user_id": "u"}}

    assert bare.can_deliver({"ms_teams": {"webhook_url": "https://example.webhook.office.com/x"}})
    assert not bare.can_deliver({"email": "ada@example.com"})
    assert not bare.can_deliver(bot_address)
    assert with_default.can_deliver({"email": "ada@example.com"})
    assert not with_default.can_deliver(bot_address)  # no silent fallback


def test_missing_address_is_permanent(http: httpx.Client) -> None:
    with pytest.raises(PermanentProviderError, match=r"no ms_teams\.webhook_url"):
        make(http).send(delivery({"email": "ada@example.com"}))


def test_config_secrets_are_masked() -> None:
    config = MSTeamsConfig(webhook_url=f"https://prod.logic.azure.com{WORKFLOW_PATH}?sig=secretSIG")

    for shown in (config.model_dump_json(), repr(config), str(config)):
        assert "secretSIG" not in shown
    assert "**********" in config.model_dump_json()
