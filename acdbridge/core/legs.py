"""The greeting (IVR) leg, dispositions and survey scores, read from AMI like everything else:
the FastAGI script sets ACD_* channel variables (see core/ivr.py) and their VarSet events carry
Asterisk's Timestamp, so a recorded stream replays to the same legs. Sans-IO.

An IVR leg starts at ACD_HOTLINE and ends at ACD_IVR (routed | closed), at the caller's
QueueCallerJoin when the script failed half-way (the dialplan fell back: `fallback`), or at the
caller's Hangup while still in the script: `ivr_abandoned`, never a queue abandon -- or `informed`
when the caller hangs up during a service notice or within INFORMED_S of its end (they heard
what they called about: a deflected call, counted per notice). ACD_IVR=oncall
(an urgent call for the on-call engineer, core/oncall.py) keeps it open while the dialplan dials:
it ends `oncall_answered` at the answering channel's ACD_ONCALL_ANSWERED (its value: the caller's
Uniqueid), `oncall_unanswered` at ACD_ONCALL_RESULT=unanswered (every number tried) or
`oncall_abandoned` at the caller's Hangup; `oncall` names the number dialled last (ACD_ONCALL_AT).
A disposition from the web desk comes as the AMI UserEvent AcdDisposition with the same value as
*55N's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from acdbridge.core.ami import AmiMessage
from acdbridge.core.values import is_ascii_digits

Record = dict[str, Any]
MAX_OPEN_LEGS = 10_000
RECORDING_CHOICES = ("always", "consent", "opted_out")  # a label: a closed set
MAX_SCORE_DIGITS = 2  # a leg whose Hangup was missed is dropped, oldest first, beyond this
INFORMED_S = 5.0  # a hang-up this soon after a notice ended is the notice's doing


@dataclass
class IvrLeg:
    uniqueid: str
    linkedid: str
    hotline: str
    caller: str
    start_ts: float
    call_type: str = ""
    language: str = ""
    vip: bool = False
    queue: str = ""
    recording: str = ""  # always | consent | opted_out; "": the hotline does not record
    urgent: bool = False  # an urgent call type (ACD_URGENT)
    oncall: str = ""  # the on-call number dialled last: the one that answered, if any
    dialling: bool = False  # ACD_IVR=oncall seen: the dialplan is ringing the on-call numbers
    notice: str = ""  # the service notice the caller heard (or was hearing)
    notice_end_ts: float | None = None  # None while it plays


def _informed(leg: IvrLeg, hangup_ts: float) -> bool:
    return bool(leg.notice) and (leg.notice_end_ts is None or hangup_ts - leg.notice_end_ts <= INFORMED_S)


def leg_record(leg: IvrLeg, end_ts: float, outcome: str) -> Record:
    return {
        "uniqueid": leg.uniqueid,
        "linkedid": leg.linkedid,
        "hotline": leg.hotline,
        "caller": leg.caller,
        "outcome": outcome,
        "start_ts": leg.start_ts,
        "end_ts": end_ts,
        "ivr_s": round(max(0.0, end_ts - leg.start_ts), 6),
        "call_type": leg.call_type,
        "language": leg.language,
        "vip": leg.vip,
        "queue": leg.queue,
        "recording": leg.recording,
        "notice": leg.notice,
        "urgent": leg.urgent,
        "oncall": leg.oncall,
    }


class LegTracker:
    """Feed every AMI message; IVR legs come out of `on_leg`, dispositions and survey scores out
    of `on_feedback`. `call_of_agent` names an agent's current or last call (the call tracker);
    `queue_of` the queue of a call."""

    def __init__(
        self,
        on_leg: Callable[[Record], None],
        on_feedback: Callable[[Record], None],
        call_of_agent: Callable[[str], str | None],
        queue_of: Callable[[str], str],
    ) -> None:
        self.on_leg, self.on_feedback = on_leg, on_feedback
        self.call_of_agent, self.queue_of = call_of_agent, queue_of
        self.open: dict[str, IvrLeg] = {}
        self.problems = 0

    def feed(self, msg: AmiMessage, ts: float) -> None:
        if msg.kind != "event":
            return
        h = msg.headers
        uid = h.get("Uniqueid", "")
        if msg.name == "VarSet":
            self._varset(h.get("Variable", "").lstrip("_"), h.get("Value", ""), uid, h, ts)
        elif msg.name == "UserEvent" and h.get("UserEvent") == "AcdDisposition":
            # the web desk's disposition (adapters/agentactions.py): the *55N value, no channel
            self._varset("ACD_DISPOSITION", h.get("Value", ""), uid, h, ts)
        elif msg.name == "QueueCallerJoin" and uid in self.open:
            leg = self.open.pop(uid)
            leg.queue = leg.queue or h.get("Queue", "")
            self.on_leg(leg_record(leg, ts, "fallback"))
        elif msg.name == "Hangup" and uid in self.open:
            leg = self.open.pop(uid)
            abandoned = "informed" if _informed(leg, ts) else "ivr_abandoned"
            outcome = "oncall_abandoned" if leg.dialling else abandoned
            self.on_leg(leg_record(leg, ts, outcome))

    def _varset(self, name: str, value: str, uid: str, h: dict[str, str], ts: float) -> None:
        if name == "ACD_HOTLINE":
            if len(self.open) >= MAX_OPEN_LEGS:
                del self.open[next(iter(self.open))]
            self.open[uid] = IvrLeg(uid, h.get("Linkedid", uid), value, h.get("CallerIDNum", ""), ts)
            return
        if name == "ACD_SURVEY_SCORE":
            # ASCII digits only ('²'.isdigit() is true and int('²') fails); two at most: the
            # score is a metric label, so its values must stay a small set
            if len(value) <= MAX_SCORE_DIGITS and is_ascii_digits(value):
                self._feedback("survey", uid, value, "", ts)
            else:
                self.problems += 1
            return
        if name == "ACD_DISPOSITION":  # <agent interface>|<code>|<1 if it resolved the call>
            interface, code, resolved = [*value.rsplit("|", 2), "", ""][:3]
            call = self.call_of_agent(interface)
            if call is None or not code:
                self.problems += 1
                return
            self._feedback("disposition", call, code, interface, ts, resolved == "1")
            return
        if name == "ACD_ONCALL_ANSWERED":  # set on the answering channel, naming the caller's
            answered = self.open.get(value)
            if answered is not None and answered.dialling:
                self.on_leg(leg_record(self.open.pop(value), ts, "oncall_answered"))
            return
        leg = self.open.get(uid)
        if leg is None:
            return
        if name == "ACD_CALLTYPE":
            leg.call_type = value
        elif name == "ACD_LANG":
            leg.language = value
        elif name == "ACD_VIP":
            leg.vip = value == "1"
        elif name == "ACD_RECORDING" and value in RECORDING_CHOICES:
            leg.recording = value
        elif name == "ACD_NOTICE":
            leg.notice, leg.notice_end_ts = value, None
        elif name == "ACD_NOTICE_END":
            leg.notice_end_ts = ts
        elif name == "ACD_QUEUE" and value != "-":
            leg.queue = value
        elif name == "ACD_URGENT":
            leg.urgent = value == "1"
        elif name == "ACD_ONCALL_AT":
            leg.oncall = value
        elif name == "ACD_IVR" and value == "oncall":
            leg.dialling = True
        elif name == "ACD_IVR":
            self.on_leg(leg_record(self.open.pop(uid), ts, value))
        elif name == "ACD_ONCALL_RESULT" and value == "unanswered" and leg.dialling:
            self.on_leg(leg_record(self.open.pop(uid), ts, "oncall_unanswered"))

    def _feedback(
        self, kind: str, call: str, value: str, agent: str, ts: float, resolved: bool = False
    ) -> None:
        self.on_feedback(
            {"uniqueid": call, "kind": kind, "value": value, "resolved": resolved,
             "queue": self.queue_of(call), "agent": agent, "ts": ts}
        )  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        return {"open": [asdict(leg) for leg in self.open.values()]}

    def restore(self, snap: dict[str, Any]) -> None:
        for d in snap.get("open", []):
            self.open[d["uniqueid"]] = IvrLeg(**d)
