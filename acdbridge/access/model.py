"""Who is asking: accounts, roles, sessions and audit entries, as plain values.

The web layer (adapters/web/) and the `acdbridge users` commands speak these types; the rules
(access/service.py: passwords, lockout, sessions) and the store (adapters/store/) keep them.
Roles are ranked: each one may do what the ones below it may, within its scope -- an agent acts
on their own desk only, a supervisor on the queues their account names, an admin on all."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Role(StrEnum):
    VIEWER = "viewer"  # the wallboard, read-only
    AGENT = "agent"  # their own desk: their state, their calls
    SUPERVISOR = "supervisor"  # agents and calls of their queues
    ADMIN = "admin"  # everything, accounts and the audit log included


RANK = {Role.VIEWER: 0, Role.AGENT: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


@dataclass(frozen=True)
class Account:
    username: str
    role: Role
    agent: str = ""  # an agent account: the [agents."Name"] it is
    queues: tuple[str, ...] = ()  # a supervisor's queues (an admin has all)
    disabled: bool = False
    created_at: float = 0.0

    def at_least(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


@dataclass(frozen=True)
class Session:
    """A signed-in browser. The cookie carries `token`; the store never sees it (in memory only:
    a restart signs everyone out). `csrf` must come back on every state-changing request."""

    token: str
    account: Account
    csrf: str
    created_at: float
    last_seen: float


@dataclass(frozen=True)
class AuditEntry:
    ts: float
    actor: str  # a username, "" before sign-in, "cli:<user>" for a command run on the host
    action: str  # sign_in, sign_out, sign_in_refused, pause, unpause, user_add, ...
    target: str = ""  # what was acted on: an agent, a queue, an account
    outcome: str = "ok"  # ok, refused, failed, locked
    address: str = ""  # the client's address (the web); "" for the CLI
    detail: str = ""  # a short reason; never a password or a caller's number


@dataclass(frozen=True)
class SignIn:
    """What a sign-in attempt gave: a session, or why not (shown to the user as is)."""

    session: Session | None
    problem: str = ""  # "wrong username or password", "locked for 14 more minutes", ...


class AccessStore(Protocol):
    """What the store keeps for access (both backends; blocking calls, run off the loop)."""

    def account(self, username: str) -> tuple[Account, str] | None: ...  # with its password hash
    def accounts(self) -> list[Account]: ...
    def put_account(self, account: Account, password_hash: str) -> None: ...  # insert or replace
    def set_password(self, username: str, password_hash: str) -> bool: ...  # False: no such account
    def set_disabled(self, username: str, disabled: bool) -> bool: ...
    def audit(self, entry: AuditEntry) -> None: ...
    def audit_entries(self, since: float, until: float, limit: int = 1000) -> list[AuditEntry]: ...


class Access(Protocol):
    """What the web layer asks (access/service.py implements it; tests may fake it)."""

    async def sign_in(self, username: str, password: str, address: str, now: float) -> SignIn: ...
    async def session(self, token: str, now: float) -> Session | None: ...  # None: unknown or expired
    async def sign_out(self, token: str, now: float) -> None: ...
    async def record(self, entry: AuditEntry) -> None: ...
