"""`tidings apply`: YAML automations and notifications, idempotent, reporting what changed."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer, run_cli
from tests.processes import wait_for
from tidings.config import Settings
from tidings.runtime import Runtime

WELCOME = """\
kind: automation
id: welcome
name: Welcome
triggers:
  - source: segment
    event: identify
steps:
  - action: delay
    duration: 5 minutes
  - action: send
    template: welcome-email
    recipient: {"$ref": "data.userId"}
"""

NOTIFICATION = """\
kind: notification
id: welcome-email
name: Welcome email
content:
  email:
    subject: "Welcome {{ profile.name }}"
    text: Hello!
"""


def test_apply_twice_then_after_an_edit(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "welcome.yaml").write_text(WELCOME)
    (folder / "notifications.yml").write_text(NOTIFICATION)
    (folder / "README.md").write_text("not applied")

    first = run_cli(settings, "apply", str(folder))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "created notification welcome-email",
        "created automation welcome",
    ]
    second = run_cli(settings, "apply", str(folder))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [
        "unchanged notification welcome-email",
        "unchanged automation welcome",
    ]
    headers = bearer(keys.test)
    automation = client.get("/automations/welcome", headers=headers).json()
    assert automation["version"] == 1
    assert automation["steps"][1]["recipient"] == {"$ref": "data.userId"}
    template = client.get("/notifications/welcome-email", headers=headers).json()
    assert template["content"]["email"]["subject"] == "Welcome {{ profile.name }}"

    (folder / "welcome.yaml").write_text(WELCOME.replace("5 minutes", "1 hour"))
    third = run_cli(settings, "apply", str(folder))
    assert third.returncode == 0, third.stderr
    assert third.stdout.splitlines() == [
        "unchanged notification welcome-email",
        "updated automation welcome",
    ]
    automation = client.get("/automations/welcome", headers=headers).json()
    assert automation["version"] == 2
    assert automation["steps"][0]["duration"] == "1 hour"
    assert client.get("/automations/welcome", headers=bearer(keys.production)).status_code == 404


def test_apply_to_production_and_a_single_file(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    file = tmp_path / "all.yaml"
    file.write_text(WELCOME + "---\n" + NOTIFICATION)
    result = run_cli(settings, "apply", "--env", "production", str(file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "created notification welcome-email",
        "created automation welcome",
    ]
    assert client.get("/automations/welcome", headers=bearer(keys.production)).status_code == 200
    assert client.get("/automations/welcome", headers=bearer(keys.test)).status_code == 404


def test_an_invalid_file_applies_nothing(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "a.yaml").write_text(NOTIFICATION)
    (folder / "b.yaml").write_text(WELCOME.replace("5 minutes", "5 minuts"))
    result = run_cli(settings, "apply", str(folder))
    assert result.returncode != 0
    assert 'automation welcome: steps[0].duration: "5 minuts" is not a duration' in result.stderr
    assert str(folder / "b.yaml") in result.stderr
    assert client.get("/notifications/welcome-email", headers=bearer(keys.test)).status_code == 404

    (folder / "b.yaml").write_text("kind: flow\nid: x\n")
    result = run_cli(settings, "apply", str(folder))
    assert result.returncode != 0
    assert "kind must be automation, notification or audience" in result.stderr


def test_automations_may_name_templates_and_automations_of_the_same_files(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    """The templates are saved first, whatever the order of the files; an automation may
    invoke one that comes later."""
    parent = (
        "kind: automation\nid: a-parent\nsteps:\n"
        "  - action: invoke\n    template: z-child\n"
        "  - action: send\n    template: welcome-email\n"
    )
    child = "kind: automation\nid: z-child\nsteps:\n  - action: send\n    template: welcome-email\n"
    path = tmp_path / "all.yaml"
    path.write_text("\n---\n".join([parent, WELCOME, child, NOTIFICATION]))
    result = run_cli(settings, "apply", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "created notification welcome-email",
        "created automation a-parent",
        "created automation welcome",
        "created automation z-child",
    ]
    steps = client.get("/automations/a-parent", headers=bearer(keys.test)).json()["steps"]
    assert steps[0]["template"] == "z-child"


def test_a_missing_template_applies_nothing_and_names_the_step(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "welcome.yaml"
    path.write_text(WELCOME)
    result = run_cli(settings, "apply", str(path))
    assert result.returncode != 0
    assert (
        f"{path} (document 1): automation welcome: steps[1].template: there is no notification "
        'template "welcome-email" in this environment'
    ) in result.stderr
    assert client.get("/automations/welcome", headers=bearer(keys.test)).status_code == 404

    path.write_text(WELCOME.replace("template: welcome-email", "template: '{{ x | shout }}'"))
    result = run_cli(settings, "apply", str(path))
    assert result.returncode != 0
    assert "steps[1].template: the Liquid template uses an unknown filter 'shout'" in result.stderr


AUDIENCE_FILE = """\
kind: audience
id: pricing-hot
name: Viewed pricing twice
condition:
  all:
    - {trait: plan, equals: free}
    - {event: Viewed Pricing, at_least: 2, within: 7 days}
---
kind: automation
id: nudge
triggers: [{source: audience, audience: pricing-hot, "on": enter}]
steps: [{action: update-profile, profile: {nudged: true}}]
"""


def test_apply_saves_an_audience_and_its_scan_runs_from_the_sweep(
    client: TestClient, keys: Keys, settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    file = tmp_path / "audiences.yaml"
    file.write_text(AUDIENCE_FILE)
    headers = bearer(keys.test)
    client.post("/profiles/u1", json={"profile": {"plan": "free"}}, headers=headers)
    first = run_cli(settings, "apply", str(file))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["created audience pricing-hot", "created automation nudge"]
    second = run_cli(settings, "apply", str(file))
    assert second.stdout.splitlines() == [
        "unchanged audience pricing-hot",
        "unchanged automation nudge",
    ]
    audience = client.get("/audiences/pricing-hot", headers=headers).json()
    assert audience["condition"]["all"][1]["within"] == "7 days"
    # The CLI has no job engine: a sweep of the server's queues the scan.
    runtime.jobs.sweep()
    wait_for(
        lambda: (
            client.get("/audiences/pricing-hot", headers=headers).json()["scan"]["state"] == "ready"
        ),
        what="the scan",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: audience\nid: bad\ncondition: {trait: plan}\n")
    refused = run_cli(settings, "apply", str(bad))
    assert refused.returncode != 0
    assert "audience bad: condition: a trait condition takes exactly one operator" in (
        refused.stderr
    )
