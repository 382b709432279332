"""Step types as a package: one module per action, exact field paths, stored shape."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.automation.test_runs import invoke, run_in
from tests.conftest import Keys, bearer
from tidings.automation import steps
from tidings.automation.service import DefinitionError, validate_definition
from tidings.automation.steps.base import Step
from tidings.kit.outbound import OutboundGuard

ACTIONS = (
    "send",
    "send-list",
    "delay",
    "cancel",
    "update-profile",
    "fetch-data",
    "invoke",
    "throttle",
    "wait-for-event",
    "branch",
    "batch",
    "add-to-batch",
)


def validate(*step_list: Any, **definition: Any) -> dict[str, Any]:
    return validate_definition(
        "a", {"steps": list(step_list), **definition}, outbound=OutboundGuard()
    )


def test_each_action_of_the_union_has_its_module_with_a_model_and_run() -> None:
    assert steps.ACTIONS == ACTIONS
    for step_type, action in zip(steps.STEP_TYPES, ACTIONS, strict=True):
        module = importlib.import_module(f"tidings.automation.steps.{action.replace('-', '_')}")
        assert step_type.__module__ == module.__name__
        assert issubclass(step_type, Step)
        assert step_type.action_name() == action
        assert "run" in vars(step_type), f"{step_type.__name__} has a run of its own"
        assert not inspect.isabstract(step_type)
        assert steps.load({"action": action, **_required(action)}).__class__ is step_type


def _required(action: str) -> dict[str, Any]:
    return {
        "send": {"template": "t"},
        "send-list": {"list": "l", "template": "t"},
        "delay": {"duration": "5 minutes"},
        "cancel": {"cancelation_token": "x"},
        "update-profile": {"profile": {}},
        "fetch-data": {"webhook": {"url": "https://shop.example/"}},
        "invoke": {"template": "other"},
        "throttle": {"max_allowed": 1, "period": "1 day"},
        "wait-for-event": {"event": "track/Order Completed", "timeout": "1 hour"},
        "branch": {"branches": [{"if": "true", "steps": []}]},
        "batch": {"window": "10 minutes"},
        "add-to-batch": {"wait_period": "PT5M"},
    }[action]


WEBHOOK = {"url": "https://shop.example/carts"}

FIELD_PATHS = [
    (
        [{"action": "fetch-data", "webhook": {**WEBHOOK, "headers": "h"}}],
        "steps[0].webhook.headers",
        'steps[0].webhook.headers: must be an object, not "h"',
    ),
    (
        [{"action": "fetch-data", "webhook": {**WEBHOOK, "body": {"items": ["{{ data.x"]}}}],
        "steps[0].webhook.body.items[0]",
        "the Liquid template does not parse",
    ),
    (
        [
            {
                "action": "send-list",
                "list": "l",
                "template": "t",
                "data_source": {"webhook": {**WEBHOOK, "method": "FETCH"}},
            }
        ],
        "steps[0].data_source.webhook.method",
        '"FETCH" is not one of GET, POST, PUT, PATCH, DELETE',
    ),
    (
        [{"action": "send-list", "list": "l", "template": "t", "data_source": {"hook": 1}}],
        "steps[0].data_source.hook",
        '"hook" is not a data_source field; use webhook, merge_strategy',
    ),
    (
        [{"action": "send-list", "list": "l", "template": "t", "data_source": {}}],
        "steps[0].data_source.webhook",
        "a data_source needs a webhook",
    ),
    (
        [{"action": "send-list", "list": "l", "template": "t", "data_source": None}],
        "steps[0].data_source",
        "must be an object, not null",
    ),
    (
        [{"action": "send", "template": "t", "message": None}],
        "steps[0].message",
        "must be an object, not null",
    ),
    (
        [
            {"action": "delay", "duration": "1 hour"},
            {
                "action": "send",
                "message": {"content": {"elements": [{"type": "divider"}, {"type": "video"}]}},
            },
        ],
        "steps[1].message.content.elements[1].type",
        "'video' is not supported",
    ),
    (
        [{"action": "send", "template": "t", "message": {"data": {"a": [1, {"$ref": "x.y"}]}}}],
        "steps[0].message.data.a[1]",
        '"x.y" is not a valid $ref',
    ),
    (
        [
            {"action": "delay", "duration": "1 hour"},
            {"action": "send", "template": "t", "message": {"content": {"title": "a"}}},
        ],
        "steps[1].message.content",
        "steps[1].message.content: give either template or content, not both "
        "(already have steps[1].template)",
    ),
    (
        [{"action": "update-profile", "profile": {"a": 1}, "merge": None}],
        "steps[0].merge",
        "null is not one of replace, soft-merge, overwrite, none",
    ),
    (
        [{"action": "delay", "until": "{% if %}"}],
        "steps[0].until",
        "the Liquid template does not parse",
    ),
]


@pytest.mark.parametrize(("step_list", "field", "message"), FIELD_PATHS)
def test_errors_name_the_exact_field_path(
    step_list: list[dict[str, Any]], field: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate(*step_list)
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")
    assert message in caught.value.message


def test_the_cancelation_token_of_a_definition_is_checked_as_a_value() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate({"action": "cancel", "cancelation_token": "x"}, cancelation_token="{{ x")
    assert caught.value.field == "cancelation_token"


def test_an_ad_hoc_automation_names_its_paths_under_automation(
    client: TestClient, keys: Keys
) -> None:
    response = client.post(
        "/automations/invoke",
        json={
            "automation": {
                "steps": [
                    {"action": "send", "template": "t"},
                    {"action": "cancel", "cancelation_token": "x"},
                    {"action": "delay", "duration": "5 minuts"},
                ]
            }
        },
        headers=bearer(keys.test),
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_automation"
    assert body["field"] == "automation.steps[2].duration"
    assert body["message"].startswith('automation.steps[2].duration: "5 minuts" is not a duration')


def test_a_step_is_stored_as_given_with_its_defaults_last() -> None:
    given = {
        "webhook": {"method": "post", "url": "https://shop.example/{{ data.id }}"},
        "idempotency_expiry": "1 day",
        "ref": "cart",
        "action": "fetch-data",
    }
    (stored,) = validate(given)["steps"]
    assert list(stored.items()) == [
        ("webhook", {"method": "POST", "url": "https://shop.example/{{ data.id }}"}),
        ("idempotency_expiry", "1 day"),
        ("ref", "cart"),
        ("action", "fetch-data"),
        ("merge_strategy", "soft-merge"),
    ]
    # A stored step loads as the same step.
    assert steps.load(stored).stored() == stored
    assert list(steps.load(stored).stored()) == list(stored)


def test_a_stored_definition_loads_unchanged() -> None:
    definition = validate(
        {"action": "send", "template": "t", "brand": "b", "override": {}, "if": "data.x"},
        {"action": "send-list", "list": "l", "content": {"title": "a", "body": "b"}},
        {"action": "delay", "until": {"$ref": "data.at"}},
        {"action": "update-profile", "profile": {"a": 1}},
        {"action": "invoke", "template": "other", "data": {"k": "{{ data.k }}"}},
    )
    for stored in definition["steps"]:
        assert steps.load(stored).stored() == stored


def test_a_cancel_step_takes_its_token_from_a_reference(client: TestClient, keys: Keys) -> None:
    response = client.put(
        "/automations/reminder",
        json={
            "cancelation_token": "{{ data.cart }}",
            "steps": [
                {"action": "delay", "duration": "1 hour"},
                {"action": "cancel", "cancelation_token": "x"},
            ],
        },
        headers=bearer(keys.test),
    )
    assert response.status_code == 201, response.text
    waiting_id = invoke(
        client, keys.test, "/automations/reminder/invoke", {"data": {"cart": "c-9"}}
    )
    run_in(client, keys.test, waiting_id, "WAITING")
    canceler_id = invoke(
        client,
        keys.test,
        "/automations/invoke",
        {
            "automation": {
                "steps": [
                    {"action": "cancel", "cancelation_token": {"$ref": "data.cart"}, "ref": "c"}
                ]
            },
            "data": {"cart": "c-9"},
        },
    )
    canceler = run_in(client, keys.test, canceler_id, "PROCESSED")
    assert canceler["context"]["refs"]["c"] == {
        "cancelation_token": "c-9",
        "canceled": [waiting_id],
    }
    run_in(client, keys.test, waiting_id, "CANCELED")
