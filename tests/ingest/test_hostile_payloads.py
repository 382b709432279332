"""Hostile Segment payloads (deep nesting, wide integers, odd unicode, wrong types, extreme
timestamps, large strings) never get a 5xx, and a good event sent after them is stored."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Keys, bearer
from tests.payloads import SEGMENT_HEADERS, track


def deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=40).map(json.dumps),
    st.text(max_size=20).map(lambda text: json.dumps(text, ensure_ascii=False)),
    st.sampled_from(
        [
            '"9999-12-31T23:59:59.999Z"',
            '"0001-01-01T00:00:00+14:00"',
            '"9999-12-31T23:59:59-14:00"',
            '"\\u0000"',
            '"\\ud800"',
            '"' + "x" * 40_000 + '"',
            "[]",
            "{}",
        ]
    ),
    st.integers(min_value=60, max_value=400).map(deep),
).map(lambda value: value if isinstance(value, str) else json.dumps(value))

fields = st.sampled_from(
    [
        "properties",
        "traits",
        "timestamp",
        "sentAt",
        "originalTimestamp",
        "userId",
        "messageId",
        "event",
        "context",
        "type",
        "anonymousId",
    ]
)


@given(overrides=st.dictionaries(fields, scalars, min_size=1, max_size=4))
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_hostile_events_never_get_a_server_error(
    client: TestClient, keys: Keys, overrides: dict[str, str]
) -> None:
    base = {key: json.dumps(value) for key, value in track(messageId="hostile").items()}
    base.update(overrides)
    body = ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in base.items()) + "}").encode()
    headers = {**SEGMENT_HEADERS, **bearer(keys.test)}
    for path in ("/inbound/segment", "/v1/track", "/v1/batch"):
        content = b'{"batch":[' + body + b"]}" if path == "/v1/batch" else body
        response = client.post(path, content=content, headers=headers)
        assert response.status_code < 500, (path, response.text)
        if response.status_code >= 400:
            assert response.json()["message"]


def test_a_good_event_next_to_hostile_ones_is_stored(client: TestClient, keys: Keys) -> None:
    headers = {**SEGMENT_HEADERS, **bearer(keys.test)}
    hostile: list[Any] = [
        b'{"type":"track","userId":"u","event":"E","properties":' + deep(300).encode() + b"}",
        b'{"type":"track","userId":"u","event":"E","properties":{"n":99999999999999999999}}',
        b'{"type":"track","userId":"u","event":"E","sentAt":"9999-12-31T23:59:59.999Z"}',
    ]
    for body in hostile:
        assert client.post("/inbound/segment", content=body, headers=headers).status_code < 500
    good = json.dumps(track(messageId="good-after")).encode()
    assert client.post("/inbound/segment", content=good, headers=headers).status_code == 202
    stored = client.get("/integrations/segment/events/good-after", headers=bearer(keys.test))
    assert stored.status_code == 200
    assert stored.json()["payload"]["event"] == track()["event"]
