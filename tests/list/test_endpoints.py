"""Lists API in Courier's shapes: lists, patterns, subscriptions and a user's lists."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, wait_for


def put_list(client: TestClient, key: str, list_id: str, name: str | None = None) -> None:
    response = client.put(f"/lists/{list_id}", json={"name": name or list_id}, headers=bearer(key))
    assert response.status_code == 204, response.text


def list_ids(client: TestClient, key: str, **params: Any) -> list[str]:
    response = client.get("/lists", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def subscribers(client: TestClient, key: str, list_id: str) -> dict[str, Any]:
    response = client.get(f"/lists/{list_id}/subscriptions", headers=bearer(key))
    assert response.status_code == 200, response.text
    return {item["recipientId"]: item["preferences"] for item in response.json()["items"]}


def user_list_ids(client: TestClient, key: str, user_id: str) -> list[str]:
    response = client.get(f"/profiles/{user_id}/lists", headers=bearer(key))
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["results"]]


OPTED_OUT = {"notifications": {"digest": {"status": "OPTED_OUT"}}}


def test_create_read_rename_delete(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    response = client.put("/lists/acme.eng", json={"name": "Engineering"}, headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    first = client.get("/lists/acme.eng", headers=headers).json()
    assert set(first) == {"id", "name", "created", "updated"}
    assert first["id"] == "acme.eng"
    assert first["name"] == "Engineering"
    assert first["created"].endswith("Z")
    assert first["updated"] == first["created"]

    assert client.put("/lists/acme.eng", json={"name": "Eng"}, headers=headers).status_code == 204
    second = client.get("/lists/acme.eng", headers=headers).json()
    assert second["name"] == "Eng"
    assert second["created"] == first["created"]
    assert second["updated"] >= first["updated"]
    assert list_ids(client, keys.test) == ["acme.eng"]

    client.put("/lists/acme.eng/subscriptions/u1", headers=headers)
    assert client.delete("/lists/acme.eng", headers=headers).status_code == 204
    missing = client.get("/lists/acme.eng", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "list_not_found"
    assert missing.json()["field"] == "list_id"
    assert list_ids(client, keys.test) == []
    assert user_list_ids(client, keys.test, "u1") == []
    assert client.delete("/lists/acme.eng", headers=headers).status_code == 404


def test_restore_is_a_no_op_for_a_live_list_and_404_for_a_deleted_one(
    client: TestClient, keys: Keys
) -> None:
    headers = bearer(keys.test)
    put_list(client, keys.test, "acme")
    assert client.put("/lists/acme/restore", headers=headers).status_code == 204
    client.delete("/lists/acme", headers=headers)
    response = client.put("/lists/acme/restore", headers=headers)
    assert response.status_code == 404
    assert "PUT /lists/" in response.json()["message"]


def test_invalid_list_ids_are_400s_naming_the_field(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    for bad in ["acme.*", "acme..eng", ".acme", "acme.", "a.b.c.d.e", "ac me", "a#b", "x" * 301]:
        response = client.put(f"/lists/{quote(bad)}", json={"name": "N"}, headers=headers)
        assert response.status_code == 400, bad
        body = response.json()
        assert body["code"] == "invalid_list_id", bad
        assert body["field"] == "list_id"
    for bad in ["acme.*", "acme..eng"]:
        assert client.put(f"/lists/{bad}/subscriptions/u1", headers=headers).status_code == 400
    long_user = client.put(f"/lists/acme/subscriptions/{'u' * 301}", headers=headers)
    assert long_user.status_code == 400
    assert long_user.json()["field"] == "user_id"
    assert list_ids(client, keys.test) == []

    no_name = client.put("/lists/acme", json={}, headers=headers)
    assert no_name.status_code == 400
    assert no_name.json()["field"] == "name"
    preferences = client.put(
        "/lists/acme", json={"name": "A", "preferences": OPTED_OUT}, headers=headers
    )
    assert preferences.status_code == 400
    assert preferences.json()["field"] == "preferences"
    assert list_ids(client, keys.test) == []


def test_pattern_listing(client: TestClient, keys: Keys) -> None:
    for list_id in ["acme", "acme.eng", "acme.ops", "acme.eng.oncall", "beta.eng", "acmex"]:
        put_list(client, keys.test, list_id)
    assert list_ids(client, keys.test, pattern="acme.*") == ["acme.eng", "acme.ops"]
    assert list_ids(client, keys.test, pattern="acme.**") == [
        "acme",
        "acme.eng",
        "acme.ops",
        "acme.eng.oncall",
    ]
    assert list_ids(client, keys.test, pattern="*.eng") == ["acme.eng", "beta.eng"]
    assert list_ids(client, keys.test, pattern="acme.eng") == ["acme.eng"]

    response = client.get("/lists", params={"pattern": "acme.**.oncall"}, headers=bearer(keys.test))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_list_pattern"
    assert body["field"] == "pattern"
    assert "**" in body["message"]
    for bad in ["acme..eng", "ac*me", "acme."]:
        response = client.get("/lists", params={"pattern": bad}, headers=bearer(keys.test))
        assert response.status_code == 400, bad
        assert response.json()["field"] == "pattern"


def test_pattern_listing_pages_with_a_cursor(client: TestClient, keys: Keys) -> None:
    for index in range(5):
        put_list(client, keys.test, f"acme.l{index}")
        put_list(client, keys.test, f"other.l{index}")
    headers = bearer(keys.test)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"pattern": "acme.*", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/lists", params=params, headers=headers).json()
        pages += 1
        seen += [item["id"] for item in body["items"]]
        if not body["paging"]["more"]:
            assert body["paging"]["cursor"] is None
            break
        cursor = body["paging"]["cursor"]
    assert seen == [f"acme.l{index}" for index in range(5)]
    assert pages == 3
    bad = client.get("/lists", params={"cursor": "nonsense"}, headers=headers)
    assert bad.status_code == 400
    assert bad.json()["field"] == "cursor"


def test_subscribe_one_creates_the_list_without_a_body(client: TestClient, keys: Keys) -> None:
    """Segment's Sync Audience action sends a bare PUT to a list that may not exist."""
    headers = bearer(keys.test)
    response = client.put("/lists/vip_users-aud_1/subscriptions/u1", headers=headers)
    assert response.status_code == 204
    empty_json = client.put(
        "/lists/vip_users-aud_1/subscriptions/u1",
        content=b"",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert empty_json.status_code == 204
    created = client.get("/lists/vip_users-aud_1", headers=headers).json()
    assert created["name"] == "vip_users-aud_1"
    assert subscribers(client, keys.test, "vip_users-aud_1") == {"u1": None}

    # With preferences, then again without: a bare PUT keeps them.
    client.put(
        "/lists/vip_users-aud_1/subscriptions/u1", json={"preferences": OPTED_OUT}, headers=headers
    )
    client.put("/lists/vip_users-aud_1/subscriptions/u1", headers=headers)
    assert subscribers(client, keys.test, "vip_users-aud_1") == {"u1": OPTED_OUT}

    page = client.get("/lists/vip_users-aud_1/subscriptions", headers=headers).json()
    assert page["paging"] == {"cursor": None, "more": False}
    assert page["items"][0]["created"].endswith("Z")

    bad = client.put(
        "/lists/vip_users-aud_1/subscriptions/u1",
        json={"preferences": {"notifications": {"digest": {"status": "MAYBE"}}}},
        headers=headers,
    )
    assert bad.status_code == 400
    assert bad.json()["field"].startswith("preferences.notifications.digest.status")


def test_unsubscribe_one_is_idempotent(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.put("/lists/acme/subscriptions/u1", headers=headers)
    client.put("/lists/acme/subscriptions/u2", headers=headers)
    assert client.delete("/lists/acme/subscriptions/u1", headers=headers).status_code == 204
    assert subscribers(client, keys.test, "acme") == {"u2": None}
    assert client.delete("/lists/acme/subscriptions/u1", headers=headers).status_code == 204
    assert client.delete("/lists/nowhere/subscriptions/u1", headers=headers).status_code == 204
    assert client.get("/lists/nowhere", headers=headers).status_code == 404


def test_post_subscriptions_adds_and_put_replaces(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    response = client.post(
        "/lists/acme/subscriptions",
        json={"recipients": [{"recipientId": "u1"}, {"recipientId": "u2"}]},
        headers=headers,
    )
    assert response.status_code == 204
    assert client.get("/lists/acme", headers=headers).status_code == 200
    before = client.get("/lists/acme/subscriptions", headers=headers).json()["items"]
    u2_created = next(item["created"] for item in before if item["recipientId"] == "u2")

    client.post(
        "/lists/acme/subscriptions",
        json={"recipients": [{"recipientId": "u3", "preferences": OPTED_OUT}]},
        headers=headers,
    )
    assert subscribers(client, keys.test, "acme") == {"u1": None, "u2": None, "u3": OPTED_OUT}

    response = client.put(
        "/lists/acme/subscriptions",
        json={
            "recipients": [{"recipientId": "u2", "preferences": OPTED_OUT}, {"recipientId": "u4"}]
        },
        headers=headers,
    )
    assert response.status_code == 204
    after = client.get("/lists/acme/subscriptions", headers=headers).json()["items"]
    assert {item["recipientId"]: item["preferences"] for item in after} == {
        "u2": OPTED_OUT,
        "u4": None,
    }
    assert next(item["created"] for item in after if item["recipientId"] == "u2") == u2_created
    assert user_list_ids(client, keys.test, "u1") == []

    client.put("/lists/acme/subscriptions", json={"recipients": []}, headers=headers)
    assert subscribers(client, keys.test, "acme") == {}

    missing = client.post("/lists/acme/subscriptions", json={}, headers=headers)
    assert missing.status_code == 400
    assert missing.json()["field"] == "recipients"
    empty_id = client.post(
        "/lists/acme/subscriptions", json={"recipients": [{"recipientId": ""}]}, headers=headers
    )
    assert empty_id.status_code == 400
    assert empty_id.json()["field"] == "recipients.0.recipientId"


def test_put_subscriptions_creates_the_list(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    response = client.put(
        "/lists/fresh/subscriptions", json={"recipients": [{"recipientId": "u1"}]}, headers=headers
    )
    assert response.status_code == 204
    assert client.get("/lists/fresh", headers=headers).json()["name"] == "fresh"
    assert subscribers(client, keys.test, "fresh") == {"u1": None}


def test_subscriptions_of_a_missing_list_are_a_404(client: TestClient, keys: Keys) -> None:
    response = client.get("/lists/ghost/subscriptions", headers=bearer(keys.test))
    assert response.status_code == 404
    assert response.json()["code"] == "list_not_found"


def test_subscriptions_page_with_a_cursor(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.post(
        "/lists/acme/subscriptions",
        json={"recipients": [{"recipientId": f"u{index}"} for index in range(5)]},
        headers=headers,
    )
    first = client.get("/lists/acme/subscriptions", params={"limit": 3}, headers=headers).json()
    assert [item["recipientId"] for item in first["items"]] == ["u0", "u1", "u2"]
    assert first["paging"]["more"] is True
    second = client.get(
        "/lists/acme/subscriptions",
        params={"limit": 3, "cursor": first["paging"]["cursor"]},
        headers=headers,
    ).json()
    assert [item["recipientId"] for item in second["items"]] == ["u3", "u4"]
    assert second["paging"] == {"cursor": None, "more": False}


def test_profile_lists(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    put_list(client, keys.test, "acme.eng", "Engineering")
    response = client.post(
        "/profiles/u1/lists",
        json={"lists": [{"listId": "acme.eng"}, {"listId": "acme.new", "preferences": OPTED_OUT}]},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json() == {"status": "SUCCESS"}
    assert client.get("/lists/acme.new", headers=headers).json()["name"] == "acme.new"
    assert subscribers(client, keys.test, "acme.new") == {"u1": OPTED_OUT}

    body = client.get("/profiles/u1/lists", headers=headers).json()
    assert body["paging"] == {"cursor": None, "more": False}
    results = body["results"]
    assert [(item["id"], item["name"], item["preferences"]) for item in results] == [
        ("acme.eng", "Engineering", None),
        ("acme.new", "acme.new", OPTED_OUT),
    ]
    assert set(results[0]) == {"id", "name", "created", "updated", "preferences"}

    bad = client.post(
        "/profiles/u1/lists",
        json={"lists": [{"listId": "ok"}, {"listId": "acme.*"}]},
        headers=headers,
    )
    assert bad.status_code == 400
    assert bad.json()["field"] == "lists[1].listId"
    assert client.get("/lists/ok", headers=headers).status_code == 404

    client.put("/lists/other/subscriptions/u2", headers=headers)
    response = client.delete("/profiles/u1/lists", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "SUCCESS"}
    assert user_list_ids(client, keys.test, "u1") == []
    assert user_list_ids(client, keys.test, "u2") == ["other"]
    assert client.get("/lists/acme.eng", headers=headers).status_code == 200


def test_environments_are_isolated(client: TestClient, keys: Keys) -> None:
    put_list(client, keys.test, "acme.eng", "Test eng")
    client.put("/lists/acme.eng/subscriptions/u1", headers=bearer(keys.test))
    production = bearer(keys.production)

    assert client.get("/lists/acme.eng", headers=production).status_code == 404
    assert list_ids(client, keys.production) == []
    assert list_ids(client, keys.production, pattern="acme.**") == []
    assert client.get("/lists/acme.eng/subscriptions", headers=production).status_code == 404
    assert user_list_ids(client, keys.production, "u1") == []
    assert client.delete("/lists/acme.eng", headers=production).status_code == 404

    # The same id in production is a separate list; changes there leave test alone.
    put_list(client, keys.production, "acme.eng", "Prod eng")
    client.put("/lists/acme.eng/subscriptions", json={"recipients": []}, headers=production)
    client.delete("/profiles/u1/lists", headers=production)
    assert client.get("/lists/acme.eng", headers=bearer(keys.test)).json()["name"] == "Test eng"
    assert subscribers(client, keys.test, "acme.eng") == {"u1": None}
    assert user_list_ids(client, keys.test, "u1") == ["acme.eng"]


def test_list_pattern_send_reaches_each_unique_user_once(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.put(
        "/lists/acme.eng/subscriptions",
        json={"recipients": [{"recipientId": "u1"}, {"recipientId": "u2"}]},
        headers=headers,
    )
    client.put(
        "/lists/acme.ops/subscriptions",
        json={"recipients": [{"recipientId": "u2"}, {"recipientId": "u3"}]},
        headers=headers,
    )
    client.put("/lists/beta.eng/subscriptions/u4", headers=headers)
    response = client.post(
        "/send",
        json={
            "message": {
                "to": {"list_pattern": "acme.**"},
                "content": {"title": "Hi", "body": "There"},
            }
        },
        headers=headers,
    )
    assert response.status_code == 202, response.text

    def settled() -> list[dict[str, Any]] | None:
        results: list[dict[str, Any]] = client.get("/messages", headers=headers).json()["results"]
        return results if all(item["status"] == "UNROUTABLE" for item in results) else None

    messages = wait_for(settled, what="messages UNROUTABLE")
    assert sorted(message["recipient"] for message in messages) == ["u1", "u2", "u3"]
