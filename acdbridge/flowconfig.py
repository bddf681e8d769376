"""The caller's path in the config file: FastAGI listener, caller directory, hotlines (greeting,
hours, menu, prompts), service notices, skills routing, agent profiles, pause reasons and
disposition codes. Read by config.py into a Problems collector: every problem is recorded with
its dotted key and parsing goes on with a default, so check-config reports them all. What needs
the whole file (references, uniqueness across tables, files) is in settings/checks.py. See
examples/acdbridge-lab.toml and docs/config.md."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from acdbridge.core.ivr import RECORD_MODES, WEEKDAYS, Hotline, Notice, OpenSpan
from acdbridge.core.routing import AgentProfile, RoutingConfig, SkillGroup
from acdbridge.errors import AcdError
from acdbridge.settings.oncallconf import parse_urgent
from acdbridge.settings.problems import Problems, dotted, get, known, listen, str_list, table

FLOW_SECTIONS = {
    "agi",
    "directory",
    "routing",
    "hotlines",
    "notices",
    "survey",
    "dispositions",
    "pause_reasons",
}
HOTLINE_PROMPTS = ("greeting", "menu", "invalid", "closed")  # "holiday" falls back to "closed"
SURVEY_PROMPTS = ("survey", "thanks", "invalid")
HOTLINE_KEYS = {"dids", "default_queue", "default_call_type", "languages", "menu", "hours", "holidays",
                "menu_timeout_s", "menu_tries", "survey", "prompts",
                "record", "record_optout_key", "urgent", "oncall"}  # fmt: skip
AGENT_KEYS = {"qa_score", "schedule", "extension", "interface", "skills", "team"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TIME = r"(?:[01]\d|2[0-4]):[0-5]\d"
_HOURS = re.compile(rf"^(?P<days>[a-z]{{3}}(?:-[a-z]{{3}})?)\s+(?P<start>{_TIME})-(?P<end>{_TIME})$")
DEFAULT_PAUSE_REASONS = {"1": "break", "2": "lunch", "3": "training", "4": "meeting", "5": "after-call work"}


class FlowConfigError(AcdError):
    code = "config"
    exit_status = 2


@dataclass(frozen=True)
class Disposition:
    code: str
    resolved: bool  # counts towards first-call resolution


@dataclass(frozen=True)
class FlowConfig:
    agi_host: str = "127.0.0.1"
    agi_port: int = 24573
    agi_read_timeout_s: float = 10.0
    agi_max_sessions: int = 200
    directory: Path | None = None
    hotlines: dict[str, Hotline] = field(default_factory=dict)
    dids: dict[str, str] = field(default_factory=dict)  # dialled number -> hotline
    notices: tuple[Notice, ...] = ()
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    profiles: dict[str, AgentProfile] = field(default_factory=dict)  # by agent name
    pause_reasons: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PAUSE_REASONS))
    dispositions: dict[str, Disposition] = field(default_factory=dict)  # keypad code -> disposition
    prompts: dict[str, dict[str, str]] = field(default_factory=dict)  # language -> name -> text

    def oncall_hotlines(self) -> tuple[str, ...]:
        """The hotlines whose urgent calls may ring an on-call engineer (acd_oncall_calls)."""
        return tuple(sorted(n for n, h in self.hotlines.items() if h.urgent and h.oncall))

    def profile_by_extension(self, extension: str) -> AgentProfile | None:
        return next((p for p in self.profiles.values() if p.extension == extension), None)


def _hours(p: Problems, specs: tuple[str, ...], where: str) -> tuple[OpenSpan, ...]:
    spans = []
    for spec in specs:
        m = _HOURS.match(spec.strip().lower())
        if not m:
            p.error(where, f"{spec!r}: expected e.g. 'mon-fri 08:00-20:00'")
            continue
        first, _, last = m["days"].partition("-")
        if first not in WEEKDAYS or (last or first) not in WEEKDAYS:
            p.error(where, f"{spec!r}: days are {', '.join(WEEKDAYS)}")
            continue
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days = frozenset(range(a, b + 1)) if a <= b else frozenset((*range(a, 7), *range(0, b + 1)))
        start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (m["start"], m["end"]))
        if not 0 <= start < end <= 24 * 60:
            p.error(where, f"{spec!r}: the end must be after the start, at most 24:00")
            continue
        spans.append(OpenSpan(days, start, end))
    return tuple(spans)


def _prompts(
    p: Problems, value: Any, names: tuple[str, ...], languages: tuple[str, ...], where: str
) -> dict[str, dict[str, str]]:
    t = table(p, value, where)
    out: dict[str, dict[str, str]] = {}
    for lang in sorted(set(t) - set(languages)):
        p.error(dotted(where, lang), f"not one of the languages {list(languages)}")
    for lang in languages:
        texts = table(p, t[lang], dotted(where, lang)) if lang in t else {}
        missing = [n for n in names if not isinstance(texts.get(n), str) or not texts[n].strip()]
        if missing:
            p.error(dotted(where, lang), f"missing prompt text for {missing}")
        out[lang] = {n: x for n, x in texts.items() if isinstance(x, str)}
    return out


def _menu(p: Problems, t: dict[str, Any], where: str) -> dict[str, str]:
    menu: dict[str, str] = {}
    for digit, call_type in table(p, t.get("menu", {}), dotted(where, "menu")).items():
        if not (len(digit) == 1 and digit in "0123456789*#") or not isinstance(call_type, str):
            p.error(dotted(where, "menu"), f"{digit!r} = {call_type!r}: expected a keypad key = a call type")
        else:
            menu[digit] = call_type
    return menu


def _record(p: Problems, t: dict[str, Any], where: str, menu: dict[str, str]) -> tuple[str, str]:
    """`record` (always | consent | never) and the opt-out key; a notice needs a `recording` prompt."""
    record = get(p, t, "record", where, str, "never")
    if record not in RECORD_MODES:
        p.error(dotted(where, "record"), f"{record!r}: one of {', '.join(RECORD_MODES)}")
        record = "never"
    optout = get(p, t, "record_optout_key", where, str, "9")
    if not (len(optout) == 1 and optout in "0123456789*#") or optout in menu:
        p.error(dotted(where, "record_optout_key"), f"{optout!r}: one keypad key, not one of the menu's")
    return record, optout


def _hotline(p: Problems, name: str, t: dict[str, Any], prompts: dict[str, dict[str, str]]) -> Hotline:
    where = dotted("hotlines", name)
    known(p, t, where, HOTLINE_KEYS)
    languages = str_list(p, t, "languages", where) or ("en",)
    menu = _menu(p, t, where)
    default_queue = get(p, t, "default_queue", where, str, None, empty=False)
    if default_queue is None and "default_queue" not in t:
        p.error(where, "default_queue is required (the queue a call goes to when nothing else applies)")
    holidays = set()
    for day in str_list(p, t, "holidays", where):
        try:
            holidays.add(date.fromisoformat(day))
        except ValueError as exc:
            p.error(dotted(where, "holidays"), f"{day!r}: {exc}")
    record, optout = _record(p, t, where, menu)
    needed: tuple[str, ...] = HOTLINE_PROMPTS if menu else ("greeting", "closed")
    needed += ("recording",) if record != "never" else ()
    for lang, texts in _prompts(p, t.get("prompts", {}), needed, languages, dotted(where, "prompts")).items():
        if "closed" in texts:
            texts.setdefault("holiday", texts["closed"])
        prompts.setdefault(lang, {}).update({f"{name}-{n}": text for n, text in texts.items()})
    hours = _hours(p, str_list(p, t, "hours", where), dotted(where, "hours"))
    default_call_type = get(p, t, "default_call_type", where, str, next(iter(menu.values()), ""))
    urgent, oncall = parse_urgent(p, t, where, menu, default_call_type)
    return Hotline(
        name=name, default_queue=default_queue or "", default_call_type=default_call_type,
        languages=languages, menu=menu, hours=hours, holidays=frozenset(holidays),
        menu_timeout_s=get(p, t, "menu_timeout_s", where, float, 5.0, lo=0.5, hi=60),
        menu_tries=get(p, t, "menu_tries", where, int, 2, lo=1, hi=10),
        survey=get(p, t, "survey", where, bool, True), record=record, record_optout_key=optout,
        urgent=urgent, oncall=oncall,
    )  # fmt: skip


def _group(p: Problems, queue: str, value: Any) -> SkillGroup | None:
    gw = dotted("routing", "groups", queue)
    g = table(p, value, gw)
    known(p, g, gw, {"skill", "language", "widen_to", "max_penalty", "rule"})
    skill = get(p, g, "skill", gw, str, None, empty=False)
    if skill is None:
        if "skill" not in g:
            p.error(gw, "skill is required")
        return None
    language, rule = get(p, g, "language", gw, str, ""), get(p, g, "rule", gw, str, "")
    widen = str_list(p, g, "widen_to", gw)
    return SkillGroup(queue, skill, language, widen, get(p, g, "max_penalty", gw, int, 1, lo=0, hi=100), rule)


def _routing(p: Problems, t: dict[str, Any]) -> RoutingConfig:
    where = "routing"
    known(p, t, where, {"groups", "call_types", "languages", "generalist_penalty", "vip_priority",
                        "repeat_priority", "repeat_window_h"})  # fmt: skip
    groups = [_group(p, q, g) for q, g in table(p, t.get("groups", {}), "routing.groups").items()]
    pairs: dict[str, dict[str, str]] = {}
    for key in ("call_types", "languages"):
        pairs[key] = {}
        for name, skill in table(p, t.get(key, {}), dotted(where, key)).items():
            if isinstance(skill, str):
                pairs[key][name] = skill
            else:
                p.error(dotted(where, key, name), f"expected a skill name (a string), got {skill!r}")
    return RoutingConfig(
        groups=tuple(g for g in groups if g is not None), call_types=pairs["call_types"],
        languages=pairs["languages"],
        generalist_penalty=get(p, t, "generalist_penalty", where, int, 10, lo=0, hi=1000),
        vip_priority=get(p, t, "vip_priority", where, int, 10, lo=0, hi=1000),
        repeat_priority=get(p, t, "repeat_priority", where, int, 5, lo=0, hi=1000),
        repeat_window_s=get(p, t, "repeat_window_h", where, float, 4.0, lo=0.01, hi=24 * 30) * 3600,
    )  # fmt: skip


def _profiles(p: Problems, agents: dict[str, Any]) -> dict[str, AgentProfile]:
    out = {}
    for name, t in agents.items():
        where = dotted("agents", name)
        if not isinstance(t, dict):
            continue  # config.py reports it with the agent's QA inputs
        if "extension" not in t:
            for key in sorted({"interface", "skills"} & set(t)):
                p.warn(dotted(where, key), "ignored without agents.extension: not a routing profile")
            continue  # an agent with QA inputs only
        ext = get(p, t, "extension", where, str, "", empty=False)
        skills: dict[str, int] = {}
        for skill, level in table(p, t.get("skills", {}), dotted(where, "skills")).items():
            if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
                p.error(dotted(where, "skills", skill), f"proficiency must be 1-5, got {level!r}")
            else:
                skills[skill] = level
        interface = get(p, t, "interface", where, str, f"PJSIP/{ext}", empty=False)
        out[name] = AgentProfile(name, ext, interface, skills)
    return out


def keypad_code(digits: str) -> str:
    """A pause or disposition code as keyed: "01" and "1" are the same code."""
    return digits.lstrip("0") or "0"


def _codes(p: Problems, t: dict[str, Any], where: str) -> dict[str, tuple[str, Any]]:
    """Keys are keypad codes of one or two digits: code -> (the key as written, its value)."""
    out: dict[str, tuple[str, Any]] = {}
    for key, value in t.items():
        if not (key.isascii() and key.isdigit()) or len(key) > 2:
            p.error(where, f"{key!r}: codes are one or two keypad digits")
        elif keypad_code(key) in out:
            p.error(where, f"{key!r} is the same code as {out[keypad_code(key)][0]!r}")
        else:
            out[keypad_code(key)] = (key, value)
    return out


def _notice(
    p: Problems, i: int, value: Any, languages: tuple[str, ...], hotlines: tuple[str, ...],
    prompts: dict[str, dict[str, str]],
) -> Notice | None:  # fmt: skip
    where = dotted("notices", i)
    n = table(p, value, where)
    known(p, n, where, {"name", "hotlines", "areas", "start", "end", "prompts"})
    name = get(p, n, "name", where, str, "")
    if not _NAME.match(name):
        p.error(dotted(where, "name"), f"needs a name of lower-case letters, digits, - and _, got {name!r}")
    times = []
    for key in ("start", "end"):
        text = get(p, n, key, where, str, "")
        try:
            times.append(datetime.fromisoformat(text).timestamp())
        except ValueError as exc:
            p.error(dotted(where, key), f"expected an ISO 8601 time: {exc}")
    if len(times) == 2 and times[1] <= times[0]:
        p.error(dotted(where, "end"), "must be after start")
    texts = table(p, n.get("prompts", {}), dotted(where, "prompts"))
    for lang in languages:
        if not isinstance(texts.get(lang), str):
            p.error(dotted(where, "prompts"), f"missing the {lang!r} text")
        else:
            prompts.setdefault(lang, {})[f"notice-{name}"] = texts[lang]
    if len(times) < 2:
        return None
    areas = frozenset(str_list(p, n, "areas", where))
    return Notice(name, frozenset(str_list(p, n, "hotlines", where) or hotlines), areas, times[0], times[1])


def _hotlines(p: Problems, data: dict[str, Any], prompts: dict[str, dict[str, str]]) -> tuple[
    dict[str, Hotline], dict[str, str]
]:  # fmt: skip
    hotlines: dict[str, Hotline] = {}
    dids: dict[str, str] = {}
    for name, t in table(p, data.get("hotlines", {}), "hotlines").items():
        where = dotted("hotlines", name)
        if not _NAME.match(name):
            p.error(where, "names are lower-case letters, digits, - and _")
        t = table(p, t, where)
        hotlines[name] = _hotline(p, name, t, prompts)
        for did in str_list(p, t, "dids", where):
            if not did.strip() or did != did.strip():
                p.error(dotted(where, "dids"), f"{did!r}: a DID is a dialled number without spaces")
            elif did in dids:
                other = dids[did]
                also = "listed twice" if other == name else f"is also a DID of hotline {other}"
                p.error(dotted(where, "dids"), f"{json.dumps(did)} {also}")
            else:
                dids[did] = name
    return hotlines, dids


def _survey(
    p: Problems, data: dict[str, Any], languages: tuple[str, ...], prompts: dict[str, dict[str, str]]
) -> None:
    survey_t = table(p, data.get("survey", {}), "survey")
    known(p, survey_t, "survey", {"prompts"})
    survey = _prompts(p, survey_t.get("prompts", {}), SURVEY_PROMPTS, languages, "survey.prompts")
    for lang, texts in survey.items():
        prompts.setdefault(lang, {}).update(
            {("survey" if n == "survey" else f"survey-{n}"): x for n, x in texts.items()}
        )


def _dispositions(p: Problems, data: dict[str, Any]) -> dict[str, Disposition]:
    out = {}
    for code, (key, value) in _codes(
        p, table(p, data.get("dispositions", {}), "dispositions"), "dispositions"
    ).items():
        where = dotted("dispositions", key)
        d = table(p, value, where)
        known(p, d, where, {"code", "resolved"})
        out[code] = Disposition(
            get(p, d, "code", where, str, code, empty=False), get(p, d, "resolved", where, bool, True)
        )
    return out


def _pause_reasons(p: Problems, data: dict[str, Any]) -> dict[str, str]:
    out = {}
    t = table(p, data.get("pause_reasons", DEFAULT_PAUSE_REASONS), "pause_reasons")
    for code, (key, reason) in _codes(p, t, "pause_reasons").items():
        if not isinstance(reason, str) or not reason.strip():
            p.error(dotted("pause_reasons", key), f"expected a reason (a string), got {reason!r}")
        else:
            out[code] = reason
    return out


def parse_flow(data: dict[str, Any], p: Problems) -> FlowConfig | None:
    """None without an [agi] section: the daemon then only watches (the dialplan's fallback)."""
    if "agi" not in data:
        return None
    agi = table(p, data["agi"], "agi")
    known(p, agi, "agi", {"listen", "read_timeout_s", "max_sessions"})
    host, port = listen(p, agi, "agi", "127.0.0.1:24573")
    directory_t = table(p, data.get("directory", {}), "directory")
    known(p, directory_t, "directory", {"path"})
    directory = get(p, directory_t, "path", "directory", str, None, empty=False)
    prompts: dict[str, dict[str, str]] = {}
    hotlines, dids = _hotlines(p, data, prompts)
    languages = tuple(sorted({lang for h in hotlines.values() for lang in h.languages}))
    _survey(p, data, languages, prompts)
    items = data.get("notices", [])
    if not isinstance(items, list):
        p.error("notices", "expected [[notices]] tables")
        items = []
    notices = [_notice(p, i, n, languages, tuple(hotlines), prompts) for i, n in enumerate(items)]
    routing = _routing(p, table(p, data.get("routing", {}), "routing"))
    return FlowConfig(
        agi_host=host, agi_port=port,
        agi_read_timeout_s=get(p, agi, "read_timeout_s", "agi", float, 10.0, lo=0.5, hi=3600),
        agi_max_sessions=get(p, agi, "max_sessions", "agi", int, 200, lo=1, hi=100_000),
        directory=Path(directory) if directory else None, hotlines=hotlines, dids=dids,
        notices=tuple(n for n in notices if n is not None), routing=routing,
        profiles=_profiles(p, data.get("agents", {}) if isinstance(data.get("agents"), dict) else {}),
        pause_reasons=_pause_reasons(p, data), dispositions=_dispositions(p, data), prompts=prompts,
    )  # fmt: skip
