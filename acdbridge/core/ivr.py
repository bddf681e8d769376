"""The caller's greeting script, sans-IO: a generator that yields steps (play, ask, set a channel
variable) and receives what the caller pressed. The FastAGI adapter runs the steps; unit tests
drive the generator by hand. Nothing here reads a clock: the caller of the script passes the
centre's local time.

Channel variables set here are the contract with the dialplan (asterisk_conf/extensions.conf)
and with the tracker (core/legs.py reads them back from AMI VarSet events):
  ACD_HOTLINE (first: the IVR leg starts), CHANNEL(language), __ACD_ACCOUNT/NAME/ADDRESS/VIP (the
  agent's screen pop, inherited by the agent's channel), __ACD_NOTICE before a notice plays (the
  screen pop's too) and ACD_NOTICE_END once it has, ACD_CALLTYPE, ACD_LANG, ACD_VIP,
  ACD_RECORDING and ACD_RECORD (the recording notice, the caller's choice: docs/recording.md),
  QUEUE_PRIO, QUEUE_MAX_PENALTY, ACD_RULE, ACD_SURVEY, ACD_URGENT, ACD_QUEUE (the dialplan's
  target; "-": hang up; unset: the daemon failed, the dialplan uses its default queue) and last
  ACD_IVR (routed | closed: the leg ends; oncall: the dialplan dials ACD_ONCALL, each number for
  ACD_ONCALL_RING seconds, and the leg ends with the on-call outcome, core/legs.py)."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from acdbridge.core.oncall import ONCALL_SEP, OncallShift, oncall_reason, shift_now
from acdbridge.core.routing import RoutingConfig, route, urgent_priority

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RECORD_MODES = ("always", "consent", "never")
CONSENT_TIMEOUT_MS = 3000  # after the recording notice, the time to press the opt-out key


@dataclass(frozen=True)
class OpenSpan:
    weekdays: frozenset[int]  # 0 = Monday
    start_min: int  # minutes after local midnight
    end_min: int


@dataclass(frozen=True)
class Hotline:
    name: str
    default_queue: str  # also the dialplan's fallback when the daemon is unreachable
    default_call_type: str
    languages: tuple[str, ...]  # the first one is the hotline's own
    menu: Mapping[str, str]  # DTMF digit -> call type
    hours: tuple[OpenSpan, ...] = ()  # empty: always open
    holidays: frozenset[date] = frozenset()
    menu_timeout_s: float = 5.0
    menu_tries: int = 2
    survey: bool = True
    record: str = "never"  # always | consent (the caller may opt out) | never
    record_optout_key: str = "9"
    urgent: frozenset[str] = frozenset()  # call types that get top priority, or the on-call rota
    oncall: tuple[OncallShift, ...] = ()  # the on-call rota (core/oncall.py): first match wins


@dataclass(frozen=True)
class Notice:
    """A planned supply interruption, announced before the menu while it is in force."""

    name: str  # prompt acdbridge/notice-<name>
    hotlines: frozenset[str]
    areas: frozenset[str]  # empty: every caller
    start_ts: float
    end_ts: float


@dataclass(frozen=True)
class Caller:
    number: str
    account: str = ""
    name: str = ""
    address: str = ""
    area: str = ""
    vip: bool = False
    language: str = ""


@dataclass(frozen=True)
class Play:
    prompt: str
    escape_digits: str = ""


@dataclass(frozen=True)
class Ask:
    prompt: str
    timeout_ms: int
    max_digits: int = 1


@dataclass(frozen=True)
class SetVar:
    name: str
    value: str


Step = Play | Ask | SetVar


@dataclass(frozen=True)
class CallContext:
    """What the script knows about this call when it starts."""

    caller: Caller | None
    now: datetime  # the centre's local time
    now_ts: float
    repeat: bool = False  # the same number called within the repeat window
    notices: tuple[Notice, ...] = ()
    on_duty: Mapping[str, Iterable[int]] | None = None  # queue -> penalties of available members
    logged_in: Mapping[str, int] | None = None  # queue -> members logged in; None: not known yet
    summary: dict[str, str] = field(default_factory=dict)  # filled in by the script, for the log


def is_open(hotline: Hotline, now: datetime) -> str:
    """'open', 'holiday' or 'closed' at local time `now`."""
    if now.date() in hotline.holidays:
        return "holiday"
    if not hotline.hours:
        return "open"
    minute = now.hour * 60 + now.minute
    for span in hotline.hours:
        if now.weekday() in span.weekdays and span.start_min <= minute < span.end_min:
            return "open"
    return "closed"


def prompt(hotline: Hotline, name: str) -> str:
    return f"acdbridge/{hotline.name}-{name}"


def hotline_script(
    hotline: Hotline, routing: RoutingConfig, ctx: CallContext
) -> Generator[Step, str | None, None]:
    caller = ctx.caller
    yield SetVar("ACD_HOTLINE", hotline.name)
    language = caller.language if caller and caller.language in hotline.languages else hotline.languages[0]
    yield SetVar("CHANNEL(language)", language)
    if caller is not None:
        for var, value in (("ACCOUNT", caller.account), ("NAME", caller.name), ("ADDRESS", caller.address)):
            yield SetVar(f"__ACD_{var}", value)
    vip = bool(caller and caller.vip)
    yield SetVar("__ACD_VIP", "1" if vip else "0")
    ctx.summary.update(hotline=hotline.name, language=language)

    state = is_open(hotline, ctx.now)
    # outside hours an urgent call type may still reach the on-call engineer: ask for the type first
    shift = shift_now(hotline.oncall, ctx.now) if hotline.urgent else None
    if state != "open" and shift is None:
        yield from _closed(hotline, ctx, state)
        return

    call_type = yield from _greeting(hotline, ctx)
    decision = route(call_type, language, routing, vip=vip, repeat=ctx.repeat, on_duty=ctx.on_duty)
    queue = decision.queue if decision else hotline.default_queue
    urgent = call_type in hotline.urgent
    reason = oncall_reason(state, queue, ctx.logged_in) if urgent and shift else ""
    classified = (SetVar("ACD_CALLTYPE", call_type), SetVar("ACD_LANG", language))
    if shift is not None and reason:
        yield from classified
        yield from _oncall(shift, reason, ctx, call_type)
        return
    if state != "open":  # a call type that is not urgent: closed, as without a rota
        yield from classified
        ctx.summary["call_type"] = call_type
        yield from _closed(hotline, ctx, state)
        return
    yield from _recording(hotline, ctx)  # before ACD_CALLTYPE: the dialplan sees ACD_RECORD in time
    yield from classified
    yield SetVar("__ACD_SKILLS", ",".join(decision.skills) if decision else "")
    if decision is not None:
        yield SetVar("QUEUE_MAX_PENALTY", str(decision.max_penalty))
        yield SetVar("ACD_RULE", decision.rule)
        if decision.note:
            ctx.summary["note"] = decision.note
    priority = urgent_priority(routing) if urgent else (decision.priority if decision else 0)
    if urgent:
        yield SetVar("ACD_URGENT", "1")
    if priority:
        yield SetVar("QUEUE_PRIO", str(priority))
    yield SetVar("ACD_SURVEY", "1" if hotline.survey else "0")
    ctx.summary.update(call_type=call_type, queue=queue, outcome="routed")
    yield SetVar("ACD_QUEUE", queue)
    yield SetVar("ACD_IVR", "routed")


def _closed(hotline: Hotline, ctx: CallContext, state: str) -> Generator[Step, str | None, None]:
    yield Play(prompt(hotline, state))
    ctx.summary["outcome"] = state
    yield SetVar("ACD_QUEUE", "-")
    yield SetVar("ACD_IVR", "closed")


def _greeting(hotline: Hotline, ctx: CallContext) -> Generator[Step, str | None, str]:
    """The greeting, the notices in force for the caller's area, the menu: the call type."""
    digits = "".join(sorted(hotline.menu))
    pressed = yield Play(prompt(hotline, "greeting"), digits)
    area = ctx.caller.area if ctx.caller else ""
    for notice in ctx.notices:
        if pressed:
            break
        if (
            hotline.name in notice.hotlines
            and notice.start_ts <= ctx.now_ts < notice.end_ts
            and (not notice.areas or area in notice.areas)
        ):
            # set before the prompt and marked after it: a caller who hangs up during the notice or
            # just after was informed (core/legs.py), not an abandon; the screen pop shows it too
            yield SetVar("__ACD_NOTICE", notice.name)
            pressed = yield Play(f"acdbridge/notice-{notice.name}", digits)
            ctx.summary["notice"] = notice.name
            yield SetVar("ACD_NOTICE_END", notice.name)
    call_type = yield from _menu(hotline, pressed)
    if call_type is None:
        call_type, ctx.summary["menu"] = hotline.default_call_type, "default"
    return call_type


def _oncall(
    shift: OncallShift, reason: str, ctx: CallContext, call_type: str
) -> Generator[Step, str | None, None]:
    """Hand the call to the dialplan's [acd-oncall]: ACD_QUEUE stays unset, so a dialplan that
    predates it still queues the caller rather than hanging up."""
    yield SetVar("ACD_URGENT", "1")
    yield SetVar("ACD_ONCALL", ONCALL_SEP.join(shift.numbers))
    yield SetVar("ACD_ONCALL_RING", str(shift.ring_s))
    ctx.summary.update(call_type=call_type, outcome="oncall", oncall=reason)
    yield SetVar("ACD_IVR", "oncall")


def _menu(hotline: Hotline, pressed: str | None) -> Generator[Step, str | None, str | None]:
    """The call type of the key pressed at the greeting, else asked for up to menu_tries times."""
    call_type = hotline.menu.get(pressed or "")
    tries = 0
    while call_type is None and hotline.menu and tries < hotline.menu_tries:
        tries += 1
        yield SetVar("ACD_IVR_STAGE", f"menu{tries}")  # the lab's test callers press keys on it
        pressed = yield Ask(prompt(hotline, "menu"), int(hotline.menu_timeout_s * 1000))
        call_type = hotline.menu.get(pressed or "")
        if call_type is None and pressed and tries < hotline.menu_tries:  # silence: just ask again
            yield Play(prompt(hotline, "invalid"))
    return call_type


def _recording(hotline: Hotline, ctx: CallContext) -> Generator[Step, str | None, None]:
    """The recording notice; with consent, the caller's one chance to opt out (silence consents).
    ACD_RECORD=1 makes the dialplan start MixMonitor as the caller enters the queue;
    ACD_RECORDING (always | consent | opted_out) is the choice, kept on the IVR leg."""
    if hotline.record == "never":
        return
    if hotline.record == "always":
        yield Play(prompt(hotline, "recording"))
        choice = "always"
    else:
        yield SetVar("ACD_IVR_STAGE", "consent")  # the lab's test callers press keys on it
        pressed = yield Ask(prompt(hotline, "recording"), CONSENT_TIMEOUT_MS)
        choice = "opted_out" if pressed == hotline.record_optout_key else "consent"
    ctx.summary["recording"] = choice
    yield SetVar("ACD_RECORDING", choice)
    yield SetVar("ACD_RECORD", "0" if choice == "opted_out" else "1")


def survey_script(max_score: int = 5) -> Generator[Step, str | None, None]:
    """After the agent hung up: ask for a rating 1..max_score once, repeat once on a wrong key."""
    for attempt in range(2):
        yield SetVar("ACD_IVR_STAGE", "survey")
        pressed = yield Ask("acdbridge/survey", 6000)
        # 0-9 only: str.isdigit() also accepts '²', which int() refuses
        if pressed and pressed.isascii() and pressed.isdigit() and 1 <= int(pressed) <= max_score:
            yield SetVar("ACD_SURVEY_SCORE", pressed)
            yield Play("acdbridge/survey-thanks")
            return
        if attempt == 0 and pressed:
            yield Play("acdbridge/survey-invalid")
