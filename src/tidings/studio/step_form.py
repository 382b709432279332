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

A branch's card holds its arms: each arm's `if` (`steps[1].branches[0].if`) and its steps as
cards of their own, named by their path (`steps[1].branches[0].steps[2].template`,
`steps[1].else[0].template`), to any depth; `steps[1].else:on` says the branch has an `else`.
The names are the API's error paths, so an error shows at its input at any depth.

Nothing here validates a step: the automation service does that when it is saved, and its
error path (`steps[2].webhook.url`) is shown at the input of that name (`error_name`).
"""

from __future__ import annotations

import copy
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
    another widget than their field's own (`kinds`), or the whole step as JSON (`raw`). A
    branch's card also holds its `arms` and its `else` (`otherwise`, None without one)."""

    action: str
    values: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    raw: str | None = None
    arms: list[ArmCard] = field(default_factory=list)
    otherwise: list[StepCard] | None = None


@dataclass
class ArmCard:
    """One arm of a branch's card: its `if` as typed, and its steps' cards."""

    condition: str = ""
    cards: list[StepCard] = field(default_factory=list)


BRANCH = "branch"
ARM_KEYS = ("branches", "else")
"""A branch's fields that its card holds as arms, not as widgets."""


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
    if action == BRANCH:
        keys = [key for key in keys if key not in ARM_KEYS]
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
    if action == BRANCH and not _arms_shown(step):
        return StepCard(action, raw=pretty(step))
    card = StepCard(action)
    for widget in widgets(action):
        key = widget.path
        if key in step:
            _encode(widget, step[key], card)
    if action == BRANCH:
        card.arms = [ArmCard(arm["if"], cards_of(arm["steps"])) for arm in step["branches"]]
        card.otherwise = cards_of(step["else"]) if "else" in step else None
    return card


def _arms_shown(step: dict[str, Any]) -> bool:
    """Whether a branch's arms can be shown as forms exactly: a list of `{if, steps}` with a
    one-line `if` and a list of steps, and `else` a list when it is given."""
    arms = step.get("branches")
    return (
        isinstance(arms, list)
        and all(
            isinstance(arm, dict)
            and arm.keys() == {"if", "steps"}
            and isinstance(arm["if"], str)
            and _as_text(arm["if"]) == arm["if"]
            and isinstance(arm["steps"], list)
            for arm in arms
        )
        and isinstance(step.get("else", []), list)
    )


def cards_of(steps: list[Any]) -> list[StepCard]:
    return [card_of(step) for step in steps]


# From the posted form to cards, and from cards to a list of steps.

_STEP = re.compile(r"^steps\[(\d+)\]")
_INNER = re.compile(r"^(?:\.branches\[(\d+)\]\.steps\[(\d+)\]|\.else\[(\d+)\])")
_ARM_IF = re.compile(r"^\.branches\[(\d+)\]\.if$")
_FIELD = re.compile(r"^(?:\.([A-Za-z0-9_$.-]+))?(:kind|:json|:on)?$")


@dataclass
class _Draft:
    """A card while the form is read: its nested cards by index, sorted when done."""

    card: StepCard = field(default_factory=lambda: StepCard(""))
    arms: dict[int, tuple[list[str], dict[int, _Draft]]] = field(default_factory=dict)
    otherwise: dict[int, _Draft] | None = None

    def arm(self, index: int) -> tuple[list[str], dict[int, _Draft]]:
        return self.arms.setdefault(index, ([""], {}))

    def done(self) -> StepCard:
        card = self.card
        card.arms = [
            ArmCard(condition[0], _sorted(drafts))
            for condition, drafts in (self.arms[index] for index in sorted(self.arms))
        ]
        card.otherwise = None if self.otherwise is None else _sorted(self.otherwise)
        return card


def _sorted(drafts: dict[int, _Draft]) -> list[StepCard]:
    return [drafts[index].done() for index in sorted(drafts)]


def cards_from_form(form: Iterable[tuple[str, Any]]) -> list[StepCard]:
    """The cards of a posted form, in the order of their index, nested ones too."""
    found: dict[int, _Draft] = {}
    for name, value in form:
        match = _STEP.match(name)
        if match is None or not isinstance(value, str):
            continue
        draft = found.setdefault(int(match.group(1)), _Draft())
        rest = name[match.end() :]
        while (inner := _INNER.match(rest)) is not None:
            if inner.group(3) is not None:
                if draft.otherwise is None:
                    draft.otherwise = {}
                draft = draft.otherwise.setdefault(int(inner.group(3)), _Draft())
            else:
                draft = draft.arm(int(inner.group(1)))[1].setdefault(int(inner.group(2)), _Draft())
            rest = rest[inner.end() :]
        arm_if = _ARM_IF.match(rest)
        if arm_if is not None:
            draft.arm(int(arm_if.group(1)))[0][0] = value
            continue
        matched = _FIELD.match(rest)
        if matched is None:
            continue
        path, suffix = matched.group(1), matched.group(2)
        card = draft.card
        if path is None:
            if suffix == ":json":
                card.raw = value
        elif path == "action" and suffix is None:
            card.action = value
        elif path == "else" and suffix == ":on":
            if draft.otherwise is None:
                draft.otherwise = {}
        elif suffix == ":kind":
            card.kinds[path] = value
        elif suffix is None:
            card.values[path] = value
    return _sorted(found)


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
    errors: dict[str, str] = {}
    return _steps_of(cards, "steps", errors), errors


def _steps_of(cards: list[StepCard], at: str, errors: dict[str, str]) -> list[Any]:
    steps: list[Any] = []
    for index, card in enumerate(cards):
        name = f"{at}[{index}]"
        if card.raw is not None or card.action not in ACTIONS:
            try:
                steps.append(json.loads(card.raw or "null"))
            except json.JSONDecodeError as exc:
                errors[name] = (
                    f"{name}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
                )
            continue
        step: dict[str, Any] = {"action": card.action}
        if card.action == BRANCH:
            step["branches"] = [
                {
                    **({"if": arm.condition} if arm.condition.strip() else {}),
                    "steps": _steps_of(arm.cards, f"{name}.branches[{number}].steps", errors),
                }
                for number, arm in enumerate(card.arms)
            ]
            if card.otherwise is not None:
                step["else"] = _steps_of(card.otherwise, f"{name}.else", errors)
        for widget in widgets(card.action):
            given, value = _decode(widget, card, name, errors)
            if given:
                step[widget.path] = value
        steps.append(step)
    return steps


def _cut(path: str) -> str:
    """A path without its last part: steps[0].data.x -> steps[0].data -> steps[0]."""
    return re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path)


def _find(cards: list[StepCard], path: str) -> tuple[str, StepCard] | None:
    """The deepest card a path is under (`steps[1].branches[0].steps[2].template` is under
    `steps[1].branches[0].steps[2]`), with that card's own path."""
    match = _STEP.match(path)
    if match is None or int(match.group(1)) >= len(cards):
        return None
    card, at, rest = cards[int(match.group(1))], match.group(0), path[match.end() :]
    while card.raw is None and (inner := _INNER.match(rest)) is not None:
        if inner.group(3) is not None:
            items, index = card.otherwise or [], int(inner.group(3))
        else:
            arm = int(inner.group(1))
            if arm >= len(card.arms):
                break
            items, index = card.arms[arm].cards, int(inner.group(2))
        if index >= len(items):
            break
        card, at, rest = items[index], at + inner.group(0), rest[inner.end() :]
    return at, card


def _card(cards: list[StepCard], path: str) -> StepCard | None:
    found = _find(cards, path)
    return found[1] if found is not None and found[0] == path else None


def _list(cards: list[StepCard], path: str) -> list[StepCard] | None:
    """The cards of a list of steps: `steps`, `steps[1].branches[0].steps`, `steps[1].else`."""
    if path == "steps":
        return cards
    arm = re.match(r"^(.*)\.branches\[(\d+)\]\.steps$", path)
    of = arm or re.match(r"^(.*)\.else$", path)
    branch = _card(cards, of.group(1)) if of is not None else None
    if branch is None or branch.raw is not None:
        return None
    if arm is not None:
        number = int(arm.group(2))
        return branch.arms[number].cards if number < len(branch.arms) else None
    return branch.otherwise


def error_name(path: str, cards: list[StepCard]) -> str:
    """The input a definition error's path (`steps[1].data.order`) is shown at: the
    deepest one the path is under (in a branch's arms too), else the step's card, else the
    steps as a whole."""
    found = _find(cards, path)
    if found is None:
        return "steps"
    step, card = found
    names = {step}
    if card.raw is None and card.action in ACTIONS:
        names |= {f"{step}.{widget.path}" for widget in _flat(widgets(card.action))}
        names |= {f"{step}.branches[{number}].if" for number in range(len(card.arms))}
    while path not in names and path != step:
        path = _cut(path)
    return path


def field_id(name: str) -> str:
    """An element id for an input name: steps[0].webhook.url -> steps-0-webhook-url."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


def card_id(path: str) -> str:
    """The element id of a step's card: `step-2` at the top, `card-steps-1-else-0` nested."""
    top = re.fullmatch(r"steps\[(\d+)\]", path)
    return f"step-{top.group(1)}" if top is not None else f"card-{field_id(path)}"


def step_label(path: str) -> str:
    """A step's place for people: `steps[1]` -> `2`, `steps[1].branches[0].steps[2]` ->
    `2, branch 1, step 3`, `steps[1].else[0]` -> `2, else, step 1`."""
    label = re.sub(r"^steps\[(\d+)\]", lambda m: str(int(m.group(1)) + 1), path)
    label = re.sub(
        r"\.branches\[(\d+)\]\.steps\[(\d+)\]",
        lambda m: f", branch {int(m.group(1)) + 1}, step {int(m.group(2)) + 1}",
        label,
    )
    return re.sub(r"\.else\[(\d+)\]", lambda m: f", else, step {int(m.group(1)) + 1}", label)


def _first_input(card: StepCard, path: str) -> str:
    if card.action == BRANCH and card.raw is None and card.arms:
        return field_id(f"{path}.branches[0].if")
    fields = [widget for widget in _flat(widgets(card.action)) if widget.kind != NESTED]
    return field_id(f"{path}.{fields[0].path}") if fields else card_id(path)


def _item(at: str) -> tuple[str, int] | None:
    """The list and index an operation names: `3` (a top-level step) or a path
    (`steps[1].branches[0].steps[2]`)."""
    if at.isdigit():
        return "steps", int(at)
    match = re.match(r"^(.*)\[(\d+)\]$", at)
    return (match.group(1), int(match.group(2))) if match is not None else None


def focus_after(cards: list[StepCard], operation: str) -> str:
    """The id of the element to focus once an operation's editor is shown: the new card's
    first input, the card moved, the card now where one was removed, the view switched to;
    in a branch, the new arm's `if`, or the branch's card."""
    verb, _, at = operation.partition(":")
    if verb == "view":
        return f"view-{at}"
    if verb in ("add-arm", "remove-arm", "add-else", "remove-else"):
        branch_path = re.sub(r"\.branches\[\d+\]$", "", at)
        branch = _card(cards, branch_path)
        if verb == "add-arm" and branch is not None and branch.arms:
            return field_id(f"{branch_path}.branches[{len(branch.arms) - 1}].if")
        if verb == "add-else":
            return field_id(f"{branch_path}.else")
        return card_id(branch_path)
    where = _item(at) if verb != "add" else (at or "steps", -1)
    items = _list(cards, where[0]) if where is not None else None
    if not items:
        return "add_action" if where is None or where[0] == "steps" else card_id(where[0])
    last = len(items) - 1
    if verb == "add":
        return _first_input(items[last], f"{where[0]}[{last}]") if where else "add_action"
    index = where[1] if where is not None else last
    moved = {"up": index - 1, "down": index + 1}.get(verb, index)
    return card_id(f"{where[0] if where else 'steps'}[{max(0, min(moved, last))}]")


def apply(cards: list[StepCard], operation: str, form: Mapping[str, str]) -> list[StepCard]:
    """The cards after an editing operation: `add` (the type in `add_action`), `remove:N`,
    `up:N`, `down:N`; in a branch, `add:<list>` (the type in `add_action@<list>`, a list
    being `steps[1].branches[0].steps` or `steps[1].else`), `remove:`, `up:`, `down:` a
    step's path, `add-arm:<branch>`, `remove-arm:<branch>.branches[N]`, `add-else:<branch>`,
    `remove-else:<branch>`."""
    verb, _, at = operation.partition(":")
    cards = copy.deepcopy(cards)
    if verb == "add":
        items = _list(cards, at or "steps")
        action = form.get(f"add_action@{at}" if at else "add_action", "")
        if items is not None and action in ACTIONS:
            items.append(StepCard(action, arms=[ArmCard()] if action == BRANCH else []))
        return cards
    if verb in ("add-arm", "add-else", "remove-else"):
        branch = _card(cards, at)
        if branch is not None and branch.action == BRANCH and branch.raw is None:
            if verb == "add-arm":
                branch.arms.append(ArmCard())
            elif verb == "add-else":
                branch.otherwise = branch.otherwise or []
            else:
                branch.otherwise = None
        return cards
    if verb == "remove-arm":
        arm = re.match(r"^(.*)\.branches\[(\d+)\]$", at)
        branch = _card(cards, arm.group(1)) if arm is not None else None
        if arm is not None and branch is not None and int(arm.group(2)) < len(branch.arms):
            del branch.arms[int(arm.group(2))]
        return cards
    where = _item(at)
    items = _list(cards, where[0]) if where is not None else None
    if where is None or items is None or where[1] >= len(items):
        return cards
    index = where[1]
    if verb == "remove":
        del items[index]
    elif verb == "up" and index > 0:
        items[index - 1], items[index] = items[index], items[index - 1]
    elif verb == "down" and index + 1 < len(items):
        items[index + 1], items[index] = items[index], items[index + 1]
    return cards
