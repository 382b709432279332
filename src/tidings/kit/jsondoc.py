"""JSON document helpers: RFC 7386 merge patches, a readable diff, and a walk over the
values inside a document."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

_ABSENT: Any = object()


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply an RFC 7386 JSON Merge Patch and return a new document.

    Objects merge key by key, recursively; `null` removes the key; anything else (arrays
    included) replaces the old value.
    """
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            existing = result.get(key)
            result[key] = merge_patch(existing if isinstance(existing, dict) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _pointer(parent: str, key: str) -> str:
    return f"{parent}/{key.replace('~', '~0').replace('/', '~1')}"


def diff(before: dict[str, Any], after: dict[str, Any], path: str = "") -> list[dict[str, Any]]:
    """What changed between two documents, as `{op, path, from, to}` entries.

    `op` is add, replace or remove; `path` is a JSON Pointer. Objects are compared key by key;
    any other value is compared whole.
    """
    changes: list[dict[str, Any]] = []
    for key in sorted(set(before) | set(after), key=str):
        old = before.get(key, _ABSENT)
        new = after.get(key, _ABSENT)
        pointer = _pointer(path, str(key))
        if old is _ABSENT:
            changes.append({"op": "add", "path": pointer, "from": None, "to": new})
        elif new is _ABSENT:
            changes.append({"op": "remove", "path": pointer, "from": old, "to": None})
        elif isinstance(old, dict) and isinstance(new, dict):
            changes.extend(diff(old, new, pointer))
        elif old != new or type(old) is not type(new):
            changes.append({"op": "replace", "path": pointer, "from": old, "to": new})
    return changes


def leaves(
    value: Any, path: str = "", whole: Callable[[Any], bool] = lambda _: False
) -> Iterator[tuple[str, Any]]:
    """Every value inside `value` that is not an object or array, in document order, with
    its path: `path`, then `.key` for an object's member and `[index]` for an array's item.
    An object or array that `whole` accepts is one value, not walked into."""
    if isinstance(value, dict) and not whole(value):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}", whole)
    elif isinstance(value, list) and not whole(value):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]", whole)
    else:
        yield path, value
