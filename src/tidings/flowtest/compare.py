"""Expected against actual: which expected entry each actual one meets, and a readable diff.

An expected entry names only the fields it cares about; an actual entry meets it when every
one of those fields is equal (`at` as an offset, `body_contains` and `error_contains` as a
part of the body or error). Order does not matter, the count does: every expected entry
must meet its own actual entry and no actual entry may be left over.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tidings.flowtest.spec import format_offset

# The fields shown for an actual entry no expected entry asked about.
MESSAGE_SHOWN = ("at", "to", "channel", "template", "subject", "title", "body")
RUN_SHOWN = ("automation", "user", "status", "error")
_PLAIN = re.compile(r"[A-Za-z0-9_@./:+-]+")
BODY_SHOWN = 120


def _contains(actual: Any, part: str) -> bool:
    return isinstance(actual, str) and part in actual


def field_meets(name: str, expected: Any, actual: dict[str, Any]) -> bool:
    if name == "at":
        return bool(actual.get("at") == expected)
    if name == "body_contains":
        return _contains(actual.get("body"), expected)
    if name == "error_contains":
        return _contains(actual.get("error"), expected)
    value = actual.get(name)
    return value is not None and str(value) == expected


def meets(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    return all(field_meets(name, value, actual) for name, value in expected.items())


def _match(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> dict[int, int]:
    """A largest pairing of expected to actual entries that meet (augmenting paths; the
    lists are small). Returns expected index -> actual index."""
    paired_actual: dict[int, int] = {}

    def place(e: int, seen: set[int]) -> bool:
        for a, candidate in enumerate(actual):
            if a in seen or not meets(expected[e], candidate):
                continue
            seen.add(a)
            if a not in paired_actual or place(paired_actual[a], seen):
                paired_actual[a] = e
                return True
        return False

    for e in range(len(expected)):
        place(e, set())
    return {e: a for a, e in paired_actual.items()}


def _scalar(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_offset(value)
    text = str(value)
    if len(text) > BODY_SHOWN:
        text = text[: BODY_SHOWN - 1] + "…"
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def _lines(entry: dict[str, Any]) -> list[str]:
    lines = []
    for index, (name, value) in enumerate(entry.items()):
        lines.append(f"{'  - ' if index == 0 else '    '}{name}: {_scalar(value)}")
    return lines or ["  - {}"]


def _project(actual: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The actual entry in the expected entry's terms: its fields, in its order."""
    shown: dict[str, Any] = {}
    for name, value in expected.items():
        if name in ("body_contains", "error_contains"):
            source = "body" if name == "body_contains" else "error"
            if _contains(actual.get(source), value):
                shown[name] = value
            elif actual.get(source) is not None:
                shown[source] = actual[source]
        elif actual.get(name) is not None:
            shown[name] = actual[name]
    return shown


def _shown(actual: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: actual[name] for name in fields if actual.get(name) is not None}


@dataclass
class Section:
    """The comparison of one kind of expectation (messages, runs)."""

    name: str
    ok: bool
    expected_lines: list[str]
    actual_lines: list[str]


def compare(
    name: str,
    expected: list[dict[str, Any]],
    actual: list[dict[str, Any]],
    shown: tuple[str, ...],
) -> Section:
    pairs = _match(expected, actual)
    left = [a for a in range(len(actual)) if a not in pairs.values()]
    expected_lines = [f"{name}:"]
    actual_lines = [f"{name}:"]

    def closeness(e: dict[str, Any]) -> Callable[[int], tuple[int, int]]:
        return lambda a: (
            sum(field_meets(n, v, actual[a]) for n, v in e.items()),
            -a,
        )

    for e, entry in enumerate(expected):
        expected_lines += _lines(entry)
        a = pairs.get(e)
        if a is None and left:
            a = max(left, key=closeness(entry))
            left.remove(a)
        if a is not None:
            actual_lines += _lines(_project(actual[a], entry))
    for a in left:
        actual_lines += _lines(_shown(actual[a], shown))
    for lines in (expected_lines, actual_lines):
        if len(lines) == 1:
            lines[0] = f"{name}: []"
    ok = len(pairs) == len(expected) == len(actual)
    return Section(name, ok, expected_lines, actual_lines)


def diff(sections: list[Section]) -> str:
    expected = [line for section in sections for line in section.expected_lines]
    actual = [line for section in sections for line in section.actual_lines]
    return "\n".join(difflib.unified_diff(expected, actual, "expected", "actual", lineterm="", n=3))


def actual_text(sections: list[Section]) -> str:
    return "\n".join(line for section in sections for line in section.actual_lines)
