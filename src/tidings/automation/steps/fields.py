"""The field types of step models, and how a step's fields are checked.

A field's check raises `invalid(reason, at)`: `reason` is the sentence the API returns, `at`
the path below the field when the problem is deeper (`.elements[0].type`).

A step is checked in this order: its keys (no unknown one); the fields that exclude each
other (a delay's duration or until, a send's template or content); each field in its
order, for its shape (a required one left out is refused where it stands, see `Needed`);
last, the values inside every field (`values.value_problem`: references and Liquid).

Loading a stored step (no validation context) checks the shape of its fields only: the
checks that parse something (Liquid, `$ref` paths, Elemental, `if`, durations, times, URLs)
and the ones across fields run when a definition is saved, with `Saving` as the
validation context.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, PlainValidator, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema

from tidings.automation.steps.values import MERGE_MODES, is_ref, quote
from tidings.kit.duration import DurationError, parse_duration
from tidings.kit.expression import ExpressionError, compile_expression
from tidings.kit.outbound import OutboundGuard
from tidings.template.elemental import ContentError, validate_content

RESERVED_REFS = ("data", "profile", "brand", "template", "recipient", "event")
_REF_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")

Ref = dict[str, Any]
"""`{"$ref": "data.email"}`."""


@dataclass(frozen=True)
class Saving:
    """The validation context of a definition being saved: the guard its literal webhook URLs
    must pass, and where the step is (`steps[2]`), for messages that name another field."""

    outbound: OutboundGuard
    where: str = ""


MISSING: Any = object()
"""What a required field that was left out holds while its step is checked (`Needed`)."""


@dataclass(frozen=True)
class Needed:
    """Field metadata: the reason given when a step leaves this required field out."""

    reason: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._check, handler(source))

    def _check(self, value: Any) -> Any:
        if value is MISSING:
            raise invalid(self.reason)
        return value


def invalid(reason: str, at: str = "") -> PydanticCustomError:
    return PydanticCustomError("invalid_step", "{reason}", {"reason": reason, "at": at})


def saving(info: ValidationInfo) -> Saving | None:
    return info.context if isinstance(info.context, Saving) else None


def checked_duration(value: Any, examples: str, at: str = "") -> timedelta:
    """`value`, a duration string such as `examples`, parsed; `at` is where, for the error."""
    try:
        return parse_duration(_duration_text(value, examples, at))
    except DurationError as exc:
        raise invalid(str(exc), at) from exc


def saved_duration(value: Any, info: ValidationInfo, examples: str) -> timedelta | None:
    """A duration field's length when the step is saved (`checked_duration`); when it is only
    loaded, None once the value is a string."""
    if saving(info) is None:
        _duration_text(value, examples, "")
        return None
    return checked_duration(value, examples)


def _duration_text(value: Any, examples: str, at: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"must be a duration such as {examples}, not {quote(value)}", at)
    return value


def _text(value: Any) -> Any:
    if not is_ref(value) and (not isinstance(value, str) or not value.strip()):
        raise invalid(f'must be a non-empty string or a {{"$ref": …}}, not {quote(value)}')
    return value


def _object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise invalid(f"must be an object, not {quote(value)}")
    return value


def _content(value: Any, info: ValidationInfo) -> Any:
    """Inline content ({title, body} or Elemental) or a reference to it."""
    if saving(info) is not None and not is_ref(value):
        try:
            validate_content(value, "")
        except ContentError as exc:
            raise invalid(exc.reason, exc.path) from exc
    return value


def choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise invalid(f"{quote(value)} is not one of {', '.join(options)}")
        return str(value)

    return check


def _not_null(value: Any) -> Any:
    if value is None:
        raise invalid("must be an object, not null")
    return value


NOT_NULL = BeforeValidator(_not_null)
"""For an optional object of its own model: left out it is None, but a given null is refused."""


def _condition(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        raise invalid("must be an expression string, e.g. data.total > 100")
    if saving(info) is not None:
        try:
            compile_expression(value)
        except ExpressionError as exc:
            raise invalid(f"the condition does not parse: {exc}") from exc
    return value


def _ref_name(value: Any) -> str:
    if not isinstance(value, str) or not _REF_NAME.match(value):
        raise invalid(
            f"{quote(value)} is not a ref name: use letters, digits, _ and -, starting with a "
            "letter or _"
        )
    if value in RESERVED_REFS:
        raise invalid(f"{quote(value)} is reserved in refs; choose another name")
    return value


# An Optional… field is None when left out; a null given for it meets its check (and is
# refused there), as the validator stands outside the `| None`.
Value = Any
"""Any JSON (its references and Liquid are checked with the step's other values)."""
Text = Annotated[str | Ref, PlainValidator(_text)]
"""A non-empty string (Liquid allowed) or a reference."""
OptionalText = Annotated[str | Ref | None, PlainValidator(_text)]
Object = Annotated[dict[str, Any], PlainValidator(_object)]
"""An object, or a reference to one."""
OptionalObject = Annotated[dict[str, Any] | None, PlainValidator(_object)]
OptionalContent = Annotated[dict[str, Any] | None, PlainValidator(_content)]
MergeMode = Annotated[str, PlainValidator(choice(MERGE_MODES))]
OptionalCondition = Annotated[str | None, PlainValidator(_condition)]
OptionalRefName = Annotated[str | None, PlainValidator(_ref_name)]
