"""The wait-for-event step: its validation, matching by recipient and match values through
the index, the timeout on a controllable clock, and exactly one resolution when a crash or a
race puts the event and the timeout side by side."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import inspect, select, text

from tests.conftest import Keys, bearer, run_cli, wait_for
from tests.outbox import recording
from tests.payloads import track
from tests.smtp_sink import SmtpSink
from tidings.app import create_app
from tidings.automation import runs
from tidings.automation.steps.wait_for_event import as_text, event_key, match_key
from tidings.config import Settings
from tidings.event.service import process_event
from tidings.kit.time import utcnow
from tidings.models import AutomationRun, AutomationRunWait, Event
from tidings.runtime import Runtime
from tidings.studio.step_form import widgets

WAIT = {
    "action": "wait-for-event",
    "event": "track/Order Completed",
    "match": {"cart_id": "{{ data.cart_id }}"},
    "timeout": "1 hour",
    "ref": "order",
}
CART_REMINDER = {
    "triggers": [{"source": "segment", "event": "track/Checkout Started"}],
    "steps": [
        WAIT,
        {
            "action": "send",
            "if": "!refs.order.matched",
            "content": {"title": "Your cart {{ data.cart_id }} is waiting", "body": "Come back"},
        },
    ],
}


class Clock:
    """The engine's clock (`runs.utcnow`), moved by the test instead of sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return utcnow() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(runs, "utcnow", moved.now)
    return moved


def put(client: TestClient, key: str, automation_id: str, body: dict[str, Any]) -> None:
    response = client.put(f"/automations/{automation_id}", json=body, headers=bearer(key))
    assert response.status_code in (200, 201), response.text


def segment(client: TestClient, key: str, **event: Any) -> None:
    response = client.post("/inbound/segment", json=track(**event), headers=bearer(key))
    assert response.status_code in (200, 202), response.text


def run_of(client: TestClient, key: str, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/automations/runs/{run_id}", headers=bearer(key)).json()
    return body


def runs_in(client: TestClient, key: str, status: str) -> list[dict[str, Any]]:
    response = client.get("/automations/runs", params={"status": status}, headers=bearer(key))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["runs"]
    return found


def event_processed(client: TestClient, key: str, message_id: str) -> dict[str, Any]:
    def processed() -> dict[str, Any] | None:
        response = client.get(f"/integrations/segment/events/{message_id}", headers=bearer(key))
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] == "processed" else None

    return wait_for(processed, what=f"event {message_id} processed")


def started_waiting(client: TestClient, key: str, user: str, cart: str, message_id: str) -> str:
    segment(
        client,
        key,
        userId=user,
        event="Checkout Started",
        messageId=message_id,
        properties={"cart_id": cart},
    )
    record = event_processed(client, key, message_id)
    (run,) = record["automation_runs"]
    run_id: str = run["run_id"]
    wait_for(
        lambda: run_of(client, key, run_id)["status"] == "WAITING_FOR_EVENT",
        what="the run waiting for the order",
    )
    return run_id


def waits(runtime: Runtime) -> list[AutomationRunWait]:
    with runtime.database.read() as session:
        return list(session.scalars(select(AutomationRunWait)).all())


def email_provider(client: TestClient, key: str, sink: SmtpSink) -> None:
    response = client.put(
        "/providers/smtp", json={"config": sink.provider_config()}, headers=bearer(key)
    )
    assert response.status_code in (200, 201), response.text
    for user in ("u1", "u2"):
        client.post(
            f"/profiles/{user}",
            json={"profile": {"email": f"{user}@example.org"}},
            headers=bearer(key),
        )


# ---------------------------------------------------------------------------------------------
# Validation


INVALID = [
    ({"event": None}, "steps[0].event", "needs the event to wait for"),
    ({"event": "Order Completed"}, "steps[0].event", "is not a Segment event"),
    ({"timeout": None}, "steps[0].timeout", "needs a timeout"),
    ({"timeout": "soon"}, "steps[0].timeout", "not a duration"),
    ({"timeout": "31 days"}, "steps[0].timeout", "between 1 second and 30 days"),
    ({"timeout": "0 seconds"}, "steps[0].timeout", "between 1 second and 30 days"),
    ({"match": ["cart_id"]}, "steps[0].match", "must be an object"),
    ({"match": {"cart id": "x"}}, "steps[0].match.cart id", "is not a property path"),
    ({"match": {"cart_id": {"a": 1}}}, "steps[0].match.cart_id", "must be a string"),
    ({"match": {"cart_id": "{{ data.cart_id"}}, "steps[0].match.cart_id", "Liquid"),
    ({"match": {"cart_id": {"$ref": "nope.x"}}}, "steps[0].match.cart_id", "valid $ref"),
    ({"on_match": "halt"}, "steps[0].on_match", "is not one of continue, stop"),
    ({"on_timeout": True}, "steps[0].on_timeout", "is not one of continue, stop"),
    ({"until": "x"}, "steps[0].until", "is not a field of a wait-for-event step"),
]


@pytest.mark.parametrize(("change", "field", "reason"), INVALID)
def test_invalid_wait_for_event_steps_name_the_field(
    client: TestClient, keys: Keys, change: dict[str, Any], field: str, reason: str
) -> None:
    step = {**WAIT, **change}
    step = {key: value for key, value in step.items() if value is not None}
    response = client.put("/automations/bad", json={"steps": [step]}, headers=bearer(keys.test))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_automation"
    assert body["field"] == field
    assert reason in body["message"], body["message"]


def test_a_valid_step_is_stored_with_its_defaults(client: TestClient, keys: Keys) -> None:
    put(client, keys.test, "cart", CART_REMINDER)
    stored = client.get("/automations/cart", headers=bearer(keys.test)).json()["steps"][0]
    assert stored == {**WAIT, "on_match": "continue", "on_timeout": "continue"}


def test_tidings_apply_accepts_a_wait_for_event_step(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    file = tmp_path / "cart.yaml"
    file.write_text(
        "kind: automation\nid: cart\ntriggers:\n  - {source: segment, event: track/Checkout "
        "Started}\nsteps:\n  - action: wait-for-event\n    event: track/Order Completed\n"
        '    match: {cart_id: "{{ data.cart_id }}"}\n    timeout: 1 hour\n    on_match: stop\n'
        "  - {action: send, content: {title: Cart, body: Back}}\n"
    )
    result = run_cli(settings, "apply", str(file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["created automation cart"]
    step = client.get("/automations/cart", headers=bearer(keys.test)).json()["steps"][0]
    assert step["on_match"] == "stop"
    file.write_text(file.read_text().replace("timeout: 1 hour", "timeout: 90 days"))
    result = run_cli(settings, "apply", str(file))
    assert result.returncode != 0
    assert "steps[0].timeout" in result.stderr


def test_the_studio_form_has_a_widget_per_field() -> None:
    by_path = {widget.path: widget for widget in widgets("wait-for-event")}
    assert list(by_path) == ["event", "match", "timeout", "on_match", "on_timeout", "if", "ref"]
    assert [by_path["event"].kind, by_path["event"].required] == ["text", True]
    assert [by_path["timeout"].kind, by_path["timeout"].required] == ["text", True]
    assert by_path["match"].kind == "json"
    assert by_path["on_match"].choices == ("continue", "stop")
    assert by_path["on_timeout"].default == "continue"


def test_values_match_as_text_and_a_missing_property_matches_nothing() -> None:
    key = match_key({"cart_id": "42", "order.total": "9.5"})
    fields = "cart_id\norder.total"
    assert event_key({"cart_id": 42, "order": {"total": 9.5}}, fields) == key
    assert event_key({"cart_id": "42", "order": {"total": "9.5"}}, fields) == key
    assert event_key({"cart_id": 43, "order": {"total": 9.5}}, fields) != key
    assert event_key({"order": {"total": 9.5}}, fields) is None
    assert event_key({"anything": 1}, "") == match_key({})
    assert [as_text(True), as_text(None), as_text([1, "a"])] == ["true", None, '[1,"a"]']


# ---------------------------------------------------------------------------------------------
# Matching


def test_an_abandoned_cart_ends_on_its_own_order_not_another_carts_or_users(
    client: TestClient, keys: Keys, runtime: Runtime, smtp_sink: SmtpSink, clock: Clock
) -> None:
    email_provider(client, keys.test, smtp_sink)
    put(client, keys.test, "cart", CART_REMINDER)
    cart_a = started_waiting(client, keys.test, "u1", "A", "start-a")
    cart_b = started_waiting(client, keys.test, "u1", "B", "start-b")
    assert {run["run_id"] for run in runs_in(client, keys.test, "WAITING_FOR_EVENT")} == {
        cart_a,
        cart_b,
    }
    assert len(waits(runtime)) == 2

    # Another user's order of cart A, u1's order of another cart, and u1's other event of
    # cart A resolve nothing.
    segment(
        client,
        keys.test,
        userId="u2",
        event="Order Completed",
        messageId="o1",
        properties={"cart_id": "A"},
    )
    segment(
        client,
        keys.test,
        userId="u1",
        event="Order Completed",
        messageId="o2",
        properties={"cart_id": "C"},
    )
    segment(
        client,
        keys.test,
        userId="u1",
        event="Cart Viewed",
        messageId="o3",
        properties={"cart_id": "A"},
    )
    for message_id in ("o1", "o2", "o3"):
        record = event_processed(client, keys.test, message_id)
        assert not any("wait-for-event" in effect for effect in record["effects"])
    assert run_of(client, keys.test, cart_a)["status"] == "WAITING_FOR_EVENT"

    # u1's order of cart A (its id a number this time) ends cart A's wait, and only it.
    segment(
        client,
        keys.test,
        userId="u1",
        event="Order Completed",
        messageId="o4",
        properties={"cart_id": "A", "total": 30},
    )
    record = event_processed(client, keys.test, "o4")
    assert f"ended the wait-for-event step of run {cart_a} (cart)" in record["effects"]
    done = run_of(client, keys.test, cart_a)
    assert done["status"] == "PROCESSED"
    assert [step["status"] for step in done["steps"]] == ["PROCESSED", "SKIPPED"]
    assert done["steps"][0]["output"] == {
        "matched": True,
        "timed_out": False,
        "event": {"cart_id": "A", "total": 30},
        "message_id": "o4",
    }
    assert done["context"]["refs"]["order"]["event"]["total"] == 30
    assert run_of(client, keys.test, cart_b)["status"] == "WAITING_FOR_EVENT"
    assert [wait.match_key for wait in waits(runtime)] == [match_key({"cart_id": "B"})]

    # An hour later cart B times out, and its reminder is sent.
    clock.offset = timedelta(hours=1, seconds=1)
    runs.redrive_due_runs(runtime.jobs.context, utcnow(), utcnow(), 100)
    timed_out = wait_for(
        lambda: (body := run_of(client, keys.test, cart_b))["status"] == "PROCESSED" and body,
        what="cart B's timeout",
    )
    assert timed_out["steps"][0]["output"] == {"matched": False, "timed_out": True}
    wait_for(lambda: smtp_sink.messages, what="the reminder")
    assert [message["Subject"] for message in smtp_sink.messages] == ["Your cart B is waiting"]
    assert waits(runtime) == []


def test_before_its_timeout_the_run_keeps_waiting(
    client: TestClient, keys: Keys, runtime: Runtime, clock: Clock
) -> None:
    put(client, keys.test, "cart", CART_REMINDER)
    run_id = started_waiting(client, keys.test, "u1", "A", "start-a")
    run_pk = _pk(runtime, run_id)
    clock.offset = timedelta(minutes=59)
    assert runs.advance_run(runtime.jobs.context, run_pk) == "WAITING_FOR_EVENT"
    assert len(waits(runtime)) == 1


def test_on_match_stop_ends_the_run_and_on_timeout_stop_too(
    client: TestClient, keys: Keys, runtime: Runtime, clock: Clock
) -> None:
    body = {
        **CART_REMINDER,
        "steps": [{**WAIT, "on_match": "stop", "on_timeout": "stop"}, CART_REMINDER["steps"][1]],
    }
    put(client, keys.test, "cart", body)
    matched = started_waiting(client, keys.test, "u1", "A", "start-a")
    timing_out = started_waiting(client, keys.test, "u1", "B", "start-b")
    segment(
        client,
        keys.test,
        userId="u1",
        event="Order Completed",
        messageId="o1",
        properties={"cart_id": "A"},
    )
    event_processed(client, keys.test, "o1")
    run = run_of(client, keys.test, matched)
    assert run["status"] == "PROCESSED"
    assert [step["status"] for step in run["steps"]] == ["PROCESSED"]
    clock.offset = timedelta(hours=2)
    assert runs.advance_run(runtime.jobs.context, _pk(runtime, timing_out)) == "PROCESSED"
    run = run_of(client, keys.test, timing_out)
    assert [step["output"] for step in run["steps"]] == [{"matched": False, "timed_out": True}]


def test_a_canceled_run_leaves_no_wait(client: TestClient, keys: Keys, runtime: Runtime) -> None:
    put(client, keys.test, "cart", CART_REMINDER)
    run_id = started_waiting(client, keys.test, "u1", "A", "start-a")
    response = client.post(f"/automations/runs/{run_id}/cancel", headers=bearer(keys.test))
    assert response.status_code == 200, response.text
    assert waits(runtime) == []
    segment(
        client,
        keys.test,
        userId="u1",
        event="Order Completed",
        messageId="o1",
        properties={"cart_id": "A"},
    )
    event_processed(client, keys.test, "o1")
    assert run_of(client, keys.test, run_id)["status"] == "CANCELED"


def test_a_run_without_a_value_to_match_ends_in_error(client: TestClient, keys: Keys) -> None:
    put(client, keys.test, "cart", CART_REMINDER)
    segment(client, keys.test, userId="u1", event="Checkout Started", messageId="s1", properties={})
    (started,) = event_processed(client, keys.test, "s1")["automation_runs"]
    run = wait_for(
        lambda: (
            (body := run_of(client, keys.test, started["run_id"]))["status"] == "ERROR" and body
        ),
        what="the run in error",
    )
    assert "match.cart_id is empty" in run["error"]


def test_the_lookup_uses_the_index(runtime: Runtime) -> None:
    with runtime.database.read() as session:
        if runtime.database.engine.dialect.name == "sqlite":
            plan = session.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT run_pk FROM automation_run_wait WHERE "
                    "environment_id = 'e' AND recipient = 'u' AND source = 's' AND event = 'x'"
                )
            ).all()
            assert "ix_automation_run_wait_lookup" in " ".join(str(row) for row in plan)
        indexes = inspect(session.connection()).get_indexes("automation_run_wait")
    (lookup,) = [index for index in indexes if index["name"] == "ix_automation_run_wait_lookup"]
    assert lookup["column_names"][:4] == ["environment_id", "recipient", "source", "event"]


# ---------------------------------------------------------------------------------------------
# Exactly once: the event and the timeout, crashes


def _pk(runtime: Runtime, run_id: str) -> int:
    with runtime.database.read() as session:
        return session.scalars(select(AutomationRun.id).where(AutomationRun.run_id == run_id)).one()


def _event_pk(runtime: Runtime, message_id: str) -> int:
    with runtime.database.read() as session:
        return session.scalars(select(Event.id).where(Event.message_id == message_id)).one()


def test_an_event_after_the_timeout_changes_nothing(
    client: TestClient, keys: Keys, runtime: Runtime, clock: Clock
) -> None:
    put(client, keys.test, "cart", {**CART_REMINDER, "steps": [WAIT]})
    run_id = started_waiting(client, keys.test, "u1", "A", "start-a")
    clock.offset = timedelta(hours=1, seconds=1)
    assert runs.advance_run(runtime.jobs.context, _pk(runtime, run_id)) == "PROCESSED"
    segment(
        client,
        keys.test,
        userId="u1",
        event="Order Completed",
        messageId="o1",
        properties={"cart_id": "A"},
    )
    record = event_processed(client, keys.test, "o1")
    assert not any("wait-for-event" in effect for effect in record["effects"])
    (step,) = run_of(client, keys.test, run_id)["steps"]
    assert step["output"] == {"matched": False, "timed_out": True}


def test_a_timeout_after_the_event_changes_nothing(
    client: TestClient, keys: Keys, runtime: Runtime, clock: Clock
) -> None:
    put(
        client,
        keys.test,
        "cart",
        {**CART_REMINDER, "steps": [WAIT, {"action": "delay", "duration": "1 day"}]},
    )
    run_id = started_waiting(client, keys.test, "u1", "A", "start-a")
    segment(
        client,
        keys.test,
        userId="u1",
        event="Order Completed",
        messageId="o1",
        properties={"cart_id": "A"},
    )
    event_processed(client, keys.test, "o1")
    # The timeout's job comes when it was due: the run is in its next step by then.
    clock.offset = timedelta(hours=1, seconds=1)
    assert runs.advance_run(runtime.jobs.context, _pk(runtime, run_id)) == "WAITING"
    run = run_of(client, keys.test, run_id)
    assert run["steps"][0]["output"]["matched"] is True
    assert [step["status"] for step in run["steps"]] == ["PROCESSED", "WAITING"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the engine catches it."""


def crash(*args: Any, **kwargs: Any) -> None:
    raise Killed


def test_a_crash_while_the_event_resolves_the_wait_leaves_it_to_resolve_once(
    client: TestClient,
    keys: Keys,
    runtime: Runtime,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    email_provider(client, keys.test, smtp_sink)
    thanks = {
        "action": "send",
        "if": "refs.order.matched",
        "data": {"order": {"$ref": "refs.order.event.order"}},
        "content": {"title": "Thanks for order {{ data.order }}", "body": "."},
    }
    put(client, keys.test, "cart", {**CART_REMINDER, "steps": [WAIT, thanks]})
    run_id = started_waiting(client, keys.test, "u1", "A", "start-a")
    run_pk = _pk(runtime, run_id)
    context = runtime.jobs.context
    # The event is stored but processed by this test, not the consumer: its job is only
    # recorded.
    with recording(runtime.database):
        segment(
            client,
            keys.test,
            userId="u1",
            event="Order Completed",
            messageId="o1",
            properties={"cart_id": "A", "order": 7},
        )
        event_pk = _event_pk(runtime, "o1")
        with monkeypatch.context() as patch:
            patch.setattr(runs, "_finish_step", crash)
            with pytest.raises(Killed):
                process_event(runtime.database, event_pk, 5, context)
    with runtime.database.read() as session:
        run = session.get(AutomationRun, run_pk)
        assert run is not None
        assert run.status == "WAITING_FOR_EVENT"
        assert session.get(Event, event_pk).status == "received"  # type: ignore[union-attr]
    assert len(waits(runtime)) == 1

    # Processed again (the sweeper re-drives a received event): resolved once, one email.
    assert process_event(runtime.database, event_pk, 5, context) == "processed"
    assert process_event(runtime.database, event_pk, 5, context) == "skipped"
    wait_for(lambda: run_of(client, keys.test, run_id)["status"] == "PROCESSED", what="done")
    wait_for(lambda: smtp_sink.messages, what="the thanks email")
    assert [message["Subject"] for message in smtp_sink.messages] == ["Thanks for order 7"]
    assert waits(runtime) == []


def test_a_crash_while_the_timeout_resolves_the_wait_leaves_it_to_resolve_once(
    client: TestClient,
    keys: Keys,
    runtime: Runtime,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    put(client, keys.test, "cart", {**CART_REMINDER, "steps": [WAIT]})
    run_id = started_waiting(client, keys.test, "u1", "A", "start-a")
    run_pk = _pk(runtime, run_id)
    clock.offset = timedelta(hours=2)

    with monkeypatch.context() as patch:
        patch.setattr(runs, "_finish_step", crash)
        with pytest.raises(Killed):
            runs.advance_run(runtime.jobs.context, run_pk)
    assert run_of(client, keys.test, run_id)["status"] == "WAITING_FOR_EVENT"
    assert len(waits(runtime)) == 1
    assert runs.redrive_due_runs(runtime.jobs.context, utcnow(), utcnow(), 10) == 1
    wait_for(lambda: run_of(client, keys.test, run_id)["status"] == "PROCESSED", what="done")
    (step,) = run_of(client, keys.test, run_id)["steps"]
    assert step["output"] == {"matched": False, "timed_out": True}
    assert waits(runtime) == []


def test_one_group_reads_its_users_waits_once_and_sees_a_wait_it_made(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group of events looks its users' waits up in one query, and an event later in the
    group still resolves a wait that an earlier one started."""
    from tests.event.test_processing import _store_without_job
    from tidings.event import batching

    monkeypatch.setattr(batching, "GROUP_SECONDS", float("inf"))
    with TestClient(create_app(runtime)) as client:
        put(client, keys.test, "cart", CART_REMINDER)
    started = track(
        userId="u1", event="Checkout Started", messageId="s", properties={"cart_id": "A"}
    )
    others = [
        track(userId=f"v{n}", event="Order Completed", messageId=f"v{n}", properties={})
        for n in range(3)
    ]
    order = track(userId="u1", event="Order Completed", messageId="o", properties={"cart_id": "A"})
    ids = _store_without_job(runtime, keys.test, [started, *others, order])
    lookups: list[str] = []

    def count(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM automation_run_wait" in statement:
            lookups.append(statement)

    sqlalchemy_event.listen(runtime.database.write_engine, "before_cursor_execute", count)
    try:
        outcome = batching.process_events(runtime.database, ids, 5, runtime.jobs.context)
    finally:
        sqlalchemy_event.remove(runtime.database.write_engine, "before_cursor_execute", count)
    assert outcome.processed == ids
    # The read ahead, then only u1's order after its run began to wait (not the others').
    assert len([s for s in lookups if s.lstrip().startswith("SELECT")]) == 2
    with runtime.database.read() as session:
        (run,) = session.scalars(select(AutomationRun)).all()
        assert run.status == "PROCESSED"
    assert waits(runtime) == []
