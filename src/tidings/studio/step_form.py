"""The automation editor's step forms: each step type's fields as form widgets, generated
from its pydantic model (`tidings.automation.steps`), and the conversion between a list of
steps (the JSON view) and the posted form (the form view), both ways and exactly.

A step is a card of named inputs, `steps[2].template`, `steps[2].webhook.url`. Each field
gets the widget its type allows: a text input for a string (Liquid allowed; a `$ref` shows as
its JSON), a select for a field with choices or a picker (templates, lists, automations), the
fields of its own model for a required nested object (a fetch-data webhook), and a JSON
textarea for anything else. A value its widget cannot show exactly (a string with a line
break, a `$ref` where a picker stands) is shown as JSON instead, and the card carries that in
`steps[2].recipient:kind`; a step the form does not know at all (no action, an unknown key) is
one JSON textarea, `steps[2]:json`. So converting a step to the form and back gives the same
JSON, and an unchanged Save changes nothing.

Nothing here validates a step: the automation service does that when it is saved, and its
error path (`steps[2].webhook.url`) is shown at the input of that name (`error_name`).
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from tidings.automation.steps import ACTIONS, STEP_TYPES
from tidings.automation.steps.base import COMMON_FIELDS, Fields, Step
from tidings.automation.steps.throttle import SCOPES as THROTTLE_SCOPES
from tidings.automation.steps.values import MERGE_MODES
from tidings.automation.steps.wait_for_event import ACTIONS_AFTER
from tidings.automation.steps.webhook import HTTP_METHODS

# Fields whose value is one of a fixed set, by key.
CHOICES: dict[str, tuple[str, ...]] = {
    "merge": MERGE_MODES,
    "merge_strategy": MERGE_MODES,
    "method": HTTP_METHODS,
    "scope": THROTTLE_SCOPES,
    "on_match": ACTIONS_AFTER,
    "on_timeout": ACTIONS_AFTER,
}
# Fields whose value names something of the environment: a select of those ids.
PICKERS: dict[tuple[str, str], str] = {
    ("send", "template"): "templates",
    ("send-list", "template"): "templates",
    ("send-list", "list"): "lists",
    ("invoke", "template"): "automations",
}
LABELS: dict[str, str] = {
    "if": "Only if (condition)",
    "ref": "Ref (name of its output in refs)",
    "list": "List",
    "recipient_id": "Recipient id",
}
HINTS: dict[str, str] = {
    "if": "An expression, e.g. data.total > 100; the step is skipped when it is false.",
    "recipient": 'A user id, Liquid or {"$ref": "event.userId"}; the run\'s user if empty.',
    "recipient_id": "A user id, Liquid or a $ref; the run's user if empty.",
    "duration": 'e.g. "5 minutes", "2 hours", "1 day". Give a duration or an until.',
    "until": 'An ISO-8601 time, Liquid or a $ref, e.g. "{{ data.send_at }}".',
    "cancelation_token": "The token of the runs to cancel (Liquid, a path or a $ref).",
    "content": "Inline content instead of a template: {title, body} or Elemental.",
    "message": "Send API message fields, laid under the step's own (JSON).",
    "data_source": "{webhook, merge_strategy}: each subscriber's data, fetched first (JSON).",
    "max_allowed": "How many runs may pass per period (a number, e.g. 1); the rest end THROTTLED.",
    "period": 'e.g. "1 day", "12 hours", "PT1H": the window opens with the first run to pass.',
    "scope": "Whose runs count: user (the default), global, or dynamic (by the throttle key).",
    "throttle_key": 'Liquid or a $ref, e.g. "{{ data.alert_id }}": runs with the same key count '
    "together, across automations.",
    "window": 'When it may end: "Mo-Fr 09:00-18:00", or {"days": [...], "hours": {...}} (JSON).',
    "event": 'The Segment event to wait for, e.g. "track/Order Completed".',
    "match": 'Properties the event must have (JSON), e.g. {"cart_id": "{{ data.cart_id }}"}.',
    "timeout": 'How long to wait, e.g. "1 hour" (at most 30 days).',
    "on_match": "What the run does when the event comes: continue, or stop here.",
    "on_timeout": "What the run does when the timeout comes first: continue, or stop here.",
    "batch_key": 'Liquid or a $ref, e.g. "{{ data.page_id }}": a recipient\'s runs with the '
    "same key are batched together.",
    "max_items": "Close the batch as soon as it holds this many runs (a number).",
    "render": 'Which items the output lists: "first 10" or "last 10"; all when empty.',
}
# A hint for a field of one step type, where the key means something else in others.
ACTION_HINTS: dict[tuple[str, str], str] = {
    ("batch", "window"): 'How long it collects runs: "10 minutes" (fixed), or {"type": '
    '"sliding", "duration": "5 minutes", "max": "1 hour"} (JSON).',
}
# Optional fields a step seldom needs: a card shows them under "More fields", open when one
# of them holds something.
MORE = (
    "content",
    "message",
    "profile",
    "brand",
    "override",
    "data_source",
    "idempotency_key",
    "idempotency_expiry",
    "if",
    "ref",
)
TEXT, SELECT, NESTED, JSON = "text", "select", "nested", "json"


@dataclass(frozen=True)
class Widget:
    """One field of a step's form. `path` is its key below the step (`webhook.url`)."""

    path: str
    label: str
    kind: str
    required: bool
    hint: str = ""
    choices: tuple[str, ...] = ()
    picker: str = ""
    children: tuple[Widget, ...] = ()
    default: str = ""
    """What saving fills in when the input is left empty."""
    more: bool = False
    """Shown under the card's "More fields"."""


@dataclass
class StepCard:
    """A step as the form holds it: the text of each input by path, the inputs shown with
    another widget than their field's own (`kinds`), or the whole step as JSON (`raw`)."""

    action: str
    values: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    raw: str | None = None


def _types_of(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _widget(action: str, key: str, info: FieldInfo, prefix: str = "") -> Widget:
    path = f"{prefix}{key}"
    label = LABELS.get(key, key.replace("_", " ").capitalize())
    hint = ACTION_HINTS.get((action, key)) or HINTS.get(key, "")
    required = info.is_required()
    kinds = _types_of(info.annotation)
    model = next((t for t in kinds if isinstance(t, type) and issubclass(t, Fields)), None)
    if model is not None and required:
        children = tuple(
            _widget(action, key, child, f"{path}.") for key, child in model.by_key.items()
        )
        return Widget(path, label, NESTED, required, hint, children=children)
    picker = PICKERS.get((action, key), "") if not prefix else ""
    choices = CHOICES.get(key, ())
    if picker or choices:
        default = info.default if isinstance(info.default, str) else ""
        return Widget(
            path, label, SELECT, required, hint, choices=choices, picker=picker, default=default
        )
    if str in kinds:
        return Widget(path, label, TEXT, required, hint)
    return Widget(path, label, JSON, required, hint)


@cache
def widgets(action: str) -> tuple[Widget, ...]:
    """The widgets of a step type: its own fields in their order, then `if` and `ref`."""
    step_type = _step_type(action)
    keys = [key for key in step_type.by_key if key not in COMMON_FIELDS]
    keys += [key for key in COMMON_FIELDS if key != "action"]
    made = (_widget(action, key, step_type.by_key[key]) for key in keys)
    return tuple(
        replace(widget, more=widget.path in MORE and not widget.required) for widget in made
    )


def more_open(card: StepCard, step: str, errors: Mapping[str, str]) -> bool:
    """Whether a card's "More fields" starts open: one of them holds a value or an error."""
    return any(
        card.values.get(widget.path, "").strip() or f"{step}.{widget.path}" in errors
        for widget in widgets(card.action)
        if widget.more
    )


def _step_type(action: str) -> type[Step]:
    return next(step_type for step_type in STEP_TYPES if step_type.action_name() == action)


def _flat(items: Iterable[Widget]) -> Iterable[Widget]:
    for widget in items:
        yield widget
        yield from _flat(widget.children)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# From a list of steps to cards.


def _text(value: str) -> Any:
    """What a text input's value stands for: a JSON object (a `$ref`) or the string."""
    if value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, dict):
            return parsed
    return value


def _as_text(value: Any) -> str | None:
    """The text input value that stands for `value` exactly, or None."""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and not re.search(r"[\r\n]", value) and _text(value) == value:
        return value
    return None


def _encode(widget: Widget, value: Any, card: StepCard) -> None:
    path = widget.path
    if widget.kind == NESTED:
        child_keys = {child.path.rsplit(".", 1)[1] for child in widget.children}
        if isinstance(value, dict) and value.keys() <= child_keys:
            for child in widget.children:
                key = child.path.rsplit(".", 1)[1]
                if key in value:
                    _encode(child, value[key], card)
            return
    elif widget.kind == SELECT and isinstance(value, str) and _as_text(value) == value:
        card.values[path] = value
        return
    elif widget.kind in (TEXT, SELECT):
        text = _as_text(value)
        if text is not None:
            card.values[path] = text
            if widget.kind == SELECT:
                card.kinds[path] = TEXT
            return
    elif widget.kind == JSON:
        card.values[path] = pretty(value)
        return
    card.values[path] = pretty(value)
    card.kinds[path] = JSON


def card_of(step: Any) -> StepCard:
    """A step of a definition as its card."""
    if not isinstance(step, dict) or step.get("action") not in ACTIONS:
        return StepCard("", raw=pretty(step))
    action = step["action"]
    if not step.keys() <= _step_type(action).by_key.keys():
        return StepCard(action, raw=pretty(step))
    card = StepCard(action)
    for widget in widgets(action):
        key = widget.path
        if key in step:
            _encode(widget, step[key], card)
    return card


def cards_of(steps: list[Any]) -> list[StepCard]:
    return [card_of(step) for step in steps]


# From the posted form to cards, and from cards to a list of steps.

_NAME = re.compile(r"^steps\[(\d+)\](?:\.([A-Za-z0-9_$.-]+))?(:kind|:json)?$")


def cards_from_form(form: Iterable[tuple[str, Any]]) -> list[StepCard]:
    """The cards of a posted form, in the order of their index."""
    found: dict[int, StepCard] = {}
    for name, value in form:
        match = _NAME.match(name)
        if match is None or not isinstance(value, str):
            continue
        index, path, suffix = int(match.group(1)), match.group(2), match.group(3)
        card = found.setdefault(index, StepCard(""))
        if path is None:
            if suffix == ":json":
                card.raw = value
        elif path == "action" and suffix is None:
            card.action = value
        elif suffix == ":kind":
            card.kinds[path] = value
        elif suffix is None:
            card.values[path] = value
    return [found[index] for index in sorted(found)]


def _decode(widget: Widget, card: StepCard, step: str, errors: dict[str, str]) -> tuple[bool, Any]:
    """(given, value) of a widget's input in the card of `step` (`steps[2]`); an input left
    empty is a field left out."""
    name = f"{step}.{widget.path}"
    kind = card.kinds.get(widget.path, widget.kind)
    if kind == NESTED:
        nested = {}
        for child in widget.children:
            given, value = _decode(child, card, step, errors)
            if given:
                nested[child.path.rsplit(".", 1)[1]] = value
        return bool(nested), nested
    text = card.values.get(widget.path, "")
    if not text.strip():
        return False, None
    if kind == JSON:
        try:
            return True, json.loads(text)
        except json.JSONDecodeError as exc:
            errors[name] = (
                f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            )
            return False, None
    return True, _text(text)


def steps_of(cards: list[StepCard]) -> tuple[list[Any], dict[str, str]]:
    """The steps the cards stand for, and the inputs that are not valid JSON, by name."""
    steps: list[Any] = []
    errors: dict[str, str] = {}
    for index, card in enumerate(cards):
        name = f"steps[{index}]"
        if card.raw is not None or card.action not in ACTIONS:
            try:
                steps.append(json.loads(card.raw or "null"))
            except json.JSONDecodeError as exc:
                errors[name] = (
                    f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
                )
            continue
        step: dict[str, Any] = {"action": card.action}
        for widget in widgets(card.action):
            given, value = _decode(widget, card, name, errors)
            if given:
                step[widget.path] = value
        steps.append(step)
    return steps, errors


def _cut(path: str) -> str:
    """A path without its last part: steps[0].data.x -> steps[0].data -> steps[0]."""
    return re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path)


def error_name(path: str, cards: list[StepCard]) -> str:
    """The input a definition error's path (`steps[1].data.order`) is shown at: the
    deepest one the path is under, else the step's card, else the steps as a whole."""
    match = re.match(r"^steps\[(\d+)\]", path)
    if match is None or int(match.group(1)) >= len(cards):
        return "steps"
    card = cards[int(match.group(1))]
    step = match.group(0)
    names = {step}
    if card.raw is None and card.action in ACTIONS:
        names |= {f"{step}.{widget.path}" for widget in _flat(widgets(card.action))}
    while path not in names and path != step:
        path = _cut(path)
    return path


def field_id(name: str) -> str:
    """An element id for an input name: steps[0].webhook.url -> steps-0-webhook-url."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


def focus_after(cards: list[StepCard], operation: str) -> str:
    """The id of the element to focus once an operation's editor is shown: the new card's
    first input, the card moved, the card now where one was removed, the view switched to."""
    verb, _, at = operation.partition(":")
    if verb == "view":
        return f"view-{at}"
    if not cards:
        return "add_action"
    last = len(cards) - 1
    if verb == "add":
        card = cards[last]
        fields = [widget for widget in _flat(widgets(card.action)) if widget.kind != NESTED]
        return field_id(f"steps[{last}].{fields[0].path}") if fields else f"step-{last}"
    index = int(at) if at.isdigit() else last
    moved = {"up": index - 1, "down": index + 1}.get(verb, index)
    return f"step-{max(0, min(moved, last))}"


def apply(cards: list[StepCard], operation: str, form: Mapping[str, str]) -> list[StepCard]:
    """The cards after an editing operation: `add` (the type in `add_action`),
    `remove:N`, `up:N`, `down:N`."""
    verb, _, at = operation.partition(":")
    cards = list(cards)
    if verb == "add":
        action = form.get("add_action", "")
        if action in ACTIONS:
            cards.append(StepCard(action))
        return cards
    if not at.isdigit() or int(at) >= len(cards):
        return cards
    index = int(at)
    if verb == "remove":
        del cards[index]
    elif verb == "up" and index > 0:
        cards[index - 1], cards[index] = cards[index], cards[index - 1]
    elif verb == "down" and index + 1 < len(cards):
        cards[index + 1], cards[index] = cards[index], cards[index + 1]
    return cards
