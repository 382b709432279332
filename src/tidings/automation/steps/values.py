"""The values inside a step: references, Liquid strings, and what they resolve against.

A value in a step definition is any JSON. Inside it, `{"$ref": "data.email"}` (an object with
that one key) stands for the value at that path, and a string may be a Liquid template
(`"{{ data.name }}"`). Both are checked when a definition is saved (`value_problem`) and
resolved when a step runs (`resolve`), against the names of `namespace`.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeGuard

from tidings.kit.jsondoc import leaves
from tidings.template.render import check_syntax, render_with

REF_ROOTS = ("data", "profile", "refs", "event", "recipient")
MERGE_MODES = ("replace", "soft-merge", "overwrite", "none")
# Fields whose strings are message templates: the message renderer fills them in, per channel.
TEMPLATE_FIELDS = ("content",)

_REF_PATH = re.compile(r"^(?:data|profile|refs|event|recipient)(?:\.[A-Za-z0-9_$-]+|\[\d+\])*$")
_PATH_PART = re.compile(r"\.?([A-Za-z0-9_$-]+)|\[(\d+)\]")


def quote(value: Any) -> str:
    """A value as an error message shows it: JSON."""
    return json.dumps(value, ensure_ascii=False, default=str)


def is_ref(value: Any) -> TypeGuard[dict[str, Any]]:
    """Whether `value` is meant as a reference: an object with a `$ref` key. A saved
    definition holds only well-formed ones (`ref_problem`)."""
    return isinstance(value, dict) and "$ref" in value


def ref_problem(value: dict[str, Any]) -> str | None:
    """What is wrong with a reference, or None: it has only the `$ref` key, and that names
    a dotted path under one of REF_ROOTS."""
    if set(value) != {"$ref"}:
        return 'a reference object has only the "$ref" key, e.g. {"$ref": "data.email"}'
    target = value["$ref"]
    if not isinstance(target, str) or not _REF_PATH.match(target):
        return (
            f"{quote(target)} is not a valid $ref: use a dotted path starting with "
            f'{", ".join(REF_ROOTS)}, e.g. {{"$ref": "data.email"}}'
        )
    return None


def value_problem(value: Any) -> tuple[str, str] | None:
    """The first bad reference or unparsable Liquid string inside `value`, as (path below
    `value`, reason), or None."""
    for at, leaf in leaves(value, whole=is_ref):
        if is_ref(leaf):
            reason = ref_problem(leaf)
        else:
            reason = check_syntax(leaf) if isinstance(leaf, str) else None
        if reason is not None:
            return at, reason
    return None


def namespace(context: dict[str, Any]) -> dict[str, Any]:
    """What `if`, `$ref` and Liquid see: data, profile, event, recipient, brand, template, refs.

    `refs` holds the step outputs by their `ref`, and also data, profile and recipient, so
    Courier's `refs.data.x` works as well as `data.x`.
    """
    base = {
        "data": context.get("data") or {},
        "profile": context.get("profile") or {},
        "event": context.get("event") or {},
        "recipient": context.get("recipient"),
        "brand": context.get("brand"),
        "template": context.get("template"),
    }
    refs = dict(context.get("refs") or {})
    refs.update(
        data=base["data"],
        profile=base["profile"],
        recipient=base["recipient"],
        brand=base["brand"],
        template=base["template"],
    )
    return {**base, "refs": refs}


def lookup(names: dict[str, Any], path: str) -> Any:
    """The value at a dotted path such as `data.items[0].sku`; None when any part is missing."""
    value: Any = names
    for match in _PATH_PART.finditer(path):
        key, index = match.group(1), match.group(2)
        if index is not None:
            value = (
                value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
            )
        elif isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key == "length":
            value = len(value)
        else:
            value = None
        if value is None:
            return None
    return value


def resolve(value: Any, names: dict[str, Any]) -> Any:
    """Replace each `{"$ref": path}` by its value and render each Liquid string."""
    if is_ref(value):
        return lookup(names, value["$ref"])
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            return render_with(value, names)
        return value
    if isinstance(value, dict):
        return {
            key: item if key in TEMPLATE_FIELDS else resolve(item, names)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [resolve(item, names) for item in value]
    return value


def text(value: Any, names: dict[str, Any]) -> str | None:
    """A value resolved to a non-empty string, or None."""
    resolved = resolve(value, names)
    if resolved is None:
        return None
    stripped = str(resolved).strip()
    return stripped or None


def cancelation_token(expression: Any, names: dict[str, Any]) -> str | None:
    """A run's token: a Liquid expression, a bare path as Courier writes it (refs.data.x), or
    (in a cancel step) a reference; at most 500 characters."""
    if not expression:
        return None
    if is_ref(expression):
        value = lookup(names, expression["$ref"])
    elif "{{" in expression or "{%" in expression:
        value = text(expression, names)
    else:
        value = lookup(names, expression.strip())
    return None if value is None else str(value)[:500] or None


def merge(strategy: str, current: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """Courier's merge strategies (MERGE_MODES) for fetch-data, send-list data sources and
    update-profile."""
    if strategy == "replace":
        return dict(incoming)
    if strategy == "soft-merge":
        return {**incoming, **current}
    if strategy == "overwrite":
        return {**current, **incoming}
    return dict(current) if current else dict(incoming)
