"""POST /inbound/segment: auth, every 400, the size limit, duplicates and the six types."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.payloads import SEGMENT_HEADERS, identify, track
from tidings.ingest import fastpath
from tidings.runtime import Runtime
from tidings.workspace import service as workspace_service


def post(client: TestClient, key: str | None, body: Any, **headers: str) -> Any:
    all_headers = dict(SEGMENT_HEADERS)
    if key is not None:
        all_headers.update(bearer(key))
    all_headers.update(headers)
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post("/inbound/segment", content=content, headers=all_headers)


def event_record(client: TestClient, key: str, message_id: str) -> dict[str, Any]:
    response = client.get(f"/integrations/segment/events/{message_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


def processed(client: TestClient, key: str, message_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record = event_record(client, key, message_id)
        return record if record["status"] == "processed" else None

    return wait_for(check, what=f"event {message_id} processed")


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "field"}
    assert body["code"] == code
    assert body["field"] == field
    assert len(body["message"]) > 20


def test_accepts_the_product_page_identify_with_202_and_its_message_id(
    client: TestClient, keys: Keys
) -> None:
    response = post(client, keys.test, identify())
    assert response.status_code == 202
    assert response.json() == {"messageId": "segment-test-message-iskh4123"}
    record = processed(client, keys.test, "segment-test-message-iskh4123")
    assert record["payload"] == identify()


def test_basic_auth_with_the_key_as_username_is_accepted(client: TestClient, keys: Keys) -> None:
    token = base64.b64encode(f"{keys.test}:".encode()).decode()
    response = post(client, None, track(), Authorization=f"Basic {token}")
    assert response.status_code == 202, response.text
    assert event_record(client, keys.test, "segment-test-message-a8rmf")["name"] == (
        "track/Segment Test Event Name"
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_body_is_json_whatever_the_content_type(
    client: TestClient, keys: Keys, content_type: str
) -> None:
    response = post(client, keys.test, track(), **{"Content-Type": content_type})
    assert response.status_code == 202, response.text


def test_missing_key_is_401(client: TestClient) -> None:
    assert_error(post(client, None, track()), 401, "missing_api_key")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer tdg_test_not-a-real-key", "Basic bm90LWEta2V5Og==", "Token abc", "Bearer"],
)
def test_unknown_or_malformed_key_is_401(client: TestClient, authorization: str) -> None:
    response = post(client, None, track(), Authorization=authorization)
    assert response.status_code == 401
    assert response.json()["code"] in ("invalid_api_key", "missing_api_key")


def test_revoked_key_is_401_at_once_and_stores_nothing(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    with runtime.database.write() as (session, _):
        workspace_service.revoke_key(session, keys.test_id)
    assert_error(post(client, keys.test, track()), 401, "invalid_api_key")
    with runtime.database.write() as (session, _):
        fresh = workspace_service.create_key(session, runtime.cipher, "test")
    assert fresh.key is not None
    listing = client.get("/integrations/segment/events", headers=bearer(fresh.key)).json()
    assert listing["results"] == []


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "invalid_json", None),
        (b"", "invalid_json", None),
        (b"[1, 2]", "invalid_event", None),
        ({"userId": "u1", "event": "x"}, "missing_type", "type"),
        ({"type": "purchase", "userId": "u1"}, "unknown_type", "type"),
        ({"type": "Track", "userId": "u1", "event": "x"}, "unknown_type", "type"),
        ({"type": "track", "event": "Order Shipped"}, "missing_user_id", "userId"),
        (
            {"type": "identify", "userId": None, "anonymousId": ""},
            "missing_user_id",
            "userId",
        ),
        ({"type": "track", "userId": "u1"}, "missing_event", "event"),
        ({"type": "track", "userId": "u1", "event": "  "}, "missing_event", "event"),
        ({"type": "group", "userId": "u1", "traits": {}}, "missing_group_id", "groupId"),
        (
            {"type": "track", "userId": "u1", "event": "x", "messageId": "m" * 101},
            "message_id_too_long",
            "messageId",
        ),
        ({"type": "identify", "userId": "u1", "traits": [1]}, "invalid_traits", "traits"),
        (
            {"type": "track", "userId": "u1", "event": "x", "properties": "a"},
            "invalid_properties",
            "properties",
        ),
    ],
)
def test_invalid_events_get_400_naming_the_field(
    client: TestClient, keys: Keys, body: Any, code: str, field: str | None
) -> None:
    assert_error(post(client, keys.test, body), 400, code, field)


def test_message_id_of_exactly_100_characters_is_accepted(client: TestClient, keys: Keys) -> None:
    response = post(client, keys.test, track(messageId="m" * 100))
    assert response.status_code == 202


def test_body_over_32_kb_is_413_and_32_kb_exactly_is_accepted(
    client: TestClient, keys: Keys
) -> None:
    base = orjson.dumps(track(properties={"blob": ""}))
    exact = track(properties={"blob": "x" * (32 * 1024 - len(base))})
    assert len(orjson.dumps(exact)) == 32 * 1024
    assert post(client, keys.test, exact).status_code == 202
    over = track(messageId="over", properties={"blob": "x" * (32 * 1024)})
    assert_error(post(client, keys.test, over), 413, "payload_too_large")
    assert (
        client.get("/integrations/segment/events/over", headers=bearer(keys.test)).status_code
        == 404
    )


def test_body_over_32_kb_without_content_length_is_413(client: TestClient, keys: Keys) -> None:
    chunks = iter([b'{"type": "track", "blob": "', b"x" * (33 * 1024), b'"}'])
    response = client.post(
        "/inbound/segment", content=chunks, headers={**bearer(keys.test), **SEGMENT_HEADERS}
    )
    assert_error(response, 413, "payload_too_large")


def test_duplicate_message_id_is_202_duplicate_with_no_second_effect(
    client: TestClient, keys: Keys
) -> None:
    first = identify(traits={"plan": "free"})
    assert post(client, keys.test, first).json() == {"messageId": first["messageId"]}
    processed(client, keys.test, first["messageId"])
    retry = identify(traits={"plan": "enterprise", "extra": True})
    response = post(client, keys.test, retry)
    assert response.status_code == 202
    assert response.json() == {"messageId": first["messageId"], "duplicate": True}
    profile = client.get("/profiles/rod-test", headers=bearer(keys.test)).json()["profile"]
    assert profile == {"plan": "free"}
    names = client.get("/integrations/segment/event-names", headers=bearer(keys.test)).json()
    assert names["results"][0]["count"] == 1


def test_concurrent_duplicates_store_exactly_one_event(client: TestClient, keys: Keys) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: post(client, keys.test, track()), range(16)))
    assert all(response.status_code == 202 for response in responses)
    duplicates = [response.json().get("duplicate", False) for response in responses]
    assert duplicates.count(False) == 1
    listing = client.get("/integrations/segment/events", headers=bearer(keys.test)).json()
    assert len(listing["results"]) == 1


def test_missing_message_id_is_generated(client: TestClient, keys: Keys) -> None:
    body = track()
    del body["messageId"]
    response = post(client, keys.test, body)
    assert response.status_code == 202
    message_id = response.json()["messageId"]
    assert message_id.startswith("tidings-")
    assert event_record(client, keys.test, message_id)["payload"]["messageId"] == message_id


def test_all_six_types_are_stored_and_listed(client: TestClient, keys: Keys) -> None:
    events = [
        identify(messageId="m-identify"),
        track(messageId="m-track"),
        {"type": "group", "messageId": "m-group", "userId": "u1", "groupId": "acme"},
        {"type": "page", "messageId": "m-page", "anonymousId": "a1", "name": "Home"},
        {"type": "screen", "messageId": "m-screen", "userId": "u1", "name": "Cart"},
        {"type": "alias", "messageId": "m-alias", "userId": "u1", "previousId": "a1"},
    ]
    for event in events:
        assert post(client, keys.test, event).status_code == 202
    for event in events:
        processed(client, keys.test, event["messageId"])
    listing = client.get("/integrations/segment/events", headers=bearer(keys.test)).json()
    assert [row["type"] for row in listing["results"]] == [
        "alias",
        "screen",
        "page",
        "group",
        "track",
        "identify",
    ]
    names = client.get("/integrations/segment/event-names", headers=bearer(keys.test)).json()
    assert {row["name"] for row in names["results"]} == {
        "identify",
        "track/Segment Test Event Name",
        "group",
        "page",
        "screen",
        "alias",
    }


def test_debug_names_workspace_and_environment(client: TestClient, keys: Keys) -> None:
    response = client.post("/debug", headers=bearer(keys.production))
    assert response.status_code == 200
    body = response.json()
    assert body["environment"] == "production"
    assert body["workspace"]["name"] == "Default workspace"
    assert body["workspace"]["id"].startswith("ws_")
    assert_error(client.post("/debug"), 401, "missing_api_key")
    assert_error(client.post("/debug", headers=bearer("nope")), 401, "invalid_api_key")


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert_error(client.get("/inbound/segment"), 405, "method_not_allowed")


def test_storage_failure_is_503_and_nothing_is_acknowledged(
    client: TestClient, keys: Keys, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*_: Any) -> Any:
        raise OSError("disk I/O error")

    # The writer's units of work: its own statements on SQLite, a Session on Postgres.
    monkeypatch.setattr(runtime.database, "write", unavailable)
    monkeypatch.setattr(runtime.database, "exclusive", unavailable)
    response = post(client, keys.test, track())
    assert_error(response, 503, "storage_unavailable")
    monkeypatch.undo()
    assert post(client, keys.test, track()).json() == {"messageId": "segment-test-message-a8rmf"}


def test_the_fast_path_and_the_documented_route_answer_alike(
    client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both run `ingest.segment.accept_segment`: the same status, headers and bytes."""

    def answers(via: str) -> list[tuple[int, str, bytes]]:
        requests: list[tuple[str | None, Any]] = [
            (keys.test, track(messageId=f"{via}-1")),
            (keys.test, track(messageId=f"{via}-1")),  # a duplicate
            (None, track()),
            ("not-a-key", track()),
            (keys.test, b"{not json"),
            (keys.test, {"userId": "u1"}),
            (keys.test, [track()]),
            (keys.test, track(properties={"big": "x" * (32 * 1024)})),
        ]
        found = []
        for key, body in requests:
            response = post(client, key, body)
            content = response.content.replace(via.encode(), b"via")
            found.append((response.status_code, response.headers["content-type"], content))
        return found

    fast = answers("fast")
    monkeypatch.setattr(fastpath, "PATH", "/not-served-here")  # FastAPI's route serves it
    assert answers("route") == fast
    assert [status for status, _, _ in fast] == [202, 202, 401, 401, 400, 400, 400, 413]
