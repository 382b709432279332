"""Identity: anonymous profiles, merging into users, stale traits, and erasure."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for


def send(client: TestClient, key: str, event: dict[str, Any]) -> dict[str, Any]:
    """Post a Segment event and return its record once processed."""
    response = client.post("/inbound/segment", json=event, headers=bearer(key))
    assert response.status_code == 202, response.text

    def processed() -> dict[str, Any] | None:
        record: dict[str, Any] = client.get(
            f"/integrations/segment/events/{event['messageId']}", headers=bearer(key)
        ).json()
        return record if record.get("status") == "processed" else None

    return wait_for(processed, what=f"event {event['messageId']} processed")


def profile(client: TestClient, key: str, user_id: str) -> dict[str, Any] | None:
    response = client.get(f"/profiles/{user_id}", headers=bearer(key))
    if response.status_code == 404:
        return None
    result: dict[str, Any] = response.json()["profile"]
    return result


def test_an_anonymous_visitor_is_merged_into_the_user_on_identify(
    client: TestClient, keys: Keys
) -> None:
    key = keys.test
    send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "a1",
            "anonymousId": "anon-1",
            "traits": {"utm_source": "ads", "plan": "free"},
            "timestamp": "2020-01-01T10:00:00Z",
        },
    )
    assert profile(client, key, "anon-1") == {"utm_source": "ads", "plan": "free"}
    send(
        client,
        key,
        {
            "type": "track",
            "messageId": "a2",
            "anonymousId": "anon-1",
            "event": "Pricing Viewed",
            "properties": {},
        },
    )
    send(
        client,
        key,
        {
            "type": "group",
            "messageId": "a3",
            "anonymousId": "anon-1",
            "groupId": "acme",
            "traits": {"name": "Acme"},
        },
    )
    assert client.put("/lists/news", json={"name": "News"}, headers=bearer(key)).status_code == 204
    client.put("/lists/news/subscriptions/anon-1", headers=bearer(key))
    client.post("/profiles/ada", json={"profile": {"plan": "pro"}}, headers=bearer(key))

    record = send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "a4",
            "userId": "ada",
            "anonymousId": "anon-1",
            "traits": {"email": "ada@example.org"},
            "timestamp": "2020-01-01T11:00:00Z",
        },
    )
    assert any("merged into 'ada'" in line for line in record["effects"])
    # The user's plan (written later, by the API) stays; the anonymous-only trait is added.
    assert profile(client, key, "ada") == {
        "plan": "pro",
        "utm_source": "ads",
        "email": "ada@example.org",
    }
    assert profile(client, key, "anon-1") is None
    events = client.get(
        "/integrations/segment/events", params={"userId": "ada"}, headers=bearer(key)
    ).json()["results"]
    assert {event["messageId"] for event in events} == {"a1", "a2", "a3", "a4"}
    members = client.get("/tenants/acme/users", headers=bearer(key)).json()["items"]
    assert [member["user_id"] for member in members] == ["ada"]
    subscribers = client.get("/lists/news/subscriptions", headers=bearer(key)).json()["items"]
    assert [item["recipientId"] for item in subscribers] == ["ada"]

    # Later events with the anonymous id are the user's.
    later = send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "a5",
            "anonymousId": "anon-1",
            "traits": {"theme": "dark"},
        },
    )
    assert later["userId"] == "ada"
    assert profile(client, key, "ada") == {
        "plan": "pro",
        "utm_source": "ads",
        "email": "ada@example.org",
        "theme": "dark",
    }


def test_merge_conflicts_keep_the_trait_written_later(client: TestClient, keys: Keys) -> None:
    key = keys.test
    send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "c1",
            "userId": "bo",
            "traits": {"plan": "free", "city": "Oslo"},
            "timestamp": "2030-01-01T09:00:00Z",
        },
    )
    send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "c2",
            "anonymousId": "anon-2",
            "traits": {"plan": "pro", "city": "Rome"},
            "timestamp": "2030-01-01T12:00:00Z",
        },
    )
    send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "c3",
            "userId": "bo",
            "traits": {"city": "Lima"},
            "timestamp": "2030-01-01T13:00:00Z",
        },
    )
    send(
        client,
        key,
        {
            "type": "alias",
            "messageId": "c4",
            "previousId": "anon-2",
            "userId": "bo",
        },
    )
    # plan: the anonymous value is newer (12:00 > 09:00); city: the user's is (13:00 > 12:00).
    assert profile(client, key, "bo") == {"plan": "pro", "city": "Lima"}


def test_an_anonymous_id_already_merged_is_not_merged_into_a_second_user(
    client: TestClient, keys: Keys
) -> None:
    key = keys.test
    send(client, key, {"type": "identify", "messageId": "d1", "anonymousId": "device"})
    send(
        client,
        key,
        {"type": "identify", "messageId": "d2", "userId": "first", "anonymousId": "device"},
    )
    record = send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "d3",
            "userId": "second",
            "anonymousId": "device",
            "traits": {"name": "Second"},
        },
    )
    assert any("already merged into user 'first'" in line for line in record["effects"])
    assert record["userId"] == "second"
    assert profile(client, key, "second") == {"name": "Second"}


def test_a_stale_identify_does_not_overwrite_a_newer_trait(client: TestClient, keys: Keys) -> None:
    key = keys.test
    send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "s1",
            "userId": "cy",
            "traits": {"plan": "pro"},
            "timestamp": "2030-05-01T12:00:00Z",
        },
    )
    record = send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "s2",
            "userId": "cy",
            "traits": {"plan": "free", "locale": "fi"},
            "timestamp": "2030-05-01T08:00:00Z",
        },
    )
    assert profile(client, key, "cy") == {"plan": "pro", "locale": "fi"}
    assert {"op": "ignored", "path": "/plan", "reason": "stale"} in record["profile_diff"]
    assert any(line.startswith("trait 'plan' ignored: stale") for line in record["effects"])
    # An API write is "now": an identify timestamped before it does not undo it.
    client.post("/profiles/cy", json={"profile": {"locale": "sv"}}, headers=bearer(key))
    send(
        client,
        key,
        {
            "type": "identify",
            "messageId": "s3",
            "userId": "cy",
            "traits": {"locale": "de"},
            "timestamp": "2020-01-01T00:00:00Z",
        },
    )
    assert profile(client, key, "cy") == {"plan": "pro", "locale": "sv"}


def _user_with_data(client: TestClient, key: str, user_id: str) -> None:
    send(
        client,
        key,
        {
            "type": "identify",
            "messageId": f"{user_id}-i",
            "userId": user_id,
            "anonymousId": f"{user_id}-anon",
            "traits": {"email": f"{user_id}@example.org"},
        },
    )
    send(
        client,
        key,
        {
            "type": "track",
            "messageId": f"{user_id}-t",
            "userId": user_id,
            "event": "Bought",
            "properties": {"card": "card-4242-secret"},
        },
    )
    assert client.put("/lists/vip", json={"name": "VIP"}, headers=bearer(key)).status_code == 204
    client.put(f"/lists/vip/subscriptions/{user_id}", headers=bearer(key))


def _assert_erased(client: TestClient, key: str, user_id: str) -> None:
    assert profile(client, key, user_id) is None
    for suffix in ("i", "t"):
        record = client.get(
            f"/integrations/segment/events/{user_id}-{suffix}", headers=bearer(key)
        ).json()
        assert record["payload"]["redacted"] is True
        assert "card-4242-secret" not in str(record)
        assert f"{user_id}@example.org" not in str(record)
        assert record["userId"] is None
    subscribers = client.get("/lists/vip/subscriptions", headers=bearer(key)).json()["items"]
    assert user_id not in [item["recipientId"] for item in subscribers]


def test_a_segment_delete_event_removes_the_profile_and_its_personal_data(
    client: TestClient, keys: Keys
) -> None:
    key = keys.test
    _user_with_data(client, key, "dee")
    record = send(client, key, {"type": "delete", "messageId": "del-1", "userId": "dee"})
    assert any(line.startswith("user 'dee' erased") for line in record["effects"])
    _assert_erased(client, key, "dee")
    # The anonymous id merged into the user is gone with it.
    later = send(client, key, {"type": "identify", "messageId": "x1", "anonymousId": "dee-anon"})
    assert later["userId"] is None


def test_delete_profile_erases_like_a_delete_event(client: TestClient, keys: Keys) -> None:
    key = keys.test
    _user_with_data(client, key, "eve")
    response = client.delete("/profiles/eve", headers=bearer(key))
    assert response.status_code == 204
    _assert_erased(client, key, "eve")
    missing = client.delete("/profiles/eve", headers=bearer(key))
    assert missing.status_code == 404
    assert missing.json()["code"] == "profile_not_found"


def test_a_delete_event_without_a_user_id_is_refused(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/inbound/segment",
        json={"type": "delete", "messageId": "del-x", "anonymousId": "a"},
        headers=bearer(keys.test),
    )
    assert response.status_code == 400
    assert response.json()["field"] == "userId"
