"""The audience condition language: parsing (with exact field paths) and evaluation.

A condition is a tree of `all` / `any` / `not` over leaves:

- `{"trait": "plan", "equals": "pro"}`: a profile trait (a dotted path), with one operator:
  `equals`, `not_equals`, `contains`, `starts_with`, `ends_with`, `in`, `exists`, `gt`, `gte`,
  `lt`, `lte`, `before`, `after` (times) or `within` (a time in the last duration);
- `{"event": "Viewed Pricing", "at_least": 2, "within": "7 days", "where": [...]}`: the
  user's tracks of that name, at least `at_least` (default 1) of them in the window (`within`
  a duration, or `since` a time; no window: ever), each matching every `where` leaf
  (`{"property": "page", "equals": "/pricing"}`, the same operators as traits);
- `{"list": "weekly-digest"}` and `{"tenant": "acme"}`: membership;
- `{"first_seen": {"within": "30 days"}}` and `{"last_seen": {"before": "-14 days"}}`: the
  first and the last time Tidings saw the user.

A time is ISO 8601 ("2026-12-01", "2026-12-01T09:00:00Z"), "now", or a duration from now
("-7 days", "+3 days").

Evaluation is pure: `evaluate(condition, facts, now)` says whether the user is in, and the
earliest later time at which the answer could change with no new data (a "7 days" window
passing an event, a trait time coming due): the audience re-checks the user then.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tidings.kit.duration import DurationError, parse_duration
from tidings.kit.time import parse_timestamp
from tidings.touched import Needs

# Bounds of a definition: a condition is stored and evaluated for every changed user.
MAX_NODES = 100
MAX_DEPTH = 8
MAX_LIST_VALUES = 500
MAX_TEXT = 1_000
MAX_AT_LEAST = 10_000

VALUE_OPERATORS = (
    "equals",
    "not_equals",
    "contains",
    "starts_with",
    "ends_with",
    "in",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "before",
    "after",
    "within",
)
TIME_OPERATORS = ("before", "after", "within")
EXAMPLE = (
    '{"all": [{"trait": "plan", "equals": "free"}, '
    '{"event": "Viewed Pricing", "at_least": 2, "within": "7 days"}]}'
)


class ConditionError(ValueError):
    """A condition that cannot be saved: `at` is the path below `condition` (".all[1].event"),
    `reason` says what is wrong and how to fix it."""

    def __init__(self, at: str, reason: str) -> None:
        super().__init__(f"{at}: {reason}")
        self.at = at
        self.reason = reason


def _quote(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------------
# Times in conditions


@dataclass(frozen=True, slots=True)
class Moment:
    """A time in a condition: fixed (`at`), or `offset` from the evaluation's now."""

    at: datetime | None = None
    offset: timedelta = timedelta()

    def resolve(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now + self.offset

    @property
    def relative(self) -> bool:
        return self.at is None


def _moment(value: Any, at: str) -> Moment:
    help_ = (
        'use an ISO 8601 time ("2026-12-01" or "2026-12-01T09:00:00Z"), "now", or a '
        'duration from now such as "-7 days" or "+3 days"'
    )
    if not isinstance(value, str) or not value.strip():
        raise ConditionError(at, f"{_quote(value)} is not a time; {help_}")
    text = value.strip()
    if text.lower() == "now":
        return Moment()
    if text[0] in "+-":
        try:
            duration = parse_duration(text[1:])
        except DurationError as exc:
            raise ConditionError(at, f"{_quote(value)} is not a time; {help_}") from exc
        return Moment(offset=duration if text[0] == "+" else -duration)
    parsed = parse_timestamp(text)
    if parsed is None:
        raise ConditionError(at, f"{_quote(value)} is not a time; {help_}")
    return Moment(at=parsed)


def _duration(value: Any, at: str) -> timedelta:
    try:
        duration = parse_duration(value)
    except DurationError as exc:
        raise ConditionError(at, str(exc)) from exc
    if duration <= timedelta():
        raise ConditionError(at, f"{_quote(value)} is empty: give a positive duration")
    return duration


def time_of(value: Any) -> datetime | None:
    """A trait or property read as a time: ISO 8601 text (other values are no time)."""
    if isinstance(value, datetime):
        return value
    return parse_timestamp(value) if isinstance(value, str) else None


# ---------------------------------------------------------------------------------------------
# The parsed tree


@dataclass(frozen=True, slots=True)
class Test:
    """One operator and its operand, applied to a value (a trait, a property, a time)."""

    operator: str
    operand: Any

    def next_change(self, value: Any, now: datetime) -> datetime | None:
        """When the answer on `value` could change as time passes (time operators only)."""
        if self.operator not in TIME_OPERATORS:
            return None
        moment = time_of(value)
        if moment is None:
            return None
        if self.operator == "within":
            changes = [moment, moment + self.operand]
        elif self.operand.relative:
            changes = [moment - self.operand.offset]
        else:
            return None
        later = [change for change in changes if change > now]
        return min(later) if later else None

    def holds(self, value: Any, present: bool, now: datetime) -> bool:
        operator, operand = self.operator, self.operand
        if operator == "exists":
            return bool((present and value is not None) == operand)
        if not present:
            return operator == "not_equals"
        if operator == "equals":
            return _equal(value, operand)
        if operator == "not_equals":
            return not _equal(value, operand)
        if operator == "in":
            if isinstance(value, list):
                return any(_equal(item, option) for item in value for option in operand)
            return any(_equal(value, option) for option in operand)
        if operator == "contains":
            if isinstance(value, list):
                return any(_equal(item, operand) for item in value)
            return isinstance(value, str) and isinstance(operand, str) and operand in value
        if operator == "starts_with":
            return isinstance(value, str) and value.startswith(operand)
        if operator == "ends_with":
            return isinstance(value, str) and value.endswith(operand)
        if operator in ("gt", "gte", "lt", "lte"):
            number = _number(value)
            if number is None:
                return False
            limit = float(operand)
            return {
                "gt": number > limit,
                "gte": number >= limit,
                "lt": number < limit,
                "lte": number <= limit,
            }[operator]
        moment = time_of(value)
        if moment is None:
            return False
        if operator == "within":
            return bool(now - operand <= moment <= now)
        bound: datetime = operand.resolve(now)
        return moment < bound if operator == "before" else moment > bound


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _equal(value: Any, operand: Any) -> bool:
    if isinstance(value, bool) or isinstance(operand, bool):
        return value is operand
    return bool(value == operand)


@dataclass(frozen=True, slots=True)
class Node:
    """A parsed condition. `kind` is all, any, not, trait, event, list, tenant, first_seen or
    last_seen."""

    kind: str
    children: tuple[Node, ...] = ()
    path: tuple[str, ...] = ()
    name: str = ""
    test: Test | None = None
    at_least: int = 1
    window: timedelta | None = None
    since: Moment | None = None
    where: tuple[tuple[tuple[str, ...], Test], ...] = ()


# ---------------------------------------------------------------------------------------------
# Parsing


def _path(value: Any, at: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, str) or not value.strip() or len(value) > 300:
        raise ConditionError(
            at,
            f'{_quote(value)} is not a {what} path; give a name such as "plan" or a '
            'dotted path such as "address.country" (at most 300 characters)',
        )
    parts = tuple(value.split("."))
    if any(not part for part in parts):
        raise ConditionError(at, f'{_quote(value)} has an empty part; write "address.country"')
    return parts


def _operand(operator: str, value: Any, at: str) -> Any:
    if operator == "exists":
        if not isinstance(value, bool):
            raise ConditionError(at, f"must be true or false, not {_quote(value)}")
        return value
    if operator in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConditionError(at, f"must be a number, not {_quote(value)}")
        if not math.isfinite(value):
            raise ConditionError(at, "must be a finite number")
        return float(value)
    if operator in ("before", "after"):
        return _moment(value, at)
    if operator == "within":
        return _duration(value, at)
    if operator in ("starts_with", "ends_with") and not isinstance(value, str):
        raise ConditionError(at, f"must be a string, not {_quote(value)}")
    if operator == "in":
        if not isinstance(value, list) or not value or len(value) > MAX_LIST_VALUES:
            raise ConditionError(
                at, f'must be a list of 1 to {MAX_LIST_VALUES} values, e.g. ["pro", "team"]'
            )
        for index, item in enumerate(value):
            _scalar(item, f"{at}[{index}]")
        return tuple(value)
    _scalar(value, at)
    return value


def _scalar(value: Any, at: str) -> None:
    if isinstance(value, (dict, list)):
        raise ConditionError(at, f"must be a string, number, boolean or null, not {_quote(value)}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ConditionError(at, f"is longer than {MAX_TEXT} characters")


def _test(raw: Mapping[str, Any], at: str, subject: str, allowed: Iterable[str]) -> Test:
    allowed = tuple(allowed)
    given = [key for key in raw if key in allowed]
    if len(given) != 1:
        raise ConditionError(
            at if not given else f"{at}.{given[1]}",
            f"a {subject} condition takes exactly one operator: " + ", ".join(allowed),
        )
    (operator,) = given
    return Test(operator, _operand(operator, raw[operator], f"{at}.{operator}"))


def _only(raw: Mapping[str, Any], at: str, fields: Sequence[str], what: str) -> None:
    for key in raw:
        if key not in fields:
            raise ConditionError(
                f"{at}.{key}",
                f"{_quote(key)} is not a field of {what}; use " + ", ".join(fields),
            )


def event_names(name: str) -> tuple[str, ...]:
    """The stored names a condition's track name matches: a Segment track
    (`track/<name>`) and a Courier inbound event (`<name>`)."""
    bare = name[len("track/") :] if name.startswith("track/") else name
    return (f"track/{bare}", bare)


@dataclass
class _Counter:
    nodes: int = 0


def parse(raw: Any, at: str = "", *, _depth: int = 0, _count: _Counter | None = None) -> Node:
    """A condition, checked; raises ConditionError naming the field below `condition`."""
    count = _count if _count is not None else _Counter()
    count.nodes += 1
    if count.nodes > MAX_NODES:
        raise ConditionError(at, f"a condition has at most {MAX_NODES} parts")
    if _depth > MAX_DEPTH:
        raise ConditionError(at, f"conditions nest at most {MAX_DEPTH} levels deep")
    if not isinstance(raw, dict) or not raw:
        raise ConditionError(at, f"a condition is an object, such as {EXAMPLE}")
    if "all" in raw or "any" in raw:
        kind = "all" if "all" in raw else "any"
        _only(raw, at, (kind,), f"an {kind!r} condition")
        items = raw[kind]
        if not isinstance(items, list) or not items:
            raise ConditionError(f"{at}.{kind}", "must be a non-empty list of conditions")
        children = tuple(
            parse(item, f"{at}.{kind}[{index}]", _depth=_depth + 1, _count=count)
            for index, item in enumerate(items)
        )
        return Node(kind, children=children)
    if "not" in raw:
        _only(raw, at, ("not",), 'a "not" condition')
        return Node(
            "not", children=(parse(raw["not"], f"{at}.not", _depth=_depth + 1, _count=count),)
        )
    if "trait" in raw:
        _only(raw, at, ("trait", *VALUE_OPERATORS), "a trait condition")
        return Node(
            "trait",
            path=_path(raw["trait"], f"{at}.trait", "trait"),
            test=_test(raw, at, "trait", VALUE_OPERATORS),
        )
    if "event" in raw:
        return _event(raw, at)
    for kind in ("list", "tenant"):
        if kind in raw:
            _only(raw, at, (kind,), f"a {kind} condition")
            value = raw[kind]
            if not isinstance(value, str) or not value.strip() or len(value) > 300:
                raise ConditionError(f"{at}.{kind}", f"must be a {kind} id, not {_quote(value)}")
            return Node(kind, name=value)
    for kind in ("first_seen", "last_seen"):
        if kind in raw:
            _only(raw, at, (kind,), f"a {kind} condition")
            inner = raw[kind]
            if not isinstance(inner, dict):
                raise ConditionError(
                    f"{at}.{kind}",
                    'is an object with one of before, after or within: {"within": "30 days"}',
                )
            _only(inner, f"{at}.{kind}", TIME_OPERATORS, f"{kind}")
            return Node(kind, test=_test(inner, f"{at}.{kind}", kind, TIME_OPERATORS))
    raise ConditionError(
        at,
        "names no condition: use all, any, not, trait, event, list, tenant, first_seen or "
        f"last_seen, e.g. {EXAMPLE}",
    )


def _event(raw: Mapping[str, Any], at: str) -> Node:
    _only(raw, at, ("event", "at_least", "within", "since", "where"), "an event condition")
    name = raw["event"]
    if not isinstance(name, str) or not name.strip() or len(name) > 300:
        raise ConditionError(
            f"{at}.event",
            f'must be the name of a track, such as "Viewed Pricing", not {_quote(name)}',
        )
    at_least = raw.get("at_least", 1)
    if (
        isinstance(at_least, bool)
        or not isinstance(at_least, int)
        or not 1 <= at_least <= MAX_AT_LEAST
    ):
        raise ConditionError(
            f"{at}.at_least",
            f'must be a whole number from 1 to {MAX_AT_LEAST}; for "never did" wrap the '
            'condition in {"not": …}',
        )
    if "within" in raw and "since" in raw:
        raise ConditionError(f"{at}.since", "give within or since, not both")
    window = _duration(raw["within"], f"{at}.within") if "within" in raw else None
    since = _moment(raw["since"], f"{at}.since") if "since" in raw else None
    where_raw = raw.get("where", [])
    if isinstance(where_raw, dict):
        where_raw = [where_raw]
    if not isinstance(where_raw, list) or len(where_raw) > 20:
        raise ConditionError(
            f"{at}.where",
            'must be a list of up to 20 property conditions: [{"property": "page", '
            '"equals": "/pricing"}]',
        )
    where = []
    for index, leaf in enumerate(where_raw):
        leaf_at = f"{at}.where[{index}]"
        if not isinstance(leaf, dict) or "property" not in leaf:
            raise ConditionError(
                leaf_at, 'is a property condition: {"property": "page", "equals": "/pricing"}'
            )
        _only(leaf, leaf_at, ("property", *VALUE_OPERATORS), "a property condition")
        where.append(
            (
                _path(leaf["property"], f"{leaf_at}.property", "property"),
                _test(leaf, leaf_at, "property", VALUE_OPERATORS),
            )
        )
    return Node(
        "event", name=name, at_least=at_least, window=window, since=since, where=tuple(where)
    )


# ---------------------------------------------------------------------------------------------
# What a condition needs to know


def needs(node: Node) -> Needs:
    if node.children:
        found = Needs()
        for child in node.children:
            found = found | needs(child)
        return found
    if node.kind == "trait":
        return Needs(traits=True)
    if node.kind == "event":
        return Needs(events=frozenset(event_names(node.name)), event_properties=bool(node.where))
    if node.kind == "list":
        return Needs(lists=True)
    if node.kind == "tenant":
        return Needs(tenants=True)
    if node.kind == "first_seen":
        return Needs(first_seen=True)
    return Needs(last_seen=True)


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One stored event of a user: when it happened and its properties."""

    at: datetime
    properties: Mapping[str, Any]


@dataclass
class Facts:
    """What is known of one user, as far as the conditions need it. `events` maps each stored
    event name to its occurrences, newest first."""

    traits: Mapping[str, Any] = field(default_factory=dict)
    events: Mapping[str, Sequence[Occurrence]] = field(default_factory=dict)
    lists: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    first_seen: datetime | None = None
    last_seen: datetime | None = None


_MISSING = object()


def _lookup(document: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = document
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _earliest(*times: datetime | None) -> datetime | None:
    present = [time for time in times if time is not None]
    return min(present) if present else None


def evaluate(node: Node, facts: Facts, now: datetime) -> tuple[bool, datetime | None]:
    """Whether `facts` satisfy `node` at `now`, and the earliest later time at which the
    answer could change by time alone (None: not without new data)."""
    if node.kind in ("all", "any"):
        results = [evaluate(child, facts, now) for child in node.children]
        answer = (all if node.kind == "all" else any)(result for result, _ in results)
        return answer, _earliest(*(change for _, change in results))
    if node.kind == "not":
        result, change = evaluate(node.children[0], facts, now)
        return not result, change
    if node.kind == "trait":
        assert node.test is not None
        value = _lookup(facts.traits, node.path)
        present = value is not _MISSING
        return (
            node.test.holds(value if present else None, present, now),
            node.test.next_change(value, now) if present else None,
        )
    if node.kind == "list":
        return node.name in facts.lists, None
    if node.kind == "tenant":
        return node.name in facts.tenants, None
    if node.kind in ("first_seen", "last_seen"):
        assert node.test is not None
        seen = facts.first_seen if node.kind == "first_seen" else facts.last_seen
        if seen is None:
            return False, None
        return node.test.holds(seen, True, now), node.test.next_change(seen, now)
    return _evaluate_event(node, facts, now)


def _evaluate_event(node: Node, facts: Facts, now: datetime) -> tuple[bool, datetime | None]:
    start = (
        now - node.window
        if node.window is not None
        else node.since.resolve(now)
        if node.since is not None
        else None
    )
    counted: list[datetime] = []
    for name in event_names(node.name):
        for occurrence in facts.events.get(name, ()):
            if start is not None and occurrence.at < start:
                continue
            if all(
                test.holds(value, value is not _MISSING, now)
                for path, test in node.where
                for value in (_lookup(occurrence.properties, path),)
            ):
                counted.append(occurrence.at)
    if len(counted) < node.at_least:
        return False, None
    relative = node.window is not None or (node.since is not None and node.since.relative)
    if not relative:
        return True, None
    # The answer turns false when the at_least-th newest counted event leaves the window.
    counted.sort(reverse=True)
    leaves = counted[node.at_least - 1] + (now - start) if start is not None else None
    return True, leaves if leaves is not None and leaves > now else None


# ---------------------------------------------------------------------------------------------
# Courier's audience filters

_COURIER_OPERATORS = {
    "EQ": "equals",
    "NEQ": "not_equals",
    "STARTS_WITH": "starts_with",
    "ENDS_WITH": "ends_with",
    "INCLUDES": "contains",
    "GT": "gt",
    "GTE": "gte",
    "LT": "lt",
    "LTE": "lte",
    "IS_BEFORE": "before",
    "IS_AFTER": "after",
    "EXISTS": "exists",
}


def from_courier(raw: Any, at: str = "") -> dict[str, Any]:
    """Courier's `filter` (`{"operator": "AND", "filters": [{"operator": "EQ", "path":
    "plan", "value": "pro"}]}`, groups nested the same way) as the condition it means;
    raises ConditionError naming the field below `filter`."""
    if not isinstance(raw, dict):
        raise ConditionError(
            at, 'a filter is an object: {"operator": "EQ", "path": "plan", "value": "pro"}'
        )
    operator = raw.get("operator")
    if "filters" in raw and operator is None:
        operator = "AND"  # Courier: a group of one rule needs no operator
    if operator in ("AND", "OR"):
        _only(raw, at, ("operator", "filters"), "an AND/OR filter")
        items = raw.get("filters")
        if not isinstance(items, list) or not items:
            raise ConditionError(f"{at}.filters", "must be a non-empty list of filters")
        kind = "all" if operator == "AND" else "any"
        return {
            kind: [from_courier(item, f"{at}.filters[{index}]") for index, item in enumerate(items)]
        }
    _only(raw, at, ("operator", "path", "value"), "a filter")
    path, value = raw.get("path"), raw.get("value")
    if operator == "MEMBER_OF":
        return {"tenant": value}
    if operator == "OMIT":
        return {"not": {"trait": path, "contains": value}}
    name = _COURIER_OPERATORS.get(operator) if isinstance(operator, str) else None
    if name is None:
        raise ConditionError(
            f"{at}.operator",
            f"{_quote(operator)} is not a Courier filter operator; use AND, OR, MEMBER_OF, "
            "OMIT, " + ", ".join(_COURIER_OPERATORS),
        )
    if name == "exists":
        value = value not in (False, "false", "False", "0")
    elif name in ("gt", "gte", "lt", "lte") and isinstance(value, str):
        number = _number(value)
        value = number if number is not None else value
    return {"trait": path, name: value}
