"""The step forms convert a list of steps to cards and back exactly, for every step type and
for the values a widget cannot show (a $ref at a picker, a line break in a text field)."""

from __future__ import annotations

from typing import Any

from tidings.automation.steps import ACTIONS
from tidings.studio import step_form

EVERY_STEP: list[dict[str, Any]] = [
    {
        "action": "send",
        "template": "shipped",
        "recipient": {"$ref": "event.userId"},
        "data": {"order": {"$ref": "data.order_id"}, "n": 2},
        "profile": {"email": "{{ data.email }}"},
        "brand": "acme",
        "override": {"channels": ["email"]},
        "idempotency_key": "{{ data.order_id }}-send",
        "idempotency_expiry": 3600,
        "if": "data.total > 10",
        "ref": "first_send",
    },
    {"action": "send", "message": {"to": {"email": "a@example.org"}, "template": "shipped"}},
    {"action": "send", "content": {"title": "Hi", "body": "Line one\nline two"}},
    {
        "action": "send-list",
        "list": "customers",
        "template": {"$ref": "data.template"},
        "data": {"x": 1},
        "data_source": {
            "webhook": {"url": "https://example.org/data", "method": "GET"},
            "merge_strategy": "overwrite",
        },
    },
    {"action": "delay", "duration": "2 hours"},
    {"action": "delay", "until": "{{ data.send_at }}", "if": "data.later"},
    {"action": "cancel", "cancelation_token": "{{ data.order_id }}"},
    {
        "action": "update-profile",
        "recipient_id": "multi\nline",
        "profile": {"last_shipped": {"$ref": "data.order_id"}},
        "merge": "overwrite",
    },
    {
        "action": "fetch-data",
        "webhook": {
            "url": "https://example.org/orders/{{ data.order_id }}",
            "method": "POST",
            "headers": {"Authorization": "Bearer x"},
            "body": {"id": {"$ref": "data.order_id"}},
            "params": {"a": "b"},
        },
        "merge_strategy": "replace",
        "idempotency_key": "fetch-{{ data.order_id }}",
        "idempotency_expiry": None,
        "ref": "order",
    },
    {"action": "invoke", "template": "welcome", "data": {"a": 1}, "recipient": "user-1"},
    {"action": "throttle", "max_allowed": 1, "period": "1 day"},
    {
        "action": "throttle",
        "max_allowed": 3,
        "period": "PT1H",
        "scope": "dynamic",
        "throttle_key": "{{ data.alert_id }}",
        "ref": "gate",
    },
    {
        "action": "wait-for-event",
        "event": "track/Order Completed",
        "match": {"cart_id": "{{ data.cart_id }}", "total": 3},
        "timeout": "1 hour",
        "on_match": "stop",
        "on_timeout": "continue",
        "ref": "order",
    },
    {
        "action": "branch",
        "branches": [
            {
                "if": 'profile.plan == "pro"',
                "steps": [
                    {"action": "send", "template": "pro", "ref": "pro_send"},
                    {
                        "action": "branch",
                        "branches": [{"if": "data.total > 10", "steps": []}],
                        "else": [{"action": "delay", "wait": "5 minutes"}],
                    },
                ],
            },
            {"if": "true", "steps": []},
        ],
        "else": [{"action": "update-profile", "profile": {"plan": "free"}}],
        "if": "data.go",
        "ref": "plan",
    },
    {"action": "branch", "branches": [{"if": "x", "steps": [], "then": 1}]},
    {"action": "batch", "window": "10 seconds"},
    {
        "action": "batch",
        "window": {"type": "sliding", "duration": "5 minutes", "max": "1 hour"},
        "batch_key": "{{ data.page_id }}",
        "max_items": 50,
        "render": "last 10",
        "ref": "digest",
    },
    {
        "action": "add-to-batch",
        "wait_period": "PT5M",
        "max_wait_period": "PT1H",
        "max_items": 100,
        "retain": {"type": "last", "count": 10},
    },
    # Steps the form cannot show field by field: kept whole, as JSON.
    {"action": "delay", "wait": "5 minutes"},
    {"action": "teleport"},
    "not an object",
]


def _posted(cards: list[step_form.StepCard], at: str = "steps") -> list[tuple[str, str]]:
    """What the browser posts for the cards, as _step_form.html names the inputs."""
    pairs = []
    for index, card in enumerate(cards):
        step = f"{at}[{index}]"
        pairs.append((f"{step}.action", card.action))
        if card.raw is not None:
            pairs.append((f"{step}:json", card.raw))
        pairs += [(f"{step}.{path}", value) for path, value in card.values.items()]
        pairs += [(f"{step}.{path}:kind", kind) for path, kind in card.kinds.items()]
        for number, arm in enumerate(card.arms):
            pairs.append((f"{step}.branches[{number}].if", arm.condition))
            pairs += _posted(arm.cards, f"{step}.branches[{number}].steps")
        if card.otherwise is not None:
            pairs.append((f"{step}.else:on", "1"))
            pairs += _posted(card.otherwise, f"{step}.else")
    return pairs


def test_every_step_type_is_in_the_example() -> None:
    assert {step["action"] for step in EVERY_STEP if isinstance(step, dict)} >= set(ACTIONS)


def test_steps_to_cards_and_back_are_the_same_steps() -> None:
    cards = step_form.cards_from_form(_posted(step_form.cards_of(EVERY_STEP)))
    steps, errors = step_form.steps_of(cards)
    assert errors == {}
    assert steps == EVERY_STEP


def test_values_a_widget_cannot_show_are_json() -> None:
    cards = step_form.cards_of(EVERY_STEP)
    assert cards[0].values["recipient"] == '{"$ref": "event.userId"}'
    assert cards[0].values["template"] == "shipped"
    assert "template" not in cards[0].kinds
    # A $ref where the list picker stands is a text input.
    assert cards[3].kinds == {"template": "text"}
    assert cards[7].kinds == {"recipient_id": "json"}
    assert cards[8].values["webhook.url"] == "https://example.org/orders/{{ data.order_id }}"
    assert cards[8].values["webhook.method"] == "POST"
    assert [card.raw is not None for card in cards[-3:]] == [True, True, True]


def test_invalid_json_and_empty_inputs() -> None:
    posted = [
        ("steps[0].action", "send"),
        ("steps[0].template", "welcome"),
        ("steps[0].data", '{"a": '),
        ("steps[0].recipient", ""),
        ("steps[1].action", "fetch-data"),
        ("steps[1].webhook.url", ""),
        ("steps[1].webhook.method", ""),
        ("steps[1].webhook.body", "[1,"),
    ]
    steps, errors = step_form.steps_of(step_form.cards_from_form(posted))
    assert list(errors) == ["steps[0].data", "steps[1].webhook.body"]
    assert errors["steps[0].data"].startswith("steps[0].data: not valid JSON (line 1")
    # Inputs left empty are fields left out: the service names what is missing.
    assert steps == [{"action": "send", "template": "welcome"}, {"action": "fetch-data"}]


def test_an_error_path_is_shown_at_the_deepest_input_it_names() -> None:
    cards = step_form.cards_of(EVERY_STEP)
    assert step_form.error_name("steps[0].data.order", cards) == "steps[0].data"
    assert step_form.error_name("steps[8].webhook.url", cards) == "steps[8].webhook.url"
    assert step_form.error_name("steps[4].duration", cards) == "steps[4].duration"
    assert step_form.error_name("steps[4].action", cards) == "steps[4]"
    assert step_form.error_name("steps[10].wait", cards) == "steps[10]"
    assert step_form.error_name("steps", cards) == "steps"
    assert step_form.field_id("steps[8].webhook.url") == "steps-8-webhook-url"


def test_add_remove_and_move() -> None:
    cards = step_form.cards_of([{"action": "delay", "duration": "1 hour"}])
    cards = step_form.apply(cards, "add", {"add_action": "cancel"})
    assert [card.action for card in cards] == ["delay", "cancel"]
    cards = step_form.apply(cards, "up:1", {})
    assert [card.action for card in cards] == ["cancel", "delay"]
    cards = step_form.apply(cards, "down:0", {})
    assert [card.action for card in cards] == ["delay", "cancel"]
    cards = step_form.apply(cards, "remove:0", {})
    assert [card.action for card in cards] == ["cancel"]
    assert step_form.apply(cards, "add", {"add_action": "teleport"}) == cards


def test_the_focus_after_an_operation() -> None:
    cards = step_form.cards_of([{"action": "delay", "duration": "1 hour"}])
    added = step_form.apply(cards, "add", {"add_action": "fetch-data"})
    assert step_form.focus_after(added, "add") == "steps-1-webhook-url"
    assert step_form.focus_after(added, "up:1") == "step-0"
    assert step_form.focus_after(added, "down:0") == "step-1"
    assert step_form.focus_after(cards, "remove:1") == "step-0"
    assert step_form.focus_after([], "remove:0") == "add_action"
    assert step_form.focus_after(cards, "view:json") == "view-json"
