"""A worker killed in the middle of an SMTP send: after restart, exactly one email, within
seconds (its lease expires) rather than after TIDINGS_SENDING_STALE_SECONDS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveServer, cli_keys, server_environment, wait_for
from tests.smtp_sink import SmtpSink
from tidings.config import Settings


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings", "worker"],
            # A short lease keeps the test short; the fixed-age backstop stays at its default.
            env=server_environment(settings, TIDINGS_WORKER_LEASE_SECONDS="3"),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def test_worker_killed_mid_send_yields_exactly_one_email(
    settings: Settings, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    # The first SMTP conversation hangs after EHLO, so the worker is killed inside the send.
    smtp_sink.handler.ehlo_delays.append(60.0)
    server = LiveServer(settings, tmp_path / "serve.log", TIDINGS_CONSUMER_WORKERS="0").start()
    worker = _worker(settings, tmp_path / "worker-1.log")
    try:
        key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
        headers = {"Authorization": f"Bearer {key}"}

        def call(method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
            response = httpx.request(
                method, f"{server.url}{path}", json=body, headers=headers, timeout=10
            )
            assert response.status_code < 500, (
                f"{method} {path}: {response.status_code} {response.text}\n"
                f"{server.log_path.read_text()}"
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
        worker.kill()
        worker.wait(timeout=10)
        assert call("GET", f"/messages/{message_id}").json()["status"] == "ROUTED"
        assert smtp_sink.messages == []
        # Once the killed worker's lease has expired, the new worker re-drives the send: well
        # before the old fixed age of 120 s (the backstop is now 900 s).
        worker = _worker(settings, tmp_path / "worker-2.log")

        def sent() -> dict[str, Any] | None:
            body: dict[str, Any] = call("GET", f"/messages/{message_id}").json()
            return body if body["status"] == "SENT" else None

        wait_for(sent, timeout=30, what="the re-driven send")
        assert len(smtp_sink.messages) == 1
        assert smtp_sink.messages[0]["Subject"] == "Receipt 9"
        history = call("GET", f"/messages/{message_id}/history").json()["results"]
        types = [entry["type"] for entry in history]
        assert types.count("SENT") == 1
        assert "RESUMED" in types
    finally:
        worker.kill()
        worker.wait(timeout=10)
        server.stop()
