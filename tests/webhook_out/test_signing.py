"""Tidings' Standard Webhooks signatures, checked by the official verifier."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tidings.webhook_out import signing


def test_a_signed_request_verifies_with_the_official_library() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    body = b'{"type":"message.sent","timestamp":"2026-12-06T12:00:00Z","data":{"a":"\xc3\xa9"}}'
    headers = signing.headers([secret], "msg_1", int(time.time()), body)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers)["data"] == {"a": "é"}


def test_a_changed_body_or_another_secret_does_not_verify() -> None:
    secret = signing.new_secret()
    body = b'{"type":"run.failed"}'
    headers = signing.headers([secret], "msg_2", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"type":"run.failed "}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_during_a_rotation_each_secret_verifies_on_its_own() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    body = b"{}"
    headers = signing.headers([new, old], "msg_3", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(body, headers) == {}
    assert Webhook(old).verify(body, headers) == {}
