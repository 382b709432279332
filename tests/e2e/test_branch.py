"""The branch step against a live `tidings serve`: a plan-based branch through Segment events
with real emails, and a worker killed in the middle of a step inside an arm."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests import processes
from tests.conftest import Serve, Worker, wait_for
from tests.e2e.test_automations import Call, _client, _run
from tests.smtp_sink import SmtpSink
from tidings.config import Settings

PLAN_WELCOME = {
    "name": "Welcome by plan",
    "triggers": [{"source": "segment", "event": "track/Signed In"}],
    "steps": [
        {
            "action": "branch",
            "ref": "plan",
            "branches": [
                {"if": 'profile.plan == "pro"', "steps": [{"action": "send", "template": "pro"}]}
            ],
            "else": [{"action": "send", "template": "upgrade"}],
        },
        {"action": "update-profile", "profile": {"welcomed": True}},
    ],
}


def _setup(call: Call, smtp_sink: SmtpSink) -> None:
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call(
        "PUT",
        "/notifications/pro",
        {"content": {"email": {"subject": "Pro tips for {{ profile.name }}", "text": "."}}},
    )
    call(
        "PUT",
        "/notifications/upgrade",
        {"content": {"email": {"subject": "Go Pro, {{ profile.name }}", "text": "."}}},
    )


def _identify(call: Call, message_id: str, user_id: str, traits: dict[str, Any]) -> None:
    event = {"type": "identify", "messageId": message_id, "userId": user_id, "traits": traits}
    call("POST", "/inbound/segment", event)


def _signed_in(call: Call, message_id: str, user_id: str) -> dict[str, Any]:
    event = {"type": "track", "event": "Signed In", "messageId": message_id, "userId": user_id}
    call("POST", "/inbound/segment", event)

    def started() -> dict[str, Any] | None:
        body: dict[str, Any] = call("GET", f"/integrations/segment/events/{message_id}").json()
        return body if body.get("automation_runs") else None

    (run,) = wait_for(started, what=f"the run of {message_id}")["automation_runs"]
    return _run(call, run["run_id"], "PROCESSED", "ERROR")


def _emails(smtp_sink: SmtpSink, count: int) -> list[tuple[str, str]]:
    wait_for(lambda: len(smtp_sink.messages) >= count, what=f"{count} emails")
    return [(email["To"], email["Subject"]) for email in smtp_sink.messages]


def test_a_plan_based_branch_emails_pro_users_one_thing_and_the_others_another(
    serve: Serve, settings: Settings, smtp_sink: SmtpSink
) -> None:
    server = serve()
    call = _client(settings, server)
    _setup(call, smtp_sink)
    call("PUT", "/automations/welcome-by-plan", PLAN_WELCOME)
    _identify(call, "id-1", "ada", {"email": "ada@example.org", "name": "Ada", "plan": "pro"})
    _identify(call, "id-2", "bo", {"email": "bo@example.org", "name": "Bo", "plan": "free"})

    ada = _signed_in(call, "in-1", "ada")
    assert ada["status"] == "PROCESSED"
    assert [(s["action"], s["position"]) for s in ada["steps"]] == [
        ("branch", 0),
        ("send", 1),
        ("update-profile", 3),
    ]
    assert ada["steps"][0]["output"] == {"branch": 0, "if": 'profile.plan == "pro"'}
    assert _emails(smtp_sink, 1) == [("ada@example.org", "Pro tips for Ada")]

    bo = _signed_in(call, "in-2", "bo")
    assert [(s["action"], s["position"]) for s in bo["steps"]] == [
        ("branch", 0),
        ("send", 2),
        ("update-profile", 3),
    ]
    assert bo["steps"][0]["output"] == {"branch": "else"}
    assert _emails(smtp_sink, 2)[1] == ("bo@example.org", "Go Pro, Bo")

    # Bo upgrades: the identify updates the profile, and the next run takes the pro arm.
    _identify(call, "id-3", "bo", {"plan": "pro"})
    again = _signed_in(call, "in-3", "bo")
    assert again["steps"][0]["output"]["branch"] == 0
    assert _emails(smtp_sink, 3)[2] == ("bo@example.org", "Pro tips for Bo")
    assert len(smtp_sink.messages) == 3
    assert call("GET", "/profiles/bo").json()["profile"]["welcomed"] is True


class _Held:
    """A data server whose first request hangs (until the test ends), so a worker can be
    killed in the middle of a fetch-data step; it records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def held_server() -> Iterator[tuple[str, _Held]]:
    held = _Held()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            held.requests.append(
                {"key": self.headers.get("Idempotency-Key"), "body": json.loads(body or b"{}")}
            )
            if len(held.requests) == 1:
                held.first_started.set()
                held.release.wait()
            answer = json.dumps({"coupon": "PRO-10"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/coupons", held
    finally:
        held.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


# A short lease, so the run the killed worker held is re-driven within the test.
LEASE = {"TIDINGS_WORKER_LEASE_SECONDS": "3"}


def test_a_worker_killed_mid_step_inside_an_arm_resumes_it_with_exactly_once_effects(
    serve: Serve,
    worker: Worker,
    settings: Settings,
    smtp_sink: SmtpSink,
    held_server: tuple[str, _Held],
) -> None:
    url, held = held_server
    server = serve(TIDINGS_CONSUMER_WORKERS="0")
    first = worker("worker-1.log", **LEASE)
    call = _client(settings, server)
    _setup(call, smtp_sink)
    call(
        "PUT",
        "/notifications/pro",
        {"content": {"email": {"subject": "Your coupon {{ data.coupon }}", "text": "."}}},
    )
    fetch = {
        "action": "fetch-data",
        "webhook": {"url": url, "method": "POST", "body": {"user": "{{ recipient }}"}},
        "idempotency_key": "coupon-{{ recipient }}",
    }
    definition = {
        **PLAN_WELCOME,
        "steps": [
            {
                "action": "branch",
                "branches": [
                    {
                        "if": 'profile.plan == "pro"',
                        "steps": [
                            {"action": "update-profile", "profile": {"coupon_asked": True}},
                            fetch,
                            {"action": "send", "template": "pro"},
                        ],
                    }
                ],
                "else": [{"action": "send", "template": "upgrade"}],
            }
        ],
    }
    call("PUT", "/automations/welcome-by-plan", definition)
    _identify(call, "id-1", "ada", {"email": "ada@example.org", "name": "Ada", "plan": "pro"})
    event = {"type": "track", "event": "Signed In", "messageId": "in-1", "userId": "ada"}
    call("POST", "/inbound/segment", event)

    # The worker is killed while the fetch-data step inside the pro arm waits for its answer.
    wait_for(held.first_started.is_set, what="the worker to make the fetch-data request")
    processes.kill(first)
    (run,) = call("GET", "/automations/runs").json()["runs"]
    assert (run["status"], run["step_index"]) == ("PROCESSING", 2)
    assert smtp_sink.messages == []

    worker("worker-2.log", **LEASE)
    done = _run(call, run["run_id"], "PROCESSED", "ERROR")
    assert done["status"] == "PROCESSED"
    assert [(s["action"], s["position"], s["status"]) for s in done["steps"]] == [
        ("branch", 0, "PROCESSED"),
        ("update-profile", 1, "PROCESSED"),
        ("fetch-data", 2, "PROCESSED"),
        ("send", 3, "PROCESSED"),
    ]
    assert done["context"]["data"]["coupon"] == "PRO-10"
    # The request was repeated once, with the same key; the email was sent once.
    assert held.requests == [{"key": "coupon-ada", "body": {"user": "ada"}}] * 2
    assert _emails(smtp_sink, 1) == [("ada@example.org", "Your coupon PRO-10")]
    assert len(call("GET", "/messages").json()["results"]) == 1
