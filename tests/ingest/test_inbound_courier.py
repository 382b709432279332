"""POST /inbound/courier: Courier's inbound track, with 409 on a repeated messageId."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer

EVENT = {
    "event": "Order Shipped",
    "messageId": "4c62c457-b329-4bea-9bfd-17f2fe3d3e0a",
    "type": "track",
    "properties": {"order_id": "A-100"},
    "userId": "u1",
}


def test_accepts_and_rejects_a_repeat_with_409(client: TestClient, keys: Keys) -> None:
    first = client.post("/inbound/courier", json=EVENT, headers=bearer(keys.test))
    assert first.status_code == 202
    assert first.json() == {"messageId": EVENT["messageId"]}
    again = client.post("/inbound/courier", json=EVENT, headers=bearer(keys.test))
    assert again.status_code == 409
    assert again.json()["code"] == "duplicate_message_id"
    assert again.json()["field"] == "messageId"


def test_inbound_events_are_not_listed_as_segment_events(client: TestClient, keys: Keys) -> None:
    client.post("/inbound/courier", json=EVENT, headers=bearer(keys.test))
    listing = client.get("/integrations/segment/events", headers=bearer(keys.test)).json()
    assert listing["results"] == []


def test_required_fields(client: TestClient, keys: Keys) -> None:
    cases = [
        ({**EVENT, "type": "identify"}, "unknown_type", "type"),
        ({k: v for k, v in EVENT.items() if k != "event"}, "missing_event", "event"),
        ({k: v for k, v in EVENT.items() if k != "messageId"}, "missing_message_id", "messageId"),
        ({k: v for k, v in EVENT.items() if k != "properties"}, "invalid_properties", "properties"),
    ]
    for body, code, field in cases:
        response = client.post("/inbound/courier", json=body, headers=bearer(keys.test))
        assert response.status_code == 400, body
        assert (response.json()["code"], response.json()["field"]) == (code, field)
    assert client.post("/inbound/courier", json=EVENT).status_code == 401
