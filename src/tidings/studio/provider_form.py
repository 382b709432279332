"""HTML form fields generated from a provider's pydantic config model.

Secrets (`SecretStr` fields) are write-only: their inputs are never filled in, and an empty
secret input keeps the stored value (the provider service keeps a secret left out). A text
field marked `json_schema_extra={"multiline": True}` (a PEM certificate, say) is a textarea.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from starlette.datastructures import FormData

from tidings.errors import BadRequest
from tidings.provider.base import ProviderConfig
from tidings.provider.service import MASK
from tidings.studio.csrf import form_text


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    help: str
    kind: str  # text, textarea, number, checkbox, select, secret, json
    required: bool
    choices: tuple[str, ...]
    value: str
    stored_secret: bool


def _without_none(annotation: Any) -> Any:
    """The field's type without `| None` and without `Annotated` validators and markers."""
    if get_origin(annotation) in (Union, types.UnionType):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            annotation = options[0]
    if get_origin(annotation) is Annotated:
        return get_args(annotation)[0]
    return annotation


def _kind(info: FieldInfo) -> tuple[str, tuple[str, ...]]:
    annotation = _without_none(info.annotation)
    if annotation is SecretStr:
        return "secret", ()
    if annotation is bool:
        return "checkbox", ()
    if annotation in (int, float):
        return "number", ()
    if get_origin(annotation) is Literal:
        return "select", tuple(str(arg) for arg in get_args(annotation))
    if annotation is str:
        extra = info.json_schema_extra
        multiline = isinstance(extra, dict) and extra.get("multiline") is True
        return ("textarea" if multiline else "text"), ()
    return "json", ()


def fields(model: type[ProviderConfig], current: dict[str, Any] | None) -> list[FormField]:
    """One field per config field; `current` is the stored config with secrets masked."""
    result = []
    for name, info in model.model_fields.items():
        kind, choices = _kind(info)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        value = current.get(name, default) if current is not None else default
        stored_secret = kind == "secret" and current is not None and current.get(name) == MASK
        if kind == "secret":
            shown = ""
        elif kind == "json":
            shown = "" if value is None else json.dumps(value)
        elif kind == "checkbox":
            shown = "on" if value else ""
        else:
            shown = "" if value is None else str(value)
        result.append(
            FormField(
                name=name,
                label=info.title or name,
                help=info.description or "",
                kind=kind,
                required=info.is_required(),
                choices=choices,
                value=shown,
                stored_secret=stored_secret,
            )
        )
    return result


def values(model: type[ProviderConfig], form: FormData) -> dict[str, Any]:
    """The submitted config: empty optional fields and empty secrets are left out."""
    config: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        kind, _ = _kind(info)
        raw = form_text(form, f"config.{name}")
        text = raw if kind == "textarea" and raw.strip() else raw.strip()
        if kind == "checkbox":
            config[name] = text == "on"
        elif not text or (kind == "secret" and text == MASK):
            continue
        elif kind == "json":
            try:
                config[name] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise BadRequest(
                    f"config.{name}: not valid JSON: {exc.msg}.", field=f"config.{name}"
                ) from exc
        else:
            config[name] = text
    return config
