"""Audiences through the API: saving (Tidings' conditions and Courier's filters), members
kept up to date by events and profile writes, entry and exit triggers, time passing, the
scan after an edit, sends and erasure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.automation.test_runs import runs_of, segment
from tests.conftest import Keys, bearer
from tests.processes import wait_for
from tidings.automation import membership
from tidings.kit.time import utcnow
from tidings.models import AudienceCheck
from tidings.runtime import Runtime

PRICING = {
    "all": [
        {"trait": "plan", "equals": "free"},
        {"event": "Viewed Pricing", "at_least": 2, "within": "7 days"},
        {"not": {"event": "Upgraded"}},
    ]
}


def put(client: TestClient, key: str, audience_id: str, **body: Any) -> dict[str, Any]:
    response = client.put(f"/audiences/{audience_id}", json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    audience: dict[str, Any] = response.json()["audience"]
    return audience


def members(client: TestClient, key: str, audience_id: str) -> list[str]:
    response = client.get(f"/audiences/{audience_id}/members", headers=bearer(key))
    assert response.status_code == 200, response.text
    return [item["member_id"] for item in response.json()["items"]]


def ready(client: TestClient, key: str, audience_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = client.get(f"/audiences/{audience_id}", headers=bearer(key)).json()
    return body if body["scan"]["state"] == "ready" else None


def identify(client: TestClient, key: str, user: str, **traits: Any) -> None:
    segment(
        client,
        key,
        {"type": "identify", "userId": user, "messageId": f"id-{user}-{traits}", "traits": traits},
    )


def track(client: TestClient, key: str, user: str, name: str, number: int) -> None:
    segment(
        client,
        key,
        {"type": "track", "userId": user, "event": name, "messageId": f"{user}-{name}-{number}"},
    )


def test_events_move_a_user_in_and_out_and_each_move_starts_its_automation(
    client: TestClient, keys: Keys
) -> None:
    key = keys.test
    put(client, key, "pricing-hot", name="Viewed pricing twice", condition=PRICING)
    wait_for(lambda: ready(client, key, "pricing-hot"), what="the first scan")
    for on, marker in (("enter", "entered"), ("exit", "left")):
        response = client.put(
            f"/automations/on-{on}",
            json={
                "triggers": [{"source": "audience", "audience": "pricing-hot", "on": on}],
                "steps": [{"action": "update-profile", "profile": {marker: True}}],
            },
            headers=bearer(key),
        )
        assert response.status_code == 201, response.text
    identify(client, key, "ana", plan="free", email="ana@example.com")
    track(client, key, "ana", "Viewed Pricing", 1)
    track(client, key, "ana", "Viewed Pricing", 2)
    wait_for(lambda: members(client, key, "pricing-hot") == ["ana"], what="ana's entry")
    # A third view re-evaluates; she is already in, so nothing starts again.
    track(client, key, "ana", "Viewed Pricing", 3)
    profile = wait_for(
        lambda: (
            client.get("/profiles/ana", headers=bearer(key)).json()["profile"].get("entered")
            and client.get("/profiles/ana", headers=bearer(key)).json()["profile"]
        ),
        what="the enter automation's run",
    )
    assert "left" not in profile
    track(client, key, "ana", "Upgraded", 1)
    wait_for(lambda: members(client, key, "pricing-hot") == [], what="ana's exit")
    wait_for(
        lambda: client.get("/profiles/ana", headers=bearer(key)).json()["profile"].get("left"),
        what="the exit automation's run",
    )
    sources = sorted(run["source"][0] for run in runs_of(client, key))
    assert sources == ["audience/pricing-hot/enter", "audience/pricing-hot/exit"]
    history = client.get("/audiences/pricing-hot/history", headers=bearer(key)).json()["items"]
    assert [(item["member_id"], item["left_at"] is not None) for item in history] == [("ana", True)]


def test_a_profile_write_and_a_list_subscription_move_members(
    client: TestClient, keys: Keys
) -> None:
    key = keys.test
    put(
        client,
        key,
        "beta-pros",
        condition={"all": [{"trait": "plan", "equals": "pro"}, {"list": "beta"}]},
    )
    wait_for(lambda: ready(client, key, "beta-pros"), what="the first scan")
    assert client.post(
        "/profiles/bo", json={"profile": {"plan": "pro"}}, headers=bearer(key)
    ).status_code in (200, 202)
    assert members(client, key, "beta-pros") == []
    response = client.put("/lists/beta/subscriptions/bo", headers=bearer(key))
    assert response.status_code == 204, response.text
    assert members(client, key, "beta-pros") == ["bo"]
    response = client.delete("/lists/beta/subscriptions/bo", headers=bearer(key))
    assert members(client, key, "beta-pros") == []


def test_an_edit_rescans_every_user_and_reports_progress(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    key = keys.test
    for number in range(7):
        client.post(
            f"/profiles/user-{number}",
            json={"profile": {"seats": number}},
            headers=bearer(key),
        )
    saved = put(client, key, "big", condition={"trait": "seats", "gte": 5})
    assert saved["version"] == 1
    body = wait_for(lambda: ready(client, key, "big"), what="the scan")
    assert (body["member_count"], body["scan"]["scanned"]) == (2, 7)
    assert members(client, key, "big") == ["user-5", "user-6"]
    saved = put(client, key, "big", condition={"trait": "seats", "lt": 2})
    assert saved["version"] == 2
    body = wait_for(lambda: ready(client, key, "big"), what="the second scan")
    assert body["member_count"] == 2
    assert sorted(members(client, key, "big")) == ["user-0", "user-1"]
    # The same condition again is no edit: no new version, no scan.
    assert (
        put(client, key, "big", name="Small", condition={"trait": "seats", "lt": 2})["version"] == 2
    )


def test_a_window_passing_an_event_moves_the_user_out_without_a_new_event(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    key = keys.test
    put(client, key, "recent", condition={"event": "Visited", "within": "1 hour"})
    wait_for(lambda: ready(client, key, "recent"), what="the first scan")
    track(client, key, "cy", "Visited", 1)
    wait_for(lambda: members(client, key, "recent") == ["cy"], what="cy's entry")
    with runtime.database.read() as session:
        (check,) = session.scalars(select(AudienceCheck)).all()
    assert check.user_id == "cy"
    assert membership.check_due(runtime.database, utcnow()) == 0
    assert membership.check_due(runtime.database, check.check_at + timedelta(seconds=1)) == 1
    assert members(client, key, "recent") == []
    with runtime.database.read() as session:
        assert session.scalars(select(AudienceCheck)).all() == []


def test_a_send_to_an_audience_reaches_its_members_and_erasure_removes_them(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    key = keys.test
    put(client, key, "germans", condition={"trait": "country", "equals": "DE"})
    wait_for(lambda: ready(client, key, "germans"), what="the first scan")
    for user, country in (("di", "DE"), ("ed", "FR"), ("fa", "DE")):
        client.post(
            f"/profiles/{user}", json={"profile": {"country": country}}, headers=bearer(key)
        )
    assert members(client, key, "germans") == ["di", "fa"]
    response = client.post(
        "/send",
        json={
            "message": {
                "to": {"audience_id": "germans"},
                "content": {"title": "Hallo", "body": "Guten Tag"},
                "routing": {"method": "single", "channels": ["email"]},
            }
        },
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    sent = wait_for(
        lambda: (
            (
                found := client.get("/messages", params={"tags": ""}, headers=bearer(key)).json()[
                    "results"
                ]
            )
            and len(found) == 2
            and found
        ),
        what="two messages",
    )
    assert sorted(message["recipient"] for message in sent) == ["di", "fa"]
    response = client.post(
        "/send",
        json={"message": {"to": {"audience_id": "nobody"}, "content": {"body": "x"}}},
        headers=bearer(key),
    )
    assert response.status_code == 400
    assert response.json()["field"] == "message.to.audience_id"
    segment(client, key, {"type": "delete", "userId": "di", "messageId": "forget-di"})
    wait_for(lambda: members(client, key, "germans") == ["fa"], what="di's erasure")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "condition", "either `condition`"),
        ({"condition": {"trait": "plan"}}, "condition", "exactly one operator"),
        (
            {"condition": {"all": [{"event": "X", "within": "soon"}]}},
            "condition.all[0].within",
            "is not a duration",
        ),
        ({"filter": {"filters": [{"operator": "NOPE"}]}}, "filter.filters[0].operator", "NOPE"),
        ({"condition": {"list": "x"}, "filter": {"filters": []}}, "condition", "not both"),
    ],
)
def test_a_bad_definition_is_a_400_at_its_field(
    client: TestClient, keys: Keys, body: dict[str, Any], field: str, message: str
) -> None:
    response = client.put("/audiences/bad", json=body, headers=bearer(keys.test))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert message in response.json()["message"]
    assert client.get("/audiences/bad", headers=bearer(keys.test)).status_code == 404
    response = client.put(
        "/audiences/bad id", json={"condition": {"list": "x"}}, headers=bearer(keys.test)
    )
    assert response.status_code == 400


def test_a_preview_counts_a_draft_without_writing(
    client: TestClient, keys: Keys, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidings.audience.conditions import parse
    from tidings.models import AudienceMember
    from tidings.workspace.service import resolve_keys

    for number in range(5):
        client.post(
            f"/profiles/p-{number}", json={"profile": {"seats": number}}, headers=bearer(keys.test)
        )
    with runtime.database.read() as session:
        environment_id = resolve_keys(session, runtime.cipher, [keys.test])[
            keys.test
        ].environment_id
        draft = parse({"trait": "seats", "gte": 3})
        found = membership.preview(session, environment_id, draft)
        assert (found.matches, found.evaluated, found.complete) == (2, 5, True)
        assert found.sample == ["p-3", "p-4"]
        monkeypatch.setattr(membership, "SCAN_CHUNK", 2)
        partial = membership.preview(session, environment_id, draft, limit=2)
        assert (partial.evaluated, partial.complete) == (2, False)
        assert session.scalars(select(AudienceMember)).all() == []
