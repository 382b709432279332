"""The input limits (docs/security.md): each is a 400 naming the field, or a valid result."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tests.payloads import SEGMENT_HEADERS, track
from tidings.kit.json_input import MAX_INTEGER, MAX_JSON_DEPTH, MIN_INTEGER
from tidings.models import Message
from tidings.runtime import Runtime


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep (itself included)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def nested_bytes(depth: int) -> bytes:
    """`nested(depth)` as JSON, for depths orjson cannot serialise."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def segment(client: TestClient, key: str, body: Any) -> Any:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(
        "/inbound/segment", content=content, headers={**SEGMENT_HEADERS, **bearer(key)}
    )


def error(response: Any, code: str, field: str | None) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["code"], body["field"]) == (code, field)
    message: str = body["message"]
    return message


def stored_payload(client: TestClient, key: str, message_id: str) -> dict[str, Any]:
    response = client.get(f"/integrations/segment/events/{message_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()["payload"]
    return payload


def test_json_deeper_than_the_limit_is_refused_and_the_limit_itself_is_stored(
    client: TestClient, keys: Keys
) -> None:
    # The event is level 1 and `properties` level 2: 64 levels in all are accepted.
    deepest = track(messageId="deepest", properties=nested(MAX_JSON_DEPTH - 1))
    assert segment(client, keys.test, deepest).status_code == 202
    assert stored_payload(client, keys.test, "deepest")["properties"] == nested(MAX_JSON_DEPTH - 1)

    # 253 levels passed parsing and failed the writer's serialisation (a 503 for the batch).
    for depth in (MAX_JSON_DEPTH, 253, 1000):
        too_deep = orjson.dumps(track(messageId=f"deep-{depth}", properties={})).replace(
            b'"properties":{}', b'"properties":' + nested_bytes(depth)
        )
        message = error(
            segment(client, keys.test, too_deep), "json_too_deep", "properties.a.a.a.a.a.a.a"
        )
        assert "64 levels" in message

    batch = {"batch": [track(messageId="in-batch", properties=nested(100))]}
    response = client.post("/v1/batch", content=orjson.dumps(batch), headers=bearer(keys.test))
    error(response, "json_too_deep", "batch[0].properties.a.a.a.a.a")

    # A body FastAPI parses (here a profile) meets the same limit.
    response = client.put(
        "/profiles/deep",
        content=b'{"profile":' + nested_bytes(300) + b"}",
        headers={**bearer(keys.test), "Content-Type": "application/json"},
    )
    error(response, "json_too_deep", "profile.a.a.a.a.a.a.a")


def test_integers_beyond_64_bits_are_refused_and_64_bit_ones_kept_exactly(
    client: TestClient, keys: Keys
) -> None:
    exact = {"max": MAX_INTEGER, "min": MIN_INTEGER, "id": 1234567890123456789}
    assert segment(client, keys.test, track(messageId="exact", properties=exact)).status_code == 202
    assert stored_payload(client, keys.test, "exact")["properties"] == exact

    for number in (MAX_INTEGER + 1, 2**64, MIN_INTEGER - 1, 10**30):
        body = orjson.dumps(track(messageId="wide", properties={"n": 0})).replace(
            b'"n":0', b'"n":' + str(number).encode()
        )
        message = error(segment(client, keys.test, body), "invalid_number", "properties.n")
        assert str(number) in message
    # A long run of digits in a string is no number.
    digits = track(messageId="digits", properties={"n": "1" * 40})
    assert segment(client, keys.test, digits).status_code == 202

    tracking = b'{"userId":"u","event":"E","properties":{"big":[1,99999999999999999999]}}'
    response = client.post("/v1/track", content=tracking, headers=bearer(keys.test))
    error(response, "invalid_number", "properties.big[1]")

    # In an API body (FastAPI's parser keeps it exact; it could not be stored).
    response = client.post(
        "/profiles/wide",
        content=b'{"profile": {"n": 123456789012345678901234567890}}',
        headers={**bearer(keys.test), "Content-Type": "application/json"},
    )
    error(response, "invalid_number", "profile.n")


def test_a_nul_character_is_refused(client: TestClient, keys: Keys) -> None:
    body = orjson.dumps(track(messageId="nul", properties={"text": "a\x00b"}))
    error(segment(client, keys.test, body), "invalid_string", "properties.text")
    # An escaped backslash before u0000 is no NUL.
    plain = track(messageId="not-nul", properties={"text": "\\u0000"})
    assert segment(client, keys.test, plain).status_code == 202
    assert stored_payload(client, keys.test, "not-nul")["properties"]["text"] == "\\u0000"


def test_extreme_timestamps_are_unreadable_not_errors(client: TestClient, keys: Keys) -> None:
    batch = {
        "sentAt": "9999-12-31T23:59:59.999Z",
        "batch": [
            track(messageId="far-sent", timestamp="2026-01-01T00:00:00.000Z"),
            track(messageId="far-original", timestamp="0001-01-01T00:00:00+14:00"),
            track(
                messageId="far-own-sent",
                timestamp="1900-01-01T00:00:00.000Z",
                sentAt="2999-12-31T23:59:59.999Z",
            ),
        ],
    }
    response = client.post("/v1/batch", content=orjson.dumps(batch), headers=bearer(keys.test))
    assert response.status_code == 200, response.text
    # An unreadable sentAt corrects nothing: the device's time stands.
    assert stored_payload(client, keys.test, "far-sent")["timestamp"] == "2026-01-01T00:00:00.000Z"
    # An unreadable timestamp is kept as originalTimestamp; the event is dated on arrival.
    far_original = stored_payload(client, keys.test, "far-original")
    assert far_original["originalTimestamp"] == "0001-01-01T00:00:00+14:00"
    assert far_original["timestamp"] == far_original["receivedAt"]
    # Clocks 1,100 years apart: the correction is not believed; dated on arrival.
    far_own = stored_payload(client, keys.test, "far-own-sent")
    assert far_own["timestamp"] == far_own["receivedAt"]

    late = track(messageId="late", timestamp="9999-12-31T23:59:59.999-14:00")
    assert segment(client, keys.test, late).status_code == 202
    record = client.get("/integrations/segment/events/late", headers=bearer(keys.test)).json()
    assert record["payload"]["timestamp"] == "9999-12-31T23:59:59.999-14:00"


def test_extreme_send_times_and_durations_are_400(client: TestClient, keys: Keys) -> None:
    def send(**message: Any) -> Any:
        body = {"message": {"to": {"email": "a@example.org"}, "content": {"body": "b"}, **message}}
        return client.post("/send", json=body, headers=bearer(keys.test))

    error(
        send(delay={"until": "9999-12-31T23:59:59.999-14:00"}),
        "invalid_time",
        "message.delay.until",
    )
    error(send(delay={"duration": 2**62}), "invalid_duration", "message.delay.duration")
    error(send(delay={"duration": 10**15}), "invalid_duration", "message.delay.duration")
    error(send(expiry={"expires_in": 2**62}), "invalid_duration", "message.expiry.expires_in")
    error(
        send(expiry={"expires_at": "0001-01-01T00:00:00+01:00"}),
        "invalid_time",
        "message.expiry.expires_at",
    )


def test_gzip_with_trailing_bytes_is_refused(client: TestClient, keys: Keys) -> None:
    body = orjson.dumps({"userId": "u", "event": "E", "messageId": "gz"})
    headers = {**bearer(keys.test), "Content-Encoding": "gzip"}
    for trailer in (b"garbage", gzip.compress(b"{}")):
        response = client.post("/v1/track", content=gzip.compress(body) + trailer, headers=headers)
        message = error(response, "invalid_gzip", None)
        assert f"{len(trailer)} bytes after the end" in message
    assert client.post("/v1/track", content=gzip.compress(body), headers=headers).status_code == 200
    assert stored_payload(client, keys.test, "gz")["event"] == "E"


def test_a_send_to_an_empty_audience_is_a_request_with_no_messages(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    assert (
        client.put(
            "/lists/empty.list", json={"name": "Empty"}, headers=bearer(keys.test)
        ).status_code
        == 204
    )
    request_ids = []
    for to in ({"tenant_id": "nobody"}, {"list_id": "empty.list"}, {"list_pattern": "empty.*"}):
        response = client.post(
            "/send",
            json={"message": {"to": to, "content": {"body": "b"}}},
            headers=bearer(keys.test),
        )
        assert response.status_code == 202, response.text
        request_ids.append(response.json()["requestId"])
    assert len(set(request_ids)) == 3
    with runtime.database.read() as session:
        assert session.query(Message).count() == 0


def test_an_if_nested_hundreds_deep_is_refused_at_save_time(client: TestClient, keys: Keys) -> None:
    condition = "(" * 40 + "data.total > 1" + ")" * 40
    automation = {
        "name": "Deep",
        "triggers": [{"source": "segment", "event": "track/Deep"}],
        "steps": [{"action": "update-profile", "if": condition, "profile": {"x": 1}}],
    }
    response = client.put("/automations/deep", json=automation, headers=bearer(keys.test))
    message = error(response, "invalid_automation", "steps[0].if")
    assert "32 levels" in message
    automation["steps"][0]["if"] = "(" * 20 + "data.total > 1" + ")" * 20  # type: ignore[index]
    assert (
        client.put("/automations/deep", json=automation, headers=bearer(keys.test)).status_code
        == 201
    )


def test_a_nul_character_in_the_url_or_a_form_is_refused(client: TestClient, keys: Keys) -> None:
    """PostgreSQL refuses NUL in any text: looked up, it was a 500 there."""
    for method, url in (
        ("GET", "/profiles/a%00b"),
        ("GET", "/messages?recipient=a%00b"),
        ("GET", "/integrations/segment/events/a%00b"),
        ("POST", "/inbound/segment?x=%00"),
    ):
        response = client.request(method, url, headers=bearer(keys.test))
        message = error(response, "invalid_url", None)
        assert "%00" in message
    response = client.post(
        "/callbacks/twilio",
        content=b"MessageSid=SM%00x&MessageStatus=delivered",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    error(response, "invalid_string", "MessageSid")
