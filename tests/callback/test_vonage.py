"""`/callbacks/vonage`: SMS API delivery receipts, replayed from the documented example
(tests/callback/payloads.py) as the query of a GET, a form and a JSON body (the three ways
Vonage sends them), signed as
https://developer.vonage.com/en/getting-started/concepts/signing-messages describes and the
Vonage Python SDK's `check_signature` computes: the parameters but `sig`, sorted, each as
`&name=value` (with `&` and `=` in values replaced by `_`), then MD5 of that text followed by
the secret (`md5hash`), or an HMAC keyed with it."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback.payloads import VONAGE_MESSAGE_ID, vonage_receipt
from tests.callback.support import counts, history, last_entry, message, send_with
from tests.conftest import Keys

SECRET = "vonage-signature-secret"
CONFIG = {"api_key": "abcd1234", "api_secret": "api-secret", "sender": "AcmeInc"}


def send_with_vonage(client: TestClient, key: str, httpserver: HTTPServer, **config: Any) -> str:
    reply = {
        "message-count": "1",
        "messages": [
            {
                "to": "447700900000",
                "message-id": VONAGE_MESSAGE_ID,
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.03330000",
                "network": "12345",
            }
        ],
    }
    settings = {**CONFIG, **config}
    return send_with(
        client, key, httpserver, "vonage", settings, "/sms/json", reply, VONAGE_MESSAGE_ID
    )


def sign(params: dict[str, str], method: str = "md5hash", secret: str = SECRET) -> dict[str, str]:
    signed = {**params, "timestamp": "1577880000", "nonce": "6f9c2a"}
    text = "".join(
        f"&{name}={signed[name].replace('&', '_').replace('=', '_')}" for name in sorted(signed)
    ).encode()
    if method == "md5hash":
        sig = hashlib.md5(text + secret.encode()).hexdigest()
    else:
        sig = hmac.new(secret.encode(), text, method).hexdigest().upper()
    return {**signed, "sig": sig}


def test_documented_receipts_move_the_message_as_get_form_or_json(
    client: TestClient, keys: Keys, httpserver: HTTPServer
) -> None:
    message_id = send_with_vonage(client, keys.test, httpserver)

    buffered = client.get("/callbacks/vonage", params=vonage_receipt("buffered"))
    assert buffered.json() == counts(received=1, recorded=1)
    assert message(client, keys.test, message_id)["status"] == "SENT"

    delivered = client.post("/callbacks/vonage", data=vonage_receipt("delivered"))
    assert delivered.json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    assert (view["status"], view["providers"][0]["status"]) == ("DELIVERED", "DELIVERED")
    assert last_entry(client, keys.test, message_id)["detail"] == "Vonage delivered"

    repeat = client.post("/callbacks/vonage", json=vonage_receipt("delivered"))
    assert repeat.json() == counts(received=1, duplicates=1)


@pytest.mark.parametrize(("status", "code"), [("failed", "1"), ("rejected", "6"), ("expired", "5")])
def test_a_failed_receipt_makes_the_message_undeliverable_with_the_error_code(
    client: TestClient, keys: Keys, httpserver: HTTPServer, status: str, code: str
) -> None:
    message_id = send_with_vonage(client, keys.test, httpserver)
    response = client.post("/callbacks/vonage", json=vonage_receipt(status, code))
    assert response.json() == counts(received=1, applied=1)
    view = message(client, keys.test, message_id)
    detail = f"Vonage {status}: err-code {code}"
    assert (view["status"], view["reason"], view["error"]) == ("UNDELIVERABLE", "BOUNCED", detail)
    assert view["providers"][0]["status"] == "FAILED"


@pytest.mark.parametrize("method", ["md5hash", "sha256"])
def test_with_a_signature_secret_only_signed_receipts_are_accepted(
    client: TestClient, keys: Keys, httpserver: HTTPServer, method: str
) -> None:
    message_id = send_with_vonage(
        client, keys.test, httpserver, signature_secret=SECRET, signature_method=method
    )
    entries = history(client, keys.test, message_id)
    receipt = vonage_receipt("delivered", **{"client-ref": message_id})

    forged = client.get("/callbacks/vonage", params=sign(receipt, method, "other-secret"))
    assert forged.status_code == 401
    assert forged.json() == {
        "code": "invalid_signature",
        "message": "The receipt's sig is missing or does not verify with the Vonage provider's "
        "signature_secret and signature_method. Copy them from the Vonage Dashboard's API "
        "settings.",
        "field": "sig",
    }
    assert client.get("/callbacks/vonage", params=receipt).status_code == 401
    assert history(client, keys.test, message_id) == entries

    response = client.get("/callbacks/vonage", params=sign(receipt, method))
    assert response.json() == counts(received=1, applied=1)
    assert message(client, keys.test, message_id)["status"] == "DELIVERED"


def test_a_receipt_without_message_id_is_a_400(client: TestClient) -> None:
    response = client.post("/callbacks/vonage", json={"status": "delivered"})
    assert response.status_code == 400
    assert response.json()["field"] == "messageId"
