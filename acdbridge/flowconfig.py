"""The caller's path in the config file: FastAGI listener, caller directory, hotlines (greeting,
hours, menu, prompts), service notices, skills routing, agent profiles, pause reasons and
disposition codes. Read by config.py; every error names the file and the key. See
examples/acdbridge-lab.toml and docs/callflow.md for a full example."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from acdbridge.core.ivr import WEEKDAYS, Hotline, Notice, OpenSpan
from acdbridge.core.routing import AgentProfile, RoutingConfig, SkillGroup
from acdbridge.errors import AcdError

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

    def profile_by_extension(self, extension: str) -> AgentProfile | None:
        return next((p for p in self.profiles.values() if p.extension == extension), None)


def _err(where: str, text: str) -> FlowConfigError:
    return FlowConfigError(f"{where}: {text}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(where, f"expected a table, got {value!r}")
    return value


def _keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    if set(table) - allowed:
        raise _err(where, f"unknown keys {sorted(set(table) - allowed)}; known: {sorted(allowed)}")


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    value = table.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise _err(f"{where}.{key}", f"expected {kind.__name__}, got {value!r}")
    return value


def _str_list(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(f"{where}.{key}", f"expected a list of strings, got {value!r}")
    return tuple(value)


def _hours(specs: tuple[str, ...], where: str) -> tuple[OpenSpan, ...]:
    spans = []
    for spec in specs:
        m = _HOURS.match(spec.strip().lower())
        if not m:
            raise _err(where, f"{spec!r}: expected e.g. 'mon-fri 08:00-20:00'")
        first, _, last = m["days"].partition("-")
        if first not in WEEKDAYS or (last or first) not in WEEKDAYS:
            raise _err(where, f"{spec!r}: days are {', '.join(WEEKDAYS)}")
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days = frozenset(range(a, b + 1)) if a <= b else frozenset((*range(a, 7), *range(0, b + 1)))
        start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (m["start"], m["end"]))
        if not 0 <= start < end <= 24 * 60:
            raise _err(where, f"{spec!r}: the end must be after the start, at most 24:00")
        spans.append(OpenSpan(days, start, end))
    return tuple(spans)


def _prompts(
    table: Any, names: tuple[str, ...], languages: tuple[str, ...], where: str
) -> dict[str, dict[str, str]]:
    table = _table(table, where)
    out: dict[str, dict[str, str]] = {}
    for lang in languages:
        texts = _table(table.get(lang), f"{where}.{lang}") if lang in table else {}
        missing = [n for n in names if not isinstance(texts.get(n), str) or not texts[n].strip()]
        if missing:
            raise _err(f"{where}.{lang}", f"missing prompt text for {missing}")
        out[lang] = {n: t for n, t in texts.items() if isinstance(t, str)}
    return out


def _hotline(name: str, t: dict[str, Any], where: str, prompts: dict[str, dict[str, str]]) -> Hotline:
    _keys(t, {"dids", "default_queue", "default_call_type", "languages", "menu", "hours", "holidays",
              "menu_timeout_s", "menu_tries", "survey", "prompts"}, where)  # fmt: skip
    languages = _str_list(t, "languages", where) or ("en",)
    menu = _table(t.get("menu", {}), f"{where}.menu")
    for digit, call_type in menu.items():
        if not (len(digit) == 1 and digit in "0123456789*#") or not isinstance(call_type, str):
            raise _err(f"{where}.menu", f"{digit!r} = {call_type!r}: expected a keypad key = a call type")
    default_queue = _get(t, "default_queue", str, where, None)
    if not default_queue:
        raise _err(where, "default_queue is required (the queue a call goes to when nothing else applies)")
    try:
        holidays = frozenset(date.fromisoformat(d) for d in _str_list(t, "holidays", where))
    except ValueError as exc:
        raise _err(f"{where}.holidays", str(exc)) from exc
    needed = HOTLINE_PROMPTS if menu else ("greeting", "closed")
    for lang, texts in _prompts(t.get("prompts", {}), needed, languages, f"{where}.prompts").items():
        texts.setdefault("holiday", texts["closed"])
        prompts.setdefault(lang, {}).update({f"{name}-{n}": text for n, text in texts.items()})
    return Hotline(
        name=name, default_queue=default_queue,
        default_call_type=_get(t, "default_call_type", str, where, next(iter(menu.values()), "")),
        languages=languages, menu=dict(menu), hours=_hours(_str_list(t, "hours", where), f"{where}.hours"),
        holidays=holidays, menu_timeout_s=_get(t, "menu_timeout_s", float, where, 5.0),
        menu_tries=_get(t, "menu_tries", int, where, 2), survey=_get(t, "survey", bool, where, True),
    )  # fmt: skip


def _routing(t: dict[str, Any], where: str) -> RoutingConfig:
    _keys(t, {"groups", "call_types", "languages", "generalist_penalty", "vip_priority", "repeat_priority",
              "repeat_window_h"}, where)  # fmt: skip
    groups = []
    for queue, g in _table(t.get("groups", {}), f"{where}.groups").items():
        gw = f"{where}.groups.{queue}"
        g = _table(g, gw)
        _keys(g, {"skill", "language", "widen_to", "max_penalty", "rule"}, gw)
        skill = _get(g, "skill", str, gw, None)
        if not skill:
            raise _err(gw, "skill is required")
        language, rule = _get(g, "language", str, gw, ""), _get(g, "rule", str, gw, "")
        widen = _str_list(g, "widen_to", gw)
        groups.append(SkillGroup(queue, skill, language, widen, _get(g, "max_penalty", int, gw, 1), rule))
    call_types = _table(t.get("call_types", {}), f"{where}.call_types")
    languages = _table(t.get("languages", {}), f"{where}.languages")
    for key, table in (("call_types", call_types), ("languages", languages)):
        if not all(isinstance(v, str) for v in table.values()):
            raise _err(f"{where}.{key}", "expected name = skill pairs of strings")
    return RoutingConfig(
        groups=tuple(groups), call_types=dict(call_types), languages=dict(languages),
        generalist_penalty=_get(t, "generalist_penalty", int, where, 10),
        vip_priority=_get(t, "vip_priority", int, where, 10),
        repeat_priority=_get(t, "repeat_priority", int, where, 5),
        repeat_window_s=_get(t, "repeat_window_h", float, where, 4.0) * 3600,
    )  # fmt: skip


def _profiles(agents: dict[str, Any], source: str) -> dict[str, AgentProfile]:
    out = {}
    for name, t in agents.items():
        where = f"{source}: agents.{name}"
        if not isinstance(t, dict) or "extension" not in t:
            continue  # an agent with QA inputs only
        ext = _get(t, "extension", str, where, "")
        skills = _table(t.get("skills", {}), f"{where}.skills")
        for skill, level in skills.items():
            if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
                raise _err(f"{where}.skills.{skill}", f"proficiency must be 1-5, got {level!r}")
        out[name] = AgentProfile(name, ext, _get(t, "interface", str, where, f"PJSIP/{ext}"), dict(skills))
    return out


def keypad_code(digits: str) -> str:
    """A pause or disposition code as keyed: "01" and "1" are the same code."""
    return digits.lstrip("0") or "0"


def _codes(t: dict[str, Any], where: str) -> dict[str, Any]:
    """Keys are keypad codes of one or two digits."""
    out: dict[str, Any] = {}
    for key, value in t.items():
        if not key.isdigit() or len(key) > 2:
            raise _err(where, f"{key!r}: codes are one or two keypad digits")
        if keypad_code(key) in out:
            raise _err(where, f"{key!r} is the same code as {keypad_code(key)!r}")
        out[keypad_code(key)] = value
    return out


def _notices(
    items: Any,
    languages: tuple[str, ...],
    hotlines: tuple[str, ...],
    prompts: dict[str, dict[str, str]],
    source: str,
) -> tuple[Notice, ...]:
    if not isinstance(items, list):
        raise _err(f"{source}: notices", "expected [[notices]] tables")
    notices = []
    for i, n in enumerate(items):
        where = f"{source}: notices[{i}]"
        n = _table(n, where)
        _keys(n, {"name", "hotlines", "areas", "start", "end", "prompts"}, where)
        try:
            start, end = (
                datetime.fromisoformat(_get(n, k, str, where, "")).timestamp() for k in ("start", "end")
            )
        except ValueError as exc:
            raise _err(where, f"start/end: {exc}") from exc
        name = _get(n, "name", str, where, "")
        if not _NAME.match(name) or end <= start:
            raise _err(where, "needs a name (lower-case) and an end after its start")
        texts = _table(n.get("prompts", {}), f"{where}.prompts")
        for lang in languages:
            if not isinstance(texts.get(lang), str):
                raise _err(f"{where}.prompts", f"missing the {lang!r} text")
            prompts.setdefault(lang, {})[f"notice-{name}"] = texts[lang]
        areas = frozenset(_str_list(n, "areas", where))
        notices.append(
            Notice(name, frozenset(_str_list(n, "hotlines", where) or hotlines), areas, start, end)
        )
    return tuple(notices)


def parse_flow(data: dict[str, Any], source: str) -> FlowConfig | None:
    """None without an [agi] section: the daemon then only watches (the dialplan's fallback)."""
    if "agi" not in data:
        return None
    agi = _table(data["agi"], f"{source}: agi")
    _keys(agi, {"listen", "read_timeout_s", "max_sessions"}, f"{source}: agi")
    host, _, port = _get(agi, "listen", str, f"{source}: agi", "127.0.0.1:24573").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _err(f"{source}: agi.listen", "expected HOST:PORT")
    directory = _get(_table(data.get("directory", {}), f"{source}: directory"), "path", str,
                     f"{source}: directory", None)  # fmt: skip
    prompts: dict[str, dict[str, str]] = {}
    hotlines, dids = {}, {}
    for name, t in _table(data.get("hotlines", {}), f"{source}: hotlines").items():
        if not _NAME.match(name):
            raise _err(f"{source}: hotlines.{name}", "names are lower-case letters, digits, - and _")
        hotlines[name] = _hotline(
            name, _table(t, f"{source}: hotlines.{name}"), f"{source}: hotlines.{name}", prompts
        )
        for did in _str_list(t, "dids", f"{source}: hotlines.{name}"):
            dids[did] = name
    languages = tuple(sorted({lang for h in hotlines.values() for lang in h.languages}))
    survey_t = _table(data.get("survey", {}), f"{source}: survey")
    _keys(survey_t, {"prompts"}, f"{source}: survey")
    survey = _prompts(survey_t.get("prompts", {}), SURVEY_PROMPTS, languages, f"{source}: survey.prompts")
    for lang, texts in survey.items():
        prompts.setdefault(lang, {}).update(
            {("survey" if n == "survey" else f"survey-{n}"): x for n, x in texts.items()}
        )
    notices = _notices(data.get("notices", []), languages, tuple(hotlines), prompts, source)
    where = f"{source}: pause_reasons"
    pauses = _codes(_table(data.get("pause_reasons", DEFAULT_PAUSE_REASONS), where), where)
    dispositions = {}
    where = f"{source}: dispositions"
    for code, d in _codes(_table(data.get("dispositions", {}), where), where).items():
        where = f"{source}: dispositions.{code}"
        d = _table(d, where)
        dispositions[code] = Disposition(
            _get(d, "code", str, where, code), _get(d, "resolved", bool, where, True)
        )
    routing = _routing(_table(data.get("routing", {}), f"{source}: routing"), f"{source}: routing")
    for h in hotlines.values():
        unknown = ({*h.menu.values(), h.default_call_type} - {""}) - set(routing.call_types)
        if unknown and routing.call_types:
            raise _err(
                f"{source}: hotlines.{h.name}.menu", f"call types {sorted(unknown)} not in routing.call_types"
            )
    return FlowConfig(
        agi_host=host.strip("[]"), agi_port=int(port),
        agi_read_timeout_s=_get(agi, "read_timeout_s", float, f"{source}: agi", 10.0),
        agi_max_sessions=_get(agi, "max_sessions", int, f"{source}: agi", 200),
        directory=Path(directory) if directory else None, hotlines=hotlines, dids=dids, notices=notices,
        routing=routing, profiles=_profiles(_table(data.get("agents", {}), f"{source}: agents"), source),
        pause_reasons=pauses, dispositions=dispositions, prompts=prompts,
    )  # fmt: skip
