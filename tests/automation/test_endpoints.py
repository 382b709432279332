"""Automation definitions: CRUD, immutable versions, validation with exact paths, isolation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys, bearer
from tidings.automation import service
from tidings.runtime import Runtime

ABANDONED_CART: dict[str, Any] = {
    "name": "Abandoned cart",
    "triggers": [{"source": "segment", "event": "track/Checkout Started"}],
    "cancelation_token": "{{ data.cart_id }}",
    "steps": [
        {"action": "delay", "duration": "1 hour 30 minutes"},
        {
            "action": "fetch-data",
            "ref": "cart",
            "webhook": {"url": "https://shop.example/carts/{{ data.cart_id }}"},
        },
        {
            "action": "send",
            "if": "refs.cart.items.length > 0",
            "template": "cart-reminder",
            "recipient": {"$ref": "data.userId"},
        },
        {"action": "update-profile", "profile": {"reminded": True}},
    ],
}


def put(client: TestClient, key: str, automation_id: str, body: Any) -> Any:
    return client.put(f"/automations/{automation_id}", json=body, headers=bearer(key))


def templates(client: TestClient, key: str, *notification_ids: str) -> None:
    """Notification templates the automations of a test name (they must exist to be named)."""
    for notification_id in notification_ids:
        response = client.put(
            f"/notifications/{notification_id}",
            json={"content": {"email": {"subject": "Hi", "text": "Hello"}}},
            headers=bearer(key),
        )
        assert response.status_code in (200, 201), response.text


def test_create_get_replace_and_versions(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.test)
    templates(client, keys.test, "cart-reminder")
    created = put(client, keys.test, "abandoned-cart", ABANDONED_CART)
    assert created.status_code == 201
    body = created.json()
    assert body["id"] == "abandoned-cart"
    assert body["version"] == 1
    assert body["enabled"] is True
    assert body["triggers"] == [{"source": "segment", "event": "track/Checkout Started"}]
    assert body["cancelation_token"] == "{{ data.cart_id }}"
    # Defaults are filled in and stored.
    assert body["steps"][1]["webhook"]["method"] == "GET"
    assert body["steps"][1]["merge_strategy"] == "soft-merge"
    assert body["steps"][3] == {
        "action": "update-profile",
        "profile": {"reminded": True},
        "merge": "soft-merge",
    }
    assert client.get("/automations/abandoned-cart", headers=headers).json() == body

    same = put(client, keys.test, "abandoned-cart", ABANDONED_CART)
    assert same.status_code == 200
    assert same.json()["version"] == 1

    changed = copy.deepcopy(ABANDONED_CART)
    changed["steps"][0]["duration"] = "2 hours"
    replaced = put(client, keys.test, "abandoned-cart", changed)
    assert replaced.status_code == 200
    assert replaced.json()["version"] == 2
    assert replaced.json()["steps"][0] == {"action": "delay", "duration": "2 hours"}

    disabled = put(client, keys.test, "abandoned-cart", {**changed, "enabled": False})
    assert disabled.json()["version"] == 3

    versions = client.get("/automations/abandoned-cart/versions", headers=headers).json()
    assert versions["paging"] == {"cursor": None, "more": False}
    assert [v["version"] for v in versions["results"]] == [1, 2, 3]
    assert versions["results"][0]["steps"][0]["duration"] == "1 hour 30 minutes"
    first = client.get("/automations/abandoned-cart/versions/1", headers=headers).json()
    assert first == versions["results"][0]
    assert first["enabled"] is True
    missing = client.get("/automations/abandoned-cart/versions/9", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "automation_version_not_found"

    listed = client.get("/automations", headers=headers).json()
    assert [(a["id"], a["version"], a["enabled"]) for a in listed["results"]] == [
        ("abandoned-cart", 3, False)
    ]


def test_list_pages(client: TestClient, keys: Keys) -> None:
    for index in range(3):
        put(
            client,
            keys.test,
            f"a{index}",
            {"steps": [{"action": "cancel", "cancelation_token": "x"}]},
        )
    headers = bearer(keys.test)
    page = client.get("/automations?limit=2", headers=headers).json()
    assert [a["id"] for a in page["results"]] == ["a0", "a1"]
    assert page["paging"]["more"] is True
    rest = client.get(f"/automations?limit=2&cursor={page['paging']['cursor']}", headers=headers)
    assert [a["id"] for a in rest.json()["results"]] == ["a2"]
    assert rest.json()["paging"] == {"cursor": None, "more": False}
    assert page["results"][0]["name"] == "a0"


def test_delete_hides_but_keeps_versions_for_runs(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    headers = bearer(keys.test)
    templates(client, keys.test, "cart-reminder")
    put(client, keys.test, "cart", ABANDONED_CART)
    scope = _scope(runtime, keys)
    with runtime.database.read() as session:
        current = service.current_version(session, scope, "cart")
        assert current is not None
        assert current.definition["name"] == "Abandoned cart"
    assert client.delete("/automations/cart", headers=headers).status_code == 204
    assert client.get("/automations/cart", headers=headers).status_code == 404
    again = client.delete("/automations/cart", headers=headers)
    assert again.status_code == 404
    assert again.json()["code"] == "automation_not_found"
    assert client.get("/automations", headers=headers).json()["results"] == []
    with runtime.database.read() as session:
        scope = _scope(runtime, keys)
        assert (
            service.triggered_by(session, scope.environment_id, "segment", "track/Checkout Started")
            == []
        )

    recreated = put(client, keys.test, "cart", {**ABANDONED_CART, "name": "Cart v2"})
    assert recreated.status_code == 201
    assert recreated.json()["version"] == 2
    versions = client.get("/automations/cart/versions", headers=headers).json()["results"]
    assert [v["name"] for v in versions] == ["Abandoned cart", "Cart v2"]


def _scope(runtime: Runtime, keys: Keys) -> Any:
    from tidings.workspace.service import resolve_keys

    with runtime.database.read() as session:
        return resolve_keys(session, runtime.cipher, [keys.test])[keys.test]


def test_triggered_by_finds_enabled_current_versions(
    client: TestClient, keys: Keys, runtime: Runtime
) -> None:
    templates(client, keys.test, "cart-reminder", "x")
    put(client, keys.test, "cart", ABANDONED_CART)
    put(
        client,
        keys.test,
        "welcome",
        {
            "triggers": [
                {"source": "segment", "event": "identify"},
                {"source": "inbound", "event": "signup"},
            ],
            "steps": [{"action": "send", "content": {"title": "Hi", "body": "Welcome"}}],
        },
    )
    put(
        client,
        keys.test,
        "off",
        {
            "enabled": False,
            "triggers": [{"source": "segment", "event": "identify"}],
            "steps": [{"action": "send", "template": "x"}],
        },
    )
    scope = _scope(runtime, keys)
    with runtime.database.read() as session:
        found = service.triggered_by(session, scope.environment_id, "segment", "identify")
        assert [(a.automation_id, v.version) for a, v in found] == [("welcome", 1)]
        inbound = service.triggered_by(session, scope.environment_id, "inbound", "signup")
        assert [a.automation_id for a, _ in inbound] == ["welcome"]
        assert service.triggered_by(session, scope.environment_id, "segment", "track/Nope") == []
    put(
        client,
        keys.test,
        "welcome",
        {"triggers": [], "steps": [{"action": "send", "template": "x"}]},
    )
    with runtime.database.read() as session:
        assert service.triggered_by(session, scope.environment_id, "segment", "identify") == []


def test_environments_are_isolated(client: TestClient, keys: Keys) -> None:
    templates(client, keys.test, "cart-reminder")
    templates(client, keys.production, "cart-reminder")
    put(client, keys.test, "cart", ABANDONED_CART)
    production = bearer(keys.production)
    assert client.get("/automations/cart", headers=production).status_code == 404
    assert client.get("/automations", headers=production).json()["results"] == []
    assert client.get("/automations/cart/versions", headers=production).status_code == 404
    assert client.delete("/automations/cart", headers=production).status_code == 404
    created = put(client, keys.production, "cart", {**ABANDONED_CART, "name": "Prod cart"})
    assert created.status_code == 201
    assert created.json()["version"] == 1
    assert client.get("/automations/cart", headers=bearer(keys.test)).json()["name"] == (
        "Abandoned cart"
    )


def test_requires_a_key(client: TestClient) -> None:
    assert client.get("/automations").status_code == 401


def _with_step(step: dict[str, Any], position: int = 2) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"action": "delay", "duration": "5 minutes"},
        {"action": "cancel", "cancelation_token": "{{ data.id }}"},
    ]
    steps.insert(position, step)
    return {"triggers": [{"source": "segment", "event": "identify"}], "steps": steps}


INVALID_STEPS = [
    (
        {"action": "delay", "duration": "5 minuts"},
        "steps[2].duration",
        '"5 minuts" is not a duration',
    ),
    ({"action": "delay"}, "steps[2]", 'needs either "duration"'),
    (
        {"action": "delay", "duration": "5 minutes", "until": "2030-01-01T00:00:00Z"},
        "steps[2]",
        "not both",
    ),
    ({"action": "delay", "until": "next tuesday"}, "steps[2].until", "is not an ISO-8601 time"),
    ({"action": "wait", "duration": "5 minutes"}, "steps[2].action", '"wait" is not a step type'),
    ({"duration": "5 minutes"}, "steps[2].action", "a step needs an action"),
    (
        {"action": "delay", "duration": "5 minutes", "foo": 1},
        "steps[2].foo",
        '"foo" is not a field of a delay step',
    ),
    ({"action": "send"}, "steps[2]", 'a send step needs "template"'),
    (
        {"action": "send", "template": "a", "content": {"title": "t", "body": "b"}},
        "steps[2].content",
        "not both",
    ),
    (
        {"action": "send", "content": {"elements": [{"type": "video"}]}},
        "steps[2].content.elements[0].type",
        "'video' is not supported",
    ),
    (
        {"action": "send", "message": {"to": {"user_id": "u"}, "templat": "x"}},
        "steps[2].message.templat",
        "not a Send API message field",
    ),
    (
        {"action": "send", "template": "a", "message": {"content": {"title": "t", "body": "b"}}},
        "steps[2].message.content",
        "not both",
    ),
    ({"action": "send", "template": "a", "data": "oops"}, "steps[2].data", "must be an object"),
    ({"action": "send", "template": "Hi {{ data.name"}, "steps[2].template", "does not parse"),
    ({"action": "send-list", "template": "a"}, "steps[2].list", "needs a list id"),
    (
        {
            "action": "send-list",
            "list": "l",
            "template": "a",
            "data_source": {"webhook": {"url": "ftp://x"}},
        },
        "steps[2].data_source.webhook.url",
        "is not an http(s) URL",
    ),
    ({"action": "cancel"}, "steps[2].cancelation_token", "needs the cancelation_token"),
    (
        {"action": "cancel", "cancelation_token": ""},
        "steps[2].cancelation_token",
        "non-empty string",
    ),
    ({"action": "update-profile"}, "steps[2].profile", "needs a profile object"),
    (
        {"action": "update-profile", "profile": {}, "merge": "deep"},
        "steps[2].merge",
        '"deep" is not one of replace, soft-merge, overwrite, none',
    ),
    ({"action": "fetch-data"}, "steps[2].webhook", "needs a webhook"),
    ({"action": "fetch-data", "webhook": {}}, "steps[2].webhook.url", "needs a url"),
    (
        {"action": "fetch-data", "webhook": {"url": "https://x", "method": "FETCH"}},
        "steps[2].webhook.method",
        '"FETCH" is not one of GET',
    ),
    (
        {"action": "fetch-data", "webhook": {"url": "https://x", "verb": "GET"}},
        "steps[2].webhook.verb",
        "not a webhook field",
    ),
    (
        {"action": "fetch-data", "webhook": {"url": "https://x"}, "merge_strategy": "merge"},
        "steps[2].merge_strategy",
        "is not one of",
    ),
    ({"action": "invoke"}, "steps[2].template", "the id of the automation"),
    (
        {"action": "invoke", "template": "other", "profile": []},
        "steps[2].profile",
        "must be an object",
    ),
    (
        {"action": "cancel", "cancelation_token": "x", "if": "data.total >"},
        "steps[2].if",
        "the condition does not parse",
    ),
    ({"action": "cancel", "cancelation_token": "x", "if": 3}, "steps[2].if", "expression string"),
    (
        {"action": "send", "template": "a", "recipient": {"$ref": "user.id"}},
        "steps[2].recipient",
        '"user.id" is not a valid $ref',
    ),
    (
        {"action": "send", "template": "a", "data": {"x": {"$ref": "data..x"}}},
        "steps[2].data.x",
        "is not a valid $ref",
    ),
    (
        {"action": "send", "template": "a", "data": {"x": {"$ref": "data.x", "y": 1}}},
        "steps[2].data.x",
        'only the "$ref" key',
    ),
    ({"action": "cancel", "cancelation_token": "x", "ref": "data"}, "steps[2].ref", "reserved"),
    (
        {"action": "cancel", "cancelation_token": "x", "ref": "has space"},
        "steps[2].ref",
        "is not a ref name",
    ),
]


@pytest.mark.parametrize(("step", "field", "reason"), INVALID_STEPS)
def test_invalid_steps_name_the_path(
    client: TestClient, keys: Keys, step: dict[str, Any], field: str, reason: str
) -> None:
    response = put(client, keys.test, "bad", _with_step(step))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_automation"
    assert body["field"] == field
    assert body["message"].startswith(f"{field}: ")
    assert reason in body["message"]
    assert client.get("/automations/bad", headers=bearer(keys.test)).status_code == 404


def test_duration_message_is_exact(client: TestClient, keys: Keys) -> None:
    response = put(
        client, keys.test, "bad", _with_step({"action": "delay", "duration": "5 minuts"})
    )
    assert response.json()["message"] == (
        "steps[2].duration: \"5 minuts\" is not a duration: unknown unit 'minuts'; use seconds, "
        'minutes, hours, days or weeks, e.g. "5 minutes", "2 days", "1 hour 30 minutes" or '
        'ISO-8601 such as "PT5M"'
    )


def test_duplicate_refs_are_refused(client: TestClient, keys: Keys) -> None:
    body = {
        "steps": [
            {"action": "fetch-data", "ref": "cart", "webhook": {"url": "https://x"}},
            {"action": "fetch-data", "ref": "cart", "webhook": {"url": "https://y"}},
        ]
    }
    response = put(client, keys.test, "dup", body)
    assert response.status_code == 400
    assert response.json()["field"] == "steps[1].ref"
    assert "already the ref of steps[0]" in response.json()["message"]


def test_valid_values_are_accepted(client: TestClient, keys: Keys) -> None:
    put(client, keys.test, "other", {"steps": [{"action": "delay", "duration": "1 minute"}]})
    body = {
        "triggers": [{"source": "inbound", "event": "anything at all"}],
        "steps": [
            {"action": "delay", "until": {"$ref": "data.send_at"}},
            {"action": "delay", "until": "{{ data.send_at }}"},
            {"action": "delay", "until": "2030-01-31T09:00:00Z"},
            {"action": "delay", "duration": "PT5M"},
            {
                "action": "send",
                "message": {
                    "to": {"user_id": {"$ref": "data.userId"}},
                    "content": {
                        "version": "2022-01-01",
                        "elements": [{"type": "text", "content": "Hi"}],
                    },
                    "routing": {"method": "single", "channels": ["email"]},
                },
                "brand": "main",
            },
            {"action": "send-list", "list": "beta", "content": {"title": "t", "body": "b"}},
            {
                "action": "update-profile",
                "recipient_id": {"$ref": "event.userId"},
                "profile": {"$ref": "refs.cart"},
                "merge": "overwrite",
            },
            {
                "action": "fetch-data",
                "webhook": {
                    "url": "https://x",
                    "method": "post",
                    "headers": {"A": "1"},
                    "body": {"a": {"$ref": "profile.email"}},
                },
                "merge_strategy": "none",
            },
            {
                "action": "invoke",
                "template": "other",
                "data": {"a": 1},
                "recipient": {"$ref": "recipient"},
            },
            {
                "action": "cancel",
                "cancelation_token": "{{ data.id }}",
                "if": "data.total >= 100 && !profile.muted",
            },
        ],
    }
    response = put(client, keys.test, "ok", body)
    assert response.status_code == 201, response.text
    assert response.json()["steps"][7]["webhook"]["method"] == "POST"


@pytest.mark.parametrize(
    ("trigger", "field", "reason"),
    [
        (
            {"source": "segment", "event": "Order Shipped"},
            "triggers[0].event",
            "is not a Segment trigger",
        ),
        ({"source": "segment", "event": "track/"}, "triggers[0].event", "is not a Segment trigger"),
        (
            {"source": "segment", "event": "track/  "},
            "triggers[0].event",
            "is not a Segment trigger",
        ),
        (
            {"source": "segment", "event": "page"},
            "triggers[0].event",
            "identify, group or track/<event name>",
        ),
        ({"source": "inbound", "event": ""}, "triggers[0].event", "non-empty event name"),
        (
            {"source": "rudderstack", "event": "identify"},
            "triggers[0].source",
            "not segment, inbound, schedule or audience",
        ),
        (
            {"source": "segment", "event": "identify", "when": "now"},
            "triggers[0].when",
            "not a trigger field",
        ),
        ("identify", "triggers[0]", "a trigger is an object"),
        ({"source": "audience"}, "triggers[0].audience", "needs the id of an audience"),
        (
            {"source": "audience", "audience": "vips", "on": "stay"},
            "triggers[0].on",
            '"stay" is not enter or exit',
        ),
        (
            {"source": "audience", "audience": "vips", "event": "x"},
            "triggers[0].event",
            "is not a field of an audience trigger",
        ),
    ],
)
def test_invalid_triggers(
    client: TestClient, keys: Keys, trigger: Any, field: str, reason: str
) -> None:
    body = {"triggers": [trigger], "steps": [{"action": "send", "template": "x"}]}
    response = put(client, keys.test, "bad", body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert reason in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"steps": []}, "steps", "needs at least one step"),
        ({}, "steps", "needs at least one step"),
        (
            {"steps": [{"action": "send", "template": "x"}], "step": []},
            "step",
            "is not a field of an automation",
        ),
        (
            {"steps": [{"action": "send", "template": "x"}], "enabled": "yes"},
            "enabled",
            "true or false",
        ),
        (
            {"steps": [{"action": "send", "template": "x"}], "cancelation_token": "{{ x"},
            "cancelation_token",
            "does not parse",
        ),
        ({"steps": ["send"]}, "steps[0]", "a step must be an object"),
        ([1], "body", "must be a JSON object"),
        (
            {
                "steps": [{"action": "send", "template": "x"}],
                "triggers": [{"source": "segment", "event": "identify"}] * 2,
            },
            "triggers[1]",
            "already in the list",
        ),
    ],
)
def test_invalid_definitions(
    client: TestClient, keys: Keys, body: Any, field: str, reason: str
) -> None:
    response = put(client, keys.test, "bad", body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert reason in response.json()["message"]


def test_invalid_json_is_a_400(client: TestClient, keys: Keys) -> None:
    response = client.put(
        "/automations/x",
        content=b"{nope",
        headers={**bearer(keys.test), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


def test_a_missing_template_is_refused_with_the_step_field(client: TestClient, keys: Keys) -> None:
    refused = put(client, keys.test, "welcome", _with_step({"action": "send", "template": "hi"}, 1))
    assert refused.status_code == 400
    assert refused.json() == {
        "code": "invalid_automation",
        "message": 'steps[1].template: there is no notification template "hi" in this '
        "environment; create it first (PUT /notifications/hi, or in the same `tidings apply` "
        "files)",
        "field": "steps[1].template",
    }
    assert client.get("/automations/welcome", headers=bearer(keys.test)).status_code == 404
    in_message = put(
        client, keys.test, "welcome", _with_step({"action": "send", "message": {"template": "hi"}})
    )
    assert in_message.status_code == 400
    assert in_message.json()["field"] == "steps[2].message.template"
    to_list = put(
        client,
        keys.test,
        "welcome",
        _with_step({"action": "send-list", "list": "beta", "template": "hi"}, 0),
    )
    assert to_list.status_code == 400
    assert to_list.json()["field"] == "steps[0].template"

    # Once the template exists, the same definition saves.
    templates(client, keys.test, "hi")
    saved = put(client, keys.test, "welcome", _with_step({"action": "send", "template": "hi"}, 1))
    assert saved.status_code == 201, saved.text


def test_an_invoke_of_a_missing_automation_is_refused(client: TestClient, keys: Keys) -> None:
    refused = put(client, keys.test, "parent", _with_step({"action": "invoke", "template": "kid"}))
    assert refused.status_code == 400
    assert refused.json()["field"] == "steps[2].template"
    assert 'there is no automation "kid" to invoke' in refused.json()["message"]
    # An automation may invoke itself (runs invoking runs stop at a depth).
    itself = put(
        client, keys.test, "parent", _with_step({"action": "invoke", "template": "parent"})
    )
    assert itself.status_code == 201, itself.text
    put(client, keys.test, "kid", {"steps": [{"action": "delay", "duration": "1 minute"}]})
    assert (
        put(client, keys.test, "parent", _with_step({"action": "invoke", "template": "kid"}))
    ).status_code == 200


def test_references_resolved_per_run_and_lists_are_not_checked(
    client: TestClient, keys: Keys
) -> None:
    body = {
        "steps": [
            {"action": "send", "template": {"$ref": "data.template"}},
            {"action": "send", "template": "{{ data.template }}"},
            {"action": "send-list", "list": "nobody-subscribed-yet", "content": {"title": "t"}},
            {"action": "invoke", "template": "{{ data.next }}"},
        ]
    }
    response = put(client, keys.test, "dynamic", body)
    assert response.status_code == 201, response.text


def test_a_reference_the_current_version_has_is_not_checked_again(
    client: TestClient, keys: Keys
) -> None:
    headers = bearer(keys.test)
    templates(client, keys.test, "hi")
    body = {"steps": [{"action": "send", "template": "hi"}]}
    assert put(client, keys.test, "welcome", body).status_code == 201
    assert client.delete("/notifications/hi", headers=headers).status_code == 204
    # Disabling it still works: the reference is the one it was saved with.
    disabled = put(client, keys.test, "welcome", {**body, "enabled": False})
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False
    # A new reference is checked.
    moved = put(client, keys.test, "welcome", {"steps": [{"action": "send", "template": "bye"}]})
    assert moved.status_code == 400
    assert moved.json()["field"] == "steps[0].template"


def test_an_unknown_filter_in_a_step_is_refused_with_its_path_and_line(
    client: TestClient, keys: Keys
) -> None:
    in_data = put(
        client,
        keys.test,
        "bad",
        _with_step({"action": "update-profile", "profile": {"name": "{{ data.name | shout }}"}}, 1),
    )
    assert in_data.status_code == 400
    assert in_data.json()["field"] == "steps[1].profile.name"
    assert "unknown filter 'shout' (line 1, column 16)" in in_data.json()["message"]
    token = put(
        client,
        keys.test,
        "bad",
        {"cancelation_token": "{{ data.id | nosuchfilter }}", "steps": [{"action": "cancel"}]},
    )
    assert token.status_code == 400
    assert token.json()["field"] == "cancelation_token"
    assert "unknown filter 'nosuchfilter'" in token.json()["message"]
