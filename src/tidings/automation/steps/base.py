"""What every step is: a pydantic model of its definition, and a `run` the engine calls.

A step model validates the step's JSON (the union in `tidings.automation.steps` picks the
model by `action`) and gives it back as stored (`stored()`). The engine (`automation.runs`)
locks the run, checks the step's `if`, and calls `run` in the run's transaction with a
`StepRun`. What `run` returns decides what happens next:

- an output (a dict): the step is done; the output is recorded, and kept under `refs` when
  the step has a `ref`;
- `Wait(until)`: the run waits until then (the step is done when it wakes, or runs again
  when it `runs_after_wait`);
- `WaitForEvent(...)`: the run waits for a matching event, or until its timeout
  (steps/wait_for_event.py; the engine resolves the step either way);
- `Fetch(calls, apply)`: the engine commits, makes the HTTP calls outside any transaction,
  and calls `apply` with the answers in a second transaction, if the run is still on this
  step. Steps that may do this say so with `calls_network`.
- `Stop(status, reason, output)`: the run ends at this step with a status of its own
  (THROTTLED): the output is recorded on the step, the reason on the run.

`StepFailed` ends the run ERROR at once; any other exception (`RetryableStepError` for an
expected one) rolls the step back and retries it later.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self, get_args

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic.fields import FieldInfo

from tidings.automation.steps.fields import (
    MISSING,
    OptionalCondition,
    OptionalRefName,
    invalid,
)
from tidings.automation.steps.values import quote
from tidings.kit.expression import compile_expression, truthy
from tidings.kit.outbound import OutboundRefused
from tidings.workspace.service import Scope

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tidings.db import Outbox
    from tidings.models import AutomationRun
    from tidings.worker.context import WorkerContext


class StepFailed(Exception):
    """The step cannot succeed as written (a missing template, no recipient): the run ends ERROR."""


class RetryableStepError(Exception):
    """The step may succeed later (a fetch-data server that is down): the run retries it."""


class InvalidStep(Exception):
    """A step definition failed validation: `at` is the path below the step (`.duration`,
    `.webhook.url`, "" for the step itself), `reason` says what is wrong and how to fix it."""

    def __init__(self, at: str, reason: str) -> None:
        super().__init__(f"{at}: {reason}")
        self.at = at
        self.reason = reason


# The fields of every step: their own checks cover them whole (they are not values).
COMMON_FIELDS = ("action", "if", "ref")


class Fields(BaseModel):
    """A JSON object of a step definition. Only its own keys are accepted, a required one
    that is left out is refused with its `Needed` reason, and defaults are filled in. It is
    stored (`stored()`) with the keys in the order they were given, defaults last."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    what: ClassVar[str] = "a field"
    """How an unknown key's message names the object ("a webhook field")."""
    by_key: ClassVar[dict[str, FieldInfo]] = {}
    _given: tuple[str, ...] = PrivateAttr(default=())

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.by_key = {field.alias or name: field for name, field in cls.model_fields.items()}

    @classmethod
    def unknown(cls, key: str) -> str:
        return f"{quote(key)} is not {cls.what}; use {', '.join(cls.by_key)}"

    @model_validator(mode="wrap")
    @classmethod
    def _keys(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if not isinstance(data, dict):
            raise invalid(f"must be an object, not {quote(data)}")
        for key in data:
            if key not in cls.by_key:
                raise invalid(cls.unknown(key), f".{key}")
        left_out = {
            # A required field is checked in its turn, and refused there (`Needed`).
            key: MISSING if field.is_required() else field.default
            for key, field in cls.by_key.items()
            if key not in data and (field.is_required() or field.default is not None)
        }
        given = {**data, **left_out}
        made = handler(given)
        made._given = tuple(given)
        return made

    @model_serializer(mode="wrap")
    def _in_given_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        ordered = {key: dumped[key] for key in self._given if key in dumped}
        return {**ordered, **dumped}

    def stored(self) -> dict[str, Any]:
        """The JSON kept in a definition: what was given, with defaults filled in."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class Step(Fields):
    """One step of an automation. A subclass sets `action` to its Literal, adds its fields
    (with `Needed` on the required ones), and implements `run`."""

    action: str
    condition: OptionalCondition = Field(default=None, alias="if")
    ref: OptionalRefName = None

    calls_network: ClassVar[bool] = False
    """The step may return a `Fetch`: its row is committed before the requests are made."""
    waits: ClassVar[bool] = False
    """The step may return a `Wait`: its row is seen unfinished while the run waits."""
    runs_after_wait: ClassVar[bool] = False
    """When the run wakes from this step's `Wait`, `run` is called again rather than the step
    being done (a send outside its window sends at the opening, or waits for the next)."""
    wakes_early: ClassVar[bool] = False
    """A job for the run before its wake-up time (one another run enqueued) calls `run` again
    rather than finding the run early: a batch that `max_items` filled closes at once."""

    @classmethod
    def action_name(cls) -> str:
        (action,) = get_args(cls.model_fields["action"].annotation)
        return str(action)

    @classmethod
    def unknown(cls, key: str) -> str:
        fields = ", ".join(cls.by_key)
        return f"{quote(key)} is not a field of a {cls.action_name()} step; its fields are {fields}"

    def applies(self, names: dict[str, Any]) -> bool:
        """Whether the step's `if` holds (always, without one); raises ExpressionError."""
        return self.condition is None or truthy(compile_expression(self.condition)(names))

    @abstractmethod
    def run(self, at: StepRun) -> Outcome:
        """Carry the step out in the run's transaction (`at.session`)."""


@dataclass(frozen=True)
class StepRun:
    """What a step's `run` works with: the run's transaction and locked row, the names its
    values resolve against (`values.namespace`), and the outbox of the transaction, for
    the work to do once it commits."""

    session: Session
    context: WorkerContext
    run: AutomationRun
    names: dict[str, Any]
    outbox: Outbox
    now: datetime

    @property
    def scope(self) -> Scope:
        return Scope(self.run.workspace_id, self.run.environment_id, "", "")


@dataclass(frozen=True)
class Wait:
    """The run waits until `until`, then goes on with the next step."""

    until: datetime


@dataclass(frozen=True)
class WaitForEvent:
    """The run waits for an event named `event` (from `source`) of `recipient` whose
    properties at the paths of `match` equal its values (as text), or until `until`."""

    until: datetime
    recipient: str
    source: str
    event: str
    match: dict[str, str]


@dataclass(frozen=True)
class FetchCall:
    """One HTTP request of a fetch-data step, or of a send-list data source (per recipient)."""

    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    body: Any
    user_id: str | None = None


Fetched = tuple[str | None, dict[str, Any]]
"""A call's `user_id` and the JSON object it answered."""


@dataclass(frozen=True)
class Fetch:
    """Requests to make outside any transaction; `apply` takes their answers in the next one
    (the run locked again) and returns the step's output."""

    calls: list[FetchCall]
    apply: Callable[[StepRun, list[Fetched]], dict[str, Any]]

    def answers(self, http: httpx.Client) -> list[Fetched]:
        """Make the calls; RetryableStepError or StepFailed when one does not answer well."""
        return [(call.user_id, request(http, call)) for call in self.calls]


@dataclass(frozen=True)
class Stop:
    """The run ends at this step, `status` (e.g. THROTTLED) for the step and the run: the
    step's `output` is recorded like a finished step's, `reason` on the run (its `error`,
    where a CANCELED run keeps its reason too)."""

    status: str
    reason: str
    output: dict[str, Any]


Outcome = dict[str, Any] | Wait | Fetch | Stop | WaitForEvent


def request(http: httpx.Client, call: FetchCall) -> dict[str, Any]:
    """The response object; RetryableStepError or StepFailed otherwise."""
    try:
        body = call.body if call.method != "GET" else None
        response = http.request(
            call.method,
            call.url,
            headers=call.headers,
            params=call.params or None,
            # A string body (as Courier's SDK types it) is sent as is; anything else as JSON.
            content=body if isinstance(body, str) else None,
            json=body if body is not None and not isinstance(body, str) else None,
        )
    except OutboundRefused as exc:
        raise StepFailed(f"fetch-data: {call.method} {call.url} was refused: {exc}") from exc
    except httpx.HTTPError as exc:
        raise RetryableStepError(f"fetch-data: {call.method} {call.url} failed: {exc}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise RetryableStepError(
            f"fetch-data: {call.method} {call.url} answered {response.status_code}"
        )
    if response.status_code >= 400:
        raise StepFailed(
            f"fetch-data: {call.method} {call.url} answered {response.status_code}: "
            f"{response.text[:300]}"
        )
    if not response.content:
        return {}
    try:
        answer = response.json()
    except ValueError as exc:
        raise StepFailed(
            f"fetch-data: {call.url} answered {response.headers.get('content-type')!r}, not "
            "a JSON object to merge into data"
        ) from exc
    if not isinstance(answer, dict):
        raise StepFailed(f"fetch-data: {call.url} answered JSON that is not an object")
    return answer
