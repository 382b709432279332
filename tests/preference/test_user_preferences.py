"""A user's preferences per topic, in Courier's shapes."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tidings.models import UserPreference
from tidings.runtime import Runtime


def setup_topics(client: TestClient, key: str) -> None:
    for topic_id, name, default_status in (
        ("digest", "Weekly digest", "OPTED_IN"),
        ("promos", "Promotions", "OPTED_OUT"),
        ("security", "Security alerts", "REQUIRED"),
    ):
        response = client.put(
            f"/preferences/topics/{topic_id}",
            json={"name": name, "default_status": default_status},
            headers=bearer(key),
        )
        assert response.status_code == 201


def put(client: TestClient, key: str, topic_id: str, topic: dict[str, Any]) -> Any:
    return client.put(
        f"/users/u1/preferences/{topic_id}", json={"topic": topic}, headers=bearer(key)
    )


def test_without_choices_every_topic_shows_its_default(client: TestClient, keys: Keys) -> None:
    setup_topics(client, keys.test)
    response = client.get("/users/u1/preferences", headers=bearer(keys.test))
    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "topic_id": "digest",
                "topic_name": "Weekly digest",
                "status": "OPTED_IN",
                "default_status": "OPTED_IN",
                "has_custom_routing": False,
                "custom_routing": [],
            },
            {
                "topic_id": "promos",
                "topic_name": "Promotions",
                "status": "OPTED_OUT",
                "default_status": "OPTED_OUT",
                "has_custom_routing": False,
                "custom_routing": [],
            },
            {
                "topic_id": "security",
                "topic_name": "Security alerts",
                "status": "REQUIRED",
                "default_status": "REQUIRED",
                "has_custom_routing": False,
                "custom_routing": [],
            },
        ],
        "paging": {"cursor": None, "more": False},
    }


def test_put_then_get_one_topic(client: TestClient, keys: Keys) -> None:
    setup_topics(client, keys.test)
    response = put(
        client,
        keys.test,
        "promos",
        {"status": "OPTED_IN", "has_custom_routing": True, "custom_routing": ["sms", "email"]},
    )
    assert response.status_code == 200
    assert response.json() == {"message": "success"}
    response = client.get("/users/u1/preferences/promos", headers=bearer(keys.test))
    assert response.json() == {
        "topic": {
            "topic_id": "promos",
            "topic_name": "Promotions",
            "status": "OPTED_IN",
            "default_status": "OPTED_OUT",
            "has_custom_routing": True,
            "custom_routing": ["sms", "email"],
        }
    }
    listed = client.get("/users/u1/preferences", headers=bearer(keys.test)).json()["items"]
    assert [item["status"] for item in listed] == ["OPTED_IN", "OPTED_IN", "REQUIRED"]
    other_user = client.get("/users/u2/preferences/promos", headers=bearer(keys.test)).json()
    assert other_user["topic"]["status"] == "OPTED_OUT"


def test_put_replaces_the_routing_fields(client: TestClient, keys: Keys, runtime: Runtime) -> None:
    setup_topics(client, keys.test)
    put(
        client,
        keys.test,
        "digest",
        {"status": "OPTED_IN", "has_custom_routing": True, "custom_routing": ["push"]},
    )
    put(client, keys.test, "digest", {"status": "OPTED_OUT"})
    with runtime.database.read() as session:
        rows = session.query(UserPreference).all()
        assert [
            (row.user_id, row.topic_id, row.status, row.has_custom_routing, row.custom_routing)
            for row in rows
        ] == [("u1", "digest", "OPTED_OUT", False, [])]


def test_courier_direct_message_is_chat_and_duplicates_collapse(
    client: TestClient, keys: Keys
) -> None:
    setup_topics(client, keys.test)
    response = put(
        client,
        keys.test,
        "digest",
        {
            "status": "OPTED_IN",
            "has_custom_routing": True,
            "custom_routing": ["direct_message", "email", "chat"],
        },
    )
    assert response.status_code == 200
    topic = client.get("/users/u1/preferences/digest", headers=bearer(keys.test)).json()["topic"]
    assert topic["custom_routing"] == ["chat", "email"]


def test_required_topic_cannot_be_opted_out_of(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    setup_topics(client, keys.test)
    response = put(client, keys.test, "security", {"status": "OPTED_OUT"})
    assert response.status_code == 400
    assert response.json() == {
        "code": "topic_required",
        "message": "Subscription topic 'security' is REQUIRED, so users cannot opt out of it. "
        "Send status OPTED_IN (custom routing still applies), or change the topic's "
        "default_status.",
        "field": "topic.status",
    }
    with runtime.database.read() as session:
        assert session.query(UserPreference).count() == 0
    response = put(
        client,
        keys.test,
        "security",
        {"status": "OPTED_IN", "has_custom_routing": True, "custom_routing": ["sms"]},
    )
    assert response.status_code == 200


def test_required_is_not_a_user_choice(client: TestClient, keys: Keys) -> None:
    setup_topics(client, keys.test)
    response = put(client, keys.test, "digest", {"status": "REQUIRED"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_status"
    assert body["field"] == "topic.status"


def test_unknown_topic_is_a_404(client: TestClient, keys: Keys) -> None:
    response = put(client, keys.test, "ghost", {"status": "OPTED_IN"})
    assert response.status_code == 404
    assert response.json()["code"] == "topic_not_found"
    response = client.get("/users/u1/preferences/ghost", headers=bearer(keys.test))
    assert response.status_code == 404
    assert response.json()["field"] == "topic_id"


def test_custom_routing_must_name_channels(client: TestClient, keys: Keys) -> None:
    setup_topics(client, keys.test)
    response = put(
        client,
        keys.test,
        "digest",
        {"status": "OPTED_IN", "has_custom_routing": True, "custom_routing": ["email", "fax"]},
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_channel",
        "message": "'fax' is not a channel. custom_routing entries must be channel names: "
        "email, sms, push, chat, webhook, inbox (direct_message is accepted for chat).",
        "field": "topic.custom_routing.1",
    }
    response = put(client, keys.test, "digest", {"status": "OPTED_IN", "has_custom_routing": True})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_custom_routing"
    response = put(client, keys.test, "digest", {"status": "OPTED_IN", "extra": 1})
    assert response.status_code == 400
    assert response.json()["field"] == "topic.extra"


def test_tenant_scoped_preferences_are_refused(client: TestClient, keys: Keys) -> None:
    setup_topics(client, keys.test)
    response = client.put(
        "/users/u1/preferences/digest?tenant_id=acme",
        json={"topic": {"status": "OPTED_OUT"}},
        headers=bearer(keys.test),
    )
    assert response.status_code == 400
    assert response.json()["code"] == "tenant_preferences_unsupported"


def test_delete_returns_the_user_to_the_default(client: TestClient, keys: Keys) -> None:
    setup_topics(client, keys.test)
    put(client, keys.test, "digest", {"status": "OPTED_OUT"})
    response = client.delete("/users/u1/preferences/digest", headers=bearer(keys.test))
    assert response.status_code == 204
    topic = client.get("/users/u1/preferences/digest", headers=bearer(keys.test)).json()["topic"]
    assert topic["status"] == "OPTED_IN"


def test_preferences_page_with_a_cursor(client: TestClient, keys: Keys) -> None:
    setup_topics(client, keys.test)
    first = client.get("/users/u1/preferences?limit=2", headers=bearer(keys.test)).json()
    assert [item["topic_id"] for item in first["items"]] == ["digest", "promos"]
    assert first["paging"]["more"] is True
    second = client.get(
        f"/users/u1/preferences?limit=2&cursor={first['paging']['cursor']}",
        headers=bearer(keys.test),
    ).json()
    assert [item["topic_id"] for item in second["items"]] == ["security"]
    assert second["paging"] == {"cursor": None, "more": False}


def test_preferences_are_scoped_to_the_environment(client: TestClient, keys: Keys) -> None:
    setup_topics(client, keys.test)
    put(client, keys.test, "digest", {"status": "OPTED_OUT"})
    production = bearer(keys.production)
    assert client.get("/users/u1/preferences", headers=production).json()["items"] == []
    assert client.get("/users/u1/preferences/digest", headers=production).status_code == 404
    response = client.put(
        "/users/u1/preferences/digest", json={"topic": {"status": "OPTED_IN"}}, headers=production
    )
    assert response.status_code == 404
    topic = client.get("/users/u1/preferences/digest", headers=bearer(keys.test)).json()["topic"]
    assert topic["status"] == "OPTED_OUT"
