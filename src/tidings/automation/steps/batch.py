"""`batch`: the runs that reach the step for one recipient (and `batch_key`) within a window
become one: the first continues with all their data, the others end BATCHED.

`{"action": "batch", "window": "10 minutes", "batch_key": "{{ data.page_id }}", "max_items":
50, "render": "last 10"}`. Knock's batch function, with Courier's digest output in the run's
data (`data.batch`); docs/automations.md has the mapping:

- The first run to reach the step for a key opens a batch and waits (WAITING) until it
  closes; each run that reaches it while it is open adds its data and ends BATCHED, its
  step's output naming the opener (`batched_into`).
- `window`: a duration (a fixed window from the opening), or `{"type": "sliding",
  "duration", "max"}`, which each joining run moves to now + duration, never past the
  opening + max.
- `max_items`: the run that fills the batch closes it to joins and wakes the opener at once.
- When the opener wakes at the close, the step's output is `{"items", "total_count"}`
  (`items`: every run's data in order, or the first or last N with `render`), kept in the
  run's data as `batch`: a later send's template loops over `data.batch.items`.

The key is (environment, automation, step position, recipient, rendered batch_key). A join
and the close each lock the batch row, so an item is in one close only. The close runs in the
transaction that records the step's output and deletes the batch and its items: a worker
killed before its commit leaves the batch as it was, to close again (`_close`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import PlainValidator, ValidationInfo

from tidings.automation.repository import BatchRepository
from tidings.automation.steps.base import (
    Outcome,
    RetryableStepError,
    Step,
    StepFailed,
    StepRun,
    Stop,
    Wait,
)
from tidings.automation.steps.fields import Needed, OptionalText, checked_duration, invalid, saving
from tidings.automation.steps.values import quote, text
from tidings.kit.duration import EXAMPLES, DurationError, parse_duration
from tidings.kit.time import LATEST, isoformat, shifted
from tidings.models import AutomationBatch, BatchStatus, RunStatus

# Courier's limit on an add-to-batch step's wait periods.
MAX_WINDOW = timedelta(days=60)
MAX_ITEMS = 100_000
MAX_RENDER = 1000
MAX_KEY_LENGTH = 1000
WINDOW_TYPES = ("fixed", "sliding")
_RENDER = re.compile(r"(first|last) ([0-9]+)")
_WINDOW_KEYS = ("type", "duration", "max")
# How many times a run tries again when the batch it waited for closed meanwhile.
ATTEMPTS = 5


def window_length(value: Any, at: str) -> timedelta:
    """A window's duration, checked (1 second to 60 days); `at` is where, for the error."""
    length = checked_duration(value, EXAMPLES, at)
    if not timedelta() < length <= MAX_WINDOW:
        raise invalid(f"{quote(value)} is not between 1 second and 60 days", at)
    return length


def _window(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str):
        if saving(info) is not None:
            window_length(value, "")
        return value
    if not isinstance(value, dict):
        raise invalid(
            f'must be a duration such as "10 minutes" (a fixed window), or {{"type": '
            f'"sliding", "duration": "10 minutes", "max": "1 hour"}}, not {quote(value)}'
        )
    for key in value:
        if key not in _WINDOW_KEYS:
            raise invalid(
                f"{quote(key)} is not a field of a batch window; use type, duration, max",
                f".{key}",
            )
    kind = value.get("type", "fixed")
    if kind not in WINDOW_TYPES:
        raise invalid(f"{quote(kind)} is not one of fixed, sliding", ".type")
    if "duration" not in value:
        raise invalid('a batch window needs a duration, e.g. "10 minutes"', ".duration")
    if kind == "fixed" and "max" in value:
        raise invalid(
            'a fixed window ends a duration after it opens: "max" is for a sliding window; '
            'remove it, or set type to "sliding"',
            ".max",
        )
    if kind == "sliding" and "max" not in value:
        raise invalid(
            'a sliding window needs a max, e.g. "1 hour": how long after the opening it '
            "closes however many runs join",
            ".max",
        )
    if saving(info) is not None:
        duration = window_length(value["duration"], ".duration")
        if kind == "sliding" and window_length(value["max"], ".max") < duration:
            raise invalid(
                f"{quote(value['max'])} is shorter than the duration {quote(value['duration'])}",
                ".max",
            )
    return value


def max_items_of(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ITEMS:
        raise invalid(f"must be a whole number from 1 to {MAX_ITEMS:,}, not {quote(value)}")
    return value


def _render(value: Any) -> str:
    found = _RENDER.fullmatch(value) if isinstance(value, str) else None
    if found is None or not 1 <= int(found.group(2)) <= MAX_RENDER:
        raise invalid(
            f'must be "first N" or "last N" with N from 1 to {MAX_RENDER}, e.g. "last 10", '
            f"not {quote(value)}"
        )
    return str(value)


@dataclass(frozen=True)
class Window:
    """A batch's window as the step defines it: how long after the opening (or, sliding,
    after the latest run) it closes, and the latest it closes."""

    duration: timedelta
    sliding: bool
    most: timedelta


class Batch(Step):
    action: Literal["batch"]
    window: Annotated[
        str | dict[str, Any],
        PlainValidator(_window),
        Needed('a batch step needs a window, e.g. "10 minutes"'),
    ]
    batch_key: OptionalText = None
    max_items: Annotated[int | None, PlainValidator(max_items_of)] = None
    render: Annotated[str | None, PlainValidator(_render)] = None

    waits: ClassVar[bool] = True
    runs_after_wait: ClassVar[bool] = True
    wakes_early: ClassVar[bool] = True

    def run(self, at: StepRun) -> Outcome:
        batches = BatchRepository(at.session)
        mine = batches.opened_by(at.run.id, at.run.step_index)
        if mine is not None:
            return self._wake(at, mine)
        recipient = at.run.recipient
        if not recipient:
            raise StepFailed(
                "a batch step collects the runs of each recipient, and this run has none (the "
                "event had no userId): start it from a Segment event or invoke it with a "
                "recipient"
            )
        key = self._key(at)
        window = self._window_lengths()
        closes_at = shifted(at.now, window.duration)
        closes_by = shifted(at.now, window.most)
        if closes_at is None or closes_by is None:
            raise StepFailed(f"batch.window ends after the year {LATEST:%Y}")
        for _ in range(ATTEMPTS):
            found = batches.open_or_lock(at.run, recipient, key, at.now, closes_at, closes_by)
            if found is None:
                continue  # the batch closed while this run waited for its lock
            batch, opened = found
            if opened:
                batches.add_item(batch, at.run, at.now)
                return self._wake(at, batch)
            opener_id = self._opener_if_joinable(at, batches, batch)
            if opener_id is not None:
                return self._join(at, batches, batch, window, opener_id)
        raise RetryableStepError(f"batch: the batches of key {key!r} kept closing; trying again")

    def _opener_if_joinable(
        self, at: StepRun, batches: BatchRepository, batch: AutomationBatch
    ) -> str | None:
        """The run id of the open batch's opener (the batch locked) when the batch still
        takes runs: its opener waits on it and its window has not passed. One that doesn't
        is set closing (or dropped, when its opener no longer waits on it), and the caller
        opens a new one."""
        opener = batches.opener(batch)
        if opener is None:
            batches.drop(batch)  # its opener was canceled, or erased: no one is to close it
            return None
        if batch.closes_at <= at.now:
            batch.status = BatchStatus.CLOSING
            at.session.flush()
            at.outbox.add_run(batch.opener_run_pk)
            return None
        return opener

    def _join(
        self,
        at: StepRun,
        batches: BatchRepository,
        batch: AutomationBatch,
        window: Window,
        opener_id: str,
    ) -> Outcome:
        batches.add_item(batch, at.run, at.now)
        if window.sliding:
            batch.closes_at = min(max(batch.closes_at, at.now + window.duration), batch.closes_by)
        if self.max_items is not None and batch.count >= self.max_items:
            batch.status = BatchStatus.CLOSING
            at.outbox.add_run(batch.opener_run_pk)  # the opener closes it now
        output = {
            "batched_into": opener_id,
            "batch_key": batch.batch_key,
            "position_in_batch": batch.count,
            "batch_opened_at": isoformat(batch.opened_at),
        }
        return Stop(
            RunStatus.BATCHED,
            f"batched into run {opener_id}, which opened the batch at "
            f"{isoformat(batch.opened_at)} (item {batch.count})",
            output,
        )

    def _wake(self, at: StepRun, batch: AutomationBatch) -> Outcome:
        """The opener, on reaching the step or waking: wait on while the batch is open, else
        close it."""
        full = self.max_items is not None and batch.count >= self.max_items
        if batch.status == BatchStatus.OPEN and batch.closes_at > at.now and not full:
            return Wait(batch.closes_at)
        return self._close(at, batch)

    def _close(self, at: StepRun, batch: AutomationBatch) -> Outcome:
        items = BatchRepository(at.session).take_items(batch)
        shown = items
        if self.render is not None:
            which, count = self.render.split(" ")
            shown = items[: int(count)] if which == "first" else items[-int(count) :]
        digest = {"items": shown, "total_count": len(items)}
        context = dict(at.run.context)
        context["data"] = {**(context.get("data") or {}), "batch": digest}
        at.run.context = context
        return {
            **digest,
            "batch_key": batch.batch_key,
            "opened_at": isoformat(batch.opened_at),
            "closed_at": isoformat(at.now),
        }

    def _key(self, at: StepRun) -> str:
        if self.batch_key is None:
            return ""
        value = text(self.batch_key, at.names)
        if value is None:
            raise StepFailed(
                f"batch.batch_key {quote(self.batch_key)} came out empty for this run: check "
                "that the value it names is in the run's data"
            )
        if len(value) > MAX_KEY_LENGTH:
            raise StepFailed(
                f"batch.batch_key came out {len(value)} characters long; keep it under "
                f"{MAX_KEY_LENGTH}"
            )
        return value

    def _window_lengths(self) -> Window:
        spec = self.window if isinstance(self.window, dict) else {"duration": self.window}
        try:
            duration = parse_duration(spec["duration"])
            most = parse_duration(spec["max"]) if "max" in spec else duration
        except DurationError as exc:
            raise StepFailed(f"batch.window: {exc}") from exc
        return Window(duration, spec.get("type") == "sliding", most)
