"""`throttle`: at most `max_allowed` runs pass per `period`; the others end THROTTLED.

Courier's throttle node: `max_allowed`, `period`, `scope` (`user`, `global` or `dynamic`) and,
for `dynamic`, a `throttle_key`. What the scopes count:

- `user` (the default without a throttle_key): the runs of this automation for the run's
  recipient;
- `global`: every run of this automation in the environment;
- `dynamic` (the default with a throttle_key): the runs, of any automation in the
  environment, whose throttle_key (Liquid, a `$ref`, or Courier's path `refs.data.x`)
  comes out the same.

The window follows Knock's throttle: it opens when a run reaches the step with no window
open, lasts `period`, and the runs that reach the step in it count; the first run after it
ends opens the next one. The count and the run's outcome are written in the run's
transaction (`count_run`), so a crash or a rollback undoes both, and on Postgres concurrent
runs of one key take turns on its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import PlainValidator, ValidationInfo, model_validator
from sqlalchemy.orm import Session

from tidings.automation.repository import ThrottleRepository
from tidings.automation.steps.base import Outcome, Step, StepFailed, StepRun, Stop
from tidings.automation.steps.fields import (
    Needed,
    OptionalText,
    choice,
    invalid,
    saved_duration,
    saving,
)
from tidings.automation.steps.values import is_ref, lookup, quote, text
from tidings.kit.duration import EXAMPLES, DurationError, parse_duration
from tidings.kit.time import LATEST, isoformat, shifted
from tidings.models import RunStatus

SCOPES = ("user", "global", "dynamic")
MAX_ALLOWED = 1_000_000_000
MAX_KEY_LENGTH = 1000


def _max_allowed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ALLOWED:
        raise invalid(
            f"must be a whole number of runs from 1 to {MAX_ALLOWED:,}, not {quote(value)}"
        )
    return value


def _period(value: Any, info: ValidationInfo) -> Any:
    length = saved_duration(value, info, EXAMPLES)
    if length is not None and length <= timedelta():
        raise invalid(f"{quote(value)} is no time at all: a period must be longer than 0")
    return value


class Throttle(Step):
    action: Literal["throttle"]
    max_allowed: Annotated[
        int,
        PlainValidator(_max_allowed),
        Needed("a throttle step needs max_allowed: how many runs may pass per period"),
    ]
    period: Annotated[
        str,
        PlainValidator(_period),
        Needed(f"a throttle step needs a period, e.g. {EXAMPLES}"),
    ]
    scope: Annotated[str | None, PlainValidator(choice(SCOPES))] = None
    throttle_key: OptionalText = None

    @model_validator(mode="before")
    @classmethod
    def _scope_and_key(cls, data: dict[str, Any], info: ValidationInfo) -> Any:
        if saving(info) is None:
            return data
        scope, has_key = data.get("scope"), "throttle_key" in data
        if scope == "dynamic" and not has_key:
            raise invalid(
                'a throttle step with scope "dynamic" needs a throttle_key, e.g. '
                '"{{ data.alert_id }}"',
                ".throttle_key",
            )
        if scope in ("user", "global") and has_key:
            raise invalid(
                f'a throttle_key is only used with scope "dynamic", not {quote(scope)}: remove '
                'it, or set scope to "dynamic"',
                ".throttle_key",
            )
        return data

    @property
    def counted_by(self) -> str:
        """The scope in force: as given, else `dynamic` with a throttle_key, else `user`."""
        if self.scope is not None:
            return self.scope
        return "dynamic" if self.throttle_key is not None else "user"

    def run(self, at: StepRun) -> Outcome:
        try:
            period = parse_duration(self.period)
        except DurationError as exc:
            raise StepFailed(f"throttle.period: {exc}") from exc
        key, whose = self._key(at)
        window = count_run(at.session, at.run.environment_id, key, at.now, period)
        output: dict[str, Any] = {
            "scope": self.counted_by,
            "key": key,
            "count": window.count,
            "max_allowed": self.max_allowed,
            "period": self.period,
            "window_opened_at": isoformat(window.opened_at),
            "window_ends_at": isoformat(window.ends_at),
            "throttled": window.count > self.max_allowed,
        }
        if window.count <= self.max_allowed:
            return output
        return Stop(
            RunStatus.THROTTLED,
            f"throttled: {self.max_allowed} run{'s' if self.max_allowed > 1 else ''} already "
            f"passed this throttle {whose} in the window from {isoformat(window.opened_at)} to "
            f"{isoformat(window.ends_at)} (at most {self.max_allowed} per {self.period})",
            output,
        )

    def _key(self, at: StepRun) -> tuple[str, str]:
        """The counter's key, and whose count it is, for the reason of a throttled run."""
        automation = at.run.automation_id or "ad-hoc"
        scope = self.counted_by
        if scope == "global":
            return f"{automation}/global", "in this environment"
        if scope == "user":
            recipient = at.run.recipient
            if not recipient:
                raise StepFailed(
                    'a throttle step with scope "user" counts the runs of each recipient, and '
                    "this run has none (the event had no userId): give the run a recipient, "
                    'or use scope "global" or a throttle_key'
                )
            return f"{automation}/user/{recipient}", f"for recipient {recipient!r}"
        value = self._throttle_key(at.names)
        if value is None:
            raise StepFailed(
                f"throttle.throttle_key {quote(self.throttle_key)} came out empty for this run: "
                "check that the value it names is in the run's data"
            )
        key = f"key/{value}"
        if len(key) > MAX_KEY_LENGTH:
            raise StepFailed(
                f"throttle.throttle_key came out {len(value)} characters long; keep it under "
                f"{MAX_KEY_LENGTH - 4}"
            )
        return key, f"for throttle_key {value!r}"

    def _throttle_key(self, names: dict[str, Any]) -> str | None:
        expression = self.throttle_key
        # Courier writes a dynamic key as a path into the run context: refs.data.alert_id.
        if isinstance(expression, str) and not is_ref(expression):
            stripped = expression.strip()
            if stripped.startswith("refs.") and "{{" not in stripped and "{%" not in stripped:
                found = lookup(names, stripped)
                return None if found is None else str(found).strip() or None
        return text(expression, names)


@dataclass(frozen=True)
class Window:
    """A throttle key's window, as this run's count left it."""

    count: int
    opened_at: datetime
    ends_at: datetime


def count_run(
    session: Session, environment_id: str, key: str, now: datetime, period: timedelta
) -> Window:
    """Count a run in `key`'s window, opening a new window (count 1) when none is open at
    `now` (`ThrottleRepository.count`: concurrent counts of one key never read the same
    value)."""
    ends_at = shifted(now, period)
    if ends_at is None:
        raise StepFailed(f"throttle.period ends after the year {LATEST:%Y}")
    count, opened_at, window_ends_at = ThrottleRepository(session).count(
        environment_id, key, now, ends_at
    )
    return Window(count, opened_at, window_ends_at)
