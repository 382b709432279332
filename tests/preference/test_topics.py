"""Subscription topics: PUT creates or replaces, GET reads and lists, DELETE removes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tidings.models import UserPreference
from tidings.runtime import Runtime


def put_topic(
    client: TestClient, key: str, topic_id: str, name: str, default_status: str = "OPTED_IN"
) -> int:
    response = client.put(
        f"/preferences/topics/{topic_id}",
        json={"name": name, "default_status": default_status},
        headers=bearer(key),
    )
    return response.status_code


def test_put_creates_then_replaces_a_topic(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    response = client.put(
        "/preferences/topics/digest",
        json={"name": "Weekly digest", "default_status": "OPTED_IN"},
        headers=headers,
    )
    assert response.status_code == 201
    created = response.json()
    assert {key: created[key] for key in ("topic_id", "name", "default_status")} == {
        "topic_id": "digest",
        "name": "Weekly digest",
        "default_status": "OPTED_IN",
    }
    response = client.put(
        "/preferences/topics/digest",
        json={"name": "Monthly digest", "default_status": "OPTED_OUT"},
        headers=headers,
    )
    assert response.status_code == 200
    body = client.get("/preferences/topics/digest", headers=headers).json()
    assert body["name"] == "Monthly digest"
    assert body["default_status"] == "OPTED_OUT"
    assert body["created_at"] == created["created_at"]


def test_list_pages_through_topics(client: TestClient, keys: Keys) -> None:
    for index in range(3):
        assert put_topic(client, keys.test, f"t{index}", f"Topic {index}") == 201
    first = client.get("/preferences/topics?limit=2", headers=bearer(keys.test)).json()
    assert [item["topic_id"] for item in first["items"]] == ["t0", "t1"]
    assert first["paging"]["more"] is True
    second = client.get(
        f"/preferences/topics?limit=2&cursor={first['paging']['cursor']}",
        headers=bearer(keys.test),
    ).json()
    assert [item["topic_id"] for item in second["items"]] == ["t2"]
    assert second["paging"] == {"cursor": None, "more": False}


def test_delete_removes_the_topic_and_its_preferences(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    headers = bearer(keys.test)
    put_topic(client, keys.test, "digest", "Digest")
    client.put(
        "/users/u1/preferences/digest", json={"topic": {"status": "OPTED_OUT"}}, headers=headers
    )
    assert client.delete("/preferences/topics/digest", headers=headers).status_code == 204
    assert client.get("/preferences/topics/digest", headers=headers).status_code == 404
    with runtime.database.read() as session:
        assert session.query(UserPreference).count() == 0
    response = client.delete("/preferences/topics/digest", headers=headers)
    assert response.status_code == 404
    assert response.json()["code"] == "topic_not_found"


def test_delete_is_refused_while_a_notification_uses_the_topic(
    client: TestClient, keys: Keys
) -> None:
    headers = bearer(keys.test)
    put_topic(client, keys.test, "digest", "Digest")
    template = {"name": "Digest", "content": {"sms": {"text": "hi"}}, "topic_id": "digest"}
    assert client.put("/notifications/weekly", json=template, headers=headers).status_code == 201
    response = client.delete("/preferences/topics/digest", headers=headers)
    assert response.status_code == 409
    assert response.json() == {
        "code": "topic_in_use",
        "message": "Subscription topic 'digest' is used by notifications 'weekly'. Set their "
        "topic_id to another topic or to null, then delete the topic.",
        "field": "topic_id",
    }
    assert client.get("/preferences/topics/digest", headers=headers).status_code == 200


def test_bad_topic_input_is_a_clear_400(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    response = client.put(
        "/preferences/topics/digest",
        json={"name": "Digest", "default_status": "ON"},
        headers=headers,
    )
    assert response.status_code == 400
    assert response.json()["field"] == "default_status"
    response = client.put(
        "/preferences/topics/digest",
        json={"name": "", "default_status": "OPTED_IN"},
        headers=headers,
    )
    assert response.status_code == 400
    assert response.json()["field"] == "name"
    response = client.put(
        f"/preferences/topics/{'x' * 201}",
        json={"name": "Long", "default_status": "OPTED_IN"},
        headers=headers,
    )
    assert response.status_code == 400
    assert response.json()["field"] == "topic_id"


def test_unknown_topic_is_a_clear_404(client: TestClient, keys: Keys) -> None:
    response = client.get("/preferences/topics/ghost", headers=bearer(keys.test))
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "topic_not_found"
    assert body["field"] == "topic_id"
    assert "'ghost'" in body["message"]


def test_topics_are_scoped_to_the_environment(client: TestClient, keys: Keys) -> None:
    assert put_topic(client, keys.test, "digest", "Test digest") == 201
    production = bearer(keys.production)
    assert client.get("/preferences/topics/digest", headers=production).status_code == 404
    assert client.get("/preferences/topics", headers=production).json()["items"] == []
    assert client.delete("/preferences/topics/digest", headers=production).status_code == 404
    assert put_topic(client, keys.production, "digest", "Production digest") == 201
    assert (
        client.get("/preferences/topics/digest", headers=bearer(keys.test)).json()["name"]
        == "Test digest"
    )


def test_topics_need_an_api_key(client: TestClient) -> None:
    assert client.get("/preferences/topics").status_code == 401
