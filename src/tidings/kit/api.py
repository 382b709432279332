"""Helpers the API's endpoints and wire shapes share: filling a response model from a row,
and the OpenAPI description of a `PUT` that creates or replaces."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from tidings.kit.time import isoformat

ModelT = TypeVar("ModelT", bound=BaseModel)


def from_row(model: type[ModelT], row: object, **values: Any) -> ModelT:
    """`model` with `values`, and each other field it declares read from the row's attribute
    of the same name, a datetime written as ISO 8601 in UTC (`kit.time.isoformat`). A field
    the row does not have keeps the model's default."""
    read = {
        name: getattr(row, name)
        for name in model.model_fields
        if name not in values and hasattr(row, name)
    }
    for name, value in read.items():
        if isinstance(value, datetime):
            read[name] = isoformat(value)
    return model(**read, **values)


def creates_or_replaces(model: type[BaseModel]) -> dict[str, Any]:
    """The route arguments of a `PUT` that answers `model`: 201 when it created the thing,
    200 when it replaced it."""
    return {
        "response_model": model,
        "responses": {201: {"model": model, "description": "Created."}},
    }
