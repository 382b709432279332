"""Tracking settings on templates: saved, shown, versioned and restored with the template,
and applied from YAML by `tidings apply`."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tidings.automation import apply
from tidings.kit.outbound import OutboundGuard
from tidings.notification import service
from tidings.runtime import Runtime

CONTENT = {"email": {"subject": "Hi", "html": '<a href="https://example.com/">x</a>'}}


def test_a_templates_tracking_is_saved_versioned_and_restored(
    client: TestClient, keys: Keys
) -> None:
    headers = bearer(keys.test)
    first = client.put(
        "/notifications/news",
        json={"content": CONTENT, "tracking": {"opens": True, "clicks": True}},
        headers=headers,
    )
    assert first.status_code == 201, first.text
    assert first.json()["tracking"] == {"opens": True, "clicks": True}
    # A setting left out, or null, is the environment's: it is not stored.
    second = client.put(
        "/notifications/news",
        json={"content": CONTENT, "tracking": {"opens": False, "clicks": None}},
        headers=headers,
    )
    assert second.json()["tracking"] == {"opens": False}
    third = client.put("/notifications/news", json={"content": CONTENT}, headers=headers)
    assert third.json()["tracking"] is None
    versions = client.get("/notifications/news/versions", headers=headers).json()["results"]
    assert [v["tracking"] for v in versions] == [
        {"opens": True, "clicks": True},
        {"opens": False},
        None,
    ]
    restored = client.post("/notifications/news/versions/1/restore", headers=headers)
    assert restored.status_code == 200, restored.text
    assert restored.json()["tracking"] == {"opens": True, "clicks": True}
    current = client.get("/notifications/news", headers=headers).json()
    assert current["tracking"] == {"opens": True, "clicks": True}
    # The same template again is unchanged: no new version.
    again = client.put(
        "/notifications/news",
        json={"content": CONTENT, "tracking": {"opens": True, "clicks": True}},
        headers=headers,
    )
    assert again.status_code == 200
    assert len(client.get("/notifications/news/versions", headers=headers).json()["results"]) == 4


def test_tidings_apply_sets_a_templates_tracking(runtime: Runtime, tmp_path: Path) -> None:
    file = tmp_path / "news.yaml"
    file.write_text(
        "kind: notification\nid: news\ncontent:\n  email: {subject: Hi, html: <p>Hi</p>}\n"
        "tracking: {opens: true, clicks: false}\n"
    )
    with runtime.database.write() as (session, outbox):
        scope = apply.environment_scope(session, "test")
        documents = apply.read_documents(file)
        assert apply.apply_documents(session, outbox, scope, documents, OutboundGuard()) == [
            "created notification news"
        ]
        assert service.get(session, scope, "news").tracking == {"opens": True, "clicks": False}
