"""`wait-for-event`: pause the run until the recipient's matching event arrives, or a timeout.

`{"action": "wait-for-event", "event": "track/Order Completed", "match": {"cart_id":
"{{ data.cart_id }}"}, "timeout": "1 hour", "ref": "order"}` waits for a Segment event of
that name for the run's recipient whose properties at each path of `match` equal the
rendered values (compared as text, so 42 and "42" match). What happens next is Knock's
wait-for-event function (docs/automations.md has the mapping): the step's output says which
came first, `{"matched": true, "event": {...properties}, "message_id"}` or `{"matched":
false, "timed_out": true}`, and later steps branch on it with `if`; `on_match` and
`on_timeout` may instead end the run there (`stop`).

Matching is by index, not a scan of the waiting runs: when the step starts, the run's wait
is stored (`AutomationRunWait`) under its environment, recipient, event name and a hash of
the match values (`match_key`). An event looks up its recipient's waits for its name and
compares the same hash of its own properties (`automation.runs.resume_waiting_runs`). The
timeout is the run's `wake_at`, which its job and the sweeper honour as for a delay.
Whichever comes first resolves the step, in one transaction with the run row locked; the
other then finds the run moved on and does nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PlainValidator, ValidationInfo

from tidings.automation.steps.base import Outcome, Step, StepFailed, StepRun, WaitForEvent
from tidings.automation.steps.fields import Needed, choice, invalid, saved_duration
from tidings.automation.steps.values import is_ref, lookup, quote, resolve
from tidings.kit.duration import DurationError, parse_duration
from tidings.kit.time import LATEST, shifted

# Knock's limit on a wait for event step.
MAX_TIMEOUT = timedelta(days=30)
MAX_MATCH_FIELDS = 10
ACTIONS_AFTER = ("continue", "stop")
_PATH = "a property path such as cart_id or order.cart_id"
_PATH_PATTERN = re.compile(r"[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*")


def _event(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise invalid(
            f'must be a Segment event name: "track/<event name>", identify or group, not '
            f"{quote(value)}"
        )
    is_track = value.startswith("track/") and bool(value[len("track/") :].strip())
    if value not in ("identify", "group") and not is_track:
        raise invalid(
            f"{quote(value)} is not a Segment event: use identify, group or track/<event "
            'name>, e.g. "track/Order Completed"'
        )
    return value


def _match(value: Any) -> Any:
    if not isinstance(value, dict):
        raise invalid(
            'must be an object of property paths and the values to match, e.g. {"cart_id": '
            f'"{{{{ data.cart_id }}}}"}}, not {quote(value)}'
        )
    if len(value) > MAX_MATCH_FIELDS:
        raise invalid(f"matches at most {MAX_MATCH_FIELDS} properties, not {len(value)}")
    for path, expected in value.items():
        if not _PATH_PATTERN.fullmatch(path):
            raise invalid(f"{quote(path)} is not {_PATH}", f".{path}")
        if not is_ref(expected) and not isinstance(expected, str | int | float | bool):
            raise invalid(
                f"must be a string (Liquid allowed), a number, true or false, or a "
                f'{{"$ref": …}}, not {quote(expected)}',
                f".{path}",
            )
    return value


def _timeout(value: Any, info: ValidationInfo) -> Any:
    length = saved_duration(value, info, '"1 hour"')
    if length is not None and not timedelta(0) < length <= MAX_TIMEOUT:
        raise invalid(f"{quote(value)} is not between 1 second and 30 days")
    return value


def as_text(value: Any) -> str | None:
    """A matched value as text, the same for a property and a rendered Liquid value: a
    number or true/false as Liquid writes it, an object or list as compact JSON; None for
    a missing or null value, which matches nothing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def match_fields(paths: list[str]) -> str:
    """The stored form of the matched paths: sorted, one a line."""
    return "\n".join(sorted(paths))


def match_key(values: dict[str, str]) -> str:
    """The hash of the match values that an event's properties must reproduce."""
    canonical = json.dumps(sorted(values.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def event_key(properties: dict[str, Any], fields: str) -> str | None:
    """The hash of an event's properties at the stored `fields`; None when one is missing."""
    values = {}
    for path in fields.split("\n") if fields else []:
        value = as_text(lookup(properties, path))
        if value is None:
            return None
        values[path] = value
    return match_key(values)


class WaitForEventStep(Step):
    action: Literal["wait-for-event"]
    event: Annotated[
        str,
        PlainValidator(_event),
        Needed('a wait-for-event step needs the event to wait for, e.g. "track/Order Completed"'),
    ]
    match: Annotated[dict[str, Any] | None, PlainValidator(_match)] = None
    timeout: Annotated[
        str,
        PlainValidator(_timeout),
        Needed('a wait-for-event step needs a timeout, e.g. "1 hour" (at most 30 days)'),
    ]
    on_match: Annotated[str, PlainValidator(choice(ACTIONS_AFTER))] = Field(default="continue")
    on_timeout: Annotated[str, PlainValidator(choice(ACTIONS_AFTER))] = Field(default="continue")

    waits: ClassVar[bool] = True

    def run(self, at: StepRun) -> Outcome:
        recipient = at.run.recipient
        if not recipient:
            raise StepFailed(
                "wait-for-event waits for the run's recipient's events, and this run has no "
                "recipient: start it from a Segment event or invoke it with a recipient"
            )
        try:
            until = shifted(at.now, parse_duration(self.timeout))
        except DurationError as exc:
            raise StepFailed(str(exc)) from exc
        if until is None:
            raise StepFailed(f"wait-for-event.timeout {self.timeout!r} ends after {LATEST:%Y}")
        values = {}
        for path, expected in (self.match or {}).items():
            value = as_text(resolve(expected, at.names))
            if value is None or value == "":
                raise StepFailed(
                    f"wait-for-event.match.{path} is empty for this run, so no event could "
                    "match it: the run's data lacks the value it names"
                )
            values[path] = value
        return WaitForEvent(until, recipient, "segment", self.event, values)
