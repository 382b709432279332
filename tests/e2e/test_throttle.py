"""The throttle step against a live `tidings serve`: a daily reminder through Segment events
with real emails, and a worker killed during the send after the throttle let the run pass."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import select

from tests import processes
from tests.conftest import Serve, Worker, wait_for
from tests.e2e.test_automations import Call, _client, _run
from tests.smtp_sink import SmtpSink
from tidings.config import Settings
from tidings.models import ThrottleWindow
from tidings.runtime import Runtime

DAILY_REMINDER = {
    "name": "Daily reminder",
    "triggers": [{"source": "segment", "event": "track/Reminder Due"}],
    "steps": [
        {"action": "throttle", "max_allowed": 1, "period": "1 day", "scope": "user"},
        {"action": "send", "content": {"title": "Reminder: {{ data.task }}", "body": "."}},
    ],
}


def _reminder(message_id: str, task: str) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Reminder Due",
        "userId": "u1",
        "messageId": message_id,
        "properties": {"task": task},
    }


def _setup(call: Call, smtp_sink: SmtpSink) -> None:
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call("POST", "/profiles/u1", {"profile": {"email": "u1@example.org"}})
    call("PUT", "/automations/daily-reminder", DAILY_REMINDER)


def _ended(call: Call, count: int) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = call("GET", "/automations/runs").json()["runs"]
        ended = [run for run in found if run["status"] in ("PROCESSED", "THROTTLED")]
        return ended if len(ended) == count else None

    return wait_for(check, what=f"{count} ended runs")


def _windows(runtime: Runtime) -> list[tuple[str, int]]:
    with runtime.database.read() as session:
        return [(row.key, row.count) for row in session.scalars(select(ThrottleWindow))]


def test_a_daily_reminder_three_events_in_the_window_give_one_email(
    serve: Serve, settings: Settings, smtp_sink: SmtpSink
) -> None:
    server = serve()
    call = _client(settings, server)
    _setup(call, smtp_sink)
    for number, task in enumerate(("water the plants", "pay rent", "call home"), start=1):
        call("POST", "/inbound/segment", _reminder(f"reminder-{number}", task))
        # One at a time, so which one passes is known: the first.
        _ended(call, number)
    wait_for(lambda: smtp_sink.messages, what="the reminder email")
    throttled = call("GET", "/automations/runs?status=THROTTLED").json()["runs"]
    assert len(throttled) == 2
    for run in throttled:
        assert run["recipient"] == "u1"
        assert run["error"].startswith(
            "throttled: 1 run already passed this throttle for recipient 'u1' in the window from "
        )
    (passed,) = call("GET", "/automations/runs?status=PROCESSED").json()["runs"]
    assert passed["event"] == "reminder-1"
    # The throttled runs made no message: exactly one email, the first event's.
    assert len(call("GET", "/messages").json()["results"]) == 1
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["To"] == "u1@example.org"
    assert smtp_sink.messages[0]["Subject"] == "Reminder: water the plants"
    detail = _run(call, throttled[0]["run_id"], "THROTTLED")
    assert [step["action"] for step in detail["steps"]] == ["throttle"]


def test_a_worker_killed_during_the_send_neither_loses_nor_repeats_the_throttle(
    serve: Serve, worker: Worker, settings: Settings, runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    # The first SMTP conversation hangs, so the worker is killed inside the run's send.
    smtp_sink.handler.ehlo_holds.append(threading.Event())
    server = serve(TIDINGS_CONSUMER_WORKERS="0")
    first = worker("worker-1.log", TIDINGS_SENDING_STALE_SECONDS="1")
    call = _client(settings, server)
    _setup(call, smtp_sink)
    call("POST", "/inbound/segment", _reminder("reminder-1", "water the plants"))
    wait_for(smtp_sink.handler.ehlo_started.is_set, what="the worker to start the SMTP send")
    processes.kill(first)
    assert smtp_sink.messages == []
    time.sleep(1.2)  # past TIDINGS_SENDING_STALE_SECONDS since the killed worker's last write
    worker("worker-2.log", TIDINGS_SENDING_STALE_SECONDS="1")
    wait_for(lambda: smtp_sink.messages, what="the re-driven send")
    # The run passed the throttle once: counted once, and the one email was sent once.
    (run,) = _ended(call, 1)
    assert run["status"] == "PROCESSED"
    assert _windows(runtime) == [("daily-reminder/user/u1", 1)]

    # The count held across the crash and the new process: the next reminder is throttled.
    call("POST", "/inbound/segment", _reminder("reminder-2", "pay rent"))
    ended = _ended(call, 2)
    assert sorted(run["status"] for run in ended) == ["PROCESSED", "THROTTLED"]
    assert _windows(runtime) == [("daily-reminder/user/u1", 2)]
    assert len(call("GET", "/messages").json()["results"]) == 1
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["Subject"] == "Reminder: water the plants"
