"""The `AccessStore` methods (access/model.py) both backends share: accounts and the audit trail.

Accounts are site-wide (no pbx column: one sign-in for every PBX of a shared database); audit
rows carry the pbx id of the store that wrote them. A backend supplies `_select` and `_change`
and its parameter mark; the SQL below is written with `?` and adapted to it."""

from __future__ import annotations

import json
import time
from typing import Any

from acdbridge.access.model import Account, AuditEntry, Role

_ACCOUNT = "username, role, agent, queues, disabled, created_at, password_hash"
_AUDIT = ("ts", "actor", "action", "target", "outcome", "address", "detail")


def _account(row: tuple[Any, ...]) -> tuple[Account, str]:
    username, role, agent, queues, disabled, created_at, password_hash = row
    names = queues if isinstance(queues, list) else json.loads(queues)  # jsonb comes back parsed
    account = Account(username, Role(role), agent, tuple(names), bool(disabled), float(created_at))
    return account, password_hash


def _text(value: str) -> str:
    """PostgreSQL's text cannot hold U+0000; a typed username could, and must not fail the row."""
    return value.replace("\x00", "\ufffd")


class AccessRows:
    pbx: str
    _mark = "?"  # the backend's parameter mark
    _json = ""  # a cast for the queues parameter ("::jsonb" on PostgreSQL)

    def _select(self, sql: str, args: list[Any]) -> list[Any]:
        raise NotImplementedError

    def _change(self, sql: str, args: list[Any]) -> int:
        """Run one statement; how many rows it changed."""
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self._mark)

    def account(self, username: str) -> tuple[Account, str] | None:
        rows = self._select(self._sql(f"SELECT {_ACCOUNT} FROM accounts WHERE username = ?"), [username])
        return _account(rows[0]) if rows else None

    def accounts(self) -> list[Account]:
        return [
            _account(r)[0] for r in self._select(f"SELECT {_ACCOUNT} FROM accounts ORDER BY username", [])
        ]

    def put_account(self, account: Account, password_hash: str) -> None:
        """Insert, or replace everything but created_at of an account of that name."""
        now = time.time()
        created = account.created_at or now
        sql = (f"INSERT INTO accounts ({_ACCOUNT}, updated_at) VALUES (?, ?, ?, ?{self._json}, ?, ?, ?, ?) "
               "ON CONFLICT (username) DO UPDATE SET role = excluded.role, agent = excluded.agent, "
               "queues = excluded.queues, disabled = excluded.disabled, "
               "password_hash = excluded.password_hash, updated_at = excluded.updated_at")  # fmt: skip
        queues = json.dumps(list(account.queues), ensure_ascii=False)
        self._change(self._sql(sql), [account.username, account.role.value, account.agent, queues,
                                      self._flag(account.disabled), created, password_hash, now])  # fmt: skip

    def _flag(self, value: bool) -> Any:
        return int(value)

    def set_password(self, username: str, password_hash: str) -> bool:
        sql = "UPDATE accounts SET password_hash = ?, updated_at = ? WHERE username = ?"
        return self._change(self._sql(sql), [password_hash, time.time(), username]) > 0

    def set_disabled(self, username: str, disabled: bool) -> bool:
        sql = "UPDATE accounts SET disabled = ?, updated_at = ? WHERE username = ?"
        return self._change(self._sql(sql), [self._flag(disabled), time.time(), username]) > 0

    def audit(self, entry: AuditEntry) -> None:
        sql = f"INSERT INTO audit ({', '.join(_AUDIT)}, pbx) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        values = [entry.ts, *(_text(getattr(entry, c)) for c in _AUDIT[1:]), self.pbx]
        self._change(self._sql(sql), values)

    def audit_actions(self, action: str, outcome: str, since: float, limit: int = 10_000) -> list[AuditEntry]:
        """This PBX's rows of one action and outcome from `since`, oldest first; the newest
        `limit` of them (what a restarted daemon remembers by: abandons marked handled)."""
        sql = (f"SELECT {', '.join(_AUDIT)} FROM audit WHERE pbx = ? AND action = ? AND outcome = ? "
               "AND ts >= ? ORDER BY ts DESC, id DESC LIMIT ?")  # fmt: skip
        rows = self._select(self._sql(sql), [self.pbx, action, outcome, since, limit])
        return [AuditEntry(float(r[0]), *r[1:]) for r in reversed(rows)]

    def audit_entries(self, since: float, until: float, limit: int = 1000) -> list[AuditEntry]:
        """Every PBX's rows with since <= ts < until, oldest first, at most `limit`."""
        sql = f"SELECT {', '.join(_AUDIT)} FROM audit WHERE ts >= ? AND ts < ? ORDER BY ts, id LIMIT ?"
        rows = self._select(self._sql(sql), [since, until, limit])
        return [AuditEntry(float(r[0]), *r[1:]) for r in rows]
