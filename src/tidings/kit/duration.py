"""Durations as automation steps and audience conditions write them: "5 minutes",
"1 hour 30 minutes", "PT5M"."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from pydantic import TypeAdapter, ValidationError

_UNITS = {
    "s": "seconds",
    "sec": "seconds",
    "secs": "seconds",
    "second": "seconds",
    "seconds": "seconds",
    "m": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "h": "hours",
    "hr": "hours",
    "hrs": "hours",
    "hour": "hours",
    "hours": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*(?:,|and\b)?", re.IGNORECASE)
_ISO = TypeAdapter(timedelta)
EXAMPLES = '"5 minutes", "2 days", "1 hour 30 minutes" or ISO-8601 such as "PT5M"'


class DurationError(ValueError):
    """The text is not a duration; the message says what is accepted."""


TOO_LONG = "a delay can wait at most 999,999,999 days (and ends before the year 3000)"


def parse_duration(text: str) -> timedelta:
    """Parse a human-readable or ISO-8601 duration; raise DurationError otherwise.

    Human form: one or more `<number> <unit>` parts, units seconds, minutes, hours, days or
    weeks (singular, plural, or short: s, min, h, d, w), optionally separated by commas or
    "and". ISO-8601 (`PT5M`, `P1DT2H`) is parsed by pydantic. Negative durations are refused.
    """
    if not isinstance(text, str) or not text.strip():
        raise DurationError(f"{json.dumps(text)} is not a duration: use {EXAMPLES}")
    quoted = json.dumps(text)
    stripped = text.strip()
    if stripped.lstrip("+-")[:1] in ("P", "p"):
        try:
            value = _ISO.validate_python(stripped.upper())
        except ValidationError as exc:
            raise DurationError(
                f"{quoted} is not a duration: not valid ISO-8601; use {EXAMPLES}"
            ) from exc
        if value < timedelta():
            raise DurationError(f"{quoted} is negative: a delay can only wait forward")
        return value
    total = timedelta()
    position = 0
    while position < len(stripped):
        match = _PART.match(stripped, position)
        if match is None:
            raise DurationError(f"{quoted} is not a duration: use {EXAMPLES}")
        unit = _UNITS.get(match.group(2).lower())
        if unit is None:
            raise DurationError(
                f"{quoted} is not a duration: unknown unit {match.group(2)!r}; use seconds, "
                f"minutes, hours, days or weeks, e.g. {EXAMPLES}"
            )
        try:
            total += timedelta(**{unit: float(match.group(1))})
        except OverflowError as exc:
            raise DurationError(f"{quoted} is too long: {TOO_LONG}") from exc
        position = match.end()
    return total
