"""Resending a message that was not sent: POST /messages/{message_id}/resend."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.message.test_render_failures import INVOICE, _history, _send, _setup
from tests.message.test_send_email import message_in
from tests.smtp_sink import SmtpSink

FIXED = {
    **INVOICE,
    "content": {
        **INVOICE["content"],
        "email": {
            "subject": "Your invoice",
            "text": "Hello {{ profile.name }}, invoice {{ data.number }}.",
        },
    },
}


def _failed(client: TestClient, key: str, number: str) -> dict[str, Any]:
    request_id = _send(client, key, {"total": 10, "parts": 0, "number": number})
    message = message_in(client, key, request_id, "UNDELIVERABLE", "UNROUTABLE", "SENT")
    assert message["tidings_reason"] == "RENDER_FAILED"
    return message


def _resend(client: TestClient, key: str, message_id: str, **headers: str) -> Any:
    return client.post(f"/messages/{message_id}/resend", headers={**bearer(key), **headers})


def test_a_resent_message_is_a_new_message_rendered_with_the_fixed_template(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    _setup(client, keys.test, smtp_sink, INVOICE)
    original = _failed(client, keys.test, "7")
    fixed = client.put("/notifications/invoice", json=FIXED, headers=bearer(keys.test))
    assert fixed.status_code == 200, fixed.text

    response = _resend(client, keys.test, original["id"])
    assert response.status_code == 202, response.text
    answer = response.json()
    new_id = answer["messageId"]
    assert new_id.startswith("msg_")
    assert new_id != original["id"]
    assert answer == {"requestId": new_id, "messageId": new_id, "resendOf": original["id"]}

    resent = message_in(client, keys.test, new_id, "SENT", "UNDELIVERABLE", "UNROUTABLE")
    assert resent["status"] == "SENT"
    assert resent["recipient"] == "u1"
    assert resent["notification"] == "invoice"
    wait_for(lambda: len(smtp_sink.messages) == 1, what="the resent email at the sink")
    email = smtp_sink.messages[0]
    assert email["To"] == "ada@example.org"
    assert email.get_content().strip() == "Hello Ada, invoice 7."

    # Each history links to the other.
    original_history = _history(client, keys.test, original["id"])
    assert original_history[-1]["type"] == "RESENT"
    assert original_history[-1]["message_id"] == new_id
    assert original_history[-1]["by"].startswith("API key ")
    new_history = _history(client, keys.test, new_id)
    assert new_history[0]["type"] == "ENQUEUED"
    assert new_history[0]["resend_of"] == original["id"]
    # The original stays as it ended.
    assert (
        client.get(f"/messages/{original['id']}", headers=bearer(keys.test)).json()["status"]
        == "UNDELIVERABLE"
    )


def test_a_sent_message_or_one_resent_already_is_refused(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    _setup(client, keys.test, smtp_sink, INVOICE)
    original = _failed(client, keys.test, "8")
    client.put("/notifications/invoice", json=FIXED, headers=bearer(keys.test))
    new_id = _resend(client, keys.test, original["id"]).json()["messageId"]

    twice = _resend(client, keys.test, original["id"])
    assert twice.status_code == 409
    assert twice.json() == {
        "code": "message_already_resent",
        "message": f"Message {original['id']!r} was already resent as {new_id!r}. Open that "
        "message, and resend it if it failed too.",
        "field": "message_id",
    }

    message_in(client, keys.test, new_id, "SENT")
    sent = _resend(client, keys.test, new_id)
    assert sent.status_code == 409
    assert sent.json()["code"] == "message_not_resendable"
    assert sent.json()["message"] == (
        f"Message {new_id!r} is SENT: only a message that was not sent (UNDELIVERABLE, "
        "UNMAPPED, UNROUTABLE) can be resent. It was sent; send a new message with POST /send "
        "instead."
    )
    wait_for(lambda: len(smtp_sink.messages) == 1, what="the one resent email")
    assert len(smtp_sink.messages) == 1

    missing = _resend(client, keys.test, "msg_nope")
    assert missing.status_code == 404
    assert missing.json()["code"] == "message_not_found"


def test_a_resend_with_an_idempotency_key_is_made_once(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    _setup(client, keys.test, smtp_sink, INVOICE)
    original = _failed(client, keys.test, "9")
    first = _resend(client, keys.test, original["id"], **{"Idempotency-Key": "resend-9"})
    again = _resend(client, keys.test, original["id"], **{"Idempotency-Key": "resend-9"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    history = _history(client, keys.test, original["id"])
    assert [entry["type"] for entry in history].count("RESENT") == 1


def test_a_message_whose_template_is_gone_is_refused_until_it_exists(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    _setup(client, keys.test, smtp_sink, INVOICE)
    original = _failed(client, keys.test, "10")
    assert client.delete("/notifications/invoice", headers=bearer(keys.test)).status_code == 204
    refused = _resend(client, keys.test, original["id"])
    assert refused.status_code == 409
    assert refused.json()["code"] == "template_missing"
    assert "Create it" in refused.json()["message"]
