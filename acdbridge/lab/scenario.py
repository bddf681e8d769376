"""Traffic scenarios for the lab: parsing, validation and the call plan. Pure code: no I/O
except reading the file, no clock, randomness only from the scenario's seed.

A scenario (TOML or JSON) names queues, agents and callers:

    name = "mixed"
    seed = 7
    max_duration_s = 180          # hard bound for the whole run

    [queues.water]
    dial = "6000"                 # the DID in the [inbound] context
    max_wait_s = 60               # Queue() timeout: EXITWITHTIMEOUT after this
    talk_s = { min = 4, max = 8 } # a number, {min, max} (uniform) or {mean[, max]} (exponential)

    [[agents]]
    id = "9001"                   # Local/9001@lab-agents/n; sipp agents use a PJSIP endpoint 1001-1010
    kind = "local"                # "local" (cheap, for volume) or "sipp" (a real SIP softphone)
    queues = ["water"]
    ring_delay_s = 1.5            # seconds of ringing before answering; "never" = ring-no-answer
    after_talk = { agent_hangs_up = 2, caller_hangs_up = 1, blind_transfer = 1 }   # weights
    transfer_to = "broadband"     # the queue a transfer goes to
    pauses = [{ at_s = 30, for_s = 20, reason = "break" }]   # QueuePause in all its queues

    [arrivals]                    # optional: Poisson arrivals
    rate_per_min = 12
    duration_s = 60
    queues = { water = 3, broadband = 1 }   # weights
    patience_s = { min = 5, max = 60 }       # how long a caller waits before hanging up

    [[calls]]                     # optional: explicit calls, on top of the arrivals
    at_s = 0.0
    queue = "water"
    patience_s = 2                # hangs up after 2 s if still waiting: a short abandon
    action = "attended_transfer"  # overrides the answering agent's after_talk choice
    press_s = 4                   # presses `digit` (default "0") after 4 s if still waiting
"""

from __future__ import annotations

import json
import math
import random
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, cast

from acdbridge.errors import ScenarioError
from acdbridge.lab.scenariospec import (
    ACTIONS,
    DEFAULT_NAMES,
    SIPP_AGENT_IDS,
    Action,
    AgentKind,
    AgentSpec,
    CallSpec,
    Dist,
    Pause,
    PlannedCall,
    QueueSpec,
    Scenario,
)

__all__ = [
    "ACTIONS", "AgentSpec", "CallSpec", "Dist", "Pause", "PlannedCall", "QueueSpec", "Scenario",
    "load", "parse", "plan", "shipped",
]  # fmt: skip


class _Reader:
    """Typed access to a parsed table; every error names the file and the key."""

    def __init__(self, source: str, table: Mapping[str, Any], where: str) -> None:
        self.source, self.table, self.where = source, table, where

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {self.where}{key}: {problem}")

    def get(
        self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, required: bool = False
    ) -> Any:
        if key not in self.table:
            if required or default is ...:
                raise self.fail(key, "missing")
            return default
        value = self.table[key]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(key, f"expected {_kind_name(kind)}, got {value!r}")
        if not isinstance(value, kind):
            raise self.fail(key, f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def seconds(self, key: str, default: Any = ..., *, allow_zero: bool = True) -> float:
        value = float(self.get(key, (int, float), default))
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise self.fail(
                key, f"must be a {'non-negative' if allow_zero else 'positive'} number of seconds"
            )
        return value

    def dist(self, key: str, default: Any = ...) -> Dist:
        value = self.table.get(key, default)
        if value is ...:
            raise self.fail(key, "missing")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Dist("const", self.seconds(key, default))
        if isinstance(value, Mapping):
            sub = _Reader(self.source, value, f"{self.where}{key}.")
            unknown = set(value) - {"min", "max", "mean"}
            if unknown:
                raise self.fail(key, f"unknown keys {sorted(unknown)} (use min/max or mean)")
            if "mean" in value:
                cap = sub.seconds("max", 0.0)
                return Dist("exp", sub.seconds("mean", allow_zero=False), cap)
            low, high = sub.seconds("min"), sub.seconds("max")
            if high < low:
                raise self.fail(key, f"max ({high}) is below min ({low})")
            return Dist("uniform", low, high)
        raise self.fail(key, f"expected seconds or a table {{min, max}} / {{mean}}, got {value!r}")

    def check_keys(self, allowed: set[str]) -> None:
        unknown = set(self.table) - allowed
        if unknown:
            raise ScenarioError(f"{self.source}: {self.where or 'top level'}: unknown keys {sorted(unknown)}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _weights(r: _Reader, key: str, allowed: tuple[str, ...] | None) -> tuple[tuple[str, float], ...]:
    table = r.get(key, dict)
    out = []
    for name, weight in table.items():
        if allowed is not None and name not in allowed:
            raise r.fail(key, f"unknown choice {name!r} (one of {', '.join(allowed)})")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise r.fail(f"{key}.{name}", "weight must be a non-negative number")
        out.append((name, float(weight)))
    if not out or sum(w for _, w in out) <= 0:
        raise r.fail(key, "needs at least one positive weight")
    return tuple(out)


def _pauses(a: _Reader) -> tuple[Pause, ...]:
    out = []
    for i, pdata in enumerate(a.get("pauses", list, [])):
        if not isinstance(pdata, Mapping):
            raise a.fail(f"pauses[{i}]", "expected a table {at_s, for_s, reason}")
        p = _Reader(a.source, pdata, f"{a.where}pauses[{i}].")
        p.check_keys({"at_s", "for_s", "reason"})
        out.append(
            Pause(p.seconds("at_s"), p.seconds("for_s", allow_zero=False), p.get("reason", str, "break"))
        )
    return tuple(out)


def parse(data: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
    top = _Reader(source, data, "")
    top.check_keys(
        {"name", "description", "seed", "max_duration_s", "queues", "agents", "arrivals", "calls", "names"}
    )
    seed = top.get("seed", int, 1)
    queues = _queues(top, source)
    agents = [
        _agent(top, source, i, adata, queues)
        for i, adata in enumerate(top.get("agents", list, required=True))
    ]
    ids = [ag.id for ag in agents]
    if len(set(ids)) != len(ids):
        raise top.fail("agents", f"duplicate agent ids {sorted({i for i in ids if ids.count(i) > 1})}")
    calls = [_call(top, source, i, cdata, queues) for i, cdata in enumerate(top.get("calls", list, []))]
    if "arrivals" in data:
        calls += _arrivals(
            _Reader(source, top.get("arrivals", dict), "arrivals."), queues, random.Random(seed)
        )
    if not calls:
        raise top.fail("calls", "the scenario places no call: add [[calls]] or [arrivals]")
    calls.sort(key=lambda cs: cs.at_s)
    max_duration = top.seconds("max_duration_s", 600.0, allow_zero=False)
    names = tuple(top.get("names", list, list(DEFAULT_NAMES))) or DEFAULT_NAMES
    if not all(isinstance(n, str) for n in names):
        raise top.fail("names", "expected a list of strings")
    return Scenario(
        name=top.get("name", str, Path(source).stem),
        description=top.get("description", str, ""),
        seed=seed,
        max_duration_s=max_duration,
        queues=queues,
        agents=tuple(agents),
        calls=tuple(calls),
        names=names,
    )


def _queues(top: _Reader, source: str) -> dict[str, QueueSpec]:
    queues: dict[str, QueueSpec] = {}
    for qname, qdata in top.get("queues", dict, required=True).items():
        if not isinstance(qdata, Mapping):
            raise top.fail(f"queues.{qname}", "expected a table")
        q = _Reader(source, qdata, f"queues.{qname}.")
        q.check_keys({"dial", "max_wait_s", "talk_s", "menu"})
        dial = q.get("dial", str, required=True)
        if not dial.isdigit():
            raise q.fail("dial", f"expected digits (a DID in the [inbound] context), got {dial!r}")
        menu = q.get("menu", str, "")
        if menu and not (len(menu) == 1 and menu in "0123456789*#"):
            raise q.fail("menu", f"expected one keypad key, got {menu!r}")
        queues[qname] = QueueSpec(
            qname, dial, q.seconds("max_wait_s", 300.0, allow_zero=False), q.dist("talk_s", 10.0), menu
        )
    if not queues:
        raise top.fail("queues", "at least one queue is needed")
    return queues


def _agent(top: _Reader, source: str, i: int, adata: Any, queues: Mapping[str, QueueSpec]) -> AgentSpec:
    if not isinstance(adata, Mapping):
        raise top.fail(f"agents[{i}]", "expected a table")
    a = _Reader(source, adata, f"agents[{i}].")
    a.check_keys({"id", "kind", "name", "queues", "ring_delay_s", "after_talk", "transfer_to", "pauses"})
    agent_id = a.get("id", str, required=True)
    kind = a.get("kind", str, "local")
    if kind not in ("local", "sipp"):
        raise a.fail("kind", f"expected 'local' or 'sipp', got {kind!r}")
    if not agent_id.isdigit():
        raise a.fail("id", f"expected digits, got {agent_id!r}")
    if kind == "sipp" and agent_id not in SIPP_AGENT_IDS:
        raise a.fail(
            "id", f"a sipp agent must be one of the PJSIP endpoints {SIPP_AGENT_IDS[0]}-{SIPP_AGENT_IDS[-1]}"
        )
    member_of = a.get("queues", list, required=True)
    for qn in member_of:
        if qn not in queues:
            raise a.fail("queues", f"unknown queue {qn!r}")
    ring = a.table.get("ring_delay_s", 1.0)
    ring_delay = None if ring == "never" else a.seconds("ring_delay_s", 1.0)
    after = _weights(a, "after_talk", ACTIONS) if "after_talk" in adata else (("agent_hangs_up", 1.0),)
    transfer_to = a.get("transfer_to", str, None)
    if transfer_to is not None and transfer_to not in queues:
        raise a.fail("transfer_to", f"unknown queue {transfer_to!r}")
    if any(act.endswith("transfer") and w > 0 for act, w in after) and transfer_to is None:
        raise a.fail("transfer_to", "needed when after_talk includes a transfer")
    return AgentSpec(
        agent_id,
        cast(AgentKind, kind),
        a.get("name", str, f"agent-{agent_id}"),
        tuple(member_of),
        ring_delay,
        cast("tuple[tuple[Action, float], ...]", after),
        transfer_to,
        _pauses(a),
    )


def _call(top: _Reader, source: str, i: int, cdata: Any, queues: Mapping[str, QueueSpec]) -> CallSpec:
    if not isinstance(cdata, Mapping):
        raise top.fail(f"calls[{i}]", "expected a table")
    c = _Reader(source, cdata, f"calls[{i}].")
    c.check_keys({"at_s", "queue", "patience_s", "talk_s", "action", "max_wait_s", "press_s", "digit"})
    digit = c.get("digit", str, "0")
    if len(digit) != 1 or digit not in "0123456789*#":
        raise c.fail("digit", f"expected one DTMF digit, got {digit!r}")
    qn = c.get("queue", str, required=True)
    if qn not in queues:
        raise c.fail("queue", f"unknown queue {qn!r}")
    action = c.get("action", str, None)
    if action is not None and action not in ACTIONS:
        raise c.fail("action", f"expected one of {', '.join(ACTIONS)}, got {action!r}")
    return CallSpec(
        c.seconds("at_s"),
        qn,
        c.seconds("patience_s", 3600.0, allow_zero=False),
        c.seconds("talk_s") if "talk_s" in cdata else None,
        action,
        c.seconds("max_wait_s", allow_zero=False) if "max_wait_s" in cdata else None,
        c.seconds("press_s") if "press_s" in cdata else None,
        digit,
    )


def _arrivals(arr: _Reader, queues: Mapping[str, QueueSpec], rng: random.Random) -> list[CallSpec]:
    """Poisson arrivals over [start_s, start_s + duration_s), each to a queue of the mix."""
    arr.check_keys({"rate_per_min", "duration_s", "queues", "patience_s", "start_s"})
    rate = arr.seconds("rate_per_min", allow_zero=False) / 60.0
    start, duration = arr.seconds("start_s", 0.0), arr.seconds("duration_s", allow_zero=False)
    mix = _weights(arr, "queues", tuple(queues)) if "queues" in arr.table else ((next(iter(queues)), 1.0),)
    patience = arr.dist("patience_s", 3600.0)
    calls = []
    t = start + rng.expovariate(rate)
    while t < start + duration:
        qn = rng.choices([m for m, _ in mix], [w for _, w in mix])[0]
        calls.append(CallSpec(round(t, 3), qn, max(0.5, round(patience.sample(rng), 3))))
        t += rng.expovariate(rate)
    return calls


def plan(scn: Scenario) -> list[PlannedCall]:
    """Fix every random choice of every call from the seed, so a scenario runs the same way twice."""
    rng = random.Random(f"{scn.seed}:plan")
    planned = []
    for i, cs in enumerate(scn.calls):
        q = scn.queues[cs.queue]
        talk = cs.talk_s if cs.talk_s is not None else q.talk_s.sample(rng)
        planned.append(
            PlannedCall(
                index=i,
                at_s=cs.at_s,
                queue=cs.queue,
                caller_name=scn.names[i % len(scn.names)],
                caller_number=f"5550{i:05d}",
                patience_s=cs.patience_s,
                max_wait_s=cs.max_wait_s if cs.max_wait_s is not None else q.max_wait_s,
                talk_s=round(max(0.5, talk), 3),
                action=cs.action,
                press_s=cs.press_s,
                digit=cs.digit,
            )
        )
    return planned


def shipped() -> dict[str, Path]:
    """The scenarios that come with acdbridge, by name."""
    folder = resources.files("acdbridge.lab") / "scenarios"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith((".toml", ".json"))}


def load(name_or_path: str | Path) -> Scenario:
    path = Path(name_or_path)
    if not path.is_file():
        known = shipped()
        if str(name_or_path) in known:
            path = known[str(name_or_path)]
        else:
            raise ScenarioError(
                f"no scenario file {str(name_or_path)!r}",
                detail=f"shipped scenarios: {', '.join(sorted(known))}",
            )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ScenarioError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a table at the top level")
    return parse(data, str(path))
