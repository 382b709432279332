"""A template that fails to render at send time: the message ends UNDELIVERABLE with reason
RENDER_FAILED, and the Liquid error, its channel, field and line are in the message and its
history (not UNROUTABLE "email: no content")."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.message.test_send_email import message_in
from tests.smtp_sink import SmtpSink

INVOICE = {
    "strict": True,
    "content": {
        "email": {
            "subject": "Your invoice",
            "text": "Hello {{ profile.name }},\nyou owe {{ data.total | divided_by: data.parts }}.",
        },
        "sms": {"text": "Invoice {{ data.number }}"},
    },
    "routing": {"method": "single", "channels": ["email"]},
}


def _setup(client: TestClient, key: str, sink: SmtpSink, template: dict[str, Any]) -> None:
    headers = bearer(key)
    assert client.put("/notifications/invoice", json=template, headers=headers).status_code == 201
    provider = client.put(
        "/providers/smtp", json={"config": sink.provider_config()}, headers=headers
    )
    assert provider.status_code == 201, provider.text
    client.post(
        "/profiles/u1",
        json={"profile": {"email": "ada@example.org", "name": "Ada"}},
        headers=headers,
    )


def _send(client: TestClient, key: str, data: dict[str, Any]) -> str:
    response = client.post(
        "/send",
        json={"message": {"to": {"user_id": "u1"}, "template": "invoice", "data": data}},
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    request_id: str = response.json()["requestId"]
    return request_id


def _history(client: TestClient, key: str, message_id: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = client.get(
        f"/messages/{message_id}/history", headers=bearer(key)
    ).json()["results"]
    return results


def test_a_filter_error_at_send_time_ends_the_message_render_failed_with_the_line(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    _setup(client, keys.test, smtp_sink, INVOICE)
    request_id = _send(client, keys.test, {"total": 10, "parts": 0, "number": "7"})
    message = message_in(client, keys.test, request_id, "UNDELIVERABLE", "UNROUTABLE", "SENT")
    assert message["status"] == "UNDELIVERABLE"
    assert (message["reason"], message["tidings_reason"]) == ("FAILED", "RENDER_FAILED")
    assert message["error"] == "email.text: divided_by: can't divide by 0 (line 2, column 25)"
    history = _history(client, keys.test, message["id"])
    rendered = next(entry for entry in history if entry["type"] == "RENDERED")
    assert rendered["failures"] == [
        {
            "channel": "email",
            "field": "text",
            "error": "divided_by: can't divide by 0 (line 2, column 25)",
            "line": 2,
        }
    ]
    assert history[-1]["type"] == "UNDELIVERABLE"
    assert history[-1]["reason"] == "RENDER_FAILED"
    assert history[-1]["failures"] == rendered["failures"]
    assert smtp_sink.messages == []


def test_a_strict_variable_missing_at_send_time_names_the_variable_and_line(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    template = {
        **INVOICE,
        "content": {"email": {"subject": "Invoice {{ data.number }}", "text": "."}},
    }
    _setup(client, keys.test, smtp_sink, template)
    request_id = _send(client, keys.test, {})
    message = message_in(client, keys.test, request_id, "UNDELIVERABLE", "UNROUTABLE", "SENT")
    assert (message["status"], message["tidings_reason"]) == ("UNDELIVERABLE", "RENDER_FAILED")
    assert message["error"].startswith("email.subject: ")
    assert "number" in message["error"]
    assert message["error"].endswith("(line 1, column 12)")


def test_a_channel_that_did_not_render_leaves_the_others_to_the_routing(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    """A failure in a channel the routing does not want changes nothing; with a channel that
    rendered to fall back on, the message is sent and the history keeps the failure."""
    template = {**INVOICE, "routing": {"method": "single", "channels": ["sms", "email"]}}
    template["content"] = {**INVOICE["content"], "sms": {"text": "{{ data.total | slice: 'a' }}"}}
    _setup(client, keys.test, smtp_sink, template)
    request_id = _send(client, keys.test, {"total": 10, "parts": 2, "number": "7"})
    message = message_in(client, keys.test, request_id, "UNDELIVERABLE", "UNROUTABLE", "SENT")
    assert message["status"] == "SENT"
    assert smtp_sink.messages[0]["Subject"] == "Your invoice"
    rendered = next(
        entry for entry in _history(client, keys.test, message["id"]) if entry["type"] == "RENDERED"
    )
    assert [(f["channel"], f["field"], f["line"]) for f in rendered["failures"]] == [
        ("sms", "text", 1)
    ]

    # Routed to email only, a failed sms does not make the message a render failure.
    only_email = {**INVOICE, "content": template["content"]}
    client.put("/notifications/invoice", json=only_email, headers=bearer(keys.test))
    client.post("/profiles/u2", json={"profile": {"name": "No address"}}, headers=bearer(keys.test))
    response = client.post(
        "/send",
        json={
            "message": {
                "to": {"user_id": "u2"},
                "template": "invoice",
                "data": {"total": 1, "parts": 1},
            }
        },
        headers=bearer(keys.test),
    )
    unroutable = message_in(
        client, keys.test, response.json()["requestId"], "UNDELIVERABLE", "UNROUTABLE", "SENT"
    )
    assert (unroutable["status"], unroutable["reason"]) == ("UNROUTABLE", "NO_CHANNELS")


def test_inline_content_whose_liquid_cannot_render_is_refused_at_send(
    client: TestClient, keys: Keys
) -> None:
    for content, field, said in (
        (
            {"title": "Hi {{ name | nosuchfilter }}", "body": "."},
            "message.content.title",
            "nosuchfilter",
        ),
        (
            {"title": "Hi", "body": "{% if x %}never closed"},
            "message.content.body",
            "does not parse",
        ),
    ):
        response = client.post(
            "/send",
            json={"message": {"to": {"email": "a@example.org"}, "content": content}},
            headers=bearer(keys.test),
        )
        assert response.status_code == 400, response.text
        error = response.json()
        assert (error["code"], error["field"]) == ("invalid_content", field)
        assert said in error["message"]
