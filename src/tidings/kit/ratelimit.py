"""Token buckets per key, in memory, per process: the one rate limiter Tidings has.

It limits Tracking API requests per write key, and failed authentications per client and
per Studio account (with `lockout`). It is not shared between processes: a deployment of
N API processes allows up to N times the rate.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """A bucket per key that holds up to `burst` tokens and refills at `rate` tokens a second.

    `take` spends a token; `wait` only looks. Both answer 0 when a token is there, or the whole
    seconds until one will be. With `rate` 0 everything is let through.

    With `lockout`, a key that has spent its last token stays refused until its bucket is full
    again (`burst / rate` seconds), rather than getting one more try as each token comes back:
    `burst` failures lock the key for that long.

    The least recently seen keys are dropped past `max_keys`, so made-up keys (or client
    addresses) cannot grow it without bound.
    """

    def __init__(
        self, rate: float, burst: float, *, lockout: bool = False, max_keys: int = 10_000
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.lockout = lockout
        self.max_keys = max_keys
        # Seconds, monotonic: what `now` is when not given (tests move it forward).
        self.clock: Callable[[], float] = time.monotonic
        # key -> (tokens, when they were counted, locked)
        self._buckets: OrderedDict[str, tuple[float, float, bool]] = OrderedDict()
        # Studio handlers run in the thread pool; the API's on the event loop.
        self._lock = threading.Lock()

    @classmethod
    def per_window(cls, count: int, window_seconds: float, *, lockout: bool) -> TokenBuckets:
        """`count` takes per `window_seconds`; 0 for either turns the limit off."""
        if count <= 0 or window_seconds <= 0:
            return cls(0.0, 1.0)
        return cls(count / window_seconds, count, lockout=lockout)

    def _refilled(self, key: str, now: float) -> tuple[float, bool]:
        tokens, last, locked = self._buckets.pop(key, (self.burst, now, False))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        if locked and tokens >= self.burst:
            locked = False
        return tokens, locked

    def _seconds_to_wait(self, tokens: float, locked: bool) -> int:
        needed = self.burst if locked else 1.0
        if tokens >= needed:
            return 0
        return max(1, math.ceil((needed - tokens) / self.rate))

    def wait(self, key: str, now: float | None = None) -> int:
        """Seconds until `key` may take a token (0: now); nothing is spent."""
        if self.rate <= 0 or key not in self._buckets:  # the common case: no lock taken
            return 0
        now = self.clock() if now is None else now
        with self._lock:
            if key not in self._buckets:
                return 0
            tokens, locked = self._refilled(key, now)
            self._buckets[key] = (tokens, now, locked)
            return self._seconds_to_wait(tokens, locked)

    def take(self, key: str, now: float | None = None) -> int:
        """Spend a token of `key` and answer 0, or answer the seconds to wait (nothing spent)."""
        if self.rate <= 0:
            return 0
        now = self.clock() if now is None else now
        with self._lock:
            tokens, locked = self._refilled(key, now)
            wait = self._seconds_to_wait(tokens, locked)
            if not wait:
                tokens -= 1.0
                locked = self.lockout and tokens < 1.0
            self._buckets[key] = (tokens, now, locked)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait


class RecentValues:
    """The values added lately, as SHA-256 digests, at most `max_values` (the first added
    forgotten first, and added again when next seen): which keys were accepted lately,
    without keeping the keys."""

    def __init__(self, max_values: int = 10_000) -> None:
        self.max_values = max_values
        self._digests: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        digest = hashlib.sha256(value.encode()).digest()
        if digest in self._digests:  # the common case: no lock taken
            return
        with self._lock:
            self._digests[digest] = None
            while len(self._digests) > self.max_values:
                self._digests.popitem(last=False)

    def __contains__(self, value: str) -> bool:
        return hashlib.sha256(value.encode()).digest() in self._digests
