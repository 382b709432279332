"""A delivery report that arrives before the pipeline commits SENT.

The test drives the pipeline's steps itself (no job consumer), so the callback lands exactly
between the `sending` commit and the provider outcome's commit. Event shape as in
https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from pytest_httpserver import HTTPServer

from tests.callback.support import configure, counts, history, message, prepare, send
from tests.conftest import Keys
from tidings.app import create_app
from tidings.message import pipeline
from tidings.provider.base import SendResult
from tidings.runtime import Runtime
from tidings.worker.context import WorkerContext


def test_a_delivered_event_before_the_sent_commit_wins_and_keeps_the_message_id(
    runtime: Runtime, keys: Keys, httpserver: HTTPServer
) -> None:
    with TestClient(create_app(runtime)) as client:
        configure(
            client,
            keys.test,
            "sendgrid",
            {"api_key": "SG.k", "from_email": "n@tidings.test", "base_url": httpserver.url_for("")},
        )
        prepare(client, keys.test, {"email": "a@example.org"})
        message_id = send(client, keys.test)
        context = WorkerContext(
            runtime.database, runtime.settings, runtime.config_cipher, runtime.http
        )
        # Routing starts the first provider attempt in its own transaction.
        (attempt,) = pipeline.process_message(context, message_id)
        assert attempt is not None
        assert message(client, keys.test, message_id)["providers"][0]["status"] == "SENDING"

        # SendGrid accepted the mail and reports delivery before the pipeline records SENT.
        delivered = {
            "email": "a@example.org",
            "timestamp": 1700000000,
            "event": "delivered",
            "response": "250 OK",
            "sg_message_id": "sg-race.filterdrecv-1.0",
            "tidings_message_id": message_id,
        }
        response = client.post("/callbacks/sendgrid", json=[delivered])
        assert response.json() == counts(received=1, applied=1)

        outcome = pipeline._finish_attempt(
            context,
            attempt,
            SendResult(provider_message_id="sg-race", response_excerpt="HTTP 202"),
            None,
        )
        assert outcome == "delivered"
        view = message(client, keys.test, message_id)
        assert view["status"] == "DELIVERED"
        assert view["sent"] is not None
        assert view["delivered"] is not None
        assert view["providers"][0]["status"] == "DELIVERED"
        assert view["providers"][0]["reference"]["provider_message_id"] == "sg-race"
        # The callback's DELIVERED stands; the provider's answer is still recorded as SENT.
        assert [e["type"] for e in history(client, keys.test, message_id)][-3:] == [
            "ROUTED",
            "DELIVERED",
            "SENT",
        ]
