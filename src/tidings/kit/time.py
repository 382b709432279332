"""Time helpers: everything in Tidings is UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Timestamps from input are read only within these bounds (docs/security.md, Input limits):
# outside them a time is unreadable, and arithmetic on it (Segment's clock correction, a
# delay) cannot leave the range Python and the databases hold.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def within_bounds(value: datetime) -> bool:
    return EARLIEST <= value < LATEST


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_timestamp(value: object) -> datetime | None:
    """Parse an ISO-8601 timestamp as Segment sends it; None when absent, unreadable or
    outside EARLIEST..LATEST."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    try:
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00, past datetime's range in UTC
        return None
    return parsed if within_bounds(parsed) else None


def epoch_ms(value: datetime) -> int:
    """A time in epoch milliseconds, as Courier's API gives times."""
    return int(value.timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime | None:
    """Epoch milliseconds as a time; None outside EARLIEST..LATEST."""
    try:
        parsed = datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return parsed if within_bounds(parsed) else None


def shifted(start: datetime, delta: timedelta) -> datetime | None:
    """`start + delta`; None when that falls outside EARLIEST..LATEST."""
    try:
        value = start + delta
    except OverflowError:
        return None
    return value if within_bounds(value) else None


def isoformat(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
