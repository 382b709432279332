"""The branch step: validation with exact paths, the flat program, runs that take an arm (and
wait, fail, retry, crash and cancel inside it), references in arms, and `tidings apply`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.automation.test_runs import Killed, invoke, put, run_in, segment
from tests.conftest import Keys, bearer, run_cli, wait_for
from tests.outbox import recording
from tests.payloads import track
from tidings.automation import references, runs
from tidings.automation.service import DefinitionError, validate_definition
from tidings.automation.steps.branch import MAX_DEPTH, MAX_STEPS, program
from tidings.config import Settings
from tidings.kit.outbound import OutboundGuard
from tidings.models import AutomationRun, Message
from tidings.runtime import Runtime
from tidings.workspace.service import resolve_keys


def validate(*step_list: Any) -> dict[str, Any]:
    return validate_definition("a", {"steps": list(step_list)}, outbound=OutboundGuard())


def profile_step(**fields: Any) -> dict[str, Any]:
    return {"action": "update-profile", "profile": fields}


PLAN_BRANCH: dict[str, Any] = {
    "action": "branch",
    "ref": "plan",
    "branches": [
        {"if": 'profile.plan == "pro"', "steps": [profile_step(arm="pro")]},
        {"if": 'profile.plan == "team"', "steps": [profile_step(arm="team"), profile_step(n=2)]},
    ],
    "else": [profile_step(arm="else")],
}


def nested(depth: int) -> dict[str, Any]:
    step: dict[str, Any] = {"action": "send", "template": "t"}
    for _ in range(depth):
        step = {"action": "branch", "branches": [{"if": "true", "steps": [step]}]}
    return step


# ---------------------------------------------------------------------------------------------
# Validation

INVALID = [
    ({"action": "branch"}, "steps[0].branches", 'a branch step needs "branches"'),
    ({"action": "branch", "branches": []}, "steps[0].branches", "needs at least one branch"),
    ({"action": "branch", "branches": [7]}, "steps[0].branches[0]", "a branch is an object"),
    (
        {"action": "branch", "branches": [{"steps": []}]},
        "steps[0].branches[0].if",
        'a branch needs an "if"',
    ),
    (
        {"action": "branch", "branches": [{"if": "data.x >", "steps": []}]},
        "steps[0].branches[0].if",
        "the condition does not parse",
    ),
    (
        {"action": "branch", "branches": [{"if": "true"}]},
        "steps[0].branches[0].steps",
        'a branch needs "steps"',
    ),
    (
        {"action": "branch", "branches": [{"if": "true", "steps": [], "then": []}]},
        "steps[0].branches[0].then",
        '"then" is not a field of a branch; its fields are if, steps',
    ),
    (
        {"action": "branch", "branches": [{"if": "true", "steps": {}}]},
        "steps[0].branches[0].steps",
        "must be a list of steps",
    ),
    (
        {
            "action": "branch",
            "branches": [
                {"if": "true", "steps": []},
                {"if": "true", "steps": [{"action": "delay", "duration": "5 minuts"}]},
            ],
        },
        "steps[0].branches[1].steps[0].duration",
        '"5 minuts" is not a duration',
    ),
    (
        {"action": "branch", "branches": [{"if": "true", "steps": []}], "else": [{"action": 1}]},
        "steps[0].else[0].action",
        "1 is not a step type",
    ),
    (
        {
            "action": "branch",
            "branches": [{"if": "true", "steps": []}],
            "else": [{"action": "send", "template": "t", "content": {"title": "a", "body": "b"}}],
        },
        "steps[0].else[0].content",
        "already have steps[0].else[0].template",
    ),
    (
        {
            "action": "branch",
            "branches": [
                {
                    "if": "true",
                    "steps": [
                        {"action": "send", "template": "t", "data": {"x": "{{ y | shout }}"}}
                    ],
                }
            ],
        },
        "steps[0].branches[0].steps[0].data.x",
        "unknown filter 'shout'",
    ),
    (
        {"action": "branch", "branches": [{"if": "true", "steps": []}], "colour": 1},
        "steps[0].colour",
        '"colour" is not a field of a branch step; its fields are action, if, ref, branches, else',
    ),
    (
        nested(MAX_DEPTH + 1),
        "steps[0]" + ".branches[0].steps[0]" * MAX_DEPTH,
        f"branches nest at most {MAX_DEPTH} deep",
    ),
]


@pytest.mark.parametrize(("step", "path", "message"), INVALID)
def test_a_branch_is_checked_with_the_exact_path_of_its_first_problem(
    step: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate({"action": "send", "template": "t"}, step)
    shifted = path.replace("steps[0]", "steps[1]", 1)
    assert caught.value.field == shifted
    assert message.replace("steps[0]", "steps[1]", 1) in caught.value.reason


def test_branches_nest_as_deep_as_the_bound_and_a_definition_holds_so_many_steps() -> None:
    assert validate(nested(MAX_DEPTH))["steps"][0]["action"] == "branch"
    many = [{"action": "send", "template": "t"}] * (MAX_STEPS - 1)
    assert len(validate(*many, {"action": "branch", "branches": [{"if": "1", "steps": []}]})) > 0
    with pytest.raises(DefinitionError) as caught:
        validate(*many, {"action": "branch", "branches": [{"if": "1", "steps": many[:1]}]})
    assert caught.value.field == "steps"
    assert f"at most {MAX_STEPS} steps, nested ones included; this one has {MAX_STEPS + 1}" in (
        caught.value.reason
    )


def test_refs_are_unique_across_arms() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate(
            {"action": "send", "template": "t", "ref": "sent"},
            {
                "action": "branch",
                "branches": [
                    {"if": "true", "steps": [{"action": "send", "template": "t", "ref": "sent"}]}
                ],
            },
        )
    assert caught.value.field == "steps[1].branches[0].steps[0].ref"
    assert caught.value.reason == '"sent" is already the ref of steps[0]; refs are unique'


def test_a_branch_is_stored_with_its_nested_steps_normalized() -> None:
    stored = validate(
        {
            "action": "branch",
            "branches": [{"if": "true", "steps": [{"action": "update-profile", "profile": {}}]}],
            "else": [],
        }
    )["steps"]
    assert stored == [
        {
            "action": "branch",
            "branches": [
                {
                    "if": "true",
                    "steps": [{"action": "update-profile", "profile": {}, "merge": "soft-merge"}],
                }
            ],
            "else": [],
        }
    ]
    # Stored again, it is the same (a save of the stored definition changes nothing).
    assert validate(*stored)["steps"] == stored


# ---------------------------------------------------------------------------------------------
# The flat program


def test_the_program_is_the_steps_in_order_with_each_arm_jumping_past_the_branch() -> None:
    steps = validate(
        profile_step(first=1),
        PLAN_BRANCH,
        {"action": "branch", "branches": [{"if": "false", "steps": []}]},
        profile_step(last=1),
    )["steps"]
    made = program(steps)
    assert [(i.path, i.next, i.arms) for i in made] == [
        ("steps[0]", 1, ()),
        ("steps[1]", 6, (2, 3, 5)),
        ("steps[1].branches[0].steps[0]", 6, ()),
        ("steps[1].branches[1].steps[0]", 4, ()),
        ("steps[1].branches[1].steps[1]", 6, ()),
        ("steps[1].else[0]", 6, ()),
        # An empty arm, and a missing else, go on past the branch.
        ("steps[2]", 7, (7, 7)),
        ("steps[3]", 8, ()),
    ]
    assert program(steps) == made  # deterministic
    branch = made[1]
    assert branch.after({"branch": 1, "if": "…"}) == 3
    assert branch.after({"branch": "else"}) == 5
    assert branch.after({"branch": None}) == 6
    assert branch.after(None) == 6  # skipped by its own `if`


# ---------------------------------------------------------------------------------------------
# Runs


def _run_plan(client: TestClient, key: str, user: str, plan: str) -> dict[str, Any]:
    response = client.post(
        f"/profiles/{user}", json={"profile": {"plan": plan}}, headers=bearer(key)
    )
    assert response.status_code < 300, response.text
    run_id = invoke(
        client,
        key,
        "/automations/invoke",
        {"automation": {"steps": [PLAN_BRANCH, profile_step(after=True)]}, "recipient": user},
    )
    return run_in(client, key, run_id, "PROCESSED", "ERROR")


def _profile(client: TestClient, key: str, user: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/profiles/{user}", headers=bearer(key)).json()
    return body["profile"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("plan", "output", "arm_steps"),
    [
        ("pro", {"branch": 0, "if": 'profile.plan == "pro"'}, [("update-profile", 1)]),
        (
            "team",
            {"branch": 1, "if": 'profile.plan == "team"'},
            [("update-profile", 2), ("update-profile", 3)],
        ),
        ("free", {"branch": "else"}, [("update-profile", 4)]),
    ],
)
def test_a_run_takes_the_first_arm_whose_if_holds_then_goes_on_after_the_branch(
    client: TestClient, keys: Keys, plan: str, output: dict[str, Any], arm_steps: list[Any]
) -> None:
    user = f"u-{plan}"
    run = _run_plan(client, keys.test, user, plan)
    assert run["status"] == "PROCESSED"
    assert run["step_index"] == run["step_count"] == 6
    steps = [(step["action"], step["position"]) for step in run["steps"]]
    assert steps == [("branch", 0), *arm_steps, ("update-profile", 5)]
    branch = run["steps"][0]
    assert branch["status"] == "PROCESSED"
    assert branch["output"] == output
    assert branch["ref"] == "plan"
    assert run["context"]["refs"]["plan"] == output
    profile = _profile(client, keys.test, user)
    assert profile["arm"] == {"pro": "pro", "team": "team"}.get(plan, "else")
    assert profile["after"] is True
    assert ("n" in profile) == (plan == "team")


def test_no_arm_without_else_a_skipped_branch_and_nested_branches(
    client: TestClient, keys: Keys
) -> None:
    inner = {
        "action": "branch",
        "branches": [{"if": "data.total > 100", "steps": [profile_step(big=True)]}],
        "else": [profile_step(big=False)],
    }
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {"action": "branch", "branches": [{"if": "data.none", "steps": [inner]}]},
                    {"action": "branch", "if": "false", "branches": [{"if": "true", "steps": []}]},
                    {"action": "branch", "branches": [{"if": "true", "steps": [inner]}]},
                ]
            },
            "recipient": "u-nested",
            "data": {"total": 120},
        },
    )
    run = run_in(client, keys.test, run_id, "PROCESSED", "ERROR")
    assert run["status"] == "PROCESSED"
    summary = [(s["action"], s["position"], s["status"], s["output"]) for s in run["steps"]]
    assert summary == [
        ("branch", 0, "PROCESSED", {"branch": None}),
        ("branch", 4, "SKIPPED", None),
        ("branch", 5, "PROCESSED", {"branch": 0, "if": "true"}),
        ("branch", 6, "PROCESSED", {"branch": 0, "if": "data.total > 100"}),
        ("update-profile", 7, "PROCESSED", run["steps"][4]["output"]),
    ]
    assert _profile(client, keys.test, "u-nested") == {"big": True}


def test_refs_of_nested_steps_work_after_the_branch(client: TestClient, keys: Keys) -> None:
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {
                        "action": "branch",
                        "branches": [
                            {
                                "if": "true",
                                "steps": [
                                    {
                                        "action": "cancel",
                                        "cancelation_token": "nothing-{{ data.n }}",
                                        "ref": "inner",
                                    }
                                ],
                            }
                        ],
                    },
                    {
                        "action": "update-profile",
                        "if": "refs.inner.cancelation_token",
                        "profile": {"token": {"$ref": "refs.inner.cancelation_token"}},
                    },
                ]
            },
            "recipient": "u-refs",
            "data": {"n": 7},
        },
    )
    run_in(client, keys.test, run_id, "PROCESSED")
    assert _profile(client, keys.test, "u-refs") == {"token": "nothing-7"}


def test_a_delay_inside_an_arm_waits_and_the_run_goes_on_after_it(
    client: TestClient, keys: Keys
) -> None:
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {
                        "action": "branch",
                        "branches": [
                            {
                                "if": "true",
                                "steps": [
                                    {"action": "delay", "duration": "1 second"},
                                    profile_step(waited=True),
                                ],
                            }
                        ],
                        "else": [profile_step(waited=False)],
                    },
                    profile_step(done=True),
                ]
            },
            "recipient": "u-delay",
        },
    )
    run = run_in(client, keys.test, run_id, "PROCESSED")
    assert [(s["action"], s["position"]) for s in run["steps"]] == [
        ("branch", 0),
        ("delay", 1),
        ("update-profile", 2),
        ("update-profile", 4),
    ]
    assert _profile(client, keys.test, "u-delay") == {"waited": True, "done": True}


def test_a_wait_for_event_inside_an_arm_is_resolved_by_the_event(
    client: TestClient, keys: Keys
) -> None:
    put(
        client,
        keys.test,
        "/automations/cart",
        {
            "triggers": [{"source": "segment", "event": "track/Checkout Started"}],
            "steps": [
                {
                    "action": "branch",
                    "branches": [
                        {
                            "if": "data.total > 0",
                            "steps": [
                                {
                                    "action": "wait-for-event",
                                    "event": "track/Order Completed",
                                    "timeout": "1 hour",
                                    "ref": "order",
                                },
                                profile_step(ordered={"$ref": "refs.order.matched"}),
                            ],
                        }
                    ],
                },
                profile_step(done=True),
            ],
        },
    )
    segment(
        client,
        keys.test,
        track(
            messageId="m-cart", userId="u-cart", event="Checkout Started", properties={"total": 5}
        ),
    )
    (run,) = wait_for(
        lambda: [
            run
            for run in client.get("/automations/runs", headers=bearer(keys.test)).json()["runs"]
            if run["status"] == "WAITING_FOR_EVENT"
        ],
        what="the run waiting inside its arm",
    )
    assert run["step_index"] == 1
    segment(client, keys.test, track(messageId="m-order", userId="u-cart", event="Order Completed"))
    done = run_in(client, keys.test, run["run_id"], "PROCESSED")
    assert [s["position"] for s in done["steps"]] == [0, 1, 2, 3]
    assert _profile(client, keys.test, "u-cart") == {"ordered": True, "done": True}


def test_a_run_that_fails_inside_an_arm_is_retried_from_that_step(
    client: TestClient, keys: Keys
) -> None:
    steps = [
        profile_step(before=True),
        {
            "action": "branch",
            "branches": [
                {
                    "if": "true",
                    "steps": [
                        {"action": "send", "template": "{{ data.template }}"},
                        profile_step(sent=True),
                    ],
                }
            ],
        },
    ]
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {"steps": steps},
            "recipient": "u-retry",
            "data": {"template": "later"},
            "profile": {"phone_number": "+15550100"},
        },
    )
    failed = run_in(client, keys.test, run_id, "ERROR")
    assert failed["step_index"] == 2
    assert [(s["position"], s["status"]) for s in failed["steps"]] == [
        (0, "PROCESSED"),
        (1, "PROCESSED"),
        (2, "ERROR"),
    ]
    put(client, keys.test, "/notifications/later", {"content": {"sms": {"text": "Hi"}}})
    response = client.post(f"/automations/runs/{run_id}/retry", headers=bearer(keys.test))
    assert response.status_code == 202, response.text
    assert response.json()["retries"][0]["position"] == 2
    done = run_in(client, keys.test, run_id, "PROCESSED", "ERROR")
    assert done["status"] == "PROCESSED"
    assert [(s["position"], s["status"]) for s in done["steps"]] == [
        (0, "PROCESSED"),
        (1, "PROCESSED"),
        (2, "PROCESSED"),
        (3, "PROCESSED"),
    ]
    assert done["steps"][2]["message_id"].startswith("msg_")


def test_a_run_waiting_inside_an_arm_can_be_canceled(client: TestClient, keys: Keys) -> None:
    run_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {
                        "action": "branch",
                        "branches": [
                            {"if": "true", "steps": [{"action": "delay", "duration": "1 day"}]}
                        ],
                    },
                    profile_step(after=True),
                ]
            },
            "recipient": "u-cancel",
        },
    )
    run_in(client, keys.test, run_id, "WAITING")
    response = client.post(f"/automations/runs/{run_id}/cancel", headers=bearer(keys.test))
    assert response.status_code == 200, response.text
    run = run_in(client, keys.test, run_id, "CANCELED")
    assert [(s["position"], s["status"]) for s in run["steps"]] == [
        (0, "PROCESSED"),
        (1, "CANCELED"),
    ]


def test_a_crash_inside_an_arms_send_leaves_nothing_and_the_redrive_sends_once(
    runtime: Runtime, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.database.read() as session:
        scope = resolve_keys(session, runtime.cipher, [keys.test])[keys.test]
    send = {"action": "send", "content": {"title": "t", "body": "b"}}
    with runtime.database.write() as (session, _):
        run_pk = runs.invoke_ad_hoc(
            session,
            scope,
            {
                "automation": {
                    "steps": [
                        {"action": "branch", "branches": [{"if": "true", "steps": [send]}]},
                    ]
                },
                "recipient": "u1",
                "profile": {"email": "u1@example.org"},
            },
            outbound=runtime.outbound,
        ).id
    context = runtime.jobs.context
    finish = runs._finish_step

    def crash_in_the_send(session: Any, run: AutomationRun, *args: Any) -> None:
        if run.step_index == 1:
            raise Killed
        finish(session, run, *args)

    with recording(runtime.database) as dispatched:
        with monkeypatch.context() as patch:
            patch.setattr(runs, "_finish_step", crash_in_the_send)
            with pytest.raises(Killed):
                runs.advance_run(context, run_pk)
        with runtime.database.read() as session:
            assert session.scalars(select(Message)).all() == []
            run = session.get(AutomationRun, run_pk)
            assert run is not None
            assert (run.status, run.step_index) == ("PROCESSING", 1)  # the branch is done
        assert runs.advance_run(context, run_pk) == "PROCESSED"
        assert runs.advance_run(context, run_pk) == "PROCESSED"
    with runtime.database.read() as session:
        messages = session.scalars(select(Message)).all()
    assert [message.message_id for message in messages] == dispatched.message_ids
    assert len(messages) == 1


# ---------------------------------------------------------------------------------------------
# References in arms, and `tidings apply`


def test_a_template_named_in_an_arm_must_exist_and_counts_as_a_reference(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    body = {
        "steps": [
            {
                "action": "branch",
                "branches": [{"if": "true", "steps": []}],
                "else": [{"action": "send", "template": "pro-offer"}],
            }
        ]
    }
    response = client.put("/automations/offer", json=body, headers=bearer(keys.test))
    assert response.status_code == 400
    assert response.json()["field"] == "steps[0].else[0].template"
    put(client, keys.test, "/notifications/pro-offer", {"content": {"sms": {"text": "Hi"}}})
    put(client, keys.test, "/automations/offer", body)
    with runtime.database.read() as session:
        scope = resolve_keys(session, runtime.cipher, [keys.test])[keys.test]
        assert references.automations_sending(session, scope, "pro-offer") == ["offer"]


PLAN_FILE = """\
kind: notification
id: pro-email
content:
  email: {subject: "Pro", text: "For pro users"}
---
kind: automation
id: by-plan
triggers:
  - {source: segment, event: track/Signed In}
steps:
  - action: branch
    branches:
      - if: profile.plan == "pro"
        steps:
          - {action: send, template: pro-email}
    else:
      - {action: update-profile, profile: {nudged: true}}
"""


def test_tidings_apply_saves_branches(
    client: TestClient, keys: Keys, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_FILE)
    first = run_cli(settings, "apply", str(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "created automation by-plan"
    automation = client.get("/automations/by-plan", headers=bearer(keys.test)).json()
    assert automation["steps"][0]["branches"][0]["steps"] == [
        {"action": "send", "template": "pro-email"}
    ]
    assert automation["steps"][0]["else"][0]["merge"] == "soft-merge"
    again = run_cli(settings, "apply", str(path))
    assert again.stdout.splitlines()[-1] == "unchanged automation by-plan"

    path.write_text(PLAN_FILE.replace('profile.plan == "pro"', "profile.plan =="))
    broken = run_cli(settings, "apply", str(path))
    assert broken.returncode != 0
    assert "automation by-plan: steps[0].branches[0].if: the condition does not parse" in (
        broken.stderr
    )
    assert json.dumps(automation) == json.dumps(
        client.get("/automations/by-plan", headers=bearer(keys.test)).json()
    )
