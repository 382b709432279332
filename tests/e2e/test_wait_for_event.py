"""The abandoned cart against a live `tidings serve`, through Segment events to the SMTP sink:
the reminder is not sent when the cart's order completes, and is sent after the timeout when
only another cart's order does; a worker killed while a run waits neither loses the wait nor
resolves it twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests import processes
from tests.conftest import LiveServer, Serve, Worker, cli_keys, wait_for
from tests.payloads import SEGMENT_HEADERS
from tests.processes import HTTP_TIMEOUT
from tests.smtp_sink import SmtpSink
from tidings.config import Settings

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


def _cart_reminder(timeout: str, *, on_match: str = "continue") -> dict[str, Any]:
    return {
        "triggers": [{"source": "segment", "event": "track/Checkout Started"}],
        "steps": [
            {
                "action": "wait-for-event",
                "event": "track/Order Completed",
                "match": {"cart_id": "{{ data.cart_id }}"},
                "timeout": timeout,
                "on_match": on_match,
                "ref": "order",
            },
            {
                "action": "send",
                "if": "!refs.order.matched",
                "content": {"title": "Your cart {{ data.cart_id }} is waiting", "body": "."},
            },
        ],
    }


def _track(call: Call, message_id: str, event: str, cart: str) -> dict[str, Any]:
    """Send a track of u1 through the Segment destination, and wait until it is processed."""
    call(
        "POST",
        "/inbound/segment",
        {
            "type": "track",
            "event": event,
            "userId": "u1",
            "messageId": message_id,
            "properties": {"cart_id": cart},
        },
    )

    def processed() -> dict[str, Any] | None:
        body: dict[str, Any] = call("GET", f"/integrations/segment/events/{message_id}").json()
        return body if body["status"] == "processed" else None

    return wait_for(processed, what=f"event {message_id} processed")


def _run(call: Call, run_id: str, *statuses: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = call("GET", f"/automations/runs/{run_id}").json()
        return body if body["status"] in statuses else None

    return wait_for(check, what=f"run {run_id} in {statuses}")


def _waiting_run(call: Call, message_id: str, cart: str) -> str:
    (run,) = _track(call, message_id, "Checkout Started", cart)["automation_runs"]
    run_id: str = run["run_id"]
    _run(call, run_id, "WAITING_FOR_EVENT")
    return run_id


def _setup(call: Call, smtp_sink: SmtpSink) -> None:
    call("PUT", "/providers/smtp", {"config": smtp_sink.provider_config()})
    call("POST", "/profiles/u1", {"profile": {"email": "u1@example.org"}})


def test_the_cart_reminder_is_sent_only_when_its_own_order_does_not_complete(
    serve: Serve, settings: Settings, smtp_sink: SmtpSink
) -> None:
    server = serve()
    call = _client(settings, server)
    _setup(call, smtp_sink)

    # Cart A's order completes within the hour: no reminder.
    call("PUT", "/automations/cart", _cart_reminder("1 hour"))
    cart_a = _waiting_run(call, "start-a", "A")
    waiting = call("GET", "/automations/runs?status=WAITING_FOR_EVENT").json()["runs"]
    assert [run["run_id"] for run in waiting] == [cart_a]
    record = _track(call, "order-a", "Order Completed", "A")
    assert f"ended the wait-for-event step of run {cart_a} (cart)" in record["effects"]
    run = _run(call, cart_a, "PROCESSED")
    assert [step["status"] for step in run["steps"]] == ["PROCESSED", "SKIPPED"]
    assert run["steps"][0]["output"]["event"] == {"cart_id": "A"}

    # Cart B waits a few seconds (runs keep the version they started with); only cart C's
    # order completes, which is not B's: the reminder goes out after the timeout.
    seconds = round(processes.scaled(5))
    call("PUT", "/automations/cart", _cart_reminder(f"{seconds} seconds"))
    cart_b = _waiting_run(call, "start-b", "B")
    record = _track(call, "order-c", "Order Completed", "C")
    assert not any("wait-for-event" in effect for effect in record["effects"])
    assert call("GET", f"/automations/runs/{cart_b}").json()["status"] == "WAITING_FOR_EVENT"
    run = _run(call, cart_b, "PROCESSED")
    assert run["steps"][0]["output"] == {"matched": False, "timed_out": True}
    wait_for(lambda: smtp_sink.messages, what="the reminder for cart B")
    assert [message["Subject"] for message in smtp_sink.messages] == ["Your cart B is waiting"]
    assert smtp_sink.messages[0]["To"] == "u1@example.org"


def test_a_worker_killed_while_a_run_waits_resolves_the_wait_once_after_restart(
    serve: Serve, worker: Worker, settings: Settings, smtp_sink: SmtpSink
) -> None:
    server = serve(TIDINGS_CONSUMER_WORKERS="0")
    first = worker("worker-1.log")
    call = _client(settings, server)
    _setup(call, smtp_sink)
    thanks = {
        "action": "send",
        "if": "refs.order.matched",
        "data": {"paid": {"$ref": "refs.order.event.cart_id"}},
        "content": {"title": "Thanks for cart {{ data.paid }}", "body": "."},
    }
    definition = _cart_reminder("1 hour")
    definition["steps"].append(thanks)
    call("PUT", "/automations/cart", definition)
    cart_a = _waiting_run(call, "start-a", "A")

    # The worker dies; the order arrives while no worker runs, and is acknowledged.
    processes.kill(first)
    call(
        "POST",
        "/inbound/segment",
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u1",
            "messageId": "order-a",
            "properties": {"cart_id": "A"},
        },
    )
    assert call("GET", f"/automations/runs/{cart_a}").json()["status"] == "WAITING_FOR_EVENT"
    worker("worker-2.log")
    run = _run(call, cart_a, "PROCESSED")
    assert [step["status"] for step in run["steps"]] == ["PROCESSED", "SKIPPED", "PROCESSED"]
    wait_for(lambda: smtp_sink.messages, what="the thanks email", details=server.log)
    record = call("GET", "/integrations/segment/events/order-a").json()
    assert record["attempts"] == 1
    assert [message["Subject"] for message in smtp_sink.messages] == ["Thanks for cart A"]
    messages = call("GET", "/messages").json()["results"]
    assert len(messages) == 1
