"""A request whose data is committed answers 2xx even when the job storage fails; the
sweeper then re-drives what it committed."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tidings.app import create_app
from tidings.models import Message
from tidings.runtime import Runtime


def test_a_send_committed_while_the_job_storage_fails_is_accepted_and_swept(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = runtime.jobs.huey.storage

    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    with TestClient(create_app(runtime, consumer_workers=0)) as client:
        monkeypatch.setattr(storage, "enqueue", unavailable)
        sent = client.post(
            "/send",
            json={"message": {"to": {"email": "ada@example.org"}, "content": {"title": "Hi"}}},
            headers=bearer(keys.test),
        )
        assert sent.status_code == 202, sent.text
        monkeypatch.undo()
    with runtime.database.read() as session:
        (message,) = session.query(Message).all()
        assert (message.message_id, message.status) == (sent.json()["requestId"], "ENQUEUED")
    assert runtime.jobs.huey.pending_count() == 0

    assert runtime.jobs.recover() == 1
    assert runtime.jobs.huey.dequeue().args == ([message.message_id],)
