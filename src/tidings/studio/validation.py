"""Studio's forms checked with the API's own rules: a JSON field parsed within Tidings' input
limits (`kit.json_input`), and a form's values validated by the API's request model, each
error naming the field and the path inside it that is wrong."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tidings.errors import BadRequest
from tidings.kit import json_input

Model = TypeVar("Model", bound=BaseModel)


def json_field(text: str, name: str) -> Any:
    """The JSON typed in the field `name`; BadRequest at that field when it is not JSON or
    is over a limit, with the line and column, or the path inside it."""
    try:
        return json_input.loads(text)
    except json_input.JSONDecodeError as exc:
        raise BadRequest(
            f"{name}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno}).",
            code="invalid_json",
            field=name,
        ) from exc
    except BadRequest as exc:
        # Its path, within the field: `a.b` is `profile.a.b`.
        inner = f"`{exc.field}`"
        message = (
            exc.message.replace(inner, f"`{name}.{exc.field}`", 1)
            if inner in exc.message
            else f"{name}: {exc.message}"
        )
        raise BadRequest(message, code=exc.code, field=name) from exc


def validated(model: type[Model], values: dict[str, Any], hint: str = "") -> Model:
    """`values` as the API's request `model`; BadRequest naming the first error's path
    (e.g. `preferences.categories.news.status`), at the form field it starts with."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadRequest(
            f"{where}: {first['msg']}.{' ' + hint if hint else ''}",
            field=str(first["loc"][0]) if first["loc"] else None,
        ) from exc
