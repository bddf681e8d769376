"""`check-config --pbx`: the config compared with the PBX it will watch. The facts come from one
AMI session (amisession.py: GetConfig of manager.conf, queues.conf, pjsip.conf, queuerules.conf,
the whole dialplan, the globals its AGI calls use); everything below `check_facts` is pure.

Checked: timestampevents is on; the manager user has the classes the daemon needs; every skill
group, default queue and [queues] table is a queue in queues.conf, with a wrapuptime where
after-call work is measured; every queuerules rule exists; every agent interface is a PJSIP
endpoint or a Local channel whose extension the dialplan has; every hotline DID reaches the
FastAGI (the [agi] listener) through the dialplan. What the user may not read is a warning
naming the missing class."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from acdbridge.settings.amisession import AmiFailure, AmiSession, Message, PbxFacts, gather
from acdbridge.settings.problems import Problems, dotted, parse_hostport

if TYPE_CHECKING:
    from acdbridge.config import Config

FILES = ("manager.conf", "queues.conf", "pjsip.conf", "queuerules.conf")
NEEDED_READ = ("call", "agent", "dialplan")  # queue and call events; VarSet QUEUESTATUS (blocked calls)
NEEDED_WRITE = ("reporting",)  # QueueStatus and CoreShowChannels after every (re)connect
FLOW_WRITE = ("agent",)  # QueueAdd/Remove/Penalty/Pause from skills routing and feature codes
_TRUE = {"yes", "true", "y", "t", "1", "on"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::(-?\d+))?\}")


async def check_pbx(cfg: Config, p: Problems) -> None:
    ami = cfg.ami
    try:
        session = await AmiSession.login(ami)
    except AmiFailure as exc:
        p.error("ami", str(exc))
        return
    try:
        facts = await gather(session, FILES)
    except AmiFailure as exc:
        p.error("ami", str(exc))
        return
    finally:
        session.close()
    check_facts(cfg, facts, p)


def check_facts(cfg: Config, facts: PbxFacts, p: Problems) -> None:
    _manager(cfg, facts, p)
    _queues(cfg, facts, p)
    if cfg.flow is not None:
        _interfaces(cfg, facts, p)
        _dids(cfg, facts, p)


def _denied(p: Problems, key: str, what: str, action: str, klass: str, facts: PbxFacts) -> None:
    reason = facts.denied.get(action) or "no reason given"
    p.warn(key, f"cannot check {what}: {action} refused ({reason}): the AMI user lacks write class {klass}")


def _values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k.lower() == key]


def _manager(cfg: Config, facts: PbxFacts, p: Problems) -> None:
    conf = facts.files.get("manager.conf")
    if conf is None:
        _denied(p, "ami", "timestampevents and the user's classes", "GetConfig manager.conf", "config", facts)
        return
    stamps = _values(conf.get("general", []), "timestampevents")
    if not stamps or stamps[-1].lower() not in _TRUE:
        p.error(
            "ami",
            "timestampevents is off in the PBX's manager.conf [general]: every duration "
            "comes from event Timestamps; set timestampevents = yes",
        )
    user = conf.get(cfg.ami.username)
    if user is None:
        p.warn(
            "ami.username",
            f"no [{cfg.ami.username}] in manager.conf (a user from elsewhere?): its classes are unchecked",
        )
        return
    for kind, needed in (("read", NEEDED_READ), ("write", NEEDED_WRITE + (FLOW_WRITE if cfg.flow else ()))):
        have = {c.strip().lower() for v in _values(user, kind) for c in v.split(",")}
        for klass in needed:
            if klass not in have and "all" not in have:
                p.error(
                    "ami.username",
                    f"the manager user {cfg.ami.username} lacks {kind} class {klass} "
                    f"(manager.conf: {kind} = {','.join(sorted(have)) or 'nothing'})",
                )
    have_write = {c.strip().lower() for v in _values(user, "write") for c in v.split(",")}
    if not {"config", "all"} & have_write:
        p.warn(
            "ami.username",
            f"the manager user {cfg.ami.username} lacks write class config: the daemon "
            "cannot read wrapuptime (GetConfig queues.conf) and uses queues.*.wrapup_s",
        )
    if cfg.flow is not None and not {"user", "all"} & have_write:
        p.warn(
            "ami.username",
            f"the manager user {cfg.ami.username} lacks write class user: the web desk's "
            "disposition buttons (AMI UserEvent AcdDisposition) are refused; *55N still works",
        )
    if cfg.supervisor.phones and not {"originate", "all"} & have_write:
        p.warn(
            "ami.username",
            f"the manager user {cfg.ami.username} lacks write class originate: the supervisor "
            "desk's listen / whisper / barge (Originate to ChanSpy) are refused",
        )


def _tracked_queues(cfg: Config) -> dict[str, str]:
    """queue -> the config key that names it."""
    out = {q: dotted("queues", q) for q in cfg.kpi.queues} | {q: dotted("queues", q) for q in cfg.wrapup_s}
    if cfg.flow is not None:
        for h in cfg.flow.hotlines.values():
            if h.default_queue:
                out.setdefault(h.default_queue, dotted("hotlines", h.name, "default_queue"))
        out |= {g.queue: dotted("routing", "groups", g.queue) for g in cfg.flow.routing.groups}
    return out


def _queues(cfg: Config, facts: PbxFacts, p: Problems) -> None:
    conf, tracked = facts.files.get("queues.conf"), _tracked_queues(cfg)
    if conf is None:
        if tracked:
            _denied(p, "ami", "the queues", "GetConfig queues.conf", "config", facts)
        return
    pbx_queues = {name.lower(): name for name in conf if name != "general"}
    for queue, key in sorted(tracked.items()):
        name = pbx_queues.get(queue.lower())
        if name is None:
            p.error(
                key,
                f"no queue {queue!r} in the PBX's queues.conf "
                f"(it has {', '.join(sorted(pbx_queues.values()))})",
            )
            continue
        wrapup = (_values(conf[name], "wrapuptime") or ["0"])[-1]
        if not wrapup.isdigit() or int(wrapup) == 0:
            if cfg.wrapup_s.get(queue):
                p.error(
                    dotted("queues", queue, "wrapup_s"),
                    "set, but the PBX's queues.conf has no wrapuptime "
                    f"for {queue}: agents get no after-call work",
                )
            else:
                p.warn(
                    key, f"queue {queue} has no wrapuptime in queues.conf: after-call work is not measured"
                )
    rules = facts.files.get("queuerules.conf")
    for g in cfg.flow.routing.groups if cfg.flow else ():
        if g.rule and rules is not None and g.rule not in rules:
            p.error(
                dotted("routing", "groups", g.queue, "rule"),
                f"no rule {g.rule!r} in the PBX's queuerules.conf",
            )


def _interfaces(cfg: Config, facts: PbxFacts, p: Problems) -> None:
    assert cfg.flow is not None
    pjsip = facts.files.get("pjsip.conf")
    endpoints = {name for name, lines in (pjsip or {}).items() if "endpoint" in _values(lines, "type")}
    for prof in cfg.flow.profiles.values():
        key, tech, _, rest = dotted("agents", prof.name, "interface"), *prof.interface.partition("/")
        if tech.upper() == "PJSIP":
            if pjsip is None:
                _denied(p, key, prof.interface, "GetConfig pjsip.conf", "config", facts)
            elif rest not in endpoints:
                p.error(key, f"{prof.interface}: no PJSIP endpoint {rest!r} in the PBX's pjsip.conf")
        elif tech.lower() == "local":
            exten, _, context = rest.split("/")[0].partition("@")
            if facts.dialplan is None:
                _denied(p, key, prof.interface, "ShowDialPlan", "config or reporting", facts)
            elif not _entries(facts.dialplan, context or "default", exten):
                p.error(
                    key,
                    f"{prof.interface}: the dialplan has no extension {exten} "
                    f"in context {context or 'default'}",
                )
        else:
            p.warn(key, f"{prof.interface}: only PJSIP and Local interfaces can be checked")


def _pattern(name: str) -> re.Pattern[str] | None:
    """An Asterisk extension pattern (_NXX., _[a-z]!) as a regex; None for a plain extension."""
    if not name.startswith("_"):
        return None
    out, i = "", 1
    while i < len(name):
        c = name[i]
        if c == "[":
            end = name.find("]", i)
            out, i = out + (name[i : end + 1] if end > 0 else re.escape(c)), (end if end > 0 else i)
        else:
            out += {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(
                c.upper(), re.escape(c)
            )
        i += 1
    return re.compile(out + "$", re.IGNORECASE)


def _entries(dialplan: list[Message], context: str, exten: str) -> list[Message]:
    """The priorities `exten` runs in `context`: an exact extension wins over patterns."""
    here = [m for m in dialplan if m.get("Context") == context]
    exact = [m for m in here if m.get("Extension") == exten]
    if exact:
        return exact
    for name in dict.fromkeys(m.get("Extension", "") for m in here):
        pattern = _pattern(name)
        if pattern is not None and pattern.match(exten):
            return [m for m in here if m.get("Extension") == name]
    return []


def _expand(text: str, exten: str, variables: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        value = exten if m[1] == "EXTEN" else variables.get(m[1])
        if value is None:
            return m[0]
        return value[int(m[2]) :] if m[2] else value

    return _VAR.sub(one, text)


def agi_urls(
    dialplan: list[Message], context: str, exten: str, variables: dict[str, str], depth: int = 0
) -> list[str]:
    """The AGI URLs a call to `exten` in `context` can reach, following Goto/GotoIf (not Dial or
    Gosub: a call that leaves through them does not reach our greeting in its own channel)."""
    urls: list[str] = []
    if depth > 8:
        return urls
    for m in sorted(_entries(dialplan, context, exten), key=lambda m: int(m.get("Priority", "0") or 0)):
        app, data = m.get("Application", "").lower(), _expand(m.get("AppData", ""), exten, variables)
        if app == "agi":
            urls.append(data.split(",")[0])
        elif app in ("goto", "gotoif") and "$" not in data.rpartition("?")[2]:
            targets = data.rpartition("?")[2].split(":") if app == "gotoif" else [data]
            for target in targets:
                parts = [x.strip() for x in target.split(",")]
                if len(parts) >= 2:  # [context,]exten,priority; a label alone stays in this extension
                    ctx, ext = (parts[0], parts[1]) if len(parts) == 3 else (context, parts[0])
                    if (ctx, ext) != (context, exten):
                        urls += agi_urls(dialplan, ctx, ext, variables, depth + 1)
    return urls


def _dids(cfg: Config, facts: PbxFacts, p: Problems) -> None:
    flow = cfg.flow
    assert flow is not None
    if facts.dialplan is None:
        if flow.dids:
            _denied(
                p, "hotlines", "that the DIDs reach the FastAGI", "ShowDialPlan", "config or reporting", facts
            )
        return
    contexts = dict.fromkeys(m.get("Context", "") for m in facts.dialplan)
    for did, hotline in flow.dids.items():
        key = dotted("hotlines", hotline, "dids")
        urls = [u for ctx in contexts for u in agi_urls(facts.dialplan, ctx, did, facts.globals)]
        ours = [u for u in urls if _is_our_agi(u, flow.agi_port)]
        if not ours:
            also = f" (it reaches {', '.join(sorted(set(urls)))})" if urls else ""
            p.error(
                key,
                f"{did!r} does not reach the FastAGI greeting (agi://...:{flow.agi_port}/hotline/...) "
                f"in the PBX's dialplan{also}",
            )
            continue
        names = {u.split("/hotline/", 1)[1].split("/")[0] for u in ours if "/hotline/" in u}
        if names and hotline not in names:
            p.error(key, f"{did!r} reaches the greeting of hotline {', '.join(sorted(names))}, not {hotline}")


def _is_our_agi(url: str, port: int) -> bool:
    """agi://HOST[:PORT]/hotline[/NAME] on our port: the greeting (survey and feature codes are
    FastAGI too, but a call reaching them has skipped the greeting)."""
    if not url.lower().startswith("agi://"):
        return False
    hostport, _, path = url[6:].partition("/")
    parsed = parse_hostport(hostport if ":" in hostport else f"{hostport}:4573")
    return parsed is not None and parsed[1] == port and path.split("/")[0] == "hotline"
