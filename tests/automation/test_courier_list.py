"""`GET /automations` in Courier's list shape, beside Tidings' own."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer


def test_templates_and_cursor_page_like_results_and_paging(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    for index in range(3):
        body = {"name": f"Flow {index}", "steps": [{"action": "cancel", "cancelation_token": "x"}]}
        assert client.put(f"/automations/a{index}", json=body, headers=headers).status_code == 201

    first = client.get("/automations?limit=2", headers=headers).json()
    assert [(t["id"], t["name"], t["version"]) for t in first["templates"]] == [
        ("a0", "Flow 0", "published"),
        ("a1", "Flow 1", "published"),
    ]
    assert first["templates"][0]["createdAt"] == first["results"][0]["created_at"]
    assert first["templates"][0]["updatedAt"] == first["results"][0]["updated_at"]
    assert first["cursor"] is not None
    assert first["cursor"] == first["paging"]["cursor"]

    rest = client.get(f"/automations?limit=2&cursor={first['cursor']}", headers=headers).json()
    assert [t["id"] for t in rest["templates"]] == ["a2"]
    assert rest["cursor"] is None
    assert rest["paging"] == {"cursor": None, "more": False}

    drafts = client.get("/automations?version=draft", headers=headers).json()
    assert (drafts["templates"], drafts["results"], drafts["cursor"]) == ([], [], None)
    wrong = client.get("/automations?version=latest", headers=headers)
    assert (wrong.status_code, wrong.json()["field"]) == (400, "version")
