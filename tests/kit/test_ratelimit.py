"""Token buckets: a rate with a burst, or a lockout once the burst is spent."""

from __future__ import annotations

from tidings.kit.ratelimit import TokenBuckets


def test_a_bucket_refills_one_token_at_a_time() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2)
    assert buckets.take("k", now=0.0) == 0
    assert buckets.take("k", now=0.0) == 0
    assert buckets.take("k", now=0.0) == 1
    assert buckets.take("k", now=1.0) == 0  # one token back: one more take
    assert buckets.take("k", now=1.0) == 1
    assert buckets.take("other", now=1.0) == 0


def test_with_lockout_a_spent_key_waits_for_the_whole_bucket() -> None:
    # 3 per 60 s: the third failure locks the key for 60 s.
    buckets = TokenBuckets.per_window(3, 60.0, lockout=True)
    assert buckets.wait("k", now=0.0) == 0
    for _ in range(3):
        assert buckets.take("k", now=0.0) == 0
    assert buckets.wait("k", now=0.0) == 60
    # A token has come back after 20 s, but the lock holds until the bucket is full.
    assert buckets.wait("k", now=20.0) == 40
    assert buckets.take("k", now=20.0) == 40
    assert buckets.wait("k", now=59.0) == 1
    assert buckets.wait("k", now=60.0) == 0
    assert buckets.take("k", now=60.0) == 0


def test_wait_spends_nothing_and_remembers_nothing() -> None:
    buckets = TokenBuckets.per_window(1, 10.0, lockout=True)
    for _ in range(100):
        assert buckets.wait(f"k{_}", now=0.0) == 0
    assert len(buckets._buckets) == 0


def test_the_clock_can_be_moved() -> None:
    now = [1000.0]
    buckets = TokenBuckets.per_window(1, 30.0, lockout=True)
    buckets.clock = lambda: now[0]
    buckets.take("k")
    assert buckets.wait("k") == 30
    now[0] += 30
    assert buckets.wait("k") == 0


def test_a_count_of_zero_turns_the_limit_off() -> None:
    buckets = TokenBuckets.per_window(0, 60.0, lockout=True)
    for _ in range(1000):
        assert buckets.take("k", now=0.0) == 0
    assert buckets.wait("k", now=0.0) == 0
