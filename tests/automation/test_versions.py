"""Automation versions record who saved them; restoring a version saves a new one with its
definition, through the checks of a save."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.automation.test_endpoints import put, templates
from tests.conftest import Keys, bearer


def definition(template: str, enabled: bool = True) -> dict[str, Any]:
    return {
        "name": "Onboarding",
        "enabled": enabled,
        "triggers": [{"source": "segment", "event": "track/Signed Up"}],
        "steps": [{"action": "send", "template": template}],
    }


def test_restore_saves_a_new_version_with_the_old_definition(
    client: TestClient, keys: Keys
) -> None:
    headers = bearer(keys.test)
    templates(client, keys.test, "welcome", "welcome-v2")
    assert put(client, keys.test, "onboarding", definition("welcome")).status_code == 201
    assert put(client, keys.test, "onboarding", definition("welcome-v2", False)).is_success
    restored = client.post("/automations/onboarding/versions/1/restore", headers=headers)
    assert restored.status_code == 200, restored.text
    body = restored.json()
    assert (body["version"], body["restored_from"], body["saved_by"]) == (3, 1, keys.test_id)
    current = client.get("/automations/onboarding", headers=headers).json()
    assert current["version"] == 3
    assert current["enabled"] is True
    assert current["steps"][0]["template"] == "welcome"
    history = client.get("/automations/onboarding/versions", headers=headers).json()["results"]
    assert [(v["version"], v["steps"][0]["template"]) for v in history] == [
        (1, "welcome"),
        (2, "welcome-v2"),
        (3, "welcome"),
    ]
    assert [v["saved_by"] for v in history] == [keys.test_id] * 3
    # Already the current definition: nothing new is saved.
    again = client.post("/automations/onboarding/versions/3/restore", headers=headers)
    assert again.json()["version"] == 3
    missing = client.post("/automations/onboarding/versions/9/restore", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "automation_version_not_found"
    assert "no version 9" in missing.json()["message"]


def test_restore_checks_references_as_a_save_does(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    templates(client, keys.test, "welcome", "welcome-v2")
    put(client, keys.test, "onboarding", definition("welcome"))
    put(client, keys.test, "onboarding", definition("welcome-v2"))
    assert client.delete("/notifications/welcome", headers=headers).status_code == 204
    refused = client.post("/automations/onboarding/versions/1/restore", headers=headers)
    assert refused.status_code == 400
    assert refused.json()["field"] == "steps[0].template"
    assert "welcome" in refused.json()["message"]
    assert client.get("/automations/onboarding", headers=headers).json()["version"] == 2
