"""Replay: stored events run again through a version or a draft in a sandbox, diffed against
what the live automation did; nothing is sent or written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.automation.test_runs import put, segment, setup_email
from tests.conftest import Keys, bearer, run_cli, wait_for
from tests.payloads import identify, track
from tests.smtp_sink import SmtpSink
from tidings.config import Settings
from tidings.models import AutomationRun, Message, Profile
from tidings.runtime import Runtime

AUTOMATION = {
    "triggers": [{"source": "segment", "event": "track/Order Shipped"}],
    "steps": [{"action": "send", "template": "shipped"}],
}


def _live(client: TestClient, keys: Keys, smtp_sink: SmtpSink) -> None:
    """Version 1 processes two orders live: two emails sent."""
    setup_email(client, keys.test, smtp_sink)
    put(client, keys.test, "/automations/order-shipped", AUTOMATION)
    for user, name in (("u1", "Ada"), ("u2", "Bo")):
        segment(
            client,
            keys.test,
            identify(
                messageId=f"id-{user}", userId=user, traits={"email": f"{user}@x.org", "name": name}
            ),
        )
    for number, user in ((1, "u1"), (2, "u2")):
        segment(
            client,
            keys.test,
            track(
                messageId=f"m{number}",
                userId=user,
                event="Order Shipped",
                properties={"order_id": f"A-{number}", "carrier": "Posti"},
            ),
        )
    wait_for(lambda: len(smtp_sink.messages) == 2 or None, what="two emails")


def _counts(runtime: Runtime) -> tuple[int, int, int]:
    with runtime.database.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Message)) or 0,
            session.scalar(select(func.count()).select_from(AutomationRun)) or 0,
            session.scalar(select(func.count()).select_from(Profile)) or 0,
        )


def _window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }


def _replay(client: TestClient, keys: Keys, body: dict[str, Any]) -> dict[str, Any]:
    """Start a replay, wait until it is done, and read it with all its events."""
    started = client.post(
        "/automations/order-shipped/replay", json={**_window(), **body}, headers=bearer(keys.test)
    )
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    assert location == f"/automations/order-shipped/replays/{started.json()['replay_id']}"

    def finished() -> dict[str, Any] | None:
        replay: dict[str, Any] = client.get(location, headers=bearer(keys.test)).json()
        return replay if replay["status"] not in ("queued", "running") else None

    replay = wait_for(finished, what="the replay to finish", timeout=120)
    assert replay["status"] == "done", replay
    replay["events"] = []
    cursor = None
    while True:
        page = client.get(
            f"{location}/events",
            params={"limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=bearer(keys.test),
        ).json()
        replay["events"] += page["results"]
        cursor = page["paging"]["cursor"]
        if not page["paging"]["more"]:
            return replay


def test_replaying_the_live_version_changes_nothing_and_writes_nothing(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _live(client, keys, smtp_sink)
    before = _counts(runtime)
    result = _replay(client, keys, {})
    assert result["definition"] == "version 1"
    assert result["diff"]["counts"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 2}
    shipped = [event for event in result["events"] if event["type"] == "track"]
    assert [event["event"] for event in shipped] == ["m1", "m2"]
    (message,) = shipped[0]["messages"]
    assert message == {
        "event": "m1",
        "recipient": "u1",
        "channel": "email",
        "template": "shipped",
        "subject": "Order A-1 shipped, Ada",
    }
    assert shipped[0]["runs"][0]["status"] == "PROCESSED"
    assert _counts(runtime) == before
    assert len(smtp_sink.messages) == 2


def test_a_draft_with_a_changed_subject_and_a_skipped_fetch_reports_changes(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _live(client, keys, smtp_sink)
    before = _counts(runtime)
    draft = {
        **AUTOMATION,
        "steps": [
            # Not called in a replay: answered with {}, so it merges nothing.
            {"action": "fetch-data", "webhook": {"url": "https://example.org/o", "method": "GET"}},
            {"action": "send", "template": "shipped", "data": {"order_id": "Z-9"}},
        ],
    }
    result = _replay(client, keys, {"definition": draft, "samples": 2})
    assert result["definition"] == "draft"
    diff = result["diff"]
    assert diff["counts"] == {"added": 0, "removed": 0, "changed": 2, "unchanged": 0}
    samples = {sample["event"]: sample for sample in diff["samples"]["changed"]}
    assert set(samples) == {"m1", "m2"}
    sample = samples["m1"]
    assert sample["subject"] == "Order Z-9 shipped, Ada"
    assert sample["subject_before"] == "Order A-1 shipped, Ada"
    assert _counts(runtime) == before
    assert len(smtp_sink.messages) == 2


def test_a_draft_sending_another_template_to_fewer_users_adds_and_removes(
    client: TestClient, keys: Keys, smtp_sink: SmtpSink, runtime: Runtime
) -> None:
    _live(client, keys, smtp_sink)
    put(
        client,
        keys.test,
        "/notifications/shipped-short",
        {"content": {"email": {"subject": "Shipped!", "text": "On its way"}}},
    )
    draft = {
        **AUTOMATION,
        "steps": [{"action": "send", "template": "shipped-short"}],
    }
    result = _replay(client, keys, {"definition": draft})
    counts = result["diff"]["counts"]
    assert counts == {"added": 2, "removed": 2, "changed": 0, "unchanged": 0}
    added = {(s["event"], s["template"], s["subject"]) for s in result["diff"]["samples"]["added"]}
    assert added == {("m1", "shipped-short", "Shipped!"), ("m2", "shipped-short", "Shipped!")}
    removed = {(s["event"], s["template"]) for s in result["diff"]["samples"]["removed"]}
    assert removed == {("m1", "shipped"), ("m2", "shipped")}

    # Only the first event: the limit bounds the replay.
    limited = _replay(client, keys, {"definition": draft, "limit": 3})
    assert limited["truncated"] is True
    assert limited["progress"] == {"events_done": 3, "events_total": 3}
    assert len(limited["events"]) == 3


def test_the_cli_prints_the_summary_and_samples(
    client: TestClient,
    keys: Keys,
    smtp_sink: SmtpSink,
    runtime: Runtime,
    settings: Settings,
    tmp_path: Any,
) -> None:
    _live(client, keys, smtp_sink)
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        json.dumps(
            {
                **AUTOMATION,
                "steps": [{"action": "send", "template": "shipped", "data": {"order_id": "Z-9"}}],
            }
        )
    )
    window = _window()
    done = run_cli(
        settings,
        "replay",
        "order-shipped",
        "--from",
        window["from"],
        "--to",
        window["to"],
        "--definition",
        str(draft),
    )
    assert done.returncode == 0, done.stderr
    assert "Replay of order-shipped (draft) over 4 events" in done.stdout
    assert "0 added, 0 removed, 2 changed, 0 unchanged" in done.stdout
    assert "m1 -> u1 email shipped: 'Order Z-9 shipped, Ada'" in done.stdout
    assert "was: 'Order A-1 shipped, Ada'" in done.stdout

    bad = run_cli(settings, "replay", "order-shipped", "--from", "yesterday", "--to", window["to"])
    assert bad.returncode != 0
    assert "not an ISO-8601 time" in bad.stderr
