"""Profiles API in Courier's semantics: POST merges, PUT replaces, PATCH is JSON Patch."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer


def get(client: TestClient, key: str, user_id: str = "u1") -> Any:
    return client.get(f"/profiles/{user_id}", headers=bearer(key))


def test_unknown_user_is_a_clear_404(client: TestClient, keys: Keys) -> None:
    response = get(client, keys.test, "ghost")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "profile_not_found"
    assert body["field"] == "user_id"
    assert "ghost" in body["message"]


def test_post_merges_and_creates(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    response = client.post(
        "/profiles/u1",
        json={"profile": {"email": "a@example.org", "address": {"city": "Lyon", "zip": "69001"}}},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json() == {"status": "SUCCESS"}
    client.post(
        "/profiles/u1",
        json={"profile": {"phone_number": "+15550100", "address": {"city": "Paris"}}},
        headers=headers,
    )
    assert get(client, keys.test).json() == {
        "profile": {
            "email": "a@example.org",
            "phone_number": "+15550100",
            "address": {"city": "Paris", "zip": "69001"},
        }
    }


def test_put_replaces_the_whole_profile(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.post(
        "/profiles/u1", json={"profile": {"email": "a@example.org", "x": 1}}, headers=headers
    )
    response = client.put("/profiles/u1", json={"profile": {"phone_number": "1"}}, headers=headers)
    assert response.status_code == 200
    assert get(client, keys.test).json() == {"profile": {"phone_number": "1"}}
    client.put("/profiles/u1", json={"profile": {}}, headers=headers)
    assert get(client, keys.test).json() == {"profile": {}}


def test_patch_applies_json_patch_operations(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.post(
        "/profiles/u1",
        json={"profile": {"email": "a@example.org", "tags": ["a"], "old": 1}},
        headers=headers,
    )
    response = client.patch(
        "/profiles/u1",
        json={
            "patch": [
                {"op": "test", "path": "/email", "value": "a@example.org"},
                {"op": "replace", "path": "/email", "value": "b@example.org"},
                {"op": "add", "path": "/tags/-", "value": "b"},
                {"op": "move", "from": "/old", "path": "/new"},
                {"op": "copy", "from": "/email", "path": "/backup_email"},
                {"op": "remove", "path": "/backup_email"},
            ]
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert get(client, keys.test).json()["profile"] == {
        "email": "b@example.org",
        "tags": ["a", "b"],
        "new": 1,
    }


def test_patch_creates_a_missing_profile(client: TestClient, keys: Keys) -> None:
    response = client.patch(
        "/profiles/fresh",
        json={"patch": [{"op": "add", "path": "/email", "value": "f@example.org"}]},
        headers=bearer(keys.test),
    )
    assert response.status_code == 200
    assert get(client, keys.test, "fresh").json() == {"profile": {"email": "f@example.org"}}


def test_patch_is_all_or_nothing(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.post("/profiles/u1", json={"profile": {"email": "a@example.org"}}, headers=headers)
    failed_test = client.patch(
        "/profiles/u1",
        json={
            "patch": [
                {"op": "replace", "path": "/email", "value": "z@example.org"},
                {"op": "test", "path": "/email", "value": "nope"},
            ]
        },
        headers=headers,
    )
    assert failed_test.status_code == 400
    assert failed_test.json()["code"] == "patch_test_failed"
    missing_path = client.patch(
        "/profiles/u1",
        json={"patch": [{"op": "remove", "path": "/does/not/exist"}]},
        headers=headers,
    )
    assert missing_path.status_code == 400
    assert missing_path.json()["code"] == "invalid_patch"
    assert missing_path.json()["field"] == "patch"
    assert get(client, keys.test).json() == {"profile": {"email": "a@example.org"}}


def test_invalid_bodies_are_400_naming_the_field(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    no_profile = client.post("/profiles/u1", json={"email": "a@example.org"}, headers=headers)
    assert no_profile.status_code == 400
    assert no_profile.json()["code"] == "invalid_request"
    assert no_profile.json()["field"] in ("profile", "email")
    bad_op = client.patch(
        "/profiles/u1", json={"patch": [{"op": "frobnicate", "path": "/a"}]}, headers=headers
    )
    assert bad_op.status_code == 400
    assert bad_op.json()["field"] == "patch.0.op"
    not_json = client.post(
        "/profiles/u1", content=b"{oops", headers={**headers, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["code"] == "invalid_json"


def test_delete_removes_the_profile_and_its_memberships(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    client.post("/profiles/u1", json={"profile": {"email": "a@example.org"}}, headers=headers)
    response = client.delete("/profiles/u1", headers=headers)
    assert response.status_code == 204
    assert get(client, keys.test).status_code == 404
    assert client.delete("/profiles/u1", headers=headers).status_code == 404


def test_profiles_need_a_key(client: TestClient) -> None:
    response = client.get("/profiles/u1")
    assert response.status_code == 401
    assert response.json()["code"] == "missing_api_key"
