"""Erlang C and Erlang A: how many agents a queue needs for its service-level target. Sans-IO.

Hand-written on purpose: the formulas are small and exact, and the daemon should not carry a
numerical stack (numpy, scipy) for a few dozen lines of arithmetic. Tests hold them against an
independent implementation (erlanglib, exact decimals) and against a discrete-event simulation
(ciw) for Erlang A.

Erlang C (M/M/N, callers wait for ever): A = arrival rate x AHT Erlangs offered to N agents.
  B(0) = 1, B(k) = A B(k-1) / (k + A B(k-1))            (Erlang B, iterative: no factorials, no
  C = N B / (N - A (1 - B))                              overflow at A = 1000 or more)
  SL = 1 - C exp(-(N - A) T / AHT), ASA = C AHT / (N - A), occupancy = A / N.

Erlang A (M/M/N+M, each caller hangs up after an exponential patience of mean `patience_s`):
the birth-death chain on n callers in the system (birth lambda, death min(n, N) mu + max(n - N,
0) theta), its stationary distribution summed until the tail is negligible. An arrival sees it
(PASTA); one who finds j callers waiting ahead is answered when the queue ahead drains (rate
N mu + i theta with i ahead) before its own patience runs out (rate theta): a pure-death chain
whose distribution at T is computed exactly by uniformization. SL = P(answered within T) over
every arrival (an abandon before T misses), P(abandon) = theta E[queue] / lambda.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_AGENTS = 100_000  # a search beyond this is a mistake in the inputs, not a staffing answer
MAX_STATES = 400_000  # Erlang A's chain: N plus the queue lengths that still carry mass
_TAIL = 1e-13  # stationary mass left out of the truncated chain, relative to the total


def _check(a: float, n: int | None = None) -> None:
    if not (math.isfinite(a) and a >= 0):
        raise ValueError(f"offered load must be a finite number >= 0 Erlangs, not {a!r}")
    if n is not None and n < 0:
        raise ValueError(f"agents must be >= 0, not {n}")


def erlang_b(n: int, a: float) -> float:
    """Blocking probability of n trunks offered a Erlangs (the recursion, stable for large n)."""
    _check(a, n)
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def _c_from_b(n: int, a: float, b: float) -> float:
    return 1.0 if n <= a else n * b / (n - a * (1.0 - b))


def erlang_c(n: int, a: float) -> float:
    """Probability that a caller waits (1.0 when n <= a: the queue grows without bound)."""
    return _c_from_b(n, a, erlang_b(n, a))


def _sl_c(n: int, a: float, c: float, threshold_s: float, aht_s: float) -> float:
    if n <= a:
        return 0.0
    return max(0.0, 1.0 - c * math.exp(-(n - a) * threshold_s / aht_s))


def service_level(n: int, a: float, threshold_s: float, aht_s: float) -> float:
    """Share of callers answered within threshold_s with n agents (Erlang C)."""
    if aht_s <= 0 or threshold_s < 0:
        raise ValueError("aht_s must be > 0 and threshold_s >= 0")
    return _sl_c(n, a, erlang_c(n, a), threshold_s, aht_s)


def asa(n: int, a: float, aht_s: float) -> float:
    """Mean wait over every caller, answered at once included (inf when n <= a)."""
    return math.inf if n <= a else erlang_c(n, a) * aht_s / (n - a)


def occupancy(n: int, a: float) -> float:
    """Share of the agents' time on calls (at most 1: beyond that the queue grows)."""
    return 1.0 if n <= 0 else min(1.0, a / n)


def _checked_target(target_sl: float, max_occupancy: float | None) -> None:
    if not 0.0 <= target_sl < 1.0:
        raise ValueError(f"target service level must be in [0, 1), not {target_sl!r}")
    if max_occupancy is not None and not 0.0 < max_occupancy <= 1.0:
        raise ValueError(f"max occupancy must be in (0, 1], not {max_occupancy!r}")


def _occupancy_floor(a: float, max_occupancy: float | None) -> int:
    return 0 if max_occupancy is None else math.ceil(a / max_occupancy - 1e-9)


def required_agents(
    a: float, aht_s: float, threshold_s: float, target_sl: float, max_occupancy: float | None = None
) -> int:
    """The least N whose Erlang C service level is >= target_sl (and occupancy <= max_occupancy).
    One pass of the Erlang B recursion: N = A + 1, A + 2, ... costs O(N) in all."""
    _check(a)
    _checked_target(target_sl, max_occupancy)
    if aht_s <= 0 or threshold_s < 0:
        raise ValueError("aht_s must be > 0 and threshold_s >= 0")
    if a == 0:
        return 0
    floor = max(math.floor(a) + 1, _occupancy_floor(a, max_occupancy))
    b = 1.0
    for k in range(1, MAX_AGENTS + 1):
        b = a * b / (k + a * b)
        if k >= floor and _sl_c(k, a, _c_from_b(k, a, b), threshold_s, aht_s) >= target_sl:
            return k
    raise ValueError(f"no staffing up to {MAX_AGENTS} agents meets the target at {a:g} Erlangs")


@dataclass(frozen=True)
class ErlangA:
    """Erlang A's figures for one staffing level."""

    agents: int
    service_level: float  # answered within the threshold / every arrival
    p_abandon: float  # callers who hang up before an answer
    p_wait: float  # callers who find every agent busy
    avg_wait_s: float  # mean wait of every caller (abandoners' wait up to their hang-up)
    occupancy: float  # answered load / agents


def _stationary(n: int, lam: float, mu: float, theta: float) -> list[float]:
    """pi_0..pi_K of the M/M/n+M chain, normalised, K where the tail becomes negligible. Terms are
    rescaled as they grow, so a load of thousands of Erlangs never overflows."""
    terms = [1.0]
    total, t, k = 1.0, 1.0, 0
    while True:
        k += 1
        t *= lam / (min(k, n) * mu + max(k - n, 0) * theta)
        terms.append(t)
        total += t
        if t > 1e250:  # rescale: the early terms underflow to 0, which they are next to the peak
            terms = [x * 1e-250 for x in terms]
            total *= 1e-250
            t *= 1e-250
        # past n and past the peak the terms fall at least geometrically: stop when negligible
        if k > n and lam < min(k, n) * mu + max(k - n, 0) * theta and t < _TAIL * total:
            break
        if k >= MAX_STATES:
            raise ValueError(f"Erlang A chain longer than {MAX_STATES} states: patience too long")
    return [x / total for x in terms]


def _answered_by(ahead: list[float], n: int, mu: float, theta: float, t: float) -> float:
    """Mass of waiting arrivals answered within t. ahead[i]: arrivals finding i callers ahead.
    Uniformization of the pure-death chain (i ahead -> i - 1 at n mu + i theta, answered from 0
    at n mu, own hang-up at theta everywhere): exact up to the Poisson tail left out (< 1e-12)."""
    if not ahead or t <= 0:
        return 0.0
    top = len(ahead)
    rate = n * mu + top * theta  # the largest total rate out of a state
    down = [(n * mu + i * theta) / rate for i in range(top)]
    stay = [1.0 - (n * mu + (i + 1) * theta) / rate for i in range(top)]
    v, answered, out = list(ahead), 0.0, 0.0
    lt = rate * t
    log_p, cum = -lt, 0.0  # log of the Poisson(lt) weight of k jumps
    steps = int(lt + 12.0 * math.sqrt(lt) + 30.0)
    for k in range(steps + 1):
        if k:
            answered += v[0] * down[0]
            v = [v[i] * stay[i] + v[i + 1] * down[i + 1] for i in range(top - 1)] + [v[-1] * stay[-1]]
            log_p += math.log(lt) - math.log(k)
        p = math.exp(log_p) if log_p > -745.0 else 0.0
        cum += p
        out += p * answered
        if cum > 1.0 - 1e-13:
            break
    return out + (1.0 - cum) * answered  # the left-out tail: at least what was answered by then


def erlang_a(n: int, rate_per_s: float, aht_s: float, patience_s: float, threshold_s: float) -> ErlangA:
    """Erlang A (M/M/N+M) figures for n agents."""
    if not (rate_per_s >= 0 and aht_s > 0 and patience_s > 0 and threshold_s >= 0 and n >= 0):
        raise ValueError("Erlang A needs rate >= 0, aht_s > 0, patience_s > 0, threshold_s >= 0, agents >= 0")
    if not all(math.isfinite(x) for x in (rate_per_s, aht_s, patience_s, threshold_s)):
        raise ValueError("Erlang A's inputs must be finite")
    if rate_per_s == 0:
        return ErlangA(n, 1.0, 0.0, 0.0, 0.0, 0.0)
    mu, theta = 1.0 / aht_s, 1.0 / patience_s
    pi = _stationary(n, rate_per_s, mu, theta)
    waiting = pi[n:]
    queue = math.fsum(j * p for j, p in enumerate(waiting))
    p_abandon = min(1.0, theta * queue / rate_per_s)
    at_once = math.fsum(pi[:n])
    sl = at_once + _answered_by(waiting, n, mu, theta, threshold_s)
    occ = 0.0 if n == 0 else min(1.0, rate_per_s * (1.0 - p_abandon) * aht_s / n)
    return ErlangA(n, min(1.0, sl), p_abandon, math.fsum(waiting), queue / rate_per_s, occ)


def required_agents_a(
    rate_per_s: float,
    aht_s: float,
    patience_s: float,
    threshold_s: float,
    target_sl: float,
    max_occupancy: float | None = None,
) -> int:
    """The least N whose Erlang A service level is >= target_sl (and occupancy within the cap):
    the service level grows with N, so a doubling search and a bisection find it."""
    _checked_target(target_sl, max_occupancy)
    a = rate_per_s * aht_s
    _check(a)
    if a == 0:
        return 0

    def ok(k: int) -> bool:
        fig = erlang_a(k, rate_per_s, aht_s, patience_s, threshold_s)
        return fig.service_level >= target_sl and (max_occupancy is None or fig.occupancy <= max_occupancy)

    # bracket: SL <= answered share <= N / A, so fewer than target x A agents never do; Erlang C's
    # answer usually does (impatient callers shorten the queue), else doubling finds one
    lo = max(0, math.ceil(target_sl * a) - 1)
    hi = max(lo + 1, required_agents(a, aht_s, threshold_s, target_sl))
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_AGENTS:
            raise ValueError(f"no staffing up to {MAX_AGENTS} agents meets the target at {a:g} Erlangs")
    while hi - lo > 1:  # ok(hi), not ok(lo) (or lo == 0)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi
