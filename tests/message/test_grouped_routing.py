"""Messages of one send are routed together, and one failing message does not block the rest."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.message.test_send_email import WELCOME, message_in
from tests.smtp_sink import SmtpSink
from tidings.message import pipeline
from tidings.runtime import Runtime


def _setup(client: TestClient, key: str, sink: SmtpSink, users: int) -> None:
    headers = bearer(key)
    client.put("/notifications/welcome", json=WELCOME, headers=headers)
    client.put("/providers/smtp", json={"config": sink.provider_config()}, headers=headers)
    for index in range(users):
        client.post(
            f"/profiles/u{index}",
            json={"profile": {"email": f"u{index}@example.org", "name": f"User {index}"}},
            headers=headers,
        )


def test_a_send_to_many_routes_them_together(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    _setup(client, keys.test, smtp_sink, users=25)
    response = client.post(
        "/send",
        json={
            "message": {
                "to": [{"user_id": f"u{index}"} for index in range(25)] + [{"user_id": "nobody"}],
                "template": "welcome",
            }
        },
        headers=bearer(keys.test),
    )
    assert response.status_code == 202
    wait_for(lambda: len(smtp_sink.messages) == 25, what="25 emails")
    subjects = sorted(message["Subject"] for message in smtp_sink.messages)
    assert subjects == sorted(f"Welcome, User {index}!" for index in range(25))
    unroutable = client.get("/messages?recipient=nobody", headers=bearer(keys.test)).json()
    assert unroutable["results"][0]["status"] == "UNROUTABLE"


def test_a_failing_message_falls_back_to_one_by_one(
    client: TestClient,
    keys: Keys,
    smtp_sink: SmtpSink,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _setup(client, keys.test, smtp_sink, users=3)
    real_route = pipeline._route
    broken: set[str] = set()

    def route(*args: Any, **kwargs: Any) -> Any:
        message = args[3]
        if message.recipient == "u1" and message.message_id not in broken:
            broken.add(message.message_id)
            raise RuntimeError("a bug while routing u1")
        return real_route(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_route", route)
    response = client.post(
        "/send",
        json={"message": {"to": [{"user_id": f"u{i}"} for i in range(3)], "template": "welcome"}},
        headers=bearer(keys.test),
    )
    assert response.status_code == 202
    wait_for(lambda: len(smtp_sink.messages) == 3, what="all three emails")
    for index in range(3):
        listing = client.get(f"/messages?recipient=u{index}", headers=bearer(keys.test)).json()
        message_in(client, keys.test, listing["results"][0]["id"], "SENT")
