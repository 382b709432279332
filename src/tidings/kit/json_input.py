"""JSON from outside, parsed within the limits Tidings can store exactly.

`loads` is `orjson.loads` plus three limits (docs/security.md, Input limits), each answered
400 naming the offending path:

- nesting at most `MAX_JSON_DEPTH` levels (`json_too_deep`): deeper documents cannot be
  serialised again (orjson stops at 255) and no real analytics data needs them;
- integers within signed 64 bits (`invalid_number`): orjson would silently read larger ones
  as floats, and SQLite's JSON stores no wider integer;
- no NUL character (\\u0000) in strings or keys (`invalid_string`): PostgreSQL refuses it.

The ingest hot path parses every event here, so each limit is first checked on the raw
bytes by a test that is cheap and never misses (it may raise a false alarm, which only costs
a precise walk): a document cannot be deeper than its count of `{` and `[`, cannot hold a
wide integer without a run of 19 digits, nor a NUL without the escape `\\u0000`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from tidings.errors import BadRequest

MAX_JSON_DEPTH = 64
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**63 - 1

# Digits to "0", everything else to " ": a wide integer leaves a run of 19 zeros.
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_WIDE = b"0" * len(str(MAX_INTEGER))
_NUL_ESCAPE = b"\\u0000"

JSONDecodeError = orjson.JSONDecodeError


def loads(body: bytes | str) -> Any:
    """Parse `body`; orjson.JSONDecodeError if it is not JSON, BadRequest over a limit."""
    value = orjson.loads(body)
    raw = body.encode() if isinstance(body, str) else body
    if type(value) in (dict, list) and raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH:
        _check_depth(value)
    if _NUL_ESCAPE in raw:
        _check_strings(value)
    if _WIDE in raw.translate(_DIGITS):
        # orjson has read any wide integer as a float already; the standard parser keeps it
        # exact (the depth is known to be within the limit, far from its recursion limit).
        _check_integers(json.loads(raw))
    return value


def _path(parts: tuple[str | int, ...]) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return text.lstrip(".") or "body"


def _walk(value: Any) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every value with its path, depth first, without recursion."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            stack.extend(((*path, key), child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in enumerate(item))


def _check_depth(value: Any) -> None:
    """Refuse a document with containers below MAX_JSON_DEPTH levels. It goes level by
    level over containers only, in list comprehensions: a Tracking API batch of hundreds of
    shallow events (far more than 64 brackets) costs about what parsing it did."""
    level = [value]
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for container in level
            for child in (container.values() if type(container) is dict else container)
            if type(child) is dict or type(child) is list
        ]
        if not level:
            return
    shown = _path(_deep_path(value)[:8])
    raise BadRequest(
        f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep (at `{shown} …`). "
        f"Tidings accepts at most {MAX_JSON_DEPTH} levels of objects and arrays: "
        "flatten the data.",
        code="json_too_deep",
        field=shown,
    )


def _deep_path(value: Any) -> tuple[str | int, ...]:
    """The path of a container below MAX_JSON_DEPTH levels (one exists)."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, container = stack.pop()
        if len(path) >= MAX_JSON_DEPTH:
            return path
        children = container.items() if isinstance(container, dict) else enumerate(container)
        stack.extend(
            ((*path, key), child) for key, child in children if isinstance(child, dict | list)
        )
    raise AssertionError("no container below the depth limit")


def check_form_fields(fields: Iterable[tuple[str, Any]]) -> None:
    """Refuse a form (Studio's, a vendor callback's) with a NUL in a field's name or text."""
    for name, value in fields:
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise BadRequest(
                f"The form field {name!r} contains the NUL character (%00), which Tidings "
                "cannot store. Remove it.",
                code="invalid_string",
                field=name,
            )


def _check_strings(value: Any) -> None:
    for path, item in _walk(value):
        if isinstance(item, str) and "\x00" in item:
            raise BadRequest(
                f"`{_path(path)}` contains the NUL character (\\u0000), which Tidings cannot "
                "store. Remove it.",
                code="invalid_string",
                field=_path(path),
            )
        if isinstance(item, dict) and any("\x00" in key for key in item):
            raise BadRequest(
                f"A key in `{_path(path)}` contains the NUL character (\\u0000), which "
                "Tidings cannot store. Remove it.",
                code="invalid_string",
                field=_path(path),
            )


def _check_integers(value: Any) -> None:
    for path, item in _walk(value):
        if (
            isinstance(item, int)
            and not isinstance(item, bool)
            and not MIN_INTEGER <= item <= MAX_INTEGER
        ):
            raise BadRequest(
                f"`{_path(path)}` is {item}, an integer outside the 64-bit range "
                f"({MIN_INTEGER} to {MAX_INTEGER}) that Tidings stores exactly. Send it as "
                "a string.",
                code="invalid_number",
                field=_path(path),
            )
