"""`POST /callbacks/twilio`: Twilio's message status callbacks move messages to DELIVERED or
UNDELIVERABLE.

Callback shape per Twilio's "Track the Message Status of Outbound Messages"
(https://www.twilio.com/docs/messaging/guides/track-outbound-message-status): a form-encoded
POST with `MessageSid`, `MessageStatus` (queued, sent, delivered, undelivered, failed, read, …),
`ErrorCode` on failures, `AccountSid`, `From`, `To`, `ApiVersion`, plus the legacy `SmsSid` and
`SmsStatus`. The signature follows Twilio's webhook security guide
(https://www.twilio.com/docs/usage/webhooks/webhooks-security) and twilio-python's
`twilio/request_validator.py` (`RequestValidator.compute_signature`): base64 of HMAC-SHA1,
keyed with the auth token, over the full URL Twilio requested followed by each POST parameter's
name and value, sorted by name; the URL is checked with and without its default port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback.support import (
    configure,
    counts,
    history,
    message,
    send_with_twilio,
    twilio_config,
    without_ts,
)
from tests.conftest import Keys

TOKEN = "twilio-auth-token-test"
URL = "http://testserver/callbacks/twilio"


def sign(params: dict[str, str], url: str = URL, token: str = TOKEN) -> str:
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def status(sid: str = "SM42", value: str = "delivered", **extra: str) -> dict[str, str]:
    return {
        "ApiVersion": "2010-04-01",
        "AccountSid": "AC123",
        "From": "+15550001111",
        "To": "+15557654321",
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": value,
        "SmsStatus": value,
        **extra,
    }


def test_a_signed_delivered_callback_marks_the_message_delivered(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_twilio(client, keys.test, httpserver, TOKEN)
    params = status(value="delivered")
    response = client.post(
        "/callbacks/twilio", data=params, headers={"X-Twilio-Signature": sign(params)}
    )
    assert response.status_code == 200, response.text
    assert response.json() == counts(received=1, applied=1)

    view = message(client, keys.test, message_id)
    assert view["status"] == "DELIVERED"
    assert view["delivered"] is not None
    assert view["providers"][0]["status"] == "DELIVERED"
    last = without_ts(history(client, keys.test, message_id)[-1])
    assert last["callback"].startswith('{"ApiVersion":"2010-04-01","AccountSid":"AC123"')
    del last["callback"]
    assert last == {
        "type": "DELIVERED",
        "channel": "sms",
        "provider": "twilio",
        "provider_message_id": "SM42",
        "detail": "Twilio delivered",
    }


@pytest.mark.parametrize(
    ("value", "extra", "detail"),
    [
        ("undelivered", {"ErrorCode": "30003"}, "Twilio undelivered: error 30003"),
        (
            "failed",
            {"ErrorCode": "30008", "ErrorMessage": "Unknown error"},
            "Twilio failed: error 30008 (Unknown error)",
        ),
    ],
)
def test_undelivered_or_failed_makes_the_message_undeliverable_with_reason_bounced(
    client: TestClient,
    keys: Keys,
    httpserver: HTTPServer,
    value: str,
    extra: dict[str, str],
    detail: str,
) -> None:
    message_id = send_with_twilio(client, keys.test, httpserver, TOKEN)
    params = status(value=value, **extra)
    response = client.post(
        "/callbacks/twilio", data=params, headers={"X-Twilio-Signature": sign(params)}
    )
    assert response.json() == counts(received=1, applied=1)

    view = message(client, keys.test, message_id)
    assert (view["status"], view["reason"], view["error"]) == ("UNDELIVERABLE", "BOUNCED", detail)
    assert view["providers"][0]["status"] == "FAILED"
    last = history(client, keys.test, message_id)[-1]
    assert (last["type"], last["reason"], last["provider"], last["detail"]) == (
        "UNDELIVERABLE",
        "BOUNCED",
        "twilio",
        detail,
    )


def test_a_repeated_callback_changes_and_records_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_twilio(client, keys.test, httpserver, TOKEN)
    params = status(value="delivered")
    headers = {"X-Twilio-Signature": sign(params)}
    assert client.post("/callbacks/twilio", data=params, headers=headers).json()["applied"] == 1
    first = message(client, keys.test, message_id)
    entries = history(client, keys.test, message_id)

    repeat = client.post("/callbacks/twilio", data=params, headers=headers)
    assert repeat.json() == counts(received=1, duplicates=1)
    assert message(client, keys.test, message_id) == first
    assert history(client, keys.test, message_id) == entries


def test_a_bad_missing_or_other_environment_signature_is_403_and_changes_nothing(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_twilio(client, keys.test, httpserver, TOKEN)
    configure(client, keys.production, "twilio", twilio_config(httpserver, "production-token"))
    before = message(client, keys.test, message_id)
    entries = history(client, keys.test, message_id)
    params = status(value="undelivered", ErrorCode="30003")
    expected = {
        "code": "invalid_signature",
        "message": "The X-Twilio-Signature header is missing or does not match this callback "
        "signed with the Twilio auth token of the message's environment. Behind a proxy, "
        "forward X-Forwarded-Proto and X-Forwarded-Host, or set the provider's status "
        "callback URL to the exact URL Twilio calls.",
        "field": "X-Twilio-Signature",
    }
    wrong_token = client.post(
        "/callbacks/twilio",
        data=params,
        headers={"X-Twilio-Signature": sign(params, token="not-the-token")},
    )
    assert (wrong_token.status_code, wrong_token.json()) == (403, expected)
    other_environment = client.post(
        "/callbacks/twilio",
        data=params,
        headers={"X-Twilio-Signature": sign(params, token="production-token")},
    )
    assert (other_environment.status_code, other_environment.json()) == (403, expected)
    tampered = client.post(
        "/callbacks/twilio",
        data={**params, "MessageStatus": "delivered"},
        headers={"X-Twilio-Signature": sign(params)},
    )
    assert tampered.status_code == 403
    missing = client.post("/callbacks/twilio", data=params)
    assert (missing.status_code, missing.json()) == (403, expected)

    assert message(client, keys.test, message_id) == before
    assert history(client, keys.test, message_id) == entries


def test_an_unknown_message_sid_is_answered_200_and_counted(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_twilio(client, keys.test, httpserver, TOKEN)
    entries = history(client, keys.test, message_id)
    params = status(sid="SMunknown", value="delivered")
    response = client.post(
        "/callbacks/twilio", data=params, headers={"X-Twilio-Signature": sign(params)}
    )
    assert response.status_code == 200, response.text
    assert response.json() == counts(received=1, unknown=1)
    assert message(client, keys.test, message_id)["status"] == "SENT"
    assert history(client, keys.test, message_id) == entries


def test_a_late_failure_after_delivered_is_recorded_once_and_does_not_move_the_message(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_twilio(client, keys.test, httpserver, TOKEN)
    delivered = status(value="delivered")
    client.post(
        "/callbacks/twilio", data=delivered, headers={"X-Twilio-Signature": sign(delivered)}
    )
    failed = status(value="undelivered", ErrorCode="30005")
    headers = {"X-Twilio-Signature": sign(failed)}

    assert client.post("/callbacks/twilio", data=failed, headers=headers).json()["recorded"] == 1
    view = message(client, keys.test, message_id)
    assert (view["status"], view["reason"]) == ("DELIVERED", None)
    assert view["providers"][0]["status"] == "DELIVERED"
    entries = history(client, keys.test, message_id)
    last = entries[-1]
    assert (last["type"], last["detail"], last["late"]) == (
        "UNDELIVERABLE",
        "Twilio undelivered: error 30005",
        True,
    )
    repeat = client.post("/callbacks/twilio", data=failed, headers=headers)
    assert repeat.json() == counts(received=1, duplicates=1)
    assert history(client, keys.test, message_id) == entries


def test_intermediate_statuses_are_recorded_once(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_twilio(client, keys.test, httpserver, TOKEN)
    sent = status(value="sent")
    headers = {"X-Twilio-Signature": sign(sent)}
    assert client.post("/callbacks/twilio", data=sent, headers=headers).json() == counts(
        received=1, recorded=1
    )
    assert client.post("/callbacks/twilio", data=sent, headers=headers).json() == counts(
        received=1, duplicates=1
    )
    assert message(client, keys.test, message_id)["status"] == "SENT"
    recorded = [e for e in history(client, keys.test, message_id) if e["type"] == "PROVIDER_STATUS"]
    assert [(e["provider"], e["status"], e["detail"]) for e in recorded] == [
        ("twilio", "sent", "Twilio sent")
    ]


def test_the_url_behind_a_proxy_comes_from_the_forwarded_headers(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_twilio(client, keys.test, httpserver, TOKEN)
    params = status(value="delivered")
    public = "https://notify.example.com/callbacks/twilio"
    signature = sign(params, url=public)

    direct = client.post(
        "/callbacks/twilio", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert direct.status_code == 403
    proxied = client.post(
        "/callbacks/twilio",
        data=params,
        headers={
            "X-Twilio-Signature": signature,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "notify.example.com",
        },
    )
    assert proxied.status_code == 200, proxied.text
    assert message(client, keys.test, message_id)["status"] == "DELIVERED"


def test_a_signature_for_the_configured_status_callback_url_is_accepted(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    public = "https://notify.example.com:443/callbacks/twilio"
    message_id = send_with_twilio(client, keys.test, httpserver, TOKEN, status_callback_url=public)
    (request, _response) = httpserver.log[0]
    assert request.form["StatusCallback"] == f"{public}?tidings_message_id={message_id}"
    params = status(value="delivered")
    # Twilio may sign without the default port; both forms verify.
    signature = sign(
        params,
        url=f"https://notify.example.com/callbacks/twilio?tidings_message_id={message_id}",
    )
    response = client.post(
        f"/callbacks/twilio?tidings_message_id={message_id}",
        data=params,
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 200, response.text
    assert message(client, keys.test, message_id)["status"] == "DELIVERED"


def test_a_callback_without_message_sid_is_a_400(client: TestClient) -> None:
    response = client.post("/callbacks/twilio", data={"MessageStatus": "delivered"})
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_request",
        "message": "MessageSid is missing: Twilio status callbacks post it form-encoded with "
        "MessageStatus.",
        "field": "MessageSid",
    }
