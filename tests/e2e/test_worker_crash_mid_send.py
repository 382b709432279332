"""A worker killed in the middle of an SMTP send: after restart, exactly one email, within
seconds (its lease expires) rather than after TIDINGS_SENDING_STALE_SECONDS."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from tests import processes
from tests.conftest import Serve, Worker, cli_keys, wait_for
from tests.processes import HTTP_TIMEOUT
from tests.smtp_sink import SmtpSink
from tidings.config import Settings

# A short lease keeps the test short. The fixed-age backstop is a day: only the lease can
# re-drive the send within the test's deadline, however far that deadline is scaled.
LEASE = {"TIDINGS_WORKER_LEASE_SECONDS": "3", "TIDINGS_SENDING_STALE_SECONDS": "86400"}


def test_worker_killed_mid_send_yields_exactly_one_email(
    serve: Serve, worker: Worker, settings: Settings, smtp_sink: SmtpSink
) -> None:
    # The first SMTP conversation hangs after EHLO, so the worker is killed inside the send.
    smtp_sink.handler.ehlo_holds.append(threading.Event())
    server = serve(TIDINGS_CONSUMER_WORKERS="0")
    first = worker("worker-1.log", **LEASE)
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    headers = {"Authorization": f"Bearer {key}"}

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        response = httpx.request(
            method, f"{server.url}{path}", json=body, headers=headers, timeout=HTTP_TIMEOUT
        )
        assert response.status_code < 500, (
            f"{method} {path}: {response.status_code} {response.text}\n{server.log()}"
        )
        return response

    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call(
        "PUT",
        "/notifications/receipt",
        {"content": {"email": {"subject": "Receipt {{ order_id }}", "text": "Thanks"}}},
    )
    call("POST", "/profiles/u1", {"profile": {"email": "ada@example.org"}})
    message_id = call(
        "POST",
        "/send",
        {"message": {"to": {"user_id": "u1"}, "template": "receipt", "data": {"order_id": 9}}},
    ).json()["requestId"]

    wait_for(smtp_sink.handler.ehlo_started.is_set, what="the worker to start the SMTP send")
    processes.kill(first)
    assert call("GET", f"/messages/{message_id}").json()["status"] == "ROUTED"
    assert smtp_sink.messages == []
    # Once the killed worker's lease has expired, the new worker re-drives the send.
    worker("worker-2.log", **LEASE)

    def sent() -> dict[str, Any] | None:
        body: dict[str, Any] = call("GET", f"/messages/{message_id}").json()
        return body if body["status"] == "SENT" else None

    wait_for(sent, what="the re-driven send", details=server.log)
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["Subject"] == "Receipt 9"
    history = call("GET", f"/messages/{message_id}/history").json()["results"]
    types = [entry["type"] for entry in history]
    assert types.count("SENT") == 1
    assert "RESUMED" in types
