"""`delay`: wait for a duration ("5 minutes") or until a time (ISO-8601, Liquid or a $ref),
and then, with a `window`, on until the window is open."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, PlainValidator, ValidationInfo, model_validator

from tidings.automation.steps.base import Outcome, Step, StepFailed, StepRun, Wait
from tidings.automation.steps.fields import OptionalText, invalid, saving
from tidings.automation.steps.values import quote, text
from tidings.automation.steps.window import OptionalWindow, opening
from tidings.kit.duration import DurationError, parse_duration
from tidings.kit.time import LATEST, isoformat, parse_timestamp, shifted


def _duration(value: Any, info: ValidationInfo) -> Any:
    if saving(info) is not None:
        try:
            parse_duration(value)
        except DurationError as exc:
            raise invalid(str(exc)) from exc
    return value


def _until(value: Any, info: ValidationInfo) -> Any:
    if saving(info) is None or not isinstance(value, str) or "{{" in value or "{%" in value:
        return value
    if parse_timestamp(value) is None:
        raise invalid(
            f'{quote(value)} is not an ISO-8601 time (e.g. "2030-01-31T09:00:00Z"), a Liquid '
            'expression such as "{{ data.send_at }}", or a {"$ref": …}'
        )
    return value


class Delay(Step):
    action: Literal["delay"]
    duration: Annotated[str | None, PlainValidator(_duration)] = None
    until: Annotated[OptionalText, AfterValidator(_until)] = None
    window: OptionalWindow = None

    waits: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _duration_or_until(cls, data: dict[str, Any], info: ValidationInfo) -> Any:
        if saving(info) is not None and ("duration" in data) == ("until" in data):
            raise invalid(
                'a delay step needs either "duration" (e.g. "5 minutes") or "until" (an ISO '
                "time), not both"
            )
        return data

    def run(self, at: StepRun) -> Outcome:
        until = self._wake_time(at)
        if self.window is not None:
            until = opening(at, self.window, max(until, at.now))
        if until > at.now:
            return Wait(until)
        return {"until": isoformat(until)}

    def _wake_time(self, at: StepRun) -> datetime:
        if self.duration is not None:
            try:
                wake_at = shifted(at.now, parse_duration(self.duration))
            except DurationError as exc:
                raise StepFailed(str(exc)) from exc
            if wake_at is None:
                raise StepFailed(
                    f"delay.duration {self.duration!r} ends after the year {LATEST:%Y}"
                )
            return wake_at
        value = text(self.until, at.names)
        until = parse_timestamp(value)
        if until is None:
            raise StepFailed(
                f"delay.until became {value!r}, which is not an ISO-8601 time such as "
                "2030-01-31T09:00:00Z"
            )
        return until
