"""`branch`: an ordered list of `{if, steps}` and an optional `else`. The first arm whose `if`
holds runs its steps (or `else` runs when none does), then the run goes on after the branch.

Nested steps are any steps, another branch too, each checked by the same `steps.check` as a
top-level one, so an error names its exact path (`steps[2].branches[1].steps[0].template`).

The engine keeps a run's position an integer: `program` compiles a definition's steps,
deterministically, into one flat list of `Instruction`s in the order they are written (a
branch, then the steps of its first arm, of its second, …, of `else`). Each instruction
says where the run goes once it is done (`next`), and a branch where each of its arms
starts (`after` reads which arm its output names). A run's `step_index` is a position in the
program of its own stored definition, which never changes under it, so waiting, fetching,
retrying and crash recovery work inside arms exactly as at the top level.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, ValidationInfo, model_validator

from tidings.automation.steps.base import InvalidStep, Outcome, Step, StepFailed, StepRun
from tidings.automation.steps.fields import Needed, Saving, invalid, saving
from tidings.automation.steps.values import quote
from tidings.kit.expression import ExpressionError, compile_expression, truthy

MAX_DEPTH = 5
"""How deep branches may nest (a branch in an arm of a branch is 2 deep)."""
MAX_STEPS = 500
"""The steps a definition may hold, nested ones included."""
ARM_FIELDS = ("if", "steps")


def _nested(value: Any, at: str, context: Saving | None, field: str) -> list[Any]:
    """An arm's `steps` or an `else`: a list of steps, each checked as a top-level one. `at`
    is the path below the branch's `field` (`.branches`, `.else`)."""
    if not isinstance(value, list):
        raise invalid(f"must be a list of steps, not {quote(value)}", at)
    if context is None:
        return value  # a stored step, checked when it was saved
    from tidings.automation import steps  # the union of step types holds this module's Branch

    stored = []
    for index, raw in enumerate(value):
        where = f"{at}[{index}]"
        try:
            step = steps.check(raw, replace(context, where=context.where + field + where))
        except InvalidStep as exc:
            raise invalid(exc.reason, where + exc.at) from exc
        stored.append(step.stored())
    return stored


def _arm(raw: Any, at: str, context: Saving | None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise invalid(f'a branch is an object {{"if": …, "steps": […]}}, not {quote(raw)}', at)
    for key in raw:
        if key not in ARM_FIELDS:
            raise invalid(
                f"{quote(key)} is not a field of a branch; its fields are if, steps", f"{at}.{key}"
            )
    condition = raw.get("if")
    if not isinstance(condition, str) or not condition.strip():
        raise invalid(
            'a branch needs an "if": an expression such as profile.plan == "pro"', f"{at}.if"
        )
    if context is not None:
        try:
            compile_expression(condition)
        except ExpressionError as exc:
            raise invalid(f"the condition does not parse: {exc}", f"{at}.if") from exc
    if "steps" not in raw:
        raise invalid(
            'a branch needs "steps": the steps it runs when its "if" holds', f"{at}.steps"
        )
    return {"if": condition, "steps": _nested(raw["steps"], f"{at}.steps", context, ".branches")}


def _arms(value: Any, info: ValidationInfo) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise invalid(
            'needs at least one branch: [{"if": "profile.plan == \\"pro\\"", "steps": [...]}]'
        )
    context = saving(info)
    return [_arm(raw, f"[{index}]", context) for index, raw in enumerate(value)]


def _else(value: Any, info: ValidationInfo) -> list[Any]:
    return _nested(value, "", saving(info), ".else")


Arms = Annotated[list[dict[str, Any]], PlainValidator(_arms)]


class Branch(Step):
    action: Literal["branch"]
    branches: Annotated[
        Arms, Needed('a branch step needs "branches": a list of {"if": …, "steps": […]}')
    ]
    otherwise: Annotated[list[Any] | None, PlainValidator(_else)] = Field(
        default=None, alias="else"
    )

    @model_validator(mode="before")
    @classmethod
    def _not_too_deep(cls, data: Any, info: ValidationInfo) -> Any:
        context = saving(info)
        if context is not None and depth_of(context.where) >= MAX_DEPTH:
            raise invalid(
                f"branches nest at most {MAX_DEPTH} deep; move the deepest steps into an "
                "automation of their own and invoke it"
            )
        return data

    def run(self, at: StepRun) -> Outcome:
        """The arm taken: `{"branch": 1, "if": …}`, `{"branch": "else"}`, or `{"branch":
        null}` when no `if` holds and there is no `else` (the run goes on after it)."""
        for index, arm in enumerate(self.branches):
            try:
                holds = truthy(compile_expression(arm["if"])(at.names))
            except ExpressionError as exc:
                raise StepFailed(f"the `if` of branches[{index}] does not parse: {exc}") from exc
            if holds:
                return {"branch": index, "if": arm["if"]}
        return {"branch": "else" if self.otherwise is not None else None}


def depth_of(path: str) -> int:
    """How many branches a step at `path` (`steps[0].branches[1].steps[2]`) is inside."""
    return path.count(".branches[") + path.count(".else[")


# ---------------------------------------------------------------------------------------------
# Walking and compiling the nested steps of a definition


def each_step(steps: list[Any], path: str = "steps") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every step of a list, nested ones included, in program order, with its path."""
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        at = f"{path}[{index}]"
        yield at, step
        if step.get("action") != "branch":
            continue
        for arm_index, arm in enumerate(step.get("branches") or []):
            if isinstance(arm, dict) and isinstance(arm.get("steps"), list):
                yield from each_step(arm["steps"], f"{at}.branches[{arm_index}].steps")
        if isinstance(step.get("else"), list):
            yield from each_step(step["else"], f"{at}.else")


@dataclass(frozen=True)
class Instruction:
    """A step at a position of a run's program: the stored step, its path in the definition,
    where the run goes when it is done (or skipped), and, for a branch, where each arm
    starts, `else` last (an empty arm, or a missing `else`, starts at `next`)."""

    step: dict[str, Any]
    path: str
    next: int
    arms: tuple[int, ...] = ()

    def after(self, output: dict[str, Any] | None) -> int:
        """The position the run goes to once this step ended with `output`."""
        taken = output.get("branch") if self.arms and output is not None else None
        if taken == "else":
            return self.arms[-1]
        if isinstance(taken, int) and not isinstance(taken, bool) and taken < len(self.arms):
            return self.arms[taken]
        return self.next


def program(steps: list[Any]) -> tuple[Instruction, ...]:
    """The flat program of a definition's steps (see the module's docstring)."""
    made: list[dict[str, Any]] = []
    for position in _emit(steps, "steps", made):
        made[position]["next"] = len(made)
    return tuple(
        Instruction(
            entry["step"],
            entry["path"],
            entry["next"],
            tuple(entry["next"] if start is None else start for start in entry["arms"]),
        )
        for entry in made
    )


def _emit(steps: list[Any], path: str, made: list[dict[str, Any]]) -> list[int]:
    """Append a list's steps; return the positions that go on after its end."""
    exits: list[int] = []
    for index, step in enumerate(steps):
        here = len(made)
        for position in exits:
            made[position]["next"] = here
        at = f"{path}[{index}]"
        entry: dict[str, Any] = {"step": step, "path": at, "next": None, "arms": []}
        made.append(entry)
        exits = [here]
        if not isinstance(step, dict) or step.get("action") != "branch":
            continue
        arms = [
            (f"{at}.branches[{k}].steps", arm.get("steps") if isinstance(arm, dict) else None)
            for k, arm in enumerate(step.get("branches") or [])
        ]
        arms.append((f"{at}.else", step.get("else")))
        for arm_path, arm_steps in arms:
            if isinstance(arm_steps, list) and arm_steps:
                entry["arms"].append(len(made))
                exits += _emit(arm_steps, arm_path, made)
            else:
                entry["arms"].append(None)
    return exits


def count_steps(steps: list[Any]) -> int:
    return sum(1 for _ in each_step(steps))
