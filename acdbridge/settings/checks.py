"""The checks that need the whole parsed config: every name used somewhere is defined somewhere,
names that must be unique are, the files exist with the access the daemon needs, the listeners
do not collide; plus the warnings (likely mistakes that still run). Called by config.validate()
after parsing, so `run`, SIGHUP and `check-config` share them."""

from __future__ import annotations

import csv
import ipaddress
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acdbridge.settings.problems import Problems, dotted
from acdbridge.settings.secrets import file_readable_by_others

if TYPE_CHECKING:
    from acdbridge.config import Config
    from acdbridge.flowconfig import FlowConfig

SQLITE_MAGIC = b"SQLite format 3\x00"


def check(cfg: Config, p: Problems, data: dict[str, Any]) -> None:
    _listeners(cfg, p)
    _files(cfg, p)
    ami = data.get("ami")
    if isinstance(ami, dict) and "secret" in ami and file_readable_by_others(Path(p.source)):
        p.warn("ami.secret", f"inline in {p.source}, which others may read: use ami.secret_file (chmod 600)")
    if cfg.flow is not None:
        _flow_references(cfg.flow, p, set(cfg.wrapup_s) | set(cfg.kpi.queues))
        _agents(cfg.flow, p)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def plaintext_warning(host: str) -> str:
    """Said by check-config and again by the daemon at start (a warning: a TLS proxy in front is
    a common, sound set-up the daemon cannot see)."""
    return (f"{host} is off loopback without tls_cert/tls_key: passwords and session cookies cross "
            "the network in clear; set them, or keep a TLS proxy in front, the port firewalled")  # fmt: skip


def _listeners(cfg: Config, p: Problems) -> None:
    http = cfg.http
    if not is_loopback(http.host) and not http.tls:
        p.warn("http.listen", plaintext_warning(http.host))
    if not is_loopback(http.host) and http.board_public:
        p.warn("http.board_public", f"{http.host} is off loopback and the wallboard is public: anyone "
                                    "who reaches the port sees queues and agents' names")  # fmt: skip
    flow = cfg.flow
    if flow is None or flow.agi_port != cfg.http.port:
        return
    wildcard = {"0.0.0.0", "::", ""}
    if flow.agi_host == cfg.http.host or {flow.agi_host, cfg.http.host} & wildcard:
        p.error("agi.listen", f"{flow.agi_host}:{flow.agi_port} is also http.listen: one port, one listener")


def writable_file(p: Problems, key: str, path: Path, *, makes_parent: bool) -> None:
    """The daemon will create or append to `path`. With makes_parent the daemon creates missing
    directories itself (the store does), so the nearest existing one must be writable."""
    if path.is_dir():
        p.error(key, f"{path} is a directory, not a file")
        return
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            p.error(key, f"{path} is not writable by this user")
        return
    parent = path.parent
    if not parent.is_dir() and not makes_parent:
        p.error(key, f"directory {parent} does not exist (the daemon does not create it)")
        return
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        p.error(key, f"{parent} is not a directory")
    elif not os.access(parent, os.W_OK | os.X_OK):
        p.error(key, f"cannot create {path}: directory {parent} is not writable by this user")


def writable_dir(p: Problems, key: str, path: Path, *, makes_parent: bool) -> None:
    """The daemon writes files in `path` (the journal's segments and checkpoint), making it if
    missing."""
    if path.exists() and not path.is_dir():
        p.error(key, f"{path} is a file, not a directory (a capture from an older version? "
                     "move it aside: the journal is a directory of segments; replay reads both)")  # fmt: skip
        return
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            p.error(key, f"directory {path} is not writable by this user")
        return
    writable_file(p, key, path, makes_parent=makes_parent)


def _files(cfg: Config, p: Problems) -> None:
    if cfg.store.url is None:  # PostgreSQL: no file of ours, and the default path means nothing
        writable_file(p, "store.path", cfg.store.path, makes_parent=True)
    journal = cfg.journal
    if journal is not None and not journal.key:  # the default, beside the store: its directory
        if journal.dir.exists() and not journal.dir.is_dir():  # is the store's, checked above
            writable_dir(p, "journal.dir", journal.dir, makes_parent=True)
    elif journal is not None:
        # the older ami.capture keeps its rule (its directory must exist); journal.dir is made
        # with its parents, as the store's directory is
        writable_dir(p, journal.key, journal.dir, makes_parent=journal.key == "journal.dir")
    if cfg.flow is not None and cfg.flow.directory is not None:
        _directory(p, cfg.flow.directory)
    _key_file(cfg, p)
    queue_log = cfg.ami.queue_log
    if queue_log is not None and not os.access(queue_log, os.R_OK):  # Asterisk makes it at its first call
        p.warn("ami.queue_log", f"{queue_log} is not readable (yet): a gap cannot be backfilled until it is")


def _key_file(cfg: Config, p: Problems) -> None:
    """The pseudonym key: made by the daemon when the job first needs it, then only read."""
    path = cfg.privacy.key_file
    if path.exists():
        if path.is_dir() or not os.access(path, os.R_OK):
            p.error("privacy.key_file", f"{path} is not a file this user can read")
        elif file_readable_by_others(path):
            p.warn("privacy.key_file", f"{path} is readable by others: chmod 600 (it unmasks pseudonyms)")
    elif cfg.privacy.retain_s is not None and cfg.privacy.key_set:
        writable_file(p, "privacy.key_file", path, makes_parent=True)


def _directory(p: Problems, path: Path) -> None:
    """The caller directory: a CSV file with a `number` column, or SQLite with a callers table."""
    key = "directory.path"
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        p.error(key, f"cannot read {path}: {exc.strerror or exc}")
        return
    if path.suffix.lower() == ".csv":
        try:
            with path.open(encoding="utf-8-sig", newline="") as f:
                columns = next(csv.reader(f), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            p.error(key, f"{path} is not a UTF-8 CSV file: {exc}")
            return
        if "number" not in columns:
            p.error(key, f"{path} has no 'number' column in its header {columns}")
    elif head != SQLITE_MAGIC:
        p.error(key, f"{path} is neither a .csv file nor an SQLite database")
    else:
        try:
            with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.5) as db:
                db.execute("SELECT * FROM callers LIMIT 0")
        except sqlite3.Error as exc:
            p.error(key, f"{path}: no usable callers table: {exc}")


def _skills_defined(flow: FlowConfig) -> set[str]:
    r = flow.routing
    skills = {g.skill for g in r.groups} | set(r.call_types.values()) | set(r.languages.values())
    return (skills | {s for prof in flow.profiles.values() for s in prof.skills}) - {""}


def _flow_references(flow: FlowConfig, p: Problems, kpi_queues: set[str]) -> None:
    r = flow.routing
    groups = {g.queue for g in r.groups}
    queues = groups | kpi_queues
    for h in flow.hotlines.values():
        where = dotted("hotlines", h.name)
        if queues and h.default_queue and h.default_queue not in queues:
            p.error(
                dotted(where, "default_queue"),
                f"{h.default_queue!r} is neither a routing group nor a "
                f"[queues] table (known: {', '.join(sorted(queues))})",
            )
        unknown = sorted(set(h.menu.values()) - set(r.call_types))
        if unknown and r.call_types:
            p.error(dotted(where, "menu"), f"call types {unknown} not in routing.call_types")
        if r.call_types and h.default_call_type and h.default_call_type not in r.call_types:
            p.error(dotted(where, "default_call_type"), f"{h.default_call_type!r} not in routing.call_types")
        missing = sorted(set(h.languages) - set(r.languages))
        if r.languages and missing:
            p.error(dotted(where, "languages"), f"{missing} not in routing.languages")
    for call_type, skill in r.call_types.items():
        if groups and not any(g.skill == skill for g in r.groups):
            p.error(dotted("routing", "call_types", call_type), f"no routing group serves skill {skill!r}")
    _groups(flow, p)
    for i, n in enumerate(flow.notices):
        unknown = sorted(n.hotlines - set(flow.hotlines))
        if unknown:
            p.error(dotted("notices", i, "hotlines"), f"{unknown} are not hotlines")
    names = [n.name for n in flow.notices]
    for name in sorted({x for x in names if names.count(x) > 1}):
        p.error("notices", f"two notices are named {name!r} (their prompts would overwrite each other)")
    for queue in sorted(kpi_queues - groups) if groups else ():
        p.warn(dotted("queues", queue), "not a routing group: fine for a queue outside skills routing")
    _codes(flow, p)


def _groups(flow: FlowConfig, p: Problems) -> None:
    r = flow.routing
    skills, language_skills = _skills_defined(flow), set(r.languages.values()) - {""}
    seen: dict[str, str] = {}
    pairs: dict[tuple[str, str], str] = {}
    for g in r.groups:
        where = dotted("routing", "groups", g.queue)
        if g.queue.lower() in seen:
            p.error(where, f"the same queue as routing.groups.{seen[g.queue.lower()]} (names ignore case)")
        seen.setdefault(g.queue.lower(), g.queue)
        for skill in g.widen_to:
            if skill not in skills:
                p.error(
                    dotted(where, "widen_to"),
                    f"skill {skill!r} is defined nowhere (no group, call type, language or agent has it)",
                )
        if g.language and g.language not in language_skills:
            p.error(
                dotted(where, "language"), f"{g.language!r} is not the skill of any routing.languages entry"
            )
        if (g.skill, g.language) in pairs:
            p.warn(
                where,
                f"serves the same skill and language as routing.groups.{pairs[g.skill, g.language]}; "
                "no call is routed to it",
            )
        pairs.setdefault((g.skill, g.language), g.queue)
        able = [a for a in flow.profiles.values()
                if (a.skills.get(g.skill) or any(a.skills.get(s) for s in g.widen_to))
                and (not g.language or a.skills.get(g.language))]  # fmt: skip
        if not able:
            p.warn(
                where,
                f"no agent has skill {g.skill!r}"
                + (f" and {g.language!r}" if g.language else "")
                + ": callers routed here wait for nobody",
            )


def _agents(flow: FlowConfig, p: Problems) -> None:
    reported: set[str] = set()  # an extension reported twice: its derived interface is no news
    for attr in ("extension", "interface"):
        owner: dict[str, str] = {}
        for prof in flow.profiles.values():
            value = getattr(prof, attr)
            if value in owner and prof.name not in reported:
                p.error(
                    dotted("agents", prof.name, attr),
                    f"{value!r} is also {dotted('agents', owner[value], attr)}",
                )
                reported.add(prof.name)
            owner.setdefault(value, prof.name)


def _codes(flow: FlowConfig, p: Problems) -> None:
    names: dict[str, str] = {}
    for key, d in flow.dispositions.items():
        if d.code in names:
            p.error(dotted("dispositions", key, "code"), f"{d.code!r} is also disposition {names[d.code]}")
        names.setdefault(d.code, key)
    reasons: dict[str, str] = {}
    for key, reason in flow.pause_reasons.items():
        if reason in reasons:
            p.warn(dotted("pause_reasons", key), f"{reason!r} is also pause reason {reasons[reason]}")
        reasons.setdefault(reason, key)
