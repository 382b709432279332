"""Automation runs in-process: Segment events start runs, and each step type does its job."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import Keys, bearer, wait_for
from tests.outbox import recording
from tests.payloads import identify, track
from tests.smtp_sink import SmtpSink
from tidings.automation import runs
from tidings.automation.steps.values import merge
from tidings.models import AutomationRun, AutomationRunStep, Message
from tidings.runtime import Runtime
from tidings.workspace.service import resolve_keys


def put(client: TestClient, key: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.put(path, json=body, headers=bearer(key))
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def setup_email(client: TestClient, key: str, sink: SmtpSink) -> None:
    put(client, key, "/providers/smtp", {"config": sink.provider_config()})
    put(
        client,
        key,
        "/notifications/shipped",
        {
            "content": {
                "email": {
                    "subject": "Order {{ data.order_id }} shipped, {{ profile.name }}",
                    "text": "Carrier: {{ data.carrier }}",
                }
            }
        },
    )


def setup_order_shipped(client: TestClient, key: str, sink: SmtpSink) -> None:
    """The email setup, and an automation that sends it for each `track/Order Shipped`."""
    setup_email(client, key, sink)
    put(
        client,
        key,
        "/automations/order-shipped",
        {
            "triggers": [{"source": "segment", "event": "track/Order Shipped"}],
            "steps": [{"action": "send", "template": "shipped"}],
        },
    )


def segment(client: TestClient, key: str, event: dict[str, Any]) -> None:
    response = client.post("/inbound/segment", json=event, headers=bearer(key))
    assert response.status_code in (200, 202), response.text


def runs_of(client: TestClient, key: str, **params: str) -> list[dict[str, Any]]:
    response = client.get("/automations/runs", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["runs"]
    return results


def run_in(client: TestClient, key: str, run_id: str, *statuses: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/automations/runs/{run_id}", headers=bearer(key)).json()
        return body if body["status"] in statuses else None

    return wait_for(check, what=f"run {run_id} in {statuses}")


def invoke(client: TestClient, key: str, path: str, body: dict[str, Any]) -> str:
    response = client.post(path, json=body, headers=bearer(key))
    assert response.status_code == 202, response.text
    run_id: str = response.json()["runId"]
    return run_id


def test_a_track_mapped_to_an_automation_emails_its_properties(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_order_shipped(client, keys.test, smtp_sink)
    segment(
        client,
        keys.test,
        identify(userId="u1", traits={"email": "ada@example.org", "name": "Ada"}),
    )
    segment(
        client,
        keys.test,
        track(
            messageId="m-shipped",
            userId="u1",
            event="Order Shipped",
            properties={"order_id": "A-7", "carrier": "Posti"},
        ),
    )
    wait_for(lambda: smtp_sink.messages, what="the email")
    (email,) = smtp_sink.messages
    assert email["To"] == "ada@example.org"
    assert email["Subject"] == "Order A-7 shipped, Ada"
    body = email.get_body(("plain",))
    assert body is not None
    assert "Carrier: Posti" in body.get_content()

    (run,) = runs_of(client, keys.test, template_id="order-shipped")
    detail = run_in(client, keys.test, run["run_id"], "PROCESSED")
    assert detail["source"] == ["segment/track/Order Shipped"]
    assert detail["event"] == "m-shipped"
    assert detail["recipient"] == "u1"
    assert detail["context"]["data"] == {"order_id": "A-7", "carrier": "Posti"}
    (step,) = detail["steps"]
    assert step["action"] == "send"
    assert step["status"] == "PROCESSED"
    message = client.get(f"/messages/{step['output']['messageId']}", headers=bearer(keys.test))
    assert message.json()["recipient"] == "u1"

    event = client.get("/integrations/segment/events/m-shipped", headers=bearer(keys.test)).json()
    assert event["unmapped"] is False
    assert [started["run_id"] for started in event["automation_runs"]] == [run["run_id"]]


def test_an_event_with_no_automation_is_marked_unmapped(client: TestClient, keys: Keys) -> None:
    put(
        client,
        keys.test,
        "/automations/off",
        {
            "enabled": False,
            "triggers": [{"source": "segment", "event": "track/Nobody Listens"}],
            "steps": [{"action": "send", "content": {"title": "Hi", "body": "Hello"}}],
        },
    )
    segment(client, keys.test, track(messageId="m-unmapped", event="Nobody Listens"))

    def processed() -> dict[str, Any] | None:
        event: dict[str, Any] = client.get(
            "/integrations/segment/events/m-unmapped", headers=bearer(keys.test)
        ).json()
        return event if event["status"] == "processed" else None

    event = wait_for(processed, what="the event processed")
    assert event["unmapped"] is True
    assert event["automation_runs"] == []
    assert any(line.startswith("unmapped") for line in event["effects"])
    names = client.get("/integrations/segment/event-names", headers=bearer(keys.test)).json()
    (name,) = [item for item in names["results"] if item["name"] == "track/Nobody Listens"]
    assert name["unmapped"] is True
    assert name["automations"] == []


def test_one_event_starts_every_automation_it_triggers_after_its_identify_effects(
    client: TestClient, keys: Keys
) -> None:
    for automation_id in ("first", "second"):
        put(
            client,
            keys.test,
            f"/automations/{automation_id}",
            {
                "triggers": [{"source": "segment", "event": "identify"}],
                "steps": [
                    {
                        "action": "update-profile",
                        "profile": {f"seen_by_{automation_id}": {"$ref": "profile.plan"}},
                        "merge": "overwrite",
                    }
                ],
            },
        )
    segment(client, keys.test, identify(messageId="m-both", userId="u9", traits={"plan": "pro"}))
    wait_for(
        lambda: len(runs_of(client, keys.test, recipient="u9", status="PROCESSED")) == 2,
        what="both runs processed",
    )
    profile = client.get("/profiles/u9", headers=bearer(keys.test)).json()["profile"]
    # The runs saw the plan the identify itself had just stored.
    assert profile["seen_by_first"] == "pro"
    assert profile["seen_by_second"] == "pro"
    names = client.get("/integrations/segment/event-names", headers=bearer(keys.test)).json()
    (name,) = [item for item in names["results"] if item["name"] == "identify"]
    assert name["automations"] == ["first", "second"]
    assert name["unmapped"] is False


def test_abandoned_checkout_reminder_is_canceled_by_checkout_completed(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    segment(client, keys.test, identify(userId="u2", traits={"email": "bo@example.org"}))
    put(
        client,
        keys.test,
        "/automations/abandoned-checkout",
        {
            "triggers": [{"source": "segment", "event": "track/Checkout Started"}],
            "cancelation_token": "{{ event.userId }}-checkout",
            "steps": [
                {"action": "delay", "duration": "1 hour"},
                {"action": "send", "content": {"title": "Forgot something?", "body": "Cart"}},
            ],
        },
    )
    put(
        client,
        keys.test,
        "/automations/checkout-completed",
        {
            "triggers": [{"source": "segment", "event": "track/Checkout Completed"}],
            "steps": [{"action": "cancel", "cancelation_token": "{{ recipient }}-checkout"}],
        },
    )
    segment(client, keys.test, track(userId="u2", event="Checkout Started", messageId="c1"))
    (waiting,) = wait_for(
        lambda: runs_of(client, keys.test, template_id="abandoned-checkout", status="WAITING"),
        what="the reminder run waiting",
    )
    assert waiting["cancelation_token"] == "u2-checkout"
    segment(client, keys.test, track(userId="u2", event="Checkout Completed", messageId="c2"))
    (canceler,) = wait_for(
        lambda: runs_of(client, keys.test, template_id="checkout-completed", status="PROCESSED"),
        what="the cancel run",
    )
    assert client.get(f"/automations/runs/{canceler['run_id']}", headers=bearer(keys.test)).json()[
        "steps"
    ][0]["output"]["canceled"] == [waiting["run_id"]]
    canceled = run_in(client, keys.test, waiting["run_id"], "CANCELED")
    assert [step["status"] for step in canceled["steps"]] == ["CANCELED"]
    assert smtp_sink.messages == []


def test_a_short_delay_then_the_reminder_is_sent(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {"action": "delay", "duration": "1 second"},
                    {"action": "send", "content": {"title": "Hi {{ data.who }}", "body": "x"}},
                ]
            },
            "profile": {"email": "cy@example.org"},
            "recipient": "u3",
            "data": {"who": "Cy"},
        },
    )
    run = run_in(client, keys.test, run_id, "PROCESSED")
    assert [step["status"] for step in run["steps"]] == ["PROCESSED", "PROCESSED"]
    wait_for(lambda: smtp_sink.messages, what="the reminder")
    assert smtp_sink.messages[0]["Subject"] == "Hi Cy"


def test_a_false_if_skips_its_step(client: TestClient, keys: Keys, runtime: Runtime) -> None:
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {
                        "action": "update-profile",
                        "if": "data.total >= 100",
                        "profile": {"vip": True},
                    },
                    {
                        "action": "update-profile",
                        "if": "data.total < 100",
                        "profile": {"small_spender": True},
                    },
                ]
            },
            "recipient": "u4",
            "data": {"total": 20},
        },
    )
    run = run_in(client, keys.test, run_id, "PROCESSED")
    assert [step["status"] for step in run["steps"]] == ["SKIPPED", "PROCESSED"]
    profile = client.get("/profiles/u4", headers=bearer(keys.test)).json()["profile"]
    assert profile == {"small_spender": True}
    # No step ends before it started, whether it ran or was skipped.
    with runtime.database.read() as session:
        rows = session.scalars(
            select(AutomationRunStep)
            .join(AutomationRun, AutomationRun.id == AutomationRunStep.run_pk)
            .where(AutomationRun.run_id == run_id)
        ).all()
    assert len(rows) == 2
    for row in rows:
        assert row.started_at <= row.updated_at
        assert row.finished_at is not None
        assert row.started_at <= row.finished_at


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("replace", {"plan": "pro"}),
        ("soft-merge", {"plan": "free", "name": "Ada", "tz": "UTC"}),
        ("overwrite", {"plan": "pro", "name": "Ada", "tz": "UTC"}),
        ("none", {"plan": "free", "name": "Ada"}),
    ],
)
def test_update_profile_merge_modes(
    client: TestClient, keys: Keys, mode: str, expected: dict[str, Any]
) -> None:
    client.post(
        "/profiles/u5", json={"profile": {"plan": "free", "name": "Ada"}}, headers=bearer(keys.test)
    )
    patch = {"plan": "pro"} if mode == "replace" else {"plan": "pro", "tz": "UTC"}
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {"action": "update-profile", "profile": patch, "merge": mode, "ref": "u"},
                ]
            },
            "recipient": "u5",
        },
    )
    run = run_in(client, keys.test, run_id, "PROCESSED")
    profile = client.get("/profiles/u5", headers=bearer(keys.test)).json()["profile"]
    assert profile == expected
    assert run["context"]["profile"] == expected
    assert run["context"]["refs"]["u"]["merge"] == mode


def test_merge_none_initialises_only_an_empty_document() -> None:
    assert merge("none", {}, {"a": 1}) == {"a": 1}
    assert merge("none", {"b": 2}, {"a": 1}) == {"b": 2}


@pytest.fixture
def data_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback JSON service that records each request it gets."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append(
                {
                    "path": self.path,
                    "body": json.loads(self.rfile.read(length) or b"null"),
                    "headers": dict(self.headers),
                }
            )
            if self.path.startswith("/down"):
                self.send_response(503)
                self.end_headers()
                return
            payload = json.dumps({"plan": "gold", "points": 120}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_fetch_data_merges_the_response_into_data(
    client: TestClient, keys: Keys, data_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = data_server
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {
                        "action": "fetch-data",
                        "ref": "loyalty",
                        "webhook": {
                            "url": url + "/loyalty/{{ recipient }}",
                            "method": "POST",
                            "headers": {"X-Api-Key": "k-1"},
                            "body": {"user": {"$ref": "recipient"}, "plan": "{{ data.plan }}"},
                        },
                        "merge_strategy": "overwrite",
                        "idempotency_key": "{{ recipient }}-loyalty",
                    },
                    {
                        "action": "update-profile",
                        "if": "data.points > 100 && refs.loyalty.plan == 'gold'",
                        "profile": {"tier": {"$ref": "data.plan"}},
                    },
                ]
            },
            "recipient": "u6",
            "data": {"plan": "silver", "kept": True},
        },
    )
    run = run_in(client, keys.test, run_id, "PROCESSED")
    assert run["context"]["data"] == {"plan": "gold", "points": 120, "kept": True}
    (request,) = seen
    assert request["path"] == "/loyalty/u6"
    assert request["body"] == {"user": "u6", "plan": "silver"}
    assert request["headers"]["X-Api-Key"] == "k-1"
    assert request["headers"]["Idempotency-Key"] == "u6-loyalty"
    profile = client.get("/profiles/u6", headers=bearer(keys.test)).json()["profile"]
    assert profile == {"tier": "gold"}


def test_fetch_data_against_a_failing_server_ends_in_error_after_its_retries(
    client: TestClient, keys: Keys, data_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = data_server
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {"action": "fetch-data", "webhook": {"url": url + "/down", "method": "POST"}}
                ]
            }
        },
    )
    run = run_in(client, keys.test, run_id, "ERROR")
    assert "answered 503" in run["error"]
    assert run["steps"][0]["status"] == "ERROR"
    assert len(seen) >= 2


def test_invoke_chains_to_another_automation(client: TestClient, keys: Keys) -> None:
    put(
        client,
        keys.test,
        "/automations/tag-user",
        {"steps": [{"action": "update-profile", "profile": {"tag": {"$ref": "data.tag"}}}]},
    )
    parent_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {
                        "action": "invoke",
                        "ref": "child",
                        "template": "tag-user",
                        "data": {"tag": "{{ data.segment }}-member"},
                    }
                ]
            },
            "recipient": "u7",
            "data": {"segment": "beta"},
        },
    )
    parent = run_in(client, keys.test, parent_id, "PROCESSED")
    child_id = parent["steps"][0]["output"]["runId"]
    child = run_in(client, keys.test, child_id, "PROCESSED")
    assert child["parent_run_id"] == parent_id
    assert child["template_id"] == "tag-user"
    assert child["version"] == 1
    assert child["source"] == [f"invoke/{parent_id}"]
    profile = client.get("/profiles/u7", headers=bearer(keys.test)).json()["profile"]
    assert profile == {"tag": "beta-member"}


def test_template_invoke_and_the_runs_api(client: TestClient, keys: Keys) -> None:
    put(
        client,
        keys.test,
        "/automations/slow",
        {
            "enabled": False,
            "cancelation_token": "refs.data.cart",
            "steps": [{"action": "delay", "duration": "2 days"}],
        },
    )
    run_id = invoke(
        client, keys.test, "/automations/slow/invoke", {"recipient": "u8", "data": {"cart": "c9"}}
    )
    run = run_in(client, keys.test, run_id, "WAITING")
    assert run["cancelation_token"] == "c9"
    assert run["wake_at"] is not None
    assert [r["run_id"] for r in runs_of(client, keys.test, status="waiting")] == [run_id]
    assert runs_of(client, keys.test, recipient="nobody") == []

    canceled = client.post(f"/automations/runs/{run_id}/cancel", headers=bearer(keys.test))
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "CANCELED"
    again = client.post(f"/automations/runs/{run_id}/cancel", headers=bearer(keys.test))
    assert again.status_code == 409
    assert again.json()["code"] == "run_not_active"
    missing = client.get("/automations/runs/run_nope", headers=bearer(keys.test))
    assert missing.status_code == 404
    assert missing.json()["code"] == "run_not_found"
    steps = client.get(f"/automations/runs/{run_id}/steps", headers=bearer(keys.test)).json()
    assert [step["status"] for step in steps["steps"]] == ["CANCELED"]


def test_a_run_keeps_the_version_it_started_with(client: TestClient, keys: Keys) -> None:
    definition: dict[str, Any] = {
        "steps": [
            {"action": "delay", "duration": "1 second"},
            {"action": "update-profile", "profile": {"version": "one"}},
        ]
    }
    put(client, keys.test, "/automations/versioned", definition)
    run_id = invoke(client, keys.test, "/automations/versioned/invoke", {"recipient": "u10"})
    run_in(client, keys.test, run_id, "WAITING")
    definition["steps"][1]["profile"] = {"version": "two"}
    assert put(client, keys.test, "/automations/versioned", definition)["version"] == 2
    run = run_in(client, keys.test, run_id, "PROCESSED")
    assert run["version"] == 1
    profile = client.get("/profiles/u10", headers=bearer(keys.test)).json()["profile"]
    assert profile == {"version": "one"}


def test_invalid_ad_hoc_steps_are_rejected_with_their_path(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/automations/invoke",
        json={"automation": {"steps": [{"action": "send", "template": "t"}, {"action": "wait"}]}},
        headers=bearer(keys.test),
    )
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "automation.steps[1].action"
    assert "is not a step type" in body["message"]
    reserved = client.put(
        "/automations/runs",
        json={"steps": [{"action": "send", "template": "t"}]},
        headers=bearer(keys.test),
    )
    assert reserved.status_code == 400
    assert reserved.json()["field"] == "id"
    missing = client.post(
        "/automations/invoke",
        json={"automation": {"steps": [{"action": "send", "template": "t"}]}},
        headers=bearer(keys.test),
    )
    assert missing.status_code == 400
    assert missing.json()["field"] == "automation.steps[0].template"
    assert 'there is no notification template "t"' in missing.json()["message"]


def test_a_send_step_without_a_recipient_ends_the_run_in_error(
    client: TestClient, keys: Keys
) -> None:
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {"automation": {"steps": [{"action": "send", "content": {"title": "t", "body": "b"}}]}},
    )
    run = run_in(client, keys.test, run_id, "ERROR")
    assert "no recipient" in run["error"]
    assert run["steps"][0]["status"] == "ERROR"


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the engine catches it."""


def test_a_crash_inside_a_send_step_leaves_nothing_and_the_redrive_sends_once(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.database.read() as session:
        scope = resolve_keys(session, runtime.cipher, [keys.test])[keys.test]
    with runtime.database.write() as (session, _):
        run_pk = runs.invoke_ad_hoc(
            session,
            scope,
            {
                "automation": {
                    "steps": [{"action": "send", "content": {"title": "t", "body": "b"}}]
                },
                "recipient": "u1",
                "profile": {"email": "u1@example.org"},
            },
            outbound=runtime.outbound,
        ).id
    context = runtime.jobs.context

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Killed

    # The process dies after the step made its message, before the transaction commits.
    with recording(runtime.database) as dispatched:
        with monkeypatch.context() as patch:
            patch.setattr(runs, "_finish_step", crash)
            with pytest.raises(Killed):
                runs.advance_run(context, run_pk)
        with runtime.database.read() as session:
            assert session.scalars(select(Message)).all() == []
            assert session.get(AutomationRun, run_pk).status == "PROCESSING"  # type: ignore[union-attr]
        assert dispatched.message_ids == []

        # Re-driven (by the sweeper after a restart): one message, and a second drive adds none.
        assert runs.advance_run(context, run_pk) == "PROCESSED"
        assert runs.advance_run(context, run_pk) == "PROCESSED"
    with runtime.database.read() as session:
        messages = session.scalars(select(Message)).all()
    assert [message.message_id for message in messages] == dispatched.message_ids
    assert len(messages) == 1


def _list_of_two(client: TestClient, key: str) -> None:
    assert client.put("/lists/beta", json={"name": "Beta"}, headers=bearer(key)).status_code == 204
    for user_id in ("a1", "a2"):
        client.post(
            f"/profiles/{user_id}",
            json={"profile": {"email": f"{user_id}@example.org"}},
            headers=bearer(key),
        )
        response = client.put(f"/lists/beta/subscriptions/{user_id}", headers=bearer(key))
        assert response.status_code == 204


def test_send_list_sends_to_every_subscriber_with_the_run_data(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    _list_of_two(client, keys.test)
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {"action": "send-list", "list": "beta", "template": "shipped", "ref": "sent"}
                ]
            },
            "data": {"order_id": "B-1", "carrier": "DHL"},
        },
    )
    run = run_in(client, keys.test, run_id, "PROCESSED")
    assert len(run["context"]["refs"]["sent"]["messageIds"]) == 2
    wait_for(lambda: len(smtp_sink.messages) == 2, what="two emails")
    assert sorted(email["To"] for email in smtp_sink.messages) == [
        "a1@example.org",
        "a2@example.org",
    ]
    assert {email["Subject"] for email in smtp_sink.messages} == {"Order B-1 shipped, "}


def test_send_list_data_source_fetches_each_subscribers_data(
    client: TestClient,
    keys: Keys,
    smtp_sink: SmtpSink,
    data_server: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = data_server
    setup_email(client, keys.test, smtp_sink)
    _list_of_two(client, keys.test)
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {
                        "action": "send-list",
                        "list": "beta",
                        "content": {"title": "{{ plan }} for {{ data.order_id }}", "body": "."},
                        "data_source": {
                            "webhook": {
                                "url": url + "/plans",
                                "method": "POST",
                                "body": {"user": "{{ recipient }}"},
                            },
                            "merge_strategy": "overwrite",
                        },
                    }
                ]
            },
            "data": {"order_id": "B-2", "plan": "none"},
        },
    )
    run_in(client, keys.test, run_id, "PROCESSED")
    assert sorted(request["body"]["user"] for request in seen) == ["a1", "a2"]
    wait_for(lambda: len(smtp_sink.messages) == 2, what="two emails")
    assert {email["Subject"] for email in smtp_sink.messages} == {"gold for B-2"}


def test_an_inbound_courier_event_starts_its_automation(client: TestClient, keys: Keys) -> None:
    put(
        client,
        keys.test,
        "/automations/inbound",
        {
            "triggers": [{"source": "inbound", "event": "plan-upgraded"}],
            "steps": [{"action": "update-profile", "profile": {"plan": {"$ref": "data.plan"}}}],
        },
    )
    response = client.post(
        "/inbound/courier",
        json={
            "event": "plan-upgraded",
            "messageId": "in-1",
            "type": "track",
            "properties": {"plan": "team"},
            "userId": "u11",
        },
        headers=bearer(keys.test),
    )
    assert response.status_code == 202, response.text
    (run,) = wait_for(
        lambda: runs_of(client, keys.test, template_id="inbound", status="PROCESSED"),
        what="the inbound run",
    )
    assert run["source"] == ["inbound/plan-upgraded"]
    profile = client.get("/profiles/u11", headers=bearer(keys.test)).json()["profile"]
    assert profile == {"plan": "team"}


def test_an_anonymous_visitors_track_runs_for_its_anonymous_profile(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink
) -> None:
    setup_email(client, keys.test, smtp_sink)
    put(
        client,
        keys.test,
        "/automations/guide",
        {
            "triggers": [{"source": "segment", "event": "track/Guide Requested"}],
            "steps": [{"action": "send", "content": {"title": "Your guide", "body": "."}}],
        },
    )
    segment(
        client,
        keys.test,
        {
            "type": "identify",
            "messageId": "anon-identify",
            "anonymousId": "visitor-1",
            "traits": {"email": "visitor@example.org"},
        },
    )
    wait_for(
        lambda: client.get("/profiles/visitor-1", headers=bearer(keys.test)).status_code == 200,
        what="the anonymous profile",
    )
    segment(
        client,
        keys.test,
        {
            "type": "track",
            "messageId": "anon-track",
            "anonymousId": "visitor-1",
            "event": "Guide Requested",
            "properties": {},
        },
    )
    wait_for(lambda: smtp_sink.messages, what="the guide email")
    assert smtp_sink.messages[0]["To"] == "visitor@example.org"
    (run,) = runs_of(client, keys.test, template_id="guide")
    assert run["recipient"] == "visitor-1"


# Its second step fails: its template is deleted after the automation was saved.
BROKEN: dict[str, Any] = {
    "triggers": [{"source": "segment", "event": "track/Broken"}],
    "steps": [
        {"action": "update-profile", "profile": {"seen": True}},
        {"action": "send", "template": "no-such-template"},
    ],
}


def put_broken(client: TestClient, key: str) -> None:
    """BROKEN, saved while its template existed; the template is gone since."""
    put(client, key, "/notifications/no-such-template", {"content": {"sms": {"text": "Hi"}}})
    put(client, key, "/automations/broken", BROKEN)
    deleted = client.delete("/notifications/no-such-template", headers=bearer(key))
    assert deleted.status_code == 204


def test_a_failing_step_of_an_event_run_ends_the_run_not_the_event(
    client: TestClient, keys: Keys
) -> None:
    put_broken(client, keys.test)
    segment(client, keys.test, track(messageId="m-broken", userId="u12", event="Broken"))
    (run,) = wait_for(
        lambda: runs_of(client, keys.test, template_id="broken", status="ERROR"),
        what="the run in ERROR",
    )
    detail = run_in(client, keys.test, run["run_id"], "ERROR")
    assert [step["status"] for step in detail["steps"]] == ["PROCESSED", "ERROR"]
    assert "no-such-template" in detail["error"]
    event = client.get("/integrations/segment/events/m-broken", headers=bearer(keys.test)).json()
    assert event["status"] == "processed"
    # The step before the failing one kept its effect.
    assert client.get("/profiles/u12", headers=bearer(keys.test)).json()["profile"] == {
        "seen": True
    }


def test_a_job_gives_way_to_ingest_once_then_finishes_what_its_event_started(
    client: TestClient, runtime: Runtime, keys: Keys, smtp_sink: SmtpSink
) -> None:
    """While ingest stays saturated, a job waits (`pace`) before its next event, then
    carries that event's run, its message and the send through without waiting again."""
    from tests.event.test_processing import _store_without_job

    setup_order_shipped(client, keys.test, smtp_sink)
    profile = {"profile": {"email": "ada@example.org", "name": "Ada"}}
    assert client.post("/profiles/u1", json=profile, headers=bearer(keys.test)).is_success
    ids = _store_without_job(
        runtime,
        keys.test,
        [track(messageId="paced", userId="u1", event="Order Shipped", properties={"order_id": 7})],
    )
    here = threading.get_ident()
    waits: list[int] = []

    def saturated() -> bool:
        if threading.get_ident() == here:  # this job's, not a consumer thread's
            waits.append(1)
        return True

    runtime.jobs.pace = saturated
    runtime.jobs._process_events(ids)
    assert len(waits) == 1
    wait_for(lambda: smtp_sink.messages, what="the email")
    assert smtp_sink.messages[0]["Subject"] == "Order 7 shipped, Ada"


def test_a_failing_step_in_a_group_of_events_ends_its_runs_not_the_events(
    client: TestClient, runtime: Runtime, keys: Keys
) -> None:
    from tests.event.test_processing import _store_without_job

    put_broken(client, keys.test)
    events = [track(messageId=f"g-{n}", userId=f"g{n}", event="Broken") for n in range(3)]
    ids = _store_without_job(runtime, keys.test, events)
    # The consumer's job body: one group, the runs' steps in the events' transaction.
    runtime.jobs._process_events(ids)
    for n in range(3):
        event = client.get(f"/integrations/segment/events/g-{n}", headers=bearer(keys.test))
        assert event.json()["status"] == "processed"
        (run,) = runs_of(client, keys.test, template_id="broken", recipient=f"g{n}")
        detail = run_in(client, keys.test, run["run_id"], "ERROR")
        assert [step["status"] for step in detail["steps"]] == ["PROCESSED", "ERROR"]
        assert "no-such-template" in detail["error"]
        profile = client.get(f"/profiles/g{n}", headers=bearer(keys.test)).json()["profile"]
        assert profile == {"seen": True}
