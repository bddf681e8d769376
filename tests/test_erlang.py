"""core/erlang.py against independent oracles: erlanglib (exact decimals, factorials) for Erlang C
over a grid of loads, a ciw discrete-event simulation for Erlang A, and properties (hypothesis)."""

from __future__ import annotations

import math
import statistics
from typing import Any

import ciw
import erlanglib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acdbridge.core import erlang

# loads from a night-time queue to a large centre's; agents from just above the load upwards
LOADS = (0.3, 1.0, 2.5, 4.9, 9.5, 20.0, 47.3, 100.0, 180.0)
GRID = [
    (a, n)
    for a in LOADS
    for n in sorted({math.floor(a) + 1, math.floor(a) + 2, math.ceil(a * 1.1) + 1, math.ceil(a * 1.5) + 2})
]


@pytest.mark.parametrize(("a", "n"), GRID)
def test_erlang_c_equals_erlanglib(a: float, n: int) -> None:
    oracle = erlanglib.erlang_c(n, a)
    assert erlang.erlang_c(n, a) == pytest.approx(oracle, rel=1e-9, abs=1e-15)
    for threshold, aht in ((20.0, 180.0), (30.0, 300.0), (0.0, 60.0)):
        sl = erlanglib.service_level(n, a, oracle, threshold, aht)
        assert erlang.service_level(n, a, threshold, aht) == pytest.approx(sl, rel=1e-9, abs=1e-12)
    assert erlang.asa(n, a, 180.0) == pytest.approx(erlanglib.average_speed_of_answer(n, a, oracle, 180.0))
    assert erlang.occupancy(n, a) == pytest.approx(erlanglib.occupancy(a, n) / 100)


def _oracle_required(a: float, aht: float, threshold: float, target: float) -> int:
    n = math.floor(a) + 1
    while erlanglib.service_level(n, a, erlanglib.erlang_c(n, a), threshold, aht) < target:
        n += 1
    return n


@pytest.mark.parametrize("a", [0.4, 3.0, 9.5, 33.3, 120.0])
@pytest.mark.parametrize("target", [0.7, 0.8, 0.9])
def test_required_agents_equals_a_search_over_erlanglib(a: float, target: float) -> None:
    assert erlang.required_agents(a, 180.0, 20.0, target) == _oracle_required(a, 180.0, 20.0, target)


def test_a_large_centre_is_finite_and_matches_the_exact_decimals() -> None:
    # 1000 Erlangs: factorials overflow floats; the recursion does not
    n = erlang.required_agents(1000.0, 180.0, 20.0, 0.8)
    assert n == _oracle_required(1000.0, 180.0, 20.0, 0.8)
    assert erlang.erlang_c(n, 1000.0) == pytest.approx(erlanglib.erlang_c(n, 1000.0), rel=1e-9)
    assert 0.0 < erlang.erlang_c(10_100, 10_000.0) < 1.0  # 10,000 Erlangs still works
    assert erlang.required_agents(10_000.0, 180.0, 20.0, 0.8) > 10_000


def test_max_occupancy_and_edges() -> None:
    # at 47.3 Erlangs the SL target alone asks for fewer agents than an 85 % occupancy cap
    sl_only = erlang.required_agents(47.3, 180.0, 20.0, 0.8)
    capped = erlang.required_agents(47.3, 180.0, 20.0, 0.8, max_occupancy=0.85)
    assert capped == max(sl_only, math.ceil(47.3 / 0.85)) and capped > sl_only
    assert erlang.required_agents(0.0, 180.0, 20.0, 0.8) == 0
    assert erlang.erlang_c(3, 3.0) == 1.0 and erlang.service_level(3, 5.0, 20.0, 180.0) == 0.0
    assert erlang.asa(3, 3.0, 180.0) == math.inf
    for bad in ({"target_sl": 1.0}, {"target_sl": -0.1}, {"max_occupancy": 0.0}):
        args: dict[str, Any] = {"target_sl": 0.8} | bad
        with pytest.raises(ValueError, match=r"target|occupancy"):
            erlang.required_agents(5.0, 180.0, 20.0, **args)
    with pytest.raises(ValueError, match="offered load"):
        erlang.erlang_c(5, math.nan)
    with pytest.raises(ValueError, match="patience"):
        erlang.erlang_a(5, 0.1, 180.0, 1e30, 20.0)  # a chain too long to hold


@settings(max_examples=200, deadline=None)
@given(a=st.floats(0.01, 300.0), threshold=st.floats(0.0, 120.0), aht=st.floats(10.0, 900.0),
       target=st.floats(0.0, 0.99))  # fmt: skip
def test_required_is_the_least_meeting_the_target(
    a: float, threshold: float, aht: float, target: float
) -> None:
    n = erlang.required_agents(a, aht, threshold, target)
    assert n > a and erlang.service_level(n, a, threshold, aht) >= target
    assert n - 1 <= a or erlang.service_level(n - 1, a, threshold, aht) < target
    # more agents never lower the service level or raise the chance of waiting
    assert erlang.service_level(n + 1, a, threshold, aht) >= erlang.service_level(n, a, threshold, aht)
    assert erlang.erlang_c(n + 1, a) <= erlang.erlang_c(n, a) <= 1.0


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.1, 60.0), extra=st.integers(-5, 10), patience=st.floats(5.0, 900.0))
def test_erlang_a_properties(a: float, extra: int, patience: float) -> None:
    n = max(1, math.floor(a) + extra)
    rate = a / 180.0
    fig = erlang.erlang_a(n, rate, 180.0, patience, 20.0)
    more = erlang.erlang_a(n + 1, rate, 180.0, patience, 20.0)
    assert 0.0 <= fig.service_level <= 1.0 and 0.0 <= fig.p_abandon <= fig.p_wait <= 1.0
    assert more.service_level >= fig.service_level - 1e-12 and more.p_abandon <= fig.p_abandon + 1e-12
    # what is not abandoned is answered: the load carried is the offered minus the abandoned
    assert fig.occupancy == pytest.approx(min(1.0, a * (1 - fig.p_abandon) / n), rel=1e-9)


def test_erlang_a_tends_to_erlang_c_as_patience_grows() -> None:
    for a, n in ((9.5, 12), (47.3, 52)):
        c = erlang.service_level(n, a, 20.0, 180.0)
        fig = erlang.erlang_a(n, a / 180.0, 180.0, 1e7, 20.0)
        assert fig.service_level == pytest.approx(c, abs=1e-4)
        assert fig.p_wait == pytest.approx(erlang.erlang_c(n, a), abs=1e-4)
        assert fig.avg_wait_s == pytest.approx(erlang.asa(n, a, 180.0), rel=1e-3)


def test_erlang_a_required_agents_large_and_minimal() -> None:
    rate = 1000.0 / 180.0
    n = erlang.required_agents_a(rate, 180.0, 120.0, 20.0, 0.8)
    assert erlang.erlang_a(n, rate, 180.0, 120.0, 20.0).service_level >= 0.8
    assert erlang.erlang_a(n - 1, rate, 180.0, 120.0, 20.0).service_level < 0.8
    # patient callers need (almost) Erlang C's staffing; impatient ones fewer agents for this SL
    patient = erlang.required_agents_a(9.5 / 180.0, 180.0, 1e6, 20.0, 0.8)
    assert patient == erlang.required_agents(9.5, 180.0, 20.0, 0.8)
    assert erlang.required_agents_a(9.5 / 180.0, 180.0, 60.0, 20.0, 0.8, max_occupancy=0.5) >= 19


def _simulate(
    n: int, rate: float, aht: float, patience: float, threshold: float, seed: int
) -> tuple[float, float]:
    """One ciw run: (service level, abandon share) of the callers who arrived after a warm-up."""
    ciw.seed(seed)
    net = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate)],
        service_distributions=[ciw.dists.Exponential(1.0 / aht)],
        number_of_servers=[n],
        reneging_time_distributions=[ciw.dists.Exponential(1.0 / patience)],
    )
    sim = ciw.Simulation(net)
    horizon = 12_000.0 / rate  # about 12,000 callers a run
    sim.simulate_until_max_time(horizon)
    warm, last = 20 * aht, horizon - 20 * (aht + patience)  # callers still in the system are left out
    done = [r for r in sim.get_all_records() if warm <= r.arrival_date < last]
    answered = sum(1 for r in done if r.record_type == "service" and r.waiting_time <= threshold)
    abandoned = sum(1 for r in done if r.record_type == "renege")
    return answered / len(done), abandoned / len(done)


# (agents, calls per hour, AHT, patience, threshold): understaffed, about right, and a larger queue
ERLANG_A_CASES = [
    (8, 180.0, 180.0, 60.0, 20.0),
    (12, 190.0, 180.0, 120.0, 20.0),
    (30, 580.0, 170.0, 300.0, 30.0),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("n", "per_hour", "aht", "patience", "threshold"), ERLANG_A_CASES)
def test_erlang_a_equals_a_discrete_event_simulation(
    n: int, per_hour: float, aht: float, patience: float, threshold: float
) -> None:
    rate = per_hour / 3600.0
    runs = [_simulate(n, rate, aht, patience, threshold, seed) for seed in range(8)]
    fig = erlang.erlang_a(n, rate, aht, patience, threshold)
    for i, model in ((0, fig.service_level), (1, fig.p_abandon)):
        values = [r[i] for r in runs]
        mean, half = statistics.fmean(values), 3.5 * statistics.stdev(values) / math.sqrt(len(values))
        assert half < 0.02, f"the simulation is too noisy to judge: +/- {half:.3f}"
        assert abs(model - mean) <= half, f"model {model:.4f}, simulation {mean:.4f} +/- {half:.4f}"
