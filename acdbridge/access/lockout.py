"""Lockout after repeated wrong passwords: per account and per client address, pure (no I/O, the
time is passed in) so the rules are tested without waiting.

`after` wrong passwords for one account within `window_s` lock that account for `lock_s`: the
next attempt is refused even with the right password. Likewise `address_after` wrong passwords
from one address (any accounts) lock the address. Memory is bounded: at most `max_keys` failure
histories and `max_keys` locks of each kind. An attacker spraying made-up usernames pushes out
the least recently failed histories (stale ones first), never a lock that is still running
before an expired one, and their own address locks after `address_after` tries anyway."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

V = TypeVar("V")
MAX_KEYS = 10_000  # histories (and locks) of each kind; ~1 KB each at the default thresholds


@dataclass
class _Kind:
    """Failures and locks of one kind of key (accounts or addresses)."""

    after: int
    max_keys: int
    failures: OrderedDict[str, deque[float]]
    locks: OrderedDict[str, float]  # key -> when the lock ends
    evicted: int = 0


def _kind(after: int, max_keys: int) -> _Kind:
    return _Kind(after, max_keys, OrderedDict(), OrderedDict())


class Lockout:
    def __init__(
        self, *, after: int, address_after: int, window_s: float, lock_s: float, max_keys: int = MAX_KEYS
    ) -> None:
        if min(after, address_after, max_keys) < 1 or window_s <= 0 or lock_s <= 0:
            raise ValueError("lockout thresholds, window, lock time and max_keys must be positive")
        self.window_s = window_s
        self.lock_s = lock_s
        self._accounts = _kind(after, max_keys)
        self._addresses = _kind(address_after, max_keys)

    @property
    def evicted(self) -> int:
        """Failure histories and locks dropped to stay within max_keys (a sign of a spray)."""
        return self._accounts.evicted + self._addresses.evicted

    def tracked(self) -> int:
        """How many histories and locks are held now (for tests and /metrics)."""
        kinds = (self._accounts, self._addresses)
        return sum(len(k.failures) + len(k.locks) for k in kinds)

    def locked(self, username: str, address: str, now: float) -> float:
        """Seconds until the account or the address may try again; 0.0 when neither is locked."""
        return max(
            self._remaining(self._accounts, username, now), self._remaining(self._addresses, address, now)
        )

    def failed(self, username: str, address: str, now: float) -> bool:
        """Count a wrong password; True when it locked the account or the address."""
        account = self._fail(self._accounts, username, now)
        by_address = self._fail(self._addresses, address, now) if address else False
        return account or by_address

    def succeeded(self, username: str) -> None:
        """A right password (when not locked) forgets the account's earlier failures."""
        self._accounts.failures.pop(username, None)

    def _remaining(self, kind: _Kind, key: str, now: float) -> float:
        until = kind.locks.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del kind.locks[key]
            return 0.0
        return until - now

    def _fail(self, kind: _Kind, key: str, now: float) -> bool:
        times = kind.failures.pop(key, None)
        if times is None:
            times = deque(maxlen=kind.after)  # only the last `after` matter
            self._make_room(kind, kind.failures, lambda t: not t or t[-1] <= now - self.window_s)
        kind.failures[key] = times  # most recently failed last
        times.append(now)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) < kind.after:
            return False
        del kind.failures[key]  # the lock replaces the history: a fresh count after it ends
        self._make_room(kind, kind.locks, lambda until: until <= now)
        kind.locks.pop(key, None)
        kind.locks[key] = now + self.lock_s
        return True

    def _make_room(self, kind: _Kind, held: OrderedDict[str, V], stale: Callable[[V], bool]) -> None:
        """Before adding a key: drop stale entries at the old end, then the oldest if still full."""
        while held:
            key, value = next(iter(held.items()))
            if not stale(value) and len(held) < kind.max_keys:
                return
            del held[key]
            if not stale(value):
                kind.evicted += 1
