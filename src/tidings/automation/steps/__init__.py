"""Automation steps: one module per action, each a pydantic model of the step with its `run`.

`AnyStep` joins them, by `action`: `check` validates a step of a definition being saved,
`load` reads a stored one for the engine. The shared pieces are in `base` (the Step model,
what `run` gets and returns), `fields` (field types and their checks) and `values`
(references, Liquid, merge strategies).

To add a step type: write `steps/<action>.py` with a `Step` subclass (`action` a Literal of
its name, its fields, required ones with `Needed`, and `run`; set `calls_network` or `waits`
if it returns a `Fetch` or a `Wait`), and add the class to `AnyStep` below.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from tidings.automation.steps.add_to_batch import AddToBatch
from tidings.automation.steps.base import COMMON_FIELDS, InvalidStep, Step, StepFailed
from tidings.automation.steps.batch import Batch
from tidings.automation.steps.branch import Branch
from tidings.automation.steps.cancel import Cancel
from tidings.automation.steps.delay import Delay
from tidings.automation.steps.fetch_data import FetchData
from tidings.automation.steps.fields import Saving
from tidings.automation.steps.invoke import Invoke
from tidings.automation.steps.send import Send
from tidings.automation.steps.send_list import SendList
from tidings.automation.steps.throttle import Throttle
from tidings.automation.steps.update_profile import UpdateProfile
from tidings.automation.steps.values import quote, value_problem
from tidings.automation.steps.wait_for_event import WaitForEventStep

AnyStep = Annotated[
    Send
    | SendList
    | Delay
    | Cancel
    | UpdateProfile
    | FetchData
    | Invoke
    | Throttle
    | WaitForEventStep
    | Branch
    | Batch
    | AddToBatch,
    Field(discriminator="action"),
]
STEP_TYPES: tuple[type[Step], ...] = get_args(get_args(AnyStep)[0])
ACTIONS = tuple(step_type.action_name() for step_type in STEP_TYPES)

_STEP: TypeAdapter[Step] = TypeAdapter(AnyStep)


def check(raw: Any, saving: Saving) -> Step:
    """Validate a step of a definition being saved; InvalidStep names the first problem."""
    if not isinstance(raw, dict):
        raise InvalidStep("", "a step must be an object with an `action`")
    try:
        step = _STEP.validate_python(raw, context=saving)
    except ValidationError as exc:
        raise _invalid(exc.errors()[0]) from exc
    # Last, the references and Liquid inside the values of its fields (a branch's nested
    # steps were checked as steps).
    for key, value in step.stored().items():
        nested = isinstance(step, Branch)
        problem = None if key in COMMON_FIELDS or nested else value_problem(value)
        if problem is not None:
            raise InvalidStep(f".{key}{problem[0]}", problem[1])
    return step


def load(raw: dict[str, Any]) -> Step:
    """A stored step (validated when it was saved), for the engine to run."""
    try:
        return _STEP.validate_python(raw)
    except ValidationError as exc:
        raise StepFailed(f"the stored step is not valid: {exc.errors()[0]['msg']}") from exc


def _invalid(error: ErrorDetails) -> InvalidStep:
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        action = error["input"].get("action")
        if action is None:
            return InvalidStep(".action", f"a step needs an action: one of {', '.join(ACTIONS)}")
        return InvalidStep(
            ".action", f"{quote(action)} is not a step type; use one of {', '.join(ACTIONS)}"
        )
    # The first part of the location is the union's tag (the action).
    at = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"][1:])
    context = error.get("ctx") or {}
    if error["type"] == "invalid_step":
        return InvalidStep(at + context["at"], context["reason"])
    return InvalidStep(at, error["msg"])


__all__ = ["ACTIONS", "STEP_TYPES", "AnyStep", "InvalidStep", "Saving", "Step", "check", "load"]
