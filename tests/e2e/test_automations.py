"""Automations against a live `tidings serve`: the welcome flow, delays across restarts, and a
worker killed during a run's send."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from tests import processes
from tests.conftest import LiveServer, Serve, Worker, cli_keys, wait_for
from tests.payloads import SEGMENT_HEADERS, identify
from tests.processes import HTTP_TIMEOUT
from tests.smtp_sink import SmtpSink
from tidings.config import Settings
from tidings.kit.time import parse_timestamp
from tidings.models import AutomationRun
from tidings.models.automation import RunStatus
from tidings.runtime import Runtime

Call = Callable[..., httpx.Response]


def _client(settings: Settings, server: LiveServer) -> Call:
    key = next(k["key"] for k in cli_keys(settings) if k["environment"] == "test")
    headers = {**SEGMENT_HEADERS, "Authorization": f"Bearer {key}"}

    def call(method: str, path: str, body: Any = None) -> httpx.Response:
        response = httpx.request(
            method, f"{server.url}{path}", json=body, headers=headers, timeout=HTTP_TIMEOUT
        )
        assert response.status_code < 300, response.text
        return response

    return call


def _run(call: Call, run_id: str, *statuses: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = call("GET", f"/automations/runs/{run_id}").json()
        return body if body["status"] in statuses else None

    return wait_for(check, what=f"run {run_id} in {statuses}")


def test_welcome_flow_an_identify_for_a_new_user_sends_one_welcome_email(
    serve: Serve, settings: Settings, smtp_sink: SmtpSink
) -> None:
    server = serve()
    call = _client(settings, server)
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call(
        "PUT",
        "/notifications/welcome",
        {
            "content": {
                "email": {
                    "subject": "Welcome to Acme, {{ profile.name }}!",
                    "text": "Hi {{ profile.name }}, your plan is {{ data.plan }}.",
                }
            }
        },
    )
    call(
        "PUT",
        "/automations/welcome",
        {
            "name": "Welcome new users",
            "triggers": [{"source": "segment", "event": "identify"}],
            "steps": [
                {"action": "send", "if": "!profile.welcomed", "template": "welcome"},
                {
                    "action": "update-profile",
                    "profile": {"welcomed": True},
                    "merge": "overwrite",
                },
            ],
        },
    )
    event = identify(
        messageId="welcome-1",
        userId="new-user",
        traits={"email": "new.user@example.org", "name": "Noor", "plan": "starter"},
    )
    call("POST", "/inbound/segment", event)
    wait_for(lambda: smtp_sink.messages, what="the welcome email")
    (email,) = smtp_sink.messages
    assert email["To"] == "new.user@example.org"
    assert email["Subject"] == "Welcome to Acme, Noor!"
    body = email.get_body(("plain",))
    assert body is not None
    assert "Hi Noor, your plan is starter." in body.get_content()

    (run,) = call("GET", "/automations/runs", None).json()["runs"]
    run = _run(call, run["run_id"], "PROCESSED")
    run = call("GET", "/automations/runs").json()["runs"][0]
    record = call("GET", "/integrations/segment/events/welcome-1").json()
    assert [started["template_id"] for started in record["automation_runs"]] == ["welcome"]

    # The same user identifies again: not new any more, so no second welcome.
    call("POST", "/inbound/segment", identify(messageId="welcome-2", userId="new-user"))
    newer = wait_for(
        lambda: [r for r in call("GET", "/automations/runs").json()["runs"] if r != run],
        what="the second run",
    )
    second = _run(call, newer[0]["run_id"], "PROCESSED")
    assert [step["status"] for step in second["steps"]] == ["SKIPPED", "PROCESSED"]
    assert len(smtp_sink.messages) == 1


def _start_delayed_run(call: Call, smtp_sink: SmtpSink, seconds: float) -> dict[str, Any]:
    """A run waiting out a delay. The test sees it WAITING only if it polls within the delay:
    the delay scales with the machine (TIDINGS_TEST_TIMEOUT_SCALE)."""
    seconds = round(processes.scaled(seconds))
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call(
        "PUT",
        "/automations/later",
        {
            "steps": [
                {"action": "delay", "duration": f"{seconds} seconds"},
                {"action": "send", "content": {"title": "Later, {{ data.name }}", "body": "."}},
            ]
        },
    )
    run_id = call(
        "POST",
        "/automations/later/invoke",
        {"recipient": "u1", "profile": {"email": "u1@example.org"}, "data": {"name": "Ida"}},
    ).json()["runId"]
    return _run(call, run_id, "WAITING")


def test_a_delay_survives_a_restart_and_resumes_on_time(
    serve: Serve, settings: Settings, smtp_sink: SmtpSink
) -> None:
    server = serve()
    call = _client(settings, server)
    run = _start_delayed_run(call, smtp_sink, seconds=5)
    wake_at = parse_timestamp(run["wake_at"])
    assert wake_at is not None
    server.kill()
    server.start()
    call = _client(settings, server)
    _run(call, run["run_id"], "PROCESSED")
    wait_for(lambda: smtp_sink.messages, what="the delayed email")
    arrived = time.time()
    assert arrived >= wake_at.timestamp()
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["Subject"] == "Later, Ida"


def _taken_up(runtime: Runtime, run_id: str) -> bool:
    """Whether something re-drove the run: a sweep claimed it, or its job moved it on."""
    with runtime.database.read() as session:
        run = session.scalars(select(AutomationRun).where(AutomationRun.run_id == run_id)).one()
        return run.swept_at is not None or run.status != RunStatus.WAITING


def test_a_wake_up_missed_while_down_runs_at_once_on_start(
    serve: Serve, settings: Settings, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    server = serve()
    call = _client(settings, server)
    run = _start_delayed_run(call, smtp_sink, seconds=4)
    server.kill()
    wake_at = parse_timestamp(run["wake_at"])
    assert wake_at is not None
    while time.time() <= wake_at.timestamp():
        time.sleep(0.1)
    assert smtp_sink.messages == []
    assert not _taken_up(runtime, run["run_id"])
    server.start()
    # Before it answers, the server's start re-drives what is due (or the run's own job,
    # overdue, has moved it on): not the periodic sweep, a minute later.
    assert _taken_up(runtime, run["run_id"])
    call = _client(settings, server)
    _run(call, run["run_id"], "PROCESSED")
    wait_for(lambda: smtp_sink.messages, what="the overdue email")
    assert len(smtp_sink.messages) == 1


def test_a_worker_killed_during_a_runs_send_still_gives_exactly_one_email(
    serve: Serve, worker: Worker, settings: Settings, smtp_sink: SmtpSink
) -> None:
    # The first SMTP conversation hangs, so the worker is killed inside the run's send.
    smtp_sink.handler.ehlo_holds.append(threading.Event())
    server = serve(TIDINGS_CONSUMER_WORKERS="0")
    first = worker("worker-1.log", TIDINGS_SENDING_STALE_SECONDS="1")
    call = _client(settings, server)
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call(
        "PUT",
        "/automations/receipt",
        {
            "triggers": [{"source": "segment", "event": "track/Order Completed"}],
            "steps": [
                {
                    "action": "send",
                    "content": {"title": "Receipt {{ data.order }}", "body": "."},
                }
            ],
        },
    )
    call("POST", "/profiles/u1", {"profile": {"email": "u1@example.org"}})
    call(
        "POST",
        "/inbound/segment",
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u1",
            "messageId": "order-1",
            "properties": {"order": 42},
        },
    )
    wait_for(smtp_sink.handler.ehlo_started.is_set, what="the worker to start the SMTP send")
    processes.kill(first)
    assert smtp_sink.messages == []
    time.sleep(1.2)  # past TIDINGS_SENDING_STALE_SECONDS since the killed worker's last write
    worker("worker-2.log", TIDINGS_SENDING_STALE_SECONDS="1")
    (run,) = call("GET", "/automations/runs").json()["runs"]
    detail = _run(call, run["run_id"], "PROCESSED")
    message_id = detail["steps"][0]["output"]["messageId"]

    def sent() -> dict[str, Any] | None:
        body: dict[str, Any] = call("GET", f"/messages/{message_id}").json()
        return body if body["status"] == "SENT" else None

    wait_for(sent, what="the re-driven send")
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["Subject"] == "Receipt 42"
    messages = call("GET", "/messages").json()["results"]
    assert [m["id"] for m in messages] == [message_id]
