"""Segment's HTTP Tracking API: routes, write keys, gzip, limits, batches, timestamps."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for
from tests.tracking.helpers import basic, event_record, json_bytes, stored_events
from tidings.app import create_app
from tidings.runtime import Runtime
from tidings.workspace import service as workspace_service

SINGLE = {
    "identify": {"userId": "u-1", "traits": {"plan": "pro"}},
    "track": {"userId": "u-1", "event": "Order Shipped", "properties": {"order": 7}},
    "group": {"userId": "u-1", "groupId": "acme", "traits": {"name": "Acme"}},
    "page": {"anonymousId": "anon-1", "name": "Home", "properties": {"path": "/"}},
    "screen": {"userId": "u-1", "name": "Settings"},
    "alias": {"userId": "u-1", "previousId": "anon-1"},
}


def post(client: TestClient, path: str, body: Any, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json_bytes(body)
    return client.post(path, content=content, headers=headers)


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["field"] == field
    assert len(body["message"]) > 20
    message: str = body["message"]
    return message


def tracks(count: int, prefix: str, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "userId": f"user-{index % 7}",
            "event": "Viewed",
            "messageId": f"{prefix}-{index}",
            "properties": {"n": index},
            **extra,
        }
        for index in range(count)
    ]


@pytest.mark.parametrize("event_type", list(SINGLE))
@pytest.mark.parametrize("short", [False, True])
def test_each_single_endpoint_stores_its_event_with_200_success(
    client: TestClient, keys: Keys, runtime: Runtime, event_type: str, short: bool
) -> None:
    path = f"/v1/{event_type[0]}" if short else f"/v1/{event_type}"
    message_id = f"m-{event_type}-{short}"
    body = {**SINGLE[event_type], "messageId": message_id, "writeKey": keys.test}
    response = post(client, path, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    (row,) = stored_events(runtime, message_id=message_id)
    assert row["type"] == event_type
    assert row["source"] == "segment"
    assert "writeKey" not in row["payload"]
    assert event_record(client, keys.test, message_id)["type"] == event_type


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import", "/v1/b"])
def test_batch_paths_store_every_item_once(
    client: TestClient, keys: Keys, runtime: Runtime, path: str
) -> None:
    response = post(client, path, {"batch": tracks(5, path), "writeKey": keys.test})
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    rows = stored_events(runtime)
    assert [row["message_id"] for row in rows] == [f"{path}-{n}" for n in range(5)]
    assert {row["name"] for row in rows} == {"track/Viewed"}


def test_write_key_in_basic_auth_or_bearer(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    assert post(client, "/v1/batch", {"batch": tracks(1, "basic")}, **basic(keys.test)).is_success
    assert post(client, "/v1/t", tracks(1, "bearer")[0], **bearer(keys.production)).is_success
    by_id = {row["message_id"]: row for row in stored_events(runtime)}
    assert set(by_id) == {"basic-0", "bearer-0"}
    assert event_record(client, keys.test, "basic-0")["name"] == "track/Viewed"
    assert event_record(client, keys.production, "bearer-0")["name"] == "track/Viewed"


def test_missing_write_key_is_401(client: TestClient, runtime: Runtime) -> None:
    response = post(client, "/v1/batch", {"batch": tracks(2, "x")})
    message = assert_error(response, 401, "missing_api_key")
    assert "writeKey" in message
    assert stored_events(runtime) == []


def test_unknown_or_revoked_write_key_is_401(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    response = post(client, "/v1/batch", {"batch": tracks(2, "x"), "writeKey": "tdg_nope"})
    assert_error(response, 401, "invalid_api_key")
    assert post(client, "/v1/t", tracks(1, "before")[0], **bearer(keys.test)).is_success
    with runtime.database.write() as (session, _):
        workspace_service.revoke_key(session, keys.test_id)
    response = post(client, "/v1/t", tracks(1, "y")[0], **bearer(keys.test))
    assert_error(response, 401, "invalid_api_key")
    assert [row["message_id"] for row in stored_events(runtime)] == ["before-0"]


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", ""])
def test_body_is_json_whatever_the_content_type(
    client: TestClient, keys: Keys, runtime: Runtime, content_type: str
) -> None:
    body = {**SINGLE["page"], "messageId": "plain", "writeKey": keys.test}
    response = post(client, "/v1/p", body, **{"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert [row["message_id"] for row in stored_events(runtime)] == ["plain"]


def test_gzip_bodies_are_accepted(client: TestClient, keys: Keys, runtime: Runtime) -> None:
    body = gzip.compress(json_bytes({"batch": tracks(3, "gz"), "writeKey": keys.test}))
    response = post(client, "/v1/batch", body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert len(stored_events(runtime)) == 3


def test_broken_gzip_is_400(client: TestClient, keys: Keys) -> None:
    body = gzip.compress(json_bytes({"batch": tracks(3, "gz"), "writeKey": keys.test}))
    response = post(client, "/v1/batch", body[:-12], **{"Content-Encoding": "gzip"})
    assert_error(response, 400, "invalid_gzip")
    response = post(client, "/v1/batch", b"not gzip at all", **{"Content-Encoding": "gzip"})
    assert_error(response, 400, "invalid_gzip")


def test_event_over_32_kb_is_400_naming_the_limit(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    big = {"userId": "u", "event": "Big", "properties": {"blob": "x" * (33 * 1024)}}
    message = assert_error(
        post(client, "/v1/track", {**big, "writeKey": keys.test}), 400, "event_too_large"
    )
    assert "32 KB" in message
    batch = [*tracks(2, "ok"), {"type": "track", **big}]
    message = assert_error(
        post(client, "/v1/batch", {"batch": batch, "writeKey": keys.test}),
        400,
        "event_too_large",
        "batch[2]",
    )
    assert "32 KB" in message
    assert stored_events(runtime) == []


def test_gzip_does_not_bypass_the_limit(client: TestClient, keys: Keys) -> None:
    big = {"userId": "u", "event": "Big", "properties": {"blob": "x" * (40 * 1024)}}
    body = gzip.compress(json_bytes({**big, "writeKey": keys.test}))
    assert len(body) < 32 * 1024
    response = post(client, "/v1/t", body, **{"Content-Encoding": "gzip"})
    assert_error(response, 400, "event_too_large")


def test_batch_over_500_kb_is_400_naming_the_limit(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    items = tracks(40, "big")
    for item in items:
        item["properties"]["blob"] = "x" * (14 * 1024)
    message = assert_error(
        post(client, "/v1/batch", {"batch": items, "writeKey": keys.test}), 400, "batch_too_large"
    )
    assert "500 KB" in message
    assert stored_events(runtime) == []


def test_more_than_2500_events_is_400_naming_the_limit(keys: Keys, runtime: Runtime) -> None:
    items = [{"type": "track", "userId": "u", "event": "E"} for _ in range(2501)]
    # An API-only app: this test is about storing, and processing 2,500 events would
    # only slow the suite down.
    with TestClient(create_app(runtime, consumer_workers=0)) as client:
        message = assert_error(
            post(client, "/v1/batch", {"batch": items, "writeKey": keys.test}),
            400,
            "too_many_events",
            "batch",
        )
        assert "2500" in message
        ok = post(client, "/v1/batch", {"batch": items[:2500], "writeKey": keys.test})
        assert ok.status_code == 200, ok.text
    assert len(stored_events(runtime)) == 2500


def test_an_invalid_item_rejects_the_batch_naming_it(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    items = [*tracks(2, "v"), {"type": "track", "userId": "u"}]
    response = post(client, "/v1/batch", {"batch": items, "writeKey": keys.test})
    message = assert_error(response, 400, "missing_event", "batch[2].event")
    assert message.startswith("batch[2]:")
    items = [*tracks(1, "w"), {"type": "teleport", "userId": "u"}]
    response = post(client, "/v1/batch", {"batch": items, "writeKey": keys.test})
    assert_error(response, 400, "unknown_type", "batch[1].type")
    assert_error(post(client, "/v1/batch", {"writeKey": keys.test}), 400, "invalid_batch", "batch")
    assert stored_events(runtime) == []


def test_type_of_the_path_is_set_and_a_different_one_refused(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    body = {"userId": "u", "traits": {"a": 1}, "writeKey": keys.test, "messageId": "typed"}
    assert post(client, "/v1/identify", body).status_code == 200
    assert stored_events(runtime)[0]["type"] == "identify"
    body = {**SINGLE["track"], "type": "identify", "writeKey": keys.test}
    assert_error(post(client, "/v1/track", body), 400, "type_mismatch", "type")


def test_batch_context_and_integrations_merge_into_each_item(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    items = tracks(2, "ctx")
    items[1]["context"] = {"ip": "10.0.0.9", "locale": "fr-FR"}
    items[1]["integrations"] = {"Mixpanel": False}
    body = {
        "batch": items,
        "writeKey": keys.test,
        "context": {"library": {"name": "http"}, "ip": "10.0.0.1"},
        "integrations": {"All": True},
    }
    assert post(client, "/v1/batch", body).status_code == 200
    first, second = (row["payload"] for row in stored_events(runtime))
    assert first["context"] == {"library": {"name": "http"}, "ip": "10.0.0.1"}
    assert first["integrations"] == {"All": True}
    assert second["context"] == {"library": {"name": "http"}, "ip": "10.0.0.9", "locale": "fr-FR"}
    assert second["integrations"] == {"All": True, "Mixpanel": False}


def test_timestamp_is_corrected_with_sent_at(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    # The device clock is 3 hours behind: it says the event happened 5 s before sending.
    device_now = datetime.now(UTC) - timedelta(hours=3)
    sent_at = device_now.isoformat().replace("+00:00", "Z")
    happened = (device_now - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    items = tracks(1, "clock", timestamp=happened)
    before = datetime.now(UTC)
    body = {"batch": items, "sentAt": sent_at, "writeKey": keys.test}
    assert post(client, "/v1/batch", body).status_code == 200
    after = datetime.now(UTC)
    (row,) = stored_events(runtime)
    payload = row["payload"]
    assert payload["originalTimestamp"] == happened
    assert payload["sentAt"] == sent_at
    received = datetime.fromisoformat(payload["receivedAt"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= received <= after + timedelta(seconds=1)
    corrected = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
    assert abs((received - corrected).total_seconds() - 5) < 0.01
    assert abs((row["timestamp"] - corrected).total_seconds()) < 0.001


def test_without_a_timestamp_the_event_happened_when_received(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    body = {**SINGLE["track"], "writeKey": keys.test}
    assert post(client, "/v1/track", body).status_code == 200
    (row,) = stored_events(runtime)
    assert row["payload"]["timestamp"] == row["payload"]["receivedAt"]
    assert "originalTimestamp" not in row["payload"]


def test_an_unreadable_timestamp_is_kept_as_original_and_dated_on_arrival(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    body = {**SINGLE["track"], "timestamp": "yesterday", "writeKey": keys.test}
    assert post(client, "/v1/track", body).status_code == 200
    (row,) = stored_events(runtime)
    assert row["payload"]["originalTimestamp"] == "yesterday"
    assert row["payload"]["timestamp"] == row["payload"]["receivedAt"]


def test_missing_message_id_is_generated(client: TestClient, keys: Keys, runtime: Runtime) -> None:
    items = [{"type": "track", "userId": "u", "event": "E"} for _ in range(3)]
    assert post(client, "/v1/batch", {"batch": items, "writeKey": keys.test}).status_code == 200
    ids = [row["message_id"] for row in stored_events(runtime)]
    assert len(set(ids)) == 3
    assert all(message_id.startswith("tidings-") for message_id in ids)
    assert all(row["payload"]["messageId"] == row["message_id"] for row in stored_events(runtime))


def test_a_retried_batch_has_no_second_effect(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    body = {"batch": tracks(4, "retry"), "writeKey": keys.test}
    assert post(client, "/v1/batch", body).status_code == 200
    assert post(client, "/v1/batch", body).json() == {"success": True}
    assert len(stored_events(runtime)) == 4


def test_tracking_events_go_through_the_segment_processing(client: TestClient, keys: Keys) -> None:
    identify = {
        "type": "identify",
        "userId": "sdk-user",
        "messageId": "sdk-identify",
        "traits": {"email": "a@example.org", "plan": "pro"},
    }
    group = {"type": "group", "userId": "sdk-user", "groupId": "acme", "messageId": "sdk-group"}
    body = {"batch": [identify, group], "writeKey": keys.test}
    assert post(client, "/v1/batch", body).status_code == 200

    def profile() -> dict[str, Any] | None:
        response = client.get("/profiles/sdk-user", headers=bearer(keys.test))
        return response.json()["profile"] if response.status_code == 200 else None

    assert wait_for(profile, what="profile from a tracking identify") == {
        "email": "a@example.org",
        "plan": "pro",
    }

    def processed() -> bool:
        return event_record(client, keys.test, "sdk-group")["status"] == "processed"

    wait_for(processed, what="group processed")
    members = client.get("/tenants/acme/users", headers=bearer(keys.test)).json()
    assert "sdk-user" in str(members)


def test_the_same_message_id_from_the_destination_is_a_duplicate(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    event = {**SINGLE["track"], "type": "track", "messageId": "both-ways"}
    assert post(client, "/v1/track", {**event, "writeKey": keys.test}).status_code == 200
    again = client.post("/inbound/segment", content=json_bytes(event), headers=bearer(keys.test))
    assert again.json() == {"messageId": "both-ways", "duplicate": True}
    assert len(stored_events(runtime)) == 1


def test_invalid_json_is_400(client: TestClient, keys: Keys) -> None:
    assert_error(post(client, "/v1/batch", b"{nope", **bearer(keys.test)), 400, "invalid_json")
    assert_error(post(client, "/v1/track", b"[1, 2]", **bearer(keys.test)), 400, "invalid_event")


def test_the_routes_are_in_the_openapi_description(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/identify", "/v1/t", "/v1/batch", "/v1/import", "/v1/b"):
        assert "post" in paths[path]


def test_web_pages_may_post_cross_origin(client: TestClient, keys: Keys) -> None:
    preflight = client.options(
        "/v1/t",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    body = {**SINGLE["track"], "writeKey": keys.test}
    response = post(client, "/v1/t", body, Origin="https://shop.example")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    refused = post(client, "/v1/t", {**SINGLE["track"], "writeKey": "nope"})
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
