"""What each event does: profile merges, diagnostics, tenants, retries and the sweeper."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sqlalchemy_event

from tests.conftest import Keys, bearer
from tests.ingest.test_inbound_segment import post, processed
from tests.outbox import recording
from tests.payloads import identify, track
from tests.plans import captured, plan
from tidings.event import batching
from tidings.event import service as event_service
from tidings.event.service import ProcessResult
from tidings.eventstore.repository import SOURCES, EventRepository
from tidings.ingest.validation import validate_segment_event
from tidings.ingest.writer import IngestItem, IngestWriter
from tidings.models import Event
from tidings.runtime import Runtime
from tidings.workspace.service import Scope


@pytest.fixture(autouse=True)
def _groups_end_by_size_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group also ends after GROUP_SECONDS of work. That bound is not what these tests are
    about (they count the transactions), and no machine, however busy, reaches an infinite
    one."""
    monkeypatch.setattr(batching, "GROUP_SECONDS", math.inf)


def profile_of(client: TestClient, key: str, user_id: str) -> dict[str, Any]:
    response = client.get(f"/profiles/{user_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    profile: dict[str, Any] = response.json()["profile"]
    return profile


def test_identify_creates_the_profile_with_traits_and_records_the_diagnostic(
    client: TestClient, keys: Keys
) -> None:
    post(client, keys.test, identify())
    record = processed(client, keys.test, "segment-test-message-iskh4123")
    assert profile_of(client, keys.test, "rod-test") == {"trait1": 2, "email": "test@example.org"}
    assert [d["code"] for d in record["diagnostics"]] == ["top_level_email"]
    assert "traits" in record["diagnostics"][0]["message"]
    assert record["profile_diff"] == [
        {"op": "add", "path": "/email", "from": None, "to": "test@example.org"},
        {"op": "add", "path": "/trait1", "from": None, "to": 2},
    ]


def test_top_level_email_alone_is_not_used(client: TestClient, keys: Keys) -> None:
    post(client, keys.test, identify(traits={"name": "Rod"}))
    record = processed(client, keys.test, "segment-test-message-iskh4123")
    assert profile_of(client, keys.test, "rod-test") == {"name": "Rod"}
    assert "got no email" in record["diagnostics"][0]["message"]


def test_identify_without_top_level_email_has_no_diagnostic(client: TestClient, keys: Keys) -> None:
    event = identify()
    del event["email"]
    post(client, keys.test, event)
    assert processed(client, keys.test, event["messageId"])["diagnostics"] == []


def test_traits_merge_key_by_key_and_null_removes(client: TestClient, keys: Keys) -> None:
    post(
        client,
        keys.test,
        identify(
            messageId="m1",
            traits={
                "email": "a@example.org",
                "plan": "free",
                "address": {"city": "Lyon", "street": "1 rue"},
                "tags": ["a", "b"],
            },
        ),
    )
    processed(client, keys.test, "m1")
    post(
        client,
        keys.test,
        identify(
            messageId="m2",
            traits={"plan": None, "address": {"city": "Paris"}, "tags": ["c"], "age": 40},
        ),
    )
    record = processed(client, keys.test, "m2")
    assert profile_of(client, keys.test, "rod-test") == {
        "email": "a@example.org",
        "address": {"city": "Paris", "street": "1 rue"},
        "tags": ["c"],
        "age": 40,
    }
    assert record["profile_diff"] == [
        {"op": "replace", "path": "/address/city", "from": "Lyon", "to": "Paris"},
        {"op": "add", "path": "/age", "from": None, "to": 40},
        {"op": "remove", "path": "/plan", "from": "free", "to": None},
        {"op": "replace", "path": "/tags", "from": ["a", "b"], "to": ["c"]},
    ]


def test_track_is_listed_with_its_properties_as_data(client: TestClient, keys: Keys) -> None:
    post(client, keys.test, track())
    record = processed(client, keys.test, "segment-test-message-a8rmf")
    assert record["name"] == "track/Segment Test Event Name"
    assert record["data"] == {"property1": 1, "property2": "test", "property3": True}
    assert record["payload"]["email"] == "test@example.org"


def test_group_creates_the_tenant_and_membership(client: TestClient, keys: Keys) -> None:
    group = {
        "type": "group",
        "messageId": "g1",
        "userId": "u1",
        "groupId": "acme",
        "traits": {"name": "Acme Inc", "plan": "enterprise", "employees": 120},
    }
    post(client, keys.test, group)
    record = processed(client, keys.test, "g1")
    assert "user 'u1' joined tenant 'acme'" in record["effects"]
    tenant = client.get("/tenants/acme", headers=bearer(keys.test)).json()
    assert tenant["id"] == "acme"
    assert tenant["name"] == "Acme Inc"
    assert tenant["properties"] == {"plan": "enterprise", "employees": 120}
    users = client.get("/tenants/acme/users", headers=bearer(keys.test)).json()
    assert users["items"] == [{"type": "user", "user_id": "u1", "tenant_id": "acme"}]
    assert users["has_more"] is False
    tenants = client.get("/users/u1/tenants", headers=bearer(keys.test)).json()
    assert [item["tenant_id"] for item in tenants["items"]] == ["acme"]

    post(client, keys.test, {**group, "messageId": "g2", "userId": "u2", "traits": {"plan": None}})
    processed(client, keys.test, "g2")
    tenant = client.get("/tenants/acme", headers=bearer(keys.test)).json()
    assert tenant["name"] == "Acme Inc"
    assert tenant["properties"] == {"employees": 120}
    first = client.get("/tenants/acme/users?limit=1", headers=bearer(keys.test)).json()
    assert first["has_more"] is True
    assert [item["user_id"] for item in first["items"]] == ["u1"]
    second = client.get(
        f"/tenants/acme/users?limit=1&cursor={first['cursor']}", headers=bearer(keys.test)
    ).json()
    assert [item["user_id"] for item in second["items"]] == ["u2"]
    assert second["has_more"] is False


def test_unknown_tenant_is_a_clear_404(client: TestClient, keys: Keys) -> None:
    response = client.get("/tenants/nope", headers=bearer(keys.test))
    assert response.status_code == 404
    assert response.json()["code"] == "tenant_not_found"


def test_events_filter_and_page_newest_first(client: TestClient, keys: Keys) -> None:
    for index in range(5):
        post(client, keys.test, track(messageId=f"t{index}", userId=f"user-{index % 2}"))
    post(client, keys.test, track(messageId="other", event="Order Shipped", userId="user-0"))
    post(client, keys.test, identify(messageId="i1"))
    headers = bearer(keys.test)
    listing = client.get("/integrations/segment/events?type=track", headers=headers).json()
    assert [row["messageId"] for row in listing["results"]] == [
        "other",
        "t4",
        "t3",
        "t2",
        "t1",
        "t0",
    ]
    by_name = client.get(
        "/integrations/segment/events",
        params={"event": "track/Order Shipped"},
        headers=headers,
    ).json()
    assert [row["messageId"] for row in by_name["results"]] == ["other"]
    by_user = client.get("/integrations/segment/events?userId=user-1", headers=headers).json()
    assert [row["messageId"] for row in by_user["results"]] == ["t3", "t1"]
    seen = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/integrations/segment/events", params=params, headers=headers).json()
        seen.extend(row["messageId"] for row in page["results"])
        if not page["paging"]["more"]:
            assert page["paging"]["cursor"] is None
            break
        cursor = page["paging"]["cursor"]
    assert seen == ["i1", "other", "t4", "t3", "t2", "t1", "t0"]
    bad = client.get("/integrations/segment/events?cursor=garbage!", headers=headers)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"


def test_event_names_count_and_dates(client: TestClient, keys: Keys) -> None:
    post(client, keys.test, track(messageId="a"))
    post(client, keys.test, track(messageId="b"))
    post(client, keys.test, identify())
    names = client.get("/integrations/segment/event-names", headers=bearer(keys.test)).json()
    by_name = {row["name"]: row for row in names["results"]}
    assert by_name["track/Segment Test Event Name"]["count"] == 2
    assert by_name["identify"]["count"] == 1
    row = by_name["track/Segment Test Event Name"]
    assert row["first_seen"] <= row["last_seen"]


def test_environments_are_isolated(client: TestClient, keys: Keys) -> None:
    post(client, keys.test, identify())
    processed(client, keys.test, "segment-test-message-iskh4123")
    production = bearer(keys.production)
    assert client.get("/profiles/rod-test", headers=production).status_code == 404
    assert client.get("/integrations/segment/events", headers=production).json()["results"] == []
    assert (
        client.get(
            "/integrations/segment/events/segment-test-message-iskh4123", headers=production
        ).status_code
        == 404
    )
    # The same messageId in another environment is a different event, not a duplicate.
    response = post(client, keys.production, identify(traits={"env": "prod"}))
    assert response.json() == {"messageId": "segment-test-message-iskh4123"}
    processed(client, keys.production, "segment-test-message-iskh4123")
    assert profile_of(client, keys.production, "rod-test") == {"env": "prod"}
    assert profile_of(client, keys.test, "rod-test")["trait1"] == 2


def _store_without_job(runtime: Runtime, key: str, events: list[dict[str, Any]]) -> list[int]:
    writer = IngestWriter(runtime.database, runtime.cipher)
    with recording(runtime.database):  # no job: the events stay `received`
        results = writer.write([IngestItem(key, validate_segment_event(event)) for event in events])
    return [result.event_id for result in results if result.event_id is not None]


def test_a_users_events_are_listed_whether_processed_or_not(
    client: TestClient, runtime: Runtime, keys: Keys
) -> None:
    # Processed and unprocessed events are indexed by user apart (models/event.py).
    post(client, keys.test, track(messageId="done-1", userId="u"))
    processed(client, keys.test, "done-1")
    _store_without_job(
        runtime,
        keys.test,
        [track(messageId="waiting-1", userId="u"), track(messageId="other", userId="v")],
    )
    headers = bearer(keys.test)
    listing = client.get("/integrations/segment/events?userId=u", headers=headers).json()
    assert [(row["messageId"], row["status"]) for row in listing["results"]] == [
        ("waiting-1", "received"),
        ("done-1", "processed"),
    ]
    first = client.get("/integrations/segment/events?userId=u&limit=1", headers=headers).json()
    assert [row["messageId"] for row in first["results"]] == ["waiting-1"]
    rest = client.get(
        "/integrations/segment/events",
        params={"userId": "u", "cursor": first["paging"]["cursor"]},
        headers=headers,
    ).json()
    assert [row["messageId"] for row in rest["results"]] == ["done-1"]


def test_sweeper_processes_events_whose_job_was_lost(runtime: Runtime, keys: Keys) -> None:
    ids = _store_without_job(runtime, keys.test, [identify(), track()])
    assert runtime.jobs.sweep(older_than_seconds=3600) == 0
    assert runtime.jobs.sweep(older_than_seconds=0) == 2
    # No consumer runs in this test: run what the sweeper enqueued, as a worker would.
    while (task := runtime.jobs.huey.dequeue()) is not None:
        runtime.jobs.huey.execute(task)
    with runtime.database.read() as session:
        statuses = {session.get(Event, event_id).status for event_id in ids}  # type: ignore[union-attr]
    assert statuses == {"processed"}


def test_a_failing_event_is_retried_then_marked_failed_with_the_reason(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    (event_id,) = _store_without_job(runtime, keys.test, [identify()])
    calls = []

    def broken(session: Any, event: Event) -> Any:
        calls.append(event.id)
        raise RuntimeError("profile store unavailable")

    monkeypatch.setattr(event_service, "_apply", broken)
    outcomes = [event_service.process_event(runtime.database, event_id, 3) for _ in range(4)]
    assert outcomes == [
        ProcessResult.RETRY,
        ProcessResult.RETRY,
        ProcessResult.FAILED,
        ProcessResult.SKIPPED,
    ]
    assert len(calls) == 3
    with runtime.database.read() as session:
        event = session.get(Event, event_id)
        assert event is not None
        assert event.status == "failed"
        assert event.attempts == 3
        assert event.error == "RuntimeError: profile store unavailable"


def test_a_transient_failure_rolls_back_and_the_retry_applies_once(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    (event_id,) = _store_without_job(runtime, keys.test, [identify()])
    real_apply = event_service._apply
    failures = iter([True])

    def flaky(session: Any, event: Event) -> Any:
        result = real_apply(session, event)
        if next(failures, False):
            raise RuntimeError("crash after the profile write")
        return result

    monkeypatch.setattr(event_service, "_apply", flaky)
    assert event_service.process_event(runtime.database, event_id, 5) is ProcessResult.RETRY
    assert event_service.process_event(runtime.database, event_id, 5) is ProcessResult.PROCESSED
    with runtime.database.read() as session:
        event = session.get(Event, event_id)
        assert event is not None
        assert event.attempts == 2
        assert event.profile_diff == [
            {"op": "add", "path": "/email", "from": None, "to": "test@example.org"},
            {"op": "add", "path": "/trait1", "from": None, "to": 2},
        ]


def test_a_users_earlier_events_are_processed_first(runtime: Runtime, keys: Keys) -> None:
    first, second = _store_without_job(
        runtime,
        keys.test,
        [
            identify(messageId="first", traits={"plan": "free"}),
            identify(messageId="second", traits={"plan": "pro"}),
        ],
    )
    outcome = batching.process_events(runtime.database, [second], 5)
    assert outcome.processed == [first, second]
    with runtime.database.read() as session:
        from tidings.profile.repository import ProfileRepository
        from tidings.workspace.service import Scope

        event = session.get(Event, second)
        assert event is not None
        scope = Scope(event.workspace_id, event.environment_id, "test", "")
        profile = ProfileRepository(session).get(scope, "rod-test")
        assert profile is not None
        assert profile.data == {"plan": "pro"}


def test_unprocessed_events_are_read_in_arrival_order_through_their_index(
    runtime: Runtime, keys: Keys
) -> None:
    """A user's earlier unprocessed events, and a user's events, read the unprocessed ones
    through ix_event_pending (ordered by id, so ingest appends to it), never by a scan."""
    if not runtime.database.is_sqlite:
        return  # SQLite's plans; Postgres has the same indexes
    ids = _store_without_job(
        runtime, keys.test, [track(messageId=f"m{n}", userId=f"u{n % 2}") for n in range(4)]
    )
    with captured(runtime, "event.status = ?") as statements, runtime.database.read() as session:
        repository = EventRepository(session)
        event = repository.session.get(Event, ids[-1])
        assert event is not None
        earlier = repository.earlier_pending_of_users(
            event.environment_id, "segment", {"u0": ids[2], "u1": ids[3]}, limit=5
        )
        assert earlier == [ids[0], ids[1]]
        scope = Scope(event.workspace_id, event.environment_id, "test", "")
        assert [found.id for found in repository.of_user(scope, "u1", 10)] == [ids[3], ids[1]]
    # The earlier events, and the user's in each source.
    assert len(statements) == 1 + len(SOURCES)
    for sql, parameters in statements:
        found = plan(runtime, sql, parameters)
        assert "INDEX ix_event_pending (" in found, found
        assert "SCAN" not in found, found


def test_event_detail_unknown_message_id_is_404(client: TestClient, keys: Keys) -> None:
    response = client.get("/integrations/segment/events/missing", headers=bearer(keys.test))
    assert response.status_code == 404
    assert response.json()["code"] == "event_not_found"


def _profile_data(runtime: Runtime, event_id: int, user_id: str) -> dict[str, Any] | None:
    from tidings.profile.repository import ProfileRepository
    from tidings.workspace.service import Scope

    with runtime.database.read() as session:
        event = session.get(Event, event_id)
        assert event is not None
        scope = Scope(event.workspace_id, event.environment_id, "test", "")
        profile = ProfileRepository(session).get(scope, user_id)
        return None if profile is None else dict(profile.data)


def _identify_for(user: str, n: int) -> dict[str, Any]:
    event = identify(messageId=f"{user}-{n}", userId=user, traits={"n": n})
    event.pop("anonymousId", None)
    return event


def _fail_apply(
    monkeypatch: pytest.MonkeyPatch, event_id: int, reason: str, after: bool = False
) -> None:
    """Make applying the event's effects raise RuntimeError(reason), before or after it
    writes them."""
    real_apply = event_service._apply

    def failing(session: Any, event: Event) -> Any:
        result = real_apply(session, event) if after else None
        if event.id == event_id:
            raise RuntimeError(reason)
        return result if after else real_apply(session, event)

    monkeypatch.setattr(event_service, "_apply", failing)


def _counting_writes(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    transactions: list[int] = []
    real_write = runtime.database.write

    def counting_write() -> Any:
        transactions.append(1)
        return real_write()

    monkeypatch.setattr(runtime.database, "write", counting_write)
    return transactions


@contextlib.contextmanager
def _counting_commits(runtime: Runtime) -> Iterator[list[str]]:
    """The write transactions committed meanwhile, as SQLAlchemy sees each commit."""
    commits: list[str] = []

    def count(connection: Any) -> None:
        commits.append("commit")

    engine = runtime.database.write_engine
    sqlalchemy_event.listen(engine, "commit", count)
    try:
        yield commits
    finally:
        sqlalchemy_event.remove(engine, "commit", count)


def test_a_group_shares_one_transaction(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _store_without_job(runtime, keys.test, [_identify_for(f"user-{n}", n) for n in range(5)])
    transactions = _counting_writes(runtime, monkeypatch)
    with _counting_commits(runtime) as commits:
        assert batching.process_events(runtime.database, ids, 5).processed == ids
    assert len(transactions) == 1
    assert commits == ["commit"]
    assert _profile_data(runtime, ids[4], "user-4") == {"n": 4}


def test_a_failing_event_rolls_its_group_back_and_fails_alone(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _store_without_job(runtime, keys.test, [_identify_for(f"user-{n}", n) for n in range(5)])
    real_apply = event_service._apply
    # The profile write happens, then is undone.
    _fail_apply(monkeypatch, ids[2], "crash after the profile write", after=True)
    transactions = _counting_writes(runtime, monkeypatch)
    outcome = batching.process_events(runtime.database, ids, 5)
    assert outcome.processed == [ids[0], ids[1], ids[3], ids[4]]
    assert outcome.retry == [ids[2]]
    # The group up to the failing event, each of those alone and the failure's record, then
    # a group of the rest.
    assert len(transactions) == 1 + 3 + 1 + 1
    assert _profile_data(runtime, ids[2], "user-2") is None
    assert _profile_data(runtime, ids[3], "user-3") == {"n": 3}
    with runtime.database.read() as session:
        failed = session.get(Event, ids[2])
        assert failed is not None
        assert (failed.status, failed.attempts) == ("received", 1)
        assert failed.error == "RuntimeError: crash after the profile write"
        processed = session.get(Event, ids[3])
        assert processed is not None
        assert (processed.status, processed.attempts) == ("processed", 1)

    monkeypatch.setattr(event_service, "_apply", real_apply)
    assert batching.process_events(runtime.database, ids, 5).processed == [ids[2]]
    assert _profile_data(runtime, ids[2], "user-2") == {"n": 2}


def test_a_group_whose_commit_fails_is_processed_event_by_event(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _store_without_job(runtime, keys.test, [_identify_for("dora", n) for n in range(3)])
    real_write = runtime.database.write
    commits = iter([False])

    @contextlib.contextmanager
    def first_commit_fails() -> Iterator[Any]:
        with real_write() as session:
            yield session
            if not next(commits, True):
                raise RuntimeError("disk I/O error")

    monkeypatch.setattr(runtime.database, "write", first_commit_fails)
    outcome = batching.process_events(runtime.database, ids, 5)
    assert outcome.processed == ids
    assert _profile_data(runtime, ids[0], "dora") == {"n": 2}
    with runtime.database.read() as session:
        attempts = {session.get(Event, event_id).attempts for event_id in ids}  # type: ignore[union-attr]
    assert attempts == {1}


def test_a_group_ends_at_its_size_and_users_keep_their_order(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "GROUP_EVENTS", 2)
    events = [_identify_for(user, n) for n in range(3) for user in ("ann", "bo")]
    ids = _store_without_job(runtime, keys.test, events)
    transactions = _counting_writes(runtime, monkeypatch)
    # Only the latest event of each user is asked for: the earlier ones come first anyway.
    outcome = batching.process_events(runtime.database, [ids[4], ids[5]], 5)
    assert outcome.processed == ids
    assert len(transactions) == 3
    assert _profile_data(runtime, ids[0], "ann") == {"n": 2}
    assert _profile_data(runtime, ids[0], "bo") == {"n": 2}


def test_while_ingest_stays_saturated_a_group_is_one_event(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _store_without_job(runtime, keys.test, [_identify_for(f"user-{n}", n) for n in range(4)])
    answers = iter([True, False])  # saturated at the first look, calm from the second on
    looks: list[int] = []

    def pace() -> bool:
        looks.append(1)
        return next(answers, False)

    transactions = _counting_writes(runtime, monkeypatch)
    outcome = batching.process_events(runtime.database, ids, 5, pace=pace)
    assert outcome.processed == ids
    # One event alone while ingest was saturated, then the other three in one group.
    assert len(looks) == 2
    assert len(transactions) == 2


def test_a_job_takes_waiting_events_but_leaves_failed_ones_to_their_retry(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _store_without_job(runtime, keys.test, [_identify_for(f"w-{n}", n) for n in range(4)])
    real_apply = event_service._apply
    _fail_apply(monkeypatch, ids[0], "profile store unavailable")
    assert batching.process_events(runtime.database, [ids[0]], 5).retry == [ids[0]]
    monkeypatch.setattr(event_service, "_apply", real_apply)
    # The job of the last event also takes the two in between, not the failed first one.
    outcome = batching.process_events(runtime.database, [ids[3]], 5, take_waiting=True)
    assert outcome.processed == [ids[1], ids[2], ids[3]]
    # Their own jobs find nothing left to do.
    assert batching.process_events(runtime.database, [ids[1]], 5).processed == []
    # Without take_waiting (a server database) a job keeps to its own events.
    more = _store_without_job(runtime, keys.test, [_identify_for(f"x-{n}", n) for n in range(2)])
    assert batching.process_events(runtime.database, [more[1]], 5).processed == [more[1]]


@pytest.mark.parametrize("lookahead", [64, 2], ids=["every-received-event-read", "backlog"])
def test_a_job_orders_its_group_the_same_whether_or_not_it_sees_every_received_event(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch, lookahead: int
) -> None:
    # The first read sees up to RECEIVED_LOOKAHEAD of the oldest received events; with
    # fewer than that it has all of them and orders the group without further queries.
    monkeypatch.setattr(batching, "RECEIVED_LOOKAHEAD", lookahead)
    users = [("ann", 0), ("bob", 0), ("ann", 1), ("cyd", 0)]
    a0, b0, a1, c0 = _store_without_job(
        runtime, keys.test, [_identify_for(user, n) for user, n in users]
    )
    real_apply = event_service._apply
    _fail_apply(monkeypatch, a0, "profile store unavailable")
    assert batching.process_events(runtime.database, [a0], 5).retry == [a0]
    monkeypatch.setattr(event_service, "_apply", real_apply)
    if lookahead > 4:  # every received event is in the first read: no other query is needed

        def not_needed(*args: Any) -> Any:
            raise AssertionError("the first read had every received event")

        monkeypatch.setattr(EventRepository, "pending_of", not_needed)
        monkeypatch.setattr(EventRepository, "earlier_pending_of_users", not_needed)
    # ann's later event brings her failed earlier one first; bob's and cyd's fill the group.
    outcome = batching.process_events(runtime.database, [a1], 5, take_waiting=True)
    assert outcome.processed == [a0, b0, a1, c0]
    assert _profile_data(runtime, a1, "ann") == {"n": 1}
    # A job of processed events finds nothing to do either way.
    again = batching.process_events(runtime.database, [b0], 5, take_waiting=True)
    assert again.processed == []


def test_a_job_whose_events_were_taken_costs_no_query(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _store_without_job(runtime, keys.test, [_identify_for(f"r-{n}", n) for n in range(3)])
    recent = batching.RecentlyProcessed()
    outcome = batching.process_events(
        runtime.database, [ids[0]], 5, take_waiting=True, recent=recent
    )
    assert outcome.processed == ids
    reads = []
    real_read = runtime.database.read

    def counting_read() -> Any:
        reads.append(1)
        return real_read()

    monkeypatch.setattr(runtime.database, "read", counting_read)
    for event_id in ids[1:]:
        assert batching.process_events(runtime.database, [event_id], 5, recent=recent) == (
            batching.ProcessOutcome([], [], [])
        )
    assert reads == []


def test_recently_processed_keeps_the_latest_ids_only() -> None:
    recent = batching.RecentlyProcessed(size=3)
    recent.add([1, 2, 3])
    recent.add([3, 4])
    assert recent.others([1, 2, 3, 4, 5]) == [1, 5]


def test_a_group_that_cannot_begin_still_moves_on_event_by_event(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _store_without_job(runtime, keys.test, [_identify_for(f"b-{n}", n) for n in range(3)])
    from tidings.eventstore.repository import EventRepository

    real_lock_many = EventRepository.lock_many
    failures = iter([True])

    def lock_fails_once(self: EventRepository, event_ids: Any) -> Any:
        if next(failures, False):
            raise RuntimeError("database is locked")
        return real_lock_many(self, event_ids)

    monkeypatch.setattr(EventRepository, "lock_many", lock_fails_once)
    outcome = batching.process_events(runtime.database, ids, 5)
    assert outcome.processed == ids
