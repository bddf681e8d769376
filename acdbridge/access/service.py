"""Sign-in, sessions and the audit trail: the `Access` protocol of access/model.py over a store.

Sessions live in memory only (a restart signs everyone out; the store never sees a token).
Each one ends when idle for `session_idle_min`, at `session_max_h` whatever its use, or when
`max_sessions` newer ones push it out. The account behind a session is read again from the store
at most every RECHECK_S, so `acdbridge users disable` or `users passwd` (another process)
ends that user's sessions within it.

Nothing here raises into a request on a store error: a sign-in then fails with STORE_DOWN (and a
log line), a session check keeps the session until the store answers again, and an audit row that
cannot be written is logged. Every blocking store call and every argon2 hash runs off the loop."""

from __future__ import annotations

import asyncio
import math
import secrets
from dataclasses import dataclass, replace

import structlog

from acdbridge.access import passwords
from acdbridge.access.lockout import Lockout
from acdbridge.access.model import AccessStore, Account, AuditEntry, Session, SignIn
from acdbridge.settings.accessconf import AccessConfig

log = structlog.get_logger("acdbridge.access")

RECHECK_S = 10.0  # how stale a session's account may be: the bound on `users disable`
VERIFYING_AT_ONCE = 2  # argon2 takes 64 MiB and ~0.1 s of a core per attempt; more would queue
WRONG = "wrong username or password"  # the same text for an unknown user: names stay secret
DISABLED = "this account is disabled: ask an administrator"
STORE_DOWN = "the account store is unavailable: try again"
MAX_NAME = 64  # longer "usernames" (a password typed in the wrong field) are not audited whole


@dataclass(frozen=True)
class AccessStats:
    """Counters for /metrics."""

    sign_ins_ok: int = 0
    sign_ins_refused: int = 0  # wrong password, unknown user, disabled, store down
    sign_ins_locked: int = 0  # refused because the account or the address was locked
    sessions_open: int = 0
    sessions_dropped: int = 0  # pushed out by max_sessions
    lockout_evicted: int = 0  # failure histories and locks dropped to bound memory: a spray


@dataclass
class _Live:
    session: Session
    checked_at: float  # when the account was last read from the store
    password_hash: str  # as it was at sign-in: `users passwd` changes it, and ends the session


def locked_text(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"too many wrong passwords: try again in {minutes} minute{'' if minutes == 1 else 's'}"


class AccessService:
    def __init__(self, store: AccessStore, settings: AccessConfig) -> None:
        self.store = store
        self.settings = settings
        self.idle_s = settings.session_idle_min * 60
        self.max_age_s = settings.session_max_h * 3600
        self.lockout = Lockout(
            after=settings.lock_after,
            address_after=settings.address_lock_after,
            window_s=settings.lock_window_min * 60,
            lock_s=settings.lock_min * 60,
        )
        self._sessions: dict[str, _Live] = {}  # insertion order is creation order: oldest first
        self._verifying = asyncio.Semaphore(VERIFYING_AT_ONCE)
        self._counts = {"ok": 0, "refused": 0, "locked": 0, "dropped": 0}

    def stats(self) -> AccessStats:
        c = self._counts
        open_now = len(self._sessions)
        return AccessStats(c["ok"], c["refused"], c["locked"], open_now, c["dropped"], self.lockout.evicted)

    async def sign_in(self, username: str, password: str, address: str, now: float) -> SignIn:
        name = username.strip().lower()
        if not name or not password:
            return await self._refuse(name, address, now, "refused", "empty username or password", WRONG)
        if len(name) > MAX_NAME or not name.isprintable():  # never a valid name: no store lookup
            return await self._refuse(name, address, now, "refused", "not a username", WRONG)
        # the semaphore bounds CPU and memory, and a burst of parallel guesses cannot all pass
        # the lock check before the first of them is counted
        async with self._verifying:
            remaining = self.lockout.locked(name, address, now)
            if remaining > 0:
                return await self._refuse(name, address, now, "locked", "locked", locked_text(remaining))
            try:
                found = await asyncio.to_thread(self.store.account, name)
            except Exception as exc:  # any backend's error: the request gets a message, not a 500
                log.error("access_store_unavailable", during="sign_in", error=str(exc))
                return await self._refuse(
                    name, address, now, "failed", "account store unavailable", STORE_DOWN
                )
            password_hash = found[1] if found else None
            right = await asyncio.to_thread(passwords.verify, password_hash, password)
        if found is None or not right:
            locked_now = self.lockout.failed(name, address, now)
            detail = ("unknown user" if found is None else "wrong password") + (
                "; now locked" if locked_now else ""
            )
            return await self._refuse(name, address, now, "refused", detail, WRONG)
        account = found[0]
        if account.disabled:
            return await self._refuse(name, address, now, "refused", "account disabled", DISABLED)
        self.lockout.succeeded(name)
        password_hash = found[1]
        if passwords.needs_rehash(password_hash):
            password_hash = await self._rehash(name, password) or password_hash
        session = self._open(account, password_hash, now)
        self._counts["ok"] += 1
        await self.record(AuditEntry(now, name, "sign_in", name, "ok", address))
        return SignIn(session)

    async def _refuse(
        self, name: str, address: str, now: float, outcome: str, detail: str, problem: str
    ) -> SignIn:
        self._counts["locked" if outcome == "locked" else "refused"] += 1
        target = name if len(name) <= MAX_NAME else name[:MAX_NAME] + "..."
        target = target if target.isprintable() else repr(target)[1:-1]  # no control bytes in a log
        await self.record(AuditEntry(now, "", "sign_in_refused", target, outcome, address, detail))
        return SignIn(None, problem)

    async def _rehash(self, name: str, password: str) -> str | None:
        """The hash was made with older parameters: store one with today's (best effort); the
        new hash, or None when it could not be stored."""
        try:
            new_hash = await asyncio.to_thread(passwords.hash_password, password)
            await asyncio.to_thread(self.store.set_password, name, new_hash)
        except Exception as exc:  # the sign-in still succeeds; the next one tries again
            log.warning("access_rehash_failed", username=name, error=str(exc))
            return None
        return new_hash

    def _open(self, account: Account, password_hash: str, now: float) -> Session:
        self._sweep(now)
        while len(self._sessions) >= self.settings.max_sessions:
            del self._sessions[next(iter(self._sessions))]
            self._counts["dropped"] += 1
        session = Session(secrets.token_urlsafe(32), account, secrets.token_urlsafe(32), now, now)
        self._sessions[session.token] = _Live(session, now, password_hash)
        return session

    def _sweep(self, now: float) -> None:
        """Forget expired sessions (those never used again would otherwise stay till max_sessions)."""
        for token in [t for t, live in self._sessions.items() if self._expired(live.session, now)]:
            del self._sessions[token]

    def _expired(self, s: Session, now: float) -> bool:
        return now - s.last_seen > self.idle_s or now - s.created_at > self.max_age_s

    async def session(self, token: str, now: float) -> Session | None:
        live = self._sessions.get(token)
        if live is None:
            return None
        if self._expired(live.session, now):
            self._sessions.pop(token, None)
            return None
        if now - live.checked_at >= RECHECK_S:
            account = await self._recheck(live, now)
            if account is None:
                return None
            live.session = replace(live.session, account=account)
        live.session = replace(live.session, last_seen=now)
        return live.session

    async def _recheck(self, live: _Live, now: float) -> Account | None:
        """The account as the store has it now; None (and the session ended) when it was
        disabled or removed. While the store is unreachable the session goes on as it was."""
        name = live.session.account.username
        try:
            found = await asyncio.to_thread(self.store.account, name)
        except Exception as exc:
            log.warning("access_store_unavailable", during="session_check", error=str(exc))
            return live.session.account
        live.checked_at = now
        if found is not None and not found[0].disabled and found[1] == live.password_hash:
            return found[0]
        self.end_sessions_of(name)  # all of them: each would find the same at its own check
        why = "account removed" if found is None else "account disabled" if found[0].disabled else (
            "password changed")  # fmt: skip
        await self.record(AuditEntry(now, name, "session_ended", name, "ok", "", why))
        return None

    def end_sessions_of(self, username: str) -> int:
        tokens = [t for t, live in self._sessions.items() if live.session.account.username == username]
        for token in tokens:
            del self._sessions[token]
        return len(tokens)

    async def audit_entries(self, since: float, until: float, limit: int) -> list[AuditEntry]:
        return await asyncio.to_thread(self.store.audit_entries, since, until, limit)

    async def sign_out(self, token: str, now: float) -> None:
        live = self._sessions.pop(token, None)
        if live is not None:
            name = live.session.account.username
            await self.record(AuditEntry(now, name, "sign_out", name, "ok"))

    async def record(self, entry: AuditEntry) -> None:
        try:
            await asyncio.to_thread(self.store.audit, entry)
        except Exception as exc:  # an audit row that cannot be stored is logged whole, never raised
            log.error("access_audit_lost", error=str(exc), entry=repr(entry))
