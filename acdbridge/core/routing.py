"""Skills-based routing on stock app_queue: decisions only, no I/O.

The model (docs/routing.md): one app_queue queue per skill group. An agent logged in is a member
of every group queue he is fit for, with a penalty from his proficiency in the group's skill
(5 -> penalty 0 ... 1 -> penalty 4); agents with one of the group's `widen_to` skills but not the
skill itself join as generalists with `generalist_penalty`. A group may need a language skill:
only agents who speak it are members. A caller enters with QUEUE_MAX_PENALTY = the group's
`max_penalty` (experts only) and the group's queuerules.conf rule raises it as the wait grows, so
the generalists ring too. The rule is frozen when the caller joins (app_queue), so widening at
once when no expert is on duty is decided here, at routing time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_PROFICIENCY = 5


@dataclass(frozen=True)
class AgentProfile:
    name: str
    extension: str  # feature codes identify the agent by it (PJSIP endpoint or caller number)
    interface: str  # the queue member interface, PJSIP/<extension> unless configured
    skills: Mapping[str, int] = field(default_factory=dict)  # skill -> proficiency 1..5


@dataclass(frozen=True)
class SkillGroup:
    queue: str  # the app_queue queue that serves the group
    skill: str  # the call-type skill, e.g. broadband
    language: str = ""  # a language skill every member must have, e.g. mandarin; "" = none
    widen_to: tuple[str, ...] = ()  # generalists: agents with any of these skills
    max_penalty: int = 1  # QUEUE_MAX_PENALTY at entry
    rule: str = ""  # queuerules.conf rule that widens with the wait


@dataclass(frozen=True)
class RoutingConfig:
    groups: tuple[SkillGroup, ...] = ()
    call_types: Mapping[str, str] = field(default_factory=dict)  # call type -> skill
    languages: Mapping[str, str] = field(default_factory=dict)  # language code -> skill ("" = all)
    generalist_penalty: int = 10
    vip_priority: int = 10
    repeat_priority: int = 5
    repeat_window_s: float = 4 * 3600.0


@dataclass(frozen=True)
class RouteDecision:
    queue: str
    max_penalty: int
    rule: str
    priority: int
    skills: tuple[str, ...]  # what the caller needs, for the agent's screen and the record
    note: str = ""  # why the decision deviates from the ideal (no such group, nobody on duty)


@dataclass(frozen=True)
class MemberAction:
    kind: str  # add | remove | penalty
    queue: str
    interface: str
    member_name: str = ""
    penalty: int = 0


def penalty_of(proficiency: int) -> int:
    return MAX_PROFICIENCY - max(1, min(MAX_PROFICIENCY, proficiency))


def memberships(profile: AgentProfile, cfg: RoutingConfig) -> dict[str, int]:
    """The group queues an agent belongs to while logged in, with his penalty in each."""
    out: dict[str, int] = {}
    for group in cfg.groups:
        if group.language and profile.skills.get(group.language, 0) <= 0:
            continue
        proficiency = profile.skills.get(group.skill, 0)
        if proficiency > 0:
            out[group.queue] = penalty_of(proficiency)
        elif any(profile.skills.get(s, 0) > 0 for s in group.widen_to):
            out[group.queue] = cfg.generalist_penalty
    return out


def desired_members(
    logged_in: Iterable[AgentProfile], cfg: RoutingConfig
) -> dict[tuple[str, str], tuple[str, int]]:
    """(queue, interface) -> (member name, penalty) for everyone logged in."""
    return {
        (queue, p.interface): (p.name, penalty)
        for p in logged_in
        for queue, penalty in memberships(p, cfg).items()
    }


def plan_sync(
    desired: Mapping[tuple[str, str], tuple[str, int]],
    actual: Mapping[tuple[str, str], int],
    managed_interfaces: set[str],
    managed_queues: set[str],
) -> list[MemberAction]:
    """The AMI actions that turn `actual` membership into `desired`. Members we do not manage
    (another interface, another queue) are left alone."""
    actions: list[MemberAction] = []
    for (queue, interface), (name, penalty) in sorted(desired.items()):
        have = actual.get((queue, interface))
        if have is None:
            actions.append(MemberAction("add", queue, interface, name, penalty))
        elif have != penalty:
            actions.append(MemberAction("penalty", queue, interface, name, penalty))
    for queue, interface in sorted(actual):
        if (queue, interface) not in desired and interface in managed_interfaces and queue in managed_queues:
            actions.append(MemberAction("remove", queue, interface))
    return actions


def urgent_priority(cfg: RoutingConfig) -> int:
    """QUEUE_PRIO of an urgent call: above every other priority routing gives (VIP, repeat)."""
    return max(cfg.vip_priority, cfg.repeat_priority) + 1


def route(
    call_type: str,
    language: str,
    cfg: RoutingConfig,
    *,
    vip: bool = False,
    repeat: bool = False,
    on_duty: Mapping[str, Iterable[int]] | None = None,
) -> RouteDecision | None:
    """Which queue, penalty limit, rule and priority a classified caller gets; None when the call
    type has no skill group (the caller then goes to the hotline's default queue).
    `on_duty`: queue -> penalties of its members able to take calls now (not paused)."""
    skill = cfg.call_types.get(call_type)
    if skill is None:
        return None
    language_skill = cfg.languages.get(language, "")
    candidates = [g for g in cfg.groups if g.skill == skill]
    group = next((g for g in candidates if g.language == language_skill), None)
    note = ""
    if group is None:
        group = next((g for g in candidates if not g.language), None)
        if group is None:
            return None
        if language_skill:
            note = f"no {skill} group speaks {language_skill}"
    max_penalty = group.max_penalty
    if on_duty is not None and not any(p <= max_penalty for p in on_duty.get(group.queue, ())):
        widened = f"no {skill} expert on duty: widened at once"
        max_penalty, note = (
            max(max_penalty, cfg.generalist_penalty),
            f"{note}; {widened}" if note else widened,
        )
    priority = cfg.vip_priority if vip else (cfg.repeat_priority if repeat else 0)
    skills = (skill, language_skill) if language_skill else (skill,)
    return RouteDecision(group.queue, max_penalty, group.rule, priority, skills, note)


class MemberBook:
    """What app_queue says about membership, from AMI: (queue, interface) -> penalty and paused.
    QueueParams opens a fresh listing of its queue (QueueStatus), so members removed while we were
    away do not linger; `synced` once a QueueStatusComplete has been seen on this connection."""

    def __init__(self) -> None:
        self.penalty: dict[tuple[str, str], int] = {}
        self.paused: dict[tuple[str, str], bool] = {}
        self.synced = False
        self.changes = 0  # grows with every membership change seen: the sync compares again

    def new_connection(self) -> None:
        self.synced = False

    def feed(self, name: str, h: Mapping[str, str]) -> None:
        if not name.startswith("Queue"):
            return  # every membership event and listing is Queue*
        key = (h.get("Queue", ""), h.get("Interface") or h.get("Location", ""))
        if name == "QueueParams":  # a fresh listing of this queue follows
            for k in [k for k in self.penalty if k[0] == key[0]]:
                del self.penalty[k]
                self.paused.pop(k, None)
        if name in ("QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPenalty", "QueueStatusComplete"):
            self.changes += 1
        if name in ("QueueMember", "QueueMemberAdded", "QueueMemberStatus", "QueueMemberPenalty"):
            try:
                self.penalty[key] = int(h.get("Penalty", "0"))
            except ValueError:
                self.penalty[key] = 0
            if "Paused" in h:
                self.paused[key] = h["Paused"] == "1"
        elif name == "QueueMemberPause":
            self.paused[key] = h.get("Paused") == "1"
        elif name == "QueueMemberRemoved":
            self.penalty.pop(key, None)
            self.paused.pop(key, None)
        elif name == "QueueStatusComplete":
            self.synced = True

    def logged_in(self) -> dict[str, int] | None:
        """queue -> members, paused or not (an urgent call skips a queue nobody is in); None
        until a listing completed on this connection: not known is not empty."""
        if not self.synced:
            return None
        out: dict[str, int] = {}
        for queue, _interface in self.penalty:
            out[queue] = out.get(queue, 0) + 1
        return out

    def on_duty(self) -> dict[str, list[int]]:
        """queue -> penalties of its members who are not paused (routing widens when no expert is)."""
        out: dict[str, list[int]] = {}
        for (queue, _interface), penalty in self.penalty.items():
            if not self.paused.get((queue, _interface), False):
                out.setdefault(queue, []).append(penalty)
        return out
