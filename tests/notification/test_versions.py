"""Template versions: every save that changes a template is recorded, whoever saved it;
restoring a version saves a new one with its content, through the checks of a save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.conftest import Keys, bearer
from tidings.automation import apply
from tidings.config import Settings
from tidings.kit.outbound import OutboundGuard
from tidings.migrate import alembic_config, upgrade
from tidings.notification import service
from tidings.runtime import Runtime, build_runtime

FIRST: dict[str, Any] = {
    "name": "Welcome",
    "content": {
        "email": {"subject": "Hello {{ profile.name }}", "html": "", "text": "Welcome aboard"}
    },
}
SECOND: dict[str, Any] = {
    "name": "Welcome",
    "content": {
        "email": {"subject": "Hi {{ profile.name }}", "html": "", "text": "Welcome aboard"}
    },
    "routing": {"method": "single", "channels": ["email"]},
    "strict": True,
}


def put(client: TestClient, key: str, notification_id: str, body: Any) -> Any:
    response = client.put(f"/notifications/{notification_id}", json=body, headers=bearer(key))
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_each_change_is_a_version_with_the_whole_template_and_its_saver(
    client: TestClient, keys: Keys
) -> None:
    headers = bearer(keys.test)
    put(client, keys.test, "welcome", FIRST)
    put(client, keys.test, "welcome", FIRST)  # unchanged: no new version
    put(client, keys.test, "welcome", SECOND)
    listing = client.get("/notifications/welcome/versions", headers=headers).json()
    assert listing["paging"] == {"cursor": None, "more": False}
    first, second = listing["results"]
    assert (first["version"], second["version"]) == (1, 2)
    assert first["content"] == FIRST["content"]
    assert (first["routing"], first["strict"], first["topic_id"]) == (None, False, None)
    assert second["content"] == SECOND["content"]
    assert second["routing"] == {"method": "single", "channels": ["email"]}
    assert second["strict"] is True
    assert {first["saved_by"], second["saved_by"]} == {keys.test_id}
    assert second["restored_from"] is None
    one = client.get("/notifications/welcome/versions/1", headers=headers)
    assert one.json() == first
    paged = client.get("/notifications/welcome/versions?limit=1", headers=headers).json()
    assert [v["version"] for v in paged["results"]] == [1]
    assert paged["paging"]["more"] is True
    rest = client.get(
        f"/notifications/welcome/versions?limit=1&cursor={paged['paging']['cursor']}",
        headers=headers,
    ).json()
    assert [v["version"] for v in rest["results"]] == [2]


def test_a_missing_version_or_template_is_a_404_naming_it(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    put(client, keys.test, "welcome", FIRST)
    missing = client.get("/notifications/welcome/versions/7", headers=headers)
    assert missing.status_code == 404
    error = missing.json()
    assert error["code"] == "notification_version_not_found"
    assert "no version 7" in error["message"]
    assert "1 to 1" in error["message"]
    restore = client.post("/notifications/welcome/versions/7/restore", headers=headers)
    assert restore.status_code == 404
    assert restore.json()["code"] == "notification_version_not_found"
    other = client.get("/notifications/nope/versions", headers=headers)
    assert other.status_code == 404
    assert other.json()["code"] == "notification_not_found"
    # Versions belong to the environment of the template.
    production = client.get("/notifications/welcome/versions", headers=bearer(keys.production))
    assert production.status_code == 404


def test_restore_saves_a_new_version_with_the_old_content(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    put(client, keys.test, "welcome", FIRST)
    put(client, keys.test, "welcome", SECOND)
    restored = client.post("/notifications/welcome/versions/1/restore", headers=headers)
    assert restored.status_code == 200, restored.text
    body = restored.json()
    assert (body["version"], body["restored_from"]) == (3, 1)
    assert body["content"] == FIRST["content"]
    current = client.get("/notifications/welcome", headers=headers).json()
    assert current["content"] == FIRST["content"]
    assert (current["routing"], current["strict"]) == (None, False)
    history = client.get("/notifications/welcome/versions", headers=headers).json()["results"]
    assert [v["version"] for v in history] == [1, 2, 3]
    assert history[1]["content"] == SECOND["content"]  # history is never rewritten
    # The template already is version 1: nothing new to save.
    again = client.post("/notifications/welcome/versions/1/restore", headers=headers)
    assert again.json()["version"] == 3
    history = client.get("/notifications/welcome/versions", headers=headers).json()["results"]
    assert len(history) == 3


def test_restore_goes_through_the_checks_of_a_save(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    topic = {"name": "Digest", "default_status": "OPTED_IN"}
    assert client.put("/preferences/topics/digest", json=topic, headers=headers).is_success
    put(client, keys.test, "digest", {**FIRST, "topic_id": "digest"})
    put(client, keys.test, "digest", FIRST)
    assert client.delete("/preferences/topics/digest", headers=headers).status_code == 204
    refused = client.post("/notifications/digest/versions/1/restore", headers=headers)
    assert refused.status_code == 400
    assert refused.json()["code"] == "unknown_topic"
    assert refused.json()["field"] == "topic_id"
    history = client.get("/notifications/digest/versions", headers=headers).json()["results"]
    assert [v["version"] for v in history] == [1, 2]


def test_tidings_apply_records_versions_as_cli(runtime: Runtime, tmp_path: Path) -> None:
    file = tmp_path / "welcome.yaml"
    file.write_text("kind: notification\nid: welcome\ncontent:\n  sms: {text: Hi}\n")
    with runtime.database.write() as (session, outbox):
        scope = apply.environment_scope(session, "test")
        documents = apply.read_documents(file)
        guard = OutboundGuard()
        assert apply.apply_documents(session, outbox, scope, documents, guard) == [
            "created notification welcome"
        ]
        assert apply.apply_documents(session, outbox, scope, documents, guard) == [
            "unchanged notification welcome"
        ]
        version = service.get_version(session, scope, "welcome", 1)
        assert (version.saved_by, version.content) == ("cli", {"sms": {"text": "Hi"}})


BEFORE_VERSIONS = "c3a1d7e5f902"


def test_templates_saved_before_versions_start_their_history_at_one(tmp_path: Path) -> None:
    runtime = build_runtime(Settings(data_dir=tmp_path / "data"))
    try:
        config = alembic_config()
        with runtime.database.write_engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, BEFORE_VERSIONS)
            connection.commit()
            for statement in (
                "INSERT INTO workspace (id, name, created_at) "
                "VALUES ('ws_1', 'Old', '2026-01-01 00:00:00')",
                "INSERT INTO environment (id, workspace_id, name, created_at) "
                "VALUES ('env_1', 'ws_1', 'test', '2026-01-01 00:00:00')",
                "INSERT INTO notification (workspace_id, environment_id, notification_id, name, "
                "content, routing, strict, topic_id, created_at, updated_at) VALUES ('ws_1', "
                """'env_1', 'old', 'Old one', '{"sms": {"text": "Hi"}}', NULL, 1, NULL, """
                "'2026-01-01 00:00:00', '2026-02-01 00:00:00')",
            ):
                connection.execute(text(statement))
            connection.commit()
        upgrade(runtime.database)
        with runtime.database.read() as session:
            scope = apply.environment_scope(session, "test")
            version = service.get_version(session, scope, "old", 1)
            assert (version.name, version.content, version.strict) == (
                "Old one",
                {"sms": {"text": "Hi"}},
                True,
            )
            assert version.saved_by is None
            assert version.created_at.isoformat().startswith("2026-02-01")
    finally:
        runtime.close()


def test_a_deleted_template_takes_its_versions_with_it(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    put(client, keys.test, "welcome", FIRST)
    put(client, keys.test, "welcome", SECOND)
    assert client.delete("/notifications/welcome", headers=headers).status_code == 204
    assert client.get("/notifications/welcome/versions", headers=headers).status_code == 404
    put(client, keys.test, "welcome", SECOND)
    history = client.get("/notifications/welcome/versions", headers=headers).json()["results"]
    assert [(v["version"], v["content"]) for v in history] == [(1, SECOND["content"])]
