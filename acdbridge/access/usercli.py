"""`acdbridge users add|passwd|disable|enable|list`: the accounts of the web's sign-in.

The commands open the store as a reader does (no daemon lock), so they work while the daemon
runs; the daemon notices a disabled account within service.RECHECK_S. Passwords are read from the
terminal twice (getpass, never echoed) or as one line from stdin with --password-stdin, and only
their argon2 hash is stored. Every command is audited with the actor `cli:<$SUDO_USER or $USER>`."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acdbridge.access import passwords
from acdbridge.access.model import AccessStore, Account, AuditEntry, Role
from acdbridge.errors import AcdError
from acdbridge.settings.accessconf import AccessConfig

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


class UsersError(AcdError):
    """A `users` command was given something it cannot do; nothing was changed."""

    code = "users"
    exit_status = 2


@dataclass
class _Site:
    """What a command works on: from the config (when given) the agents' names and the password
    policy, and the store, opened only once the arguments are known to be right."""

    agents: set[str] | None  # None: no config given, the agent's name is not checked
    access: AccessConfig
    open_store: Callable[[], Any]  # SqliteStore | PostgresStore: an AccessStore with close()


def _site(args: argparse.Namespace, *, create: bool = False) -> _Site:
    from acdbridge import config
    from acdbridge.adapters.store import SqliteStore, open_store

    if args.db:
        if not create and not args.db.exists():
            raise UsersError(f"no store at {args.db}")
        return _Site(None, AccessConfig(), lambda: SqliteStore(args.db))
    data = config.read(args.config)
    cfg = config.parse(data, str(args.config), for_daemon=False)
    agents = data.get("agents", {})
    if not create and not cfg.store.url and not cfg.store.path.exists():
        raise UsersError(f"no store at {cfg.store.path}")
    names = set(agents) if isinstance(agents, dict) else set()
    return _Site(names, cfg.access, lambda: open_store(cfg.store))


def actor() -> str:
    return f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or 'unknown'}"


def _audit(store: AccessStore, action: str, target: str, outcome: str = "ok", detail: str = "") -> None:
    store.audit(AuditEntry(time.time(), actor(), action, target, outcome, "", detail))


def _name(text: str) -> str:
    if not USERNAME.match(text):
        raise argparse.ArgumentTypeError(
            f"not a username: {text!r} (1-64 lowercase letters, digits, '.', '_', '@' or '-')"
        )
    return text


def _read_password(args: argparse.Namespace, username: str, access: AccessConfig) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"new password for {username}: ")
        if getpass.getpass("the same again: ") != password:
            raise UsersError("the two passwords differ; nothing was changed")
    problem = passwords.policy(password, username, access.min_password_length)
    if problem:
        raise UsersError(f"{problem}; nothing was changed")
    return password


def _check_role(args: argparse.Namespace, agents: set[str] | None) -> None:
    role = Role(args.role)
    if role is Role.AGENT and not args.agent:
        raise UsersError('--role agent needs --agent "Agent Name" (the [agents."Name"] this account is)')
    if role is not Role.AGENT and args.agent:
        raise UsersError("--agent is for --role agent only")
    if role is Role.SUPERVISOR and not args.queue:
        raise UsersError("--role supervisor needs at least one --queue QUEUE (the queues they supervise)")
    if role is not Role.SUPERVISOR and args.queue:
        raise UsersError("--queue is for --role supervisor only (an admin has every queue)")
    if role is Role.AGENT and agents is not None and args.agent not in agents:
        known = ", ".join(sorted(agents)) or "none"
        raise UsersError(f'--agent {args.agent!r} is not an [agents."Name"] of the config (known: {known})')


def _cmd_add(args: argparse.Namespace) -> int:
    site = _site(args, create=True)
    _check_role(args, site.agents)
    store = site.open_store()
    try:
        if store.account(args.name) is not None:
            _audit(store, "user_add", args.name, "refused", "already exists")
            raise UsersError(f"account {args.name!r} already exists (change it with users passwd/disable)")
        password_hash = passwords.hash_password(_read_password(args, args.name, site.access))
        account = Account(args.name, Role(args.role), args.agent or "", tuple(dict.fromkeys(args.queue)),
                          created_at=time.time())  # fmt: skip
        store.put_account(account, password_hash)
        _audit(store, "user_add", args.name, detail=f"role {args.role}")
    finally:
        store.close()
    print(f"account {args.name} added ({args.role})")
    return 0


def _cmd_passwd(args: argparse.Namespace) -> int:
    site = _site(args)
    store = site.open_store()
    try:
        if store.account(args.name) is None:
            _audit(store, "user_passwd", args.name, "refused", "no such account")
            raise UsersError(f"no account {args.name!r}")
        password_hash = passwords.hash_password(_read_password(args, args.name, site.access))
        store.set_password(args.name, password_hash)
        _audit(store, "user_passwd", args.name)
    finally:
        store.close()
    print(f"password of {args.name} changed")
    return 0


def _cmd_disabled(args: argparse.Namespace) -> int:
    disable = args.users_command == "disable"
    action = "user_disable" if disable else "user_enable"
    site = _site(args)
    store = site.open_store()
    try:
        if not store.set_disabled(args.name, disable):
            _audit(store, action, args.name, "refused", "no such account")
            raise UsersError(f"no account {args.name!r}")
        _audit(store, action, args.name)
    finally:
        store.close()
    print(f"account {args.name} {'disabled: its sessions end within 10 s' if disable else 'enabled'}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    site = _site(args)
    store = site.open_store()
    try:
        accounts = store.accounts()
        _audit(store, "user_list", "")
    finally:
        store.close()
    print(table(accounts))
    return 0


def table(accounts: list[Account]) -> str:
    """Name, role, agent, queues, disabled; never a hash."""
    rows = [("NAME", "ROLE", "AGENT", "QUEUES", "DISABLED")]
    for a in accounts:
        rows.append(
            (a.username, a.role, a.agent or "-", ",".join(a.queues) or "-", "yes" if a.disabled else "no")
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _source(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the daemon's config (its [store], [agents], [access])")
    where.add_argument("--db", type=Path, help="the SQLite store itself")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="the web's sign-in accounts: add, passwd, disable, enable, list")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="USERS_COMMAND")
    p = users_sub.add_parser("add", help="add an account (asks for its password)")
    p.add_argument("name", type=_name, help="the username (lowercase)")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--agent", help='an agent account: the [agents."Name"] it is')
    p.add_argument("--queue", action="append", default=[], help="a supervisor's queue (repeat for more)")
    p.add_argument("--password-stdin", action="store_true", help="read the password as one line of stdin")
    _source(p)
    p.set_defaults(func=_cmd_add)
    p = users_sub.add_parser("passwd", help="set an account's password (asks for it)")
    p.add_argument("name", type=_name)
    p.add_argument("--password-stdin", action="store_true", help="read the password as one line of stdin")
    _source(p)
    p.set_defaults(func=_cmd_passwd)
    for verb, text in (("disable", "refuse its sign-in and end its sessions"), ("enable", "allow it again")):
        p = users_sub.add_parser(verb, help=f"{verb} an account: {text}")
        p.add_argument("name", type=_name)
        _source(p)
        p.set_defaults(func=_cmd_disabled)
    p = users_sub.add_parser("list", help="every account: name, role, agent, queues, disabled")
    _source(p)
    p.set_defaults(func=_cmd_list)
