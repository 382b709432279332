"""`add-to-batch`: Courier's batch step, run as a `batch` step (steps/batch.py).

`{"action": "add-to-batch", "wait_period": "PT5M", "max_wait_period": "PT1H", "max_items":
100, "retain": {"type": "last", "count": 10}}`: the runs that reach it for one recipient
collect until `wait_period` passes with none joining (a sliding window), at most
`max_wait_period` (60 days when left out) after the first; `max_items` closes the batch
early; `retain` keeps the first or last `count` items. The first run continues with
Courier's `data.batch = {count, items}` (and `total_count`, as a batch step gives it).

Courier's `retain` types `highest` and `lowest` (by a `sort_key`), its `category_key` and
its `batch_id` scopes are not supported: a save that uses them is refused, saying so.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import PlainValidator, ValidationInfo, model_validator

from tidings.automation.steps.base import Outcome, Step, StepRun
from tidings.automation.steps.batch import (
    MAX_RENDER,
    MAX_WINDOW,
    Batch,
    max_items_of,
    window_length,
)
from tidings.automation.steps.fields import Needed, invalid, saving
from tidings.automation.steps.values import quote
from tidings.kit.duration import parse_duration

UNSUPPORTED = {
    "category_key": "category_key (one batch per category) is not supported; batch by a "
    'key with a "batch" step\'s batch_key instead',
    "batch_id": "batch_id (a batch shared across automations) is not supported: a batch is "
    "per automation, step and recipient; split it with a batch step's batch_key",
}


def _period(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        raise invalid(f'must be a duration such as "PT5M" or "5 minutes", not {quote(value)}')
    if saving(info) is not None:
        window_length(value, "")
    return value


def _retain(value: Any) -> Any:
    if not isinstance(value, dict):
        raise invalid(
            f'must be an object such as {{"type": "last", "count": 10}}, not {quote(value)}'
        )
    for key in value:
        if key not in ("type", "count", "sort_key"):
            raise invalid(f"{quote(key)} is not a field of retain; use type, count", f".{key}")
    kind = value.get("type", "first")
    if kind in ("highest", "lowest"):
        raise invalid(
            f'retain type {quote(kind)} (by a sort_key) is not supported; use "first" or "last"',
            ".type",
        )
    if kind not in ("first", "last"):
        raise invalid(f"{quote(kind)} is not one of first, last", ".type")
    if "sort_key" in value:
        raise invalid("sort_key is only for the highest and lowest types", ".sort_key")
    count = value.get("count", 10)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RENDER:
        raise invalid(
            f"must be a whole number from 1 to {MAX_RENDER}, not {quote(count)}", ".count"
        )
    return value


class AddToBatch(Step):
    action: Literal["add-to-batch"]
    wait_period: Annotated[
        str,
        PlainValidator(_period),
        Needed('an add-to-batch step needs a wait_period, e.g. "PT5M"'),
    ]
    max_wait_period: Annotated[str | None, PlainValidator(_period)] = None
    max_items: Annotated[int | None, PlainValidator(max_items_of)] = None
    retain: Annotated[dict[str, Any] | None, PlainValidator(_retain)] = None

    waits: ClassVar[bool] = True
    runs_after_wait: ClassVar[bool] = True
    wakes_early: ClassVar[bool] = True

    @classmethod
    def unknown(cls, key: str) -> str:
        return UNSUPPORTED.get(key) or super().unknown(key)

    @model_validator(mode="before")
    @classmethod
    def _periods(cls, data: dict[str, Any], info: ValidationInfo) -> Any:
        if saving(info) is not None and "max_wait_period" in data:
            wait, most = data.get("wait_period"), data["max_wait_period"]
            if isinstance(wait, str) and isinstance(most, str):
                window_length(most, ".max_wait_period")
                if parse_duration(most) < window_length(wait, ".wait_period"):
                    raise invalid(
                        f"{quote(most)} is shorter than the wait_period {quote(wait)}",
                        ".max_wait_period",
                    )
        return data

    def as_batch(self) -> Batch:
        """The batch step it runs as."""
        most = self.max_wait_period or f"{int(MAX_WINDOW.total_seconds())} seconds"
        fields: dict[str, Any] = {
            "action": "batch",
            "window": {"type": "sliding", "duration": self.wait_period, "max": most},
        }
        if self.max_items is not None:
            fields["max_items"] = self.max_items
        if self.retain is not None:
            fields["render"] = f"{self.retain.get('type', 'first')} {self.retain.get('count', 10)}"
        return Batch.model_validate(fields)

    def run(self, at: StepRun) -> Outcome:
        outcome = self.as_batch().run(at)
        if isinstance(outcome, dict):
            # Courier's name for the count, beside total_count.
            data = at.run.context["data"]
            at.run.context = {
                **at.run.context,
                "data": {**data, "batch": {**data["batch"], "count": outcome["total_count"]}},
            }
        return outcome
