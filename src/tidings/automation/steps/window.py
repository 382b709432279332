"""The `window` of a send or delay step: when the step may end (see `tidings.kit.windows`).

The window is read in the zone `window_zone` gives, with the run's `profile` (the stored
profile of the run's recipient, with what the event or invoke laid over it) as the
recipient's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import PlainValidator, ValidationInfo

from tidings.automation.steps.base import StepFailed, StepRun
from tidings.automation.steps.fields import invalid, saving
from tidings.kit.windows import WindowError, next_opening, parse_window, window_zone


def _window(value: Any, info: ValidationInfo) -> Any:
    if saving(info) is not None:
        try:
            parse_window(value)
        except WindowError as exc:
            raise invalid(exc.reason, exc.at) from exc
    return value


OptionalWindow = Annotated[dict[str, Any] | str | None, PlainValidator(_window)]
"""A send window: `{days, hours: {start, end}, timezone, fallback_timezone}`, or Courier's
opening hours ("Mo-Fr 09:00-18:00")."""


def opening(at: StepRun, window: dict[str, Any] | str, after: datetime) -> datetime:
    """`after` when it is inside the window, else the window's next opening."""
    try:
        parsed = parse_window(window)
    except WindowError as exc:
        raise StepFailed(f"window{exc.at}: {exc.reason}") from exc
    profile = at.names.get("profile")
    zone, _ = window_zone(parsed, profile if isinstance(profile, dict) else None)
    return next_opening(after, parsed, zone)
