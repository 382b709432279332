"""Time helpers: everything in Tidings is UTC."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

# Timestamps from input are read only within these bounds (docs/security.md, Input limits):
# outside them a time is unreadable, and arithmetic on it (Segment's clock correction, a
# delay) cannot leave the range Python and the databases hold.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def within_bounds(value: datetime) -> bool:
    return EARLIEST <= value < LATEST


# The clock every `utcnow()` reads: None is the machine's clock. Flow tests (`tidings test`,
# tidings.flowtest) put a virtual clock here, so that the engine's delays, wake-ups, windows
# and expiries all follow it; production pays one global lookup per call.
_clock: Callable[[], datetime] | None = None
# A clock for one thread only (`use_thread_clock`): a replay's sandbox runs the engine on a
# virtual clock in a worker thread while the process's other threads keep the real time.
_thread = threading.local()


def utcnow() -> datetime:
    clock = getattr(_thread, "clock", None) or _clock
    return datetime.now(UTC) if clock is None else clock()


class VirtualClock:
    """A clock that stands still until it is moved: `set` and `advance` it, never backwards."""

    def __init__(self, start: datetime) -> None:
        self.current = start.astimezone(UTC)

    def now(self) -> datetime:
        return self.current

    def set(self, value: datetime) -> None:
        if value < self.current:
            raise ValueError(f"the clock cannot go back from {self.current} to {value}")
        self.current = value.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.set(self.current + delta)


@contextmanager
def use_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Make `utcnow()` read `clock` for the duration, in every module and thread."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield
    finally:
        _clock = previous


@contextmanager
def use_thread_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Make `utcnow()` read `clock` for the duration, in this thread only."""
    previous = getattr(_thread, "clock", None)
    _thread.clock = clock
    try:
        yield
    finally:
        _thread.clock = previous


@contextmanager
def frozen_at(value: datetime) -> Iterator[VirtualClock]:
    """`utcnow()` answers `value` (then wherever the returned clock is moved) for the
    duration."""
    clock = VirtualClock(value)
    with use_clock(clock.now):
        yield clock


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
