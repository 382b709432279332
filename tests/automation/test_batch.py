"""The batch step: validation with exact field paths, fixed and sliding windows on a
controllable clock, max_items, render, batch keys, a canceled opener, concurrent joins, a
crash inside the close that neither loses nor counts an item twice, the runs API's BATCHED
filter, `tidings apply` and the Studio form."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.automation.test_runs import Killed, invoke, put, run_in, runs_of
from tests.automation.test_steps import validate
from tests.conftest import Keys, bearer, run_cli
from tests.outbox import recording
from tidings.automation import runs
from tidings.automation.service import DefinitionError
from tidings.config import Settings
from tidings.models import AutomationBatch, AutomationBatchItem, AutomationRun, AutomationRunStep
from tidings.runtime import Runtime
from tidings.studio.routes.automations import RUN_STATUSES
from tidings.studio.step_form import widgets
from tidings.workspace.service import Scope, resolve_keys

START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


class Clock:
    """The engine's clock (`runs.utcnow`), moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def move(self, **by: float) -> None:
        self.now += timedelta(**by)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(runs, "utcnow", clock)
    return clock


FIELD_PATHS = [
    ({}, "steps[0].window", "a batch step needs a window"),
    ({"window": "10 minuts"}, "steps[0].window", '"10 minuts" is not a duration'),
    ({"window": "0 seconds"}, "steps[0].window", "between 1 second and 60 days"),
    ({"window": "61 days"}, "steps[0].window", "between 1 second and 60 days"),
    ({"window": 10}, "steps[0].window", 'must be a duration such as "10 minutes"'),
    ({"window": {"type": "rolling"}}, "steps[0].window.type", "not one of fixed, sliding"),
    ({"window": {"type": "sliding"}}, "steps[0].window.duration", "needs a duration"),
    (
        {"window": {"type": "sliding", "duration": "5 minutes"}},
        "steps[0].window.max",
        "a sliding window needs a max",
    ),
    (
        {"window": {"duration": "5 minutes", "max": "1 hour"}},
        "steps[0].window.max",
        '"max" is for a sliding window',
    ),
    (
        {"window": {"type": "sliding", "duration": "1 hour", "max": "5 minutes"}},
        "steps[0].window.max",
        "shorter than the duration",
    ),
    (
        {"window": {"type": "sliding", "duration": "5 minuts", "max": "1 hour"}},
        "steps[0].window.duration",
        "is not a duration",
    ),
    ({"window": {"duration": "5 minutes", "every": 1}}, "steps[0].window.every", "type, duration"),
    ({"window": "1 hour", "max_items": 0}, "steps[0].max_items", "from 1 to 100,000"),
    ({"window": "1 hour", "max_items": "5"}, "steps[0].max_items", 'not "5"'),
    ({"window": "1 hour", "render": "top 5"}, "steps[0].render", '"first N" or "last N"'),
    ({"window": "1 hour", "render": "last 0"}, "steps[0].render", "N from 1 to 1000"),
    ({"window": "1 hour", "batch_key": "{{ data.x"}, "steps[0].batch_key", "does not parse"),
    ({"window": "1 hour", "period": "1 day"}, "steps[0].period", "its fields are action, if"),
]


@pytest.mark.parametrize(("fields", "field", "message"), FIELD_PATHS)
def test_a_batch_steps_errors_name_the_exact_field_path(
    fields: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate({"action": "batch", **fields})
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")
    assert message in caught.value.message


def test_batch_steps_are_stored_as_given() -> None:
    for step in (
        {"action": "batch", "window": "10 seconds"},
        {"action": "batch", "window": "PT10M", "batch_key": "{{ data.page_id }}", "ref": "d"},
        {
            "action": "batch",
            "window": {"type": "sliding", "duration": "5 minutes", "max": "1 hour"},
            "max_items": 50,
            "render": "last 10",
        },
        {"action": "batch", "window": {"duration": "1 day"}, "batch_key": {"$ref": "data.x"}},
    ):
        assert validate(step)["steps"] == [step]


COURIER_FIELD_PATHS = [
    ({}, "steps[0].wait_period", "needs a wait_period"),
    ({"wait_period": "PT5X"}, "steps[0].wait_period", "is not a duration"),
    (
        {"wait_period": "PT1H", "max_wait_period": "PT5M"},
        "steps[0].max_wait_period",
        "shorter than the wait_period",
    ),
    (
        {"wait_period": "PT5M", "retain": {"type": "highest", "sort_key": "x"}},
        "steps[0].retain.type",
        "is not supported",
    ),
    ({"wait_period": "PT5M", "retain": {"count": 0}}, "steps[0].retain.count", "from 1 to"),
    ({"wait_period": "PT5M", "category_key": "x"}, "steps[0].category_key", "not supported"),
    ({"wait_period": "PT5M", "batch_id": "x"}, "steps[0].batch_id", "not supported"),
]


@pytest.mark.parametrize(("fields", "field", "message"), COURIER_FIELD_PATHS)
def test_courier_add_to_batch_errors_name_the_exact_field_path(
    fields: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate({"action": "add-to-batch", **fields})
    assert caught.value.field == field
    assert message in caught.value.message


def test_courier_add_to_batch_runs_as_a_sliding_batch_with_courier_data(
    runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    step = {
        "wait_period": "PT5M",
        "max_wait_period": "PT1H",
        "retain": {"type": "last", "count": 2},
    }
    assert validate({"action": "add-to-batch", **step})["steps"][0] == {
        "action": "add-to-batch",
        **step,
    }
    batch = Runs(runtime, keys)
    batch.steps[0] = {"action": "add-to-batch", "ref": "digest", **step}
    opener, _ = batch.reach(n=1)
    for n in (2, 3):
        clock.move(minutes=4)  # inside the wait_period of the latest run: the batch goes on
        assert batch.reach(n=n)[1] == "BATCHED"
    clock.now = START + timedelta(minutes=13)
    assert batch.advance(opener) == "PROCESSED"
    assert batch.run(opener).context["data"]["batch"] == {
        "items": [{"n": 2}, {"n": 3}],
        "total_count": 3,
        "count": 3,
    }


# The engine, on ad hoc runs advanced by hand.


class Runs:
    """Ad hoc runs of one batch step followed by update-profile (which shows the run went on
    past the batch), started and advanced by the test."""

    def __init__(self, runtime: Runtime, keys: Keys, **batch: Any) -> None:
        self.runtime = runtime
        with runtime.database.read() as session:
            self.scope: Scope = resolve_keys(session, runtime.cipher, [keys.test])[keys.test]
        self.steps = [
            {"action": "batch", "ref": "digest", **batch},
            {"action": "update-profile", "profile": {"digested": True}, "merge": "overwrite"},
        ]

    def start(self, recipient: str | None = "u1", **data: Any) -> int:
        with self.runtime.database.write() as (session, _):
            body = {"automation": {"steps": self.steps}, "recipient": recipient, "data": data}
            return runs.invoke_ad_hoc(session, self.scope, body, outbound=self.runtime.outbound).id

    def advance(self, run_pk: int) -> str:
        return runs.advance_run(self.runtime.jobs.context, run_pk)

    def reach(self, recipient: str | None = "u1", **data: Any) -> tuple[int, str]:
        """Start a run and advance it to the batch step: its pk and status after."""
        run_pk = self.start(recipient, **data)
        return run_pk, self.advance(run_pk)

    def run(self, run_pk: int) -> AutomationRun:
        with self.runtime.database.read() as session:
            run = session.get(AutomationRun, run_pk)
            assert run is not None
            session.expunge(run)
            return run

    def step_output(self, run_pk: int) -> dict[str, Any]:
        with self.runtime.database.read() as session:
            output = session.scalars(
                select(AutomationRunStep.output).where(
                    AutomationRunStep.run_pk == run_pk, AutomationRunStep.position == 0
                )
            ).one()
        assert output is not None
        return output

    def open_batches(self) -> list[tuple[str, str, int]]:
        with self.runtime.database.read() as session:
            rows = session.execute(
                select(AutomationBatch.recipient, AutomationBatch.status, AutomationBatch.count)
            ).all()
            return sorted((recipient, status, count) for recipient, status, count in rows)

    def items(self) -> int:
        with self.runtime.database.read() as session:
            return session.scalars(select(func.count()).select_from(AutomationBatchItem)).one()


def test_a_fixed_window_collects_a_recipients_runs_for_the_first(
    runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    batch = Runs(runtime, keys, window="10 minutes")
    opener, status = batch.reach(comment="first")
    assert status == "WAITING"
    assert batch.run(opener).wake_at == START + timedelta(minutes=10)
    joined = []
    for text in ("second", "third"):
        clock.move(minutes=4)
        run_pk, status = batch.reach(comment=text)
        assert status == "BATCHED"
        joined.append(run_pk)
    _, status = batch.reach("u2", comment="for u2")
    assert status == "WAITING"  # another recipient: a batch of its own
    assert batch.open_batches() == [("u1", "open", 3), ("u2", "open", 1)]

    # The runs that joined ended at the step, linked to the opener.
    opener_id = batch.run(opener).run_id
    for position, run_pk in enumerate(joined, start=2):
        run = batch.run(run_pk)
        assert run.status == "BATCHED"
        assert run.finished_at is not None
        assert (run.error or "").startswith(f"batched into run {opener_id}")
        assert batch.step_output(run_pk) == {
            "batched_into": opener_id,
            "batch_key": "",
            "position_in_batch": position,
            "batch_opened_at": "2030-01-07T09:00:00Z",
        }

    # Early, the opener waits on; at the window's end it goes on with every item.
    assert batch.advance(opener) == "WAITING"
    clock.now = START + timedelta(minutes=10)
    assert batch.advance(opener) == "PROCESSED"
    run = batch.run(opener)
    digest = {
        "items": [{"comment": "first"}, {"comment": "second"}, {"comment": "third"}],
        "total_count": 3,
    }
    assert run.context["data"]["batch"] == digest
    assert run.context["refs"]["digest"] == {
        **digest,
        "batch_key": "",
        "opened_at": "2030-01-07T09:00:00Z",
        "closed_at": "2030-01-07T09:10:00Z",
    }
    assert run.context["profile"]["digested"] is True  # the next step ran
    assert batch.open_batches() == [("u2", "open", 1)]

    # The next run of u1 opens a new batch.
    after, status = batch.reach(comment="fourth")
    assert status == "WAITING"
    assert batch.open_batches() == [("u1", "open", 1), ("u2", "open", 1)]
    assert batch.run(after).wake_at == START + timedelta(minutes=20)


def test_a_run_after_the_window_ends_opens_a_new_batch_and_wakes_the_late_opener(
    runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    batch = Runs(runtime, keys, window="10 minutes")
    opener, _ = batch.reach(comment="first")
    clock.move(minutes=11)  # the opener's wake-up is late (its worker was down)
    with recording(runtime.database) as recorder:
        _, status = batch.reach(comment="late")
    assert status == "WAITING"
    assert opener in recorder.runs  # the old batch is closing: its opener is woken
    assert batch.open_batches() == [("u1", "closing", 1), ("u1", "open", 1)]
    assert batch.advance(opener) == "PROCESSED"
    assert batch.run(opener).context["data"]["batch"]["total_count"] == 1
    assert batch.open_batches() == [("u1", "open", 1)]


def test_a_sliding_window_moves_with_each_run_up_to_its_max(
    runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    window = {"type": "sliding", "duration": "10 minutes", "max": "25 minutes"}
    batch = Runs(runtime, keys, window=window)
    opener, _ = batch.reach(n=1)
    for n in (2, 3, 4):
        clock.move(minutes=8)  # each join within the window moves it
        assert batch.reach(n=n)[1] == "BATCHED"
    # Joins at 8, 16 and 24 minutes: now + 10 is past the max, so it closes at 25.
    clock.now = START + timedelta(minutes=10)
    assert batch.advance(opener) == "WAITING"  # its first wake-up: the window moved
    assert batch.run(opener).wake_at == START + timedelta(minutes=25)
    clock.now = START + timedelta(minutes=25)
    assert batch.advance(opener) == "PROCESSED"
    assert batch.run(opener).context["data"]["batch"]["total_count"] == 4


def test_max_items_closes_the_batch_at_once_and_the_next_run_opens_another(
    runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    batch = Runs(runtime, keys, window="1 hour", max_items=3)
    opener, _ = batch.reach(n=1)
    assert batch.reach(n=2)[1] == "BATCHED"
    with recording(runtime.database) as recorder:
        assert batch.reach(n=3)[1] == "BATCHED"
    assert recorder.runs[-1] == opener  # the run that filled it woke the opener
    # Before the opener closes it, the next run opens a batch of its own.
    _, status = batch.reach(n=4)
    assert status == "WAITING"
    assert batch.open_batches() == [("u1", "closing", 3), ("u1", "open", 1)]
    # The opener's wake-up is an hour away, but its job closes the full batch now.
    clock.move(minutes=1)
    assert batch.advance(opener) == "PROCESSED"
    assert [item["n"] for item in batch.run(opener).context["data"]["batch"]["items"]] == [1, 2, 3]
    assert batch.open_batches() == [("u1", "open", 1)]
    # A batch of one item when max_items is 1: the opener does not wait at all.
    single = Runs(runtime, keys, window="1 hour", max_items=1, batch_key="single")
    run_pk, status = single.reach(n=5)
    assert status == "PROCESSED"
    assert single.run(run_pk).context["data"]["batch"] == {"items": [{"n": 5}], "total_count": 1}


@pytest.mark.parametrize(("render", "shown"), [("first 2", [1, 2]), ("last 2", [4, 5])])
def test_render_keeps_the_first_or_last_items_and_counts_them_all(
    runtime: Runtime, keys: Keys, clock: Clock, render: str, shown: list[int]
) -> None:
    batch = Runs(runtime, keys, window="1 minute", render=render)
    opener, _ = batch.reach(n=1)
    for n in range(2, 6):
        batch.reach(n=n)
    clock.move(minutes=1)
    assert batch.advance(opener) == "PROCESSED"
    digest = batch.run(opener).context["data"]["batch"]
    assert [item["n"] for item in digest["items"]] == shown
    assert digest["total_count"] == 5


def test_the_batch_key_splits_a_recipients_batches(
    runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    batch = Runs(runtime, keys, window="1 minute", batch_key="{{ data.page }}")
    first, _ = batch.reach(page="a", n=1)
    second, _ = batch.reach(page="b", n=2)
    assert batch.reach(page="a", n=3)[1] == "BATCHED"
    assert batch.step_output(batch.reach(page="b", n=4)[0])["batch_key"] == "b"
    clock.move(minutes=1)
    batch.advance(first), batch.advance(second)
    assert [i["n"] for i in batch.run(first).context["data"]["batch"]["items"]] == [1, 3]
    assert [i["n"] for i in batch.run(second).context["data"]["batch"]["items"]] == [2, 4]
    # A key that comes out empty, and a run with no recipient, end in error.
    empty, status = batch.reach(page="", n=5)
    assert status == "ERROR"
    assert "batch.batch_key" in (batch.run(empty).error or "")
    no_recipient = batch.start(None, page="a")
    assert batch.advance(no_recipient) == "ERROR"
    assert "collects the runs of each recipient" in (batch.run(no_recipient).error or "")


def test_a_canceled_openers_batch_is_dropped_and_the_next_run_opens_one(
    runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    batch = Runs(runtime, keys, window="1 hour")
    opener, _ = batch.reach(n=1)
    batch.reach(n=2)
    with runtime.database.write() as (session, _):
        runs.cancel_by_api(session, batch.scope, batch.run(opener).run_id)
    run_pk, status = batch.reach(n=3)
    assert status == "WAITING"
    assert batch.open_batches() == [("u1", "open", 1)]
    assert batch.items() == 1
    assert batch.run(run_pk).step_index == 0


def test_concurrent_runs_of_one_key_make_one_batch_with_every_item_once(
    runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    batch = Runs(runtime, keys, window="1 hour")
    started = [batch.start(n=n) for n in range(8)]
    statuses: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(started))

    def one(run_pk: int) -> None:
        try:
            barrier.wait()
            statuses.append(batch.advance(run_pk))
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(run_pk,)) for run_pk in started]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(statuses) == ["BATCHED"] * 7 + ["WAITING"]
    (opener,) = [run_pk for run_pk in started if batch.run(run_pk).status == "WAITING"]
    clock.move(hours=1)
    assert batch.advance(opener) == "PROCESSED"
    digest = batch.run(opener).context["data"]["batch"]
    assert digest["total_count"] == 8
    assert sorted(item["n"] for item in digest["items"]) == list(range(8))


def test_runs_racing_the_close_of_a_full_batch_go_to_the_next_batch_once(
    runtime: Runtime, keys: Keys, clock: Clock
) -> None:
    batch = Runs(runtime, keys, window="1 hour", max_items=3)
    opener, _ = batch.reach(n=0)
    batch.reach(n=1)
    batch.reach(n=2)  # full: closing, its opener to close it
    racing = [batch.start(n=n) for n in range(3, 9)]
    statuses: dict[int, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(racing) + 1)

    def one(run_pk: int) -> None:
        try:
            barrier.wait()
            statuses[run_pk] = batch.advance(run_pk)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(run_pk,)) for run_pk in [opener, *racing]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert statuses[opener] == "PROCESSED"
    digest = batch.run(opener).context["data"]["batch"]
    assert [item["n"] for item in digest["items"]] == [0, 1, 2]
    # The racing runs made the next batches (max 3 each), every run in one of them once.
    waiting = [run_pk for run_pk in racing if statuses[run_pk] == "WAITING"]
    assert sorted(statuses[run_pk] for run_pk in racing) == ["BATCHED"] * 4 + ["WAITING"] * 2
    clock.move(hours=1)
    closed = []
    for run_pk in waiting:
        assert batch.advance(run_pk) == "PROCESSED"
        closed += [item["n"] for item in batch.run(run_pk).context["data"]["batch"]["items"]]
    assert sorted(closed) == list(range(3, 9))
    assert batch.open_batches() == []


def test_a_crash_during_the_close_loses_no_item_and_the_redrive_counts_each_once(
    runtime: Runtime, keys: Keys, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = Runs(runtime, keys, window="10 minutes")
    opener, _ = batch.reach(n=1)
    for n in (2, 3):
        batch.reach(n=n)
    clock.move(minutes=10)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise Killed

    # The worker dies inside the close: the items were read and deleted, the output not
    # yet committed.
    with monkeypatch.context() as patch:
        patch.setattr(runs, "_finish_step", crash)
        with pytest.raises(Killed):
            batch.advance(opener)
    assert batch.open_batches() == [("u1", "open", 3)]
    assert batch.items() == 3
    assert batch.run(opener).status == "WAITING"

    # Restarted (the sweeper re-drives it): closed once, with each item once.
    assert batch.advance(opener) == "PROCESSED"
    assert batch.advance(opener) == "PROCESSED"
    digest = batch.run(opener).context["data"]["batch"]
    assert digest == {"items": [{"n": 1}, {"n": 2}, {"n": 3}], "total_count": 3}
    assert batch.open_batches() == []
    assert batch.items() == 0
    # The next run opens a batch of its own: nothing of the closed one is in it.
    run_pk, _ = batch.reach(n=4)
    clock.move(minutes=10)
    assert batch.advance(run_pk) == "PROCESSED"
    assert batch.run(run_pk).context["data"]["batch"]["total_count"] == 1


# Through the API.


def test_the_runs_api_and_studio_filter_batched_runs(client: TestClient, keys: Keys) -> None:
    put(
        client,
        keys.test,
        "/automations/comments",
        {"steps": [{"action": "batch", "window": "1 hour"}]},
    )
    first = invoke(client, keys.test, "/automations/comments/invoke", {"recipient": "u1"})
    run_in(client, keys.test, first, "WAITING")
    second = invoke(client, keys.test, "/automations/comments/invoke", {"recipient": "u1"})
    detail = run_in(client, keys.test, second, "BATCHED")
    assert detail["steps"][0]["status"] == "BATCHED"
    assert detail["steps"][0]["output"]["batched_into"] == first
    assert [run["run_id"] for run in runs_of(client, keys.test, status="BATCHED")] == [second]
    assert "BATCHED" in RUN_STATUSES
    assert {widget.path for widget in widgets("batch")} >= {
        "window",
        "batch_key",
        "max_items",
        "render",
    }
    (window,) = [widget for widget in widgets("batch") if widget.path == "window"]
    assert "sliding" in window.hint


def test_erasing_the_user_deletes_its_open_batches(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    put(
        client,
        keys.test,
        "/automations/comments",
        {"steps": [{"action": "batch", "window": "1 hour"}]},
    )
    put(client, keys.test, "/profiles/u1", {"profile": {"email": "u1@example.org"}})
    first = invoke(
        client,
        keys.test,
        "/automations/comments/invoke",
        {"recipient": "u1", "data": {"text": "secret"}},
    )
    run_in(client, keys.test, first, "WAITING")
    second = invoke(client, keys.test, "/automations/comments/invoke", {"recipient": "u1"})
    run_in(client, keys.test, second, "BATCHED")
    with runtime.database.read() as session:
        assert session.scalars(select(func.count()).select_from(AutomationBatchItem)).one() == 2
    assert client.delete("/profiles/u1", headers=bearer(keys.test)).status_code == 204
    run_in(client, keys.test, first, "CANCELED")
    with runtime.database.read() as session:
        assert session.scalars(select(func.count()).select_from(AutomationBatch)).one() == 0
        assert session.scalars(select(func.count()).select_from(AutomationBatchItem)).one() == 0


APPLIED = """\
kind: automation
id: comment-digest
triggers:
  - source: segment
    event: track/Comment Added
steps:
  - action: batch
    window: {type: sliding, duration: 5 minutes, max: 1 hour}
    batch_key: "{{ data.page_id }}"
    render: last 10
  - action: send
    content: {title: "{{ data.batch.total_count }} comments", body: "."}
"""


def test_apply_files_hold_a_batch_step(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "digest.yaml"
    path.write_text(APPLIED)
    result = run_cli(settings, "apply", str(path))
    assert result.returncode == 0, result.stderr
    stored = client.get("/automations/comment-digest", headers=bearer(keys.test)).json()
    assert stored["steps"][0] == {
        "action": "batch",
        "window": {"type": "sliding", "duration": "5 minutes", "max": "1 hour"},
        "batch_key": "{{ data.page_id }}",
        "render": "last 10",
    }
    path.write_text(APPLIED.replace("max: 1 hour", "max: 1 minute"))
    result = run_cli(settings, "apply", str(path))
    assert result.returncode != 0
    assert "automation comment-digest: steps[0].window.max: " in result.stderr
    assert "shorter than the duration" in result.stderr
