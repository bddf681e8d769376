"""The lockout rules (access/lockout.py): windows, lock ends, address locks and bounded memory."""

from __future__ import annotations

import pytest

from acdbridge.access.lockout import Lockout


def _lockout(**kw: float) -> Lockout:
    settings = {"after": 5, "address_after": 20, "window_s": 900.0, "lock_s": 900.0} | kw
    return Lockout(**settings)  # type: ignore[arg-type]


def test_five_failures_in_the_window_lock_the_account_for_lock_s() -> None:
    lock = _lockout()
    assert [lock.failed("ana", "10.0.0.1", 100.0 + i) for i in range(5)] == [False] * 4 + [True]
    assert lock.locked("ana", "10.0.0.2", 104.0) == pytest.approx(900.0)  # any address
    assert lock.locked("ana", "10.0.0.2", 1003.0) == pytest.approx(1.0)
    assert lock.locked("ana", "10.0.0.2", 1004.0) == 0.0  # over: and counting starts afresh
    assert lock.locked("bo", "10.0.0.1", 500.0) == 0.0  # another account is not affected
    assert not lock.failed("ana", "10.0.0.1", 1005.0)


def test_failures_older_than_the_window_do_not_count() -> None:
    lock = _lockout(window_s=60.0)
    for t in (0.0, 10.0, 20.0, 30.0):
        lock.failed("ana", "a", t)
    assert not lock.failed("ana", "a", 65.0)  # the one at 0 fell out: 4 in the window
    assert lock.locked("ana", "a", 65.0) == 0.0
    assert lock.failed("ana", "a", 66.0)  # 10, 20, 30, 65, 66


def test_success_forgets_the_account_failures() -> None:
    lock = _lockout()
    for t in range(4):
        lock.failed("ana", "a", float(t))
    lock.succeeded("ana")
    assert not lock.failed("ana", "a", 5.0)


def test_an_address_spraying_usernames_is_locked_for_every_account() -> None:
    lock = _lockout(address_after=20)
    results = [lock.failed(f"user{i}", "203.0.113.9", float(i)) for i in range(20)]
    assert results == [False] * 19 + [True]
    assert lock.locked("somebody", "203.0.113.9", 20.0) == pytest.approx(899.0)
    assert lock.locked("somebody", "198.51.100.1", 20.0) == 0.0


def test_memory_stays_bounded_and_a_running_lock_outlives_a_spray() -> None:
    lock = _lockout(max_keys=100, address_after=10**6)
    for t in range(5):
        lock.failed("target", "a", float(t))
    for i in range(10_000):  # made-up usernames from many addresses
        lock.failed(f"spray{i}", f"10.{i // 256 % 256}.{i % 256}.1", 10.0 + i * 0.01)
    assert lock.tracked() <= 4 * 100
    assert lock.evicted > 0
    assert lock.locked("target", "b", 120.0) > 0  # only failure histories were pushed out


def test_stale_histories_go_before_fresh_ones() -> None:
    lock = _lockout(max_keys=3, window_s=10.0)
    lock.failed("old", "", 0.0)
    lock.failed("x", "", 50.0)
    lock.failed("y", "", 51.0)
    lock.failed("z", "", 52.0)  # full: "old" is stale and goes without counting as an eviction
    assert lock.evicted == 0
    lock.failed("w", "", 53.0)  # full of fresh ones: the least recently failed goes, counted
    assert lock.evicted == 1


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        _lockout(after=0)
