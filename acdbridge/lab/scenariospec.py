"""The parts of a lab scenario as typed, frozen data (lab/scenario.py reads the file format into
them and plans the calls)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Action = Literal["agent_hangs_up", "caller_hangs_up", "blind_transfer", "attended_transfer"]
ACTIONS: tuple[Action, ...] = ("agent_hangs_up", "caller_hangs_up", "blind_transfer", "attended_transfer")
AgentKind = Literal["local", "sipp"]
SIPP_AGENT_IDS = tuple(str(n) for n in range(1001, 1011))  # the PJSIP endpoints in pjsip.conf
# Caller names in several scripts: the hotlines serve Mandarin and Spanish speakers.
DEFAULT_NAMES = ("王小明", "José Núñez", "Li Na", "María Peña", "张伟", "Jürgen Müller", "Ana Gómez", "陈静")


@dataclass(frozen=True)
class Dist:
    """A duration in seconds: constant, uniform(min, max) or exponential(mean) capped at max."""

    kind: Literal["const", "uniform", "exp"]
    a: float
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "const":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        value = rng.expovariate(1.0 / self.a)
        return min(value, self.b) if self.b > 0 else value


@dataclass(frozen=True)
class QueueSpec:
    name: str
    dial: str
    max_wait_s: float
    talk_s: Dist
    menu: str = ""  # the key callers press when acdbridge's greeting asks (its daemon runs)


@dataclass(frozen=True)
class Pause:
    at_s: float
    for_s: float
    reason: str


@dataclass(frozen=True)
class AgentSpec:
    id: str
    kind: AgentKind
    name: str
    queues: tuple[str, ...]
    ring_delay_s: float | None  # None: never answers
    after_talk: tuple[tuple[Action, float], ...]
    transfer_to: str | None
    pauses: tuple[Pause, ...] = ()

    @property
    def interface(self) -> str:
        return f"Local/{self.id}@lab-agents/n" if self.kind == "local" else f"PJSIP/{self.id}"

    def choose_action(self, rng: random.Random) -> Action:
        actions = [a for a, _ in self.after_talk]
        weights = [w for _, w in self.after_talk]
        return rng.choices(actions, weights)[0]


@dataclass(frozen=True)
class CallSpec:
    at_s: float
    queue: str
    patience_s: float
    talk_s: float | None = None
    action: Action | None = None
    max_wait_s: float | None = None
    press_s: float | None = None
    digit: str = "0"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    seed: int
    max_duration_s: float
    queues: Mapping[str, QueueSpec]
    agents: tuple[AgentSpec, ...]
    calls: tuple[CallSpec, ...]  # explicit and generated, sorted by time
    names: tuple[str, ...]


@dataclass(frozen=True)
class PlannedCall:
    """One caller, everything about it decided up front from the seed."""

    index: int
    at_s: float
    queue: str
    caller_name: str
    caller_number: str
    patience_s: float
    max_wait_s: float
    talk_s: float
    action: Action | None
    press_s: float | None = None
    digit: str = "0"
