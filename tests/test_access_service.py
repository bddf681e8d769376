"""AccessService over a real SqliteStore: sign-in, lockout, sessions, the re-check, audit rows."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from acdbridge.access import passwords
from acdbridge.access.model import Access, Account, AuditEntry, Role
from acdbridge.access.service import DISABLED, RECHECK_S, STORE_DOWN, WRONG, AccessService, AccessStats
from acdbridge.adapters.store import SqliteStore
from acdbridge.config import validate
from acdbridge.settings.accessconf import AccessConfig

PASSWORD = "a long passphrase for ana"
T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "s.sqlite", pbx="east")
    s.put_account(Account("ana", Role.SUPERVISOR, queues=("water",)), passwords.hash_password(PASSWORD))
    yield s
    s.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _actions(store: SqliteStore) -> list[tuple[str, str, str, str]]:
    return [(e.action, e.target, e.outcome, e.detail) for e in store.audit_entries(0, 1e12)]


def test_sign_in_opens_a_session_and_audits_it(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig())
    web_side: Access = service  # mypy checks that the service is what the web layer asks for
    assert web_side is service

    async def go() -> None:
        got = await service.sign_in(" Ana ", PASSWORD, "10.0.0.1", T0)
        assert got.problem == "" and got.session is not None
        s = got.session
        assert s.account.username == "ana" and s.account.queues == ("water",)
        assert len(s.token) >= 43 and len(s.csrf) >= 43 and s.token != s.csrf
        assert (await service.session(s.token, T0 + 60)) == s.__class__(
            s.token, s.account, s.csrf, T0, T0 + 60
        )
        assert await service.session("forged", T0 + 60) is None
        await service.sign_out(s.token, T0 + 70)
        assert await service.session(s.token, T0 + 71) is None

    run(go())
    assert _actions(store) == [("sign_in", "ana", "ok", ""), ("sign_out", "ana", "ok", "")]
    rows = sqlite3.connect(store.path).execute("SELECT actor, address, pbx FROM audit ORDER BY id").fetchall()
    assert rows == [("ana", "10.0.0.1", "east"), ("ana", "", "east")]
    assert service.stats() == AccessStats(sign_ins_ok=1, sessions_open=0)


def test_wrong_user_and_wrong_password_read_the_same(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig())
    wrong_user = run(service.sign_in("nobody", PASSWORD, "10.0.0.1", T0))
    wrong_password = run(service.sign_in("ana", "not the password", "10.0.0.1", T0))
    assert wrong_user.session is None and wrong_password.session is None
    assert wrong_user.problem == wrong_password.problem == WRONG
    assert _actions(store) == [
        ("sign_in_refused", "nobody", "refused", "unknown user"),
        ("sign_in_refused", "ana", "refused", "wrong password"),
    ]
    assert service.stats().sign_ins_refused == 2


def test_six_wrong_lock_even_the_right_password_until_lock_min(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig(lock_after=5, lock_window_min=15, lock_min=15))

    async def go() -> None:
        for i in range(5):
            assert (await service.sign_in("ana", f"guess number {i}", "10.0.0.1", T0 + i)).problem == WRONG
        locked = await service.sign_in("ana", PASSWORD, "10.0.0.2", T0 + 10)
        assert (
            locked.session is None and locked.problem == "too many wrong passwords: try again in 15 minutes"
        )
        later = await service.sign_in("ana", PASSWORD, "10.0.0.2", T0 + 4 + 14 * 60 + 30)
        assert later.problem == "too many wrong passwords: try again in 1 minute"
        assert (await service.sign_in("ana", PASSWORD, "10.0.0.2", T0 + 4 + 15 * 60)).session is not None

    run(go())
    actions = _actions(store)
    assert actions[4] == ("sign_in_refused", "ana", "refused", "wrong password; now locked")
    assert actions[5:] == [("sign_in_refused", "ana", "locked", "locked")] * 2 + [
        ("sign_in", "ana", "ok", "")
    ]
    assert service.stats().sign_ins_locked == 2


def test_an_address_is_locked_after_address_lock_after(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig(lock_after=5, address_lock_after=6))

    async def go() -> None:
        for i in range(6):
            await service.sign_in(f"made-up-{i}", "whatever it is", "203.0.113.9", T0 + i)
        assert (await service.sign_in("ana", PASSWORD, "203.0.113.9", T0 + 10)).session is None
        assert (await service.sign_in("ana", PASSWORD, "198.51.100.7", T0 + 10)).session is not None

    run(go())


def test_disabling_ends_the_session_within_the_recheck(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig())

    async def go() -> None:
        s = (await service.sign_in("ana", PASSWORD, "10.0.0.1", T0)).session
        assert s is not None
        store.set_disabled("ana", True)  # as `acdbridge users disable` does, from another process
        assert await service.session(s.token, T0 + RECHECK_S - 1) is not None  # not re-read yet
        assert await service.session(s.token, T0 + RECHECK_S) is None
        assert await service.session(s.token, T0 + RECHECK_S + 1) is None  # ended for good
        refused = await service.sign_in("ana", PASSWORD, "10.0.0.1", T0 + 20)
        assert refused.problem == DISABLED

    run(go())
    assert ("session_ended", "ana", "ok", "account disabled") in _actions(store)
    assert _actions(store)[-1] == ("sign_in_refused", "ana", "refused", "account disabled")


def test_a_role_change_reaches_the_session_at_the_recheck(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig())

    async def go() -> None:
        s = (await service.sign_in("ana", PASSWORD, "", T0)).session
        assert s is not None
        found = store.account("ana")
        assert found is not None
        store.put_account(Account("ana", Role.VIEWER), found[1])
        got = await service.session(s.token, T0 + RECHECK_S)
        assert got is not None and got.account.role is Role.VIEWER

    run(go())


def test_idle_and_absolute_expiry(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig(session_idle_min=30, session_max_h=1))

    async def go() -> None:
        idle = (await service.sign_in("ana", PASSWORD, "", T0)).session
        busy = (await service.sign_in("ana", PASSWORD, "", T0)).session
        assert idle is not None and busy is not None
        for minute in range(1, 60):  # used every minute: idle never, but an hour is the most
            assert await service.session(busy.token, T0 + minute * 60) is not None
        assert await service.session(idle.token, T0 + 30 * 60 + 1) is None
        assert await service.session(busy.token, T0 + 3600 + 1) is None

    run(go())


def test_max_sessions_drops_the_oldest_and_counts(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig(max_sessions=2))

    async def go() -> None:
        tokens = []
        for i in range(3):
            s = (await service.sign_in("ana", PASSWORD, "", T0 + i)).session
            assert s is not None
            tokens.append(s.token)
        assert await service.session(tokens[0], T0 + 5) is None
        assert await service.session(tokens[1], T0 + 5) is not None
        assert await service.session(tokens[2], T0 + 5) is not None

    run(go())
    assert service.stats() == AccessStats(sign_ins_ok=3, sessions_open=2, sessions_dropped=1)


def test_an_old_hash_is_replaced_at_sign_in(store: SqliteStore) -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    store.set_password("ana", weak)
    assert run(AccessService(store, AccessConfig()).sign_in("ana", PASSWORD, "", T0)).session is not None
    found = store.account("ana")
    assert found is not None and found[1] != weak and not passwords.needs_rehash(found[1])


def test_a_store_outage_gives_a_clear_problem_not_an_exception(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig())
    session = run(service.sign_in("ana", PASSWORD, "", T0)).session
    assert session is not None
    store.close()  # every call now raises sqlite3.ProgrammingError
    with capture_logs() as logs:
        got = run(service.sign_in("ana", PASSWORD, "10.0.0.1", T0 + 1))
        still = run(service.session(session.token, T0 + RECHECK_S + 1))
        run(service.record(AuditEntry(T0, "ana", "pause", "Ana")))
    assert got.session is None and got.problem == STORE_DOWN
    assert still is not None  # kept until the store can say otherwise
    events = [e["event"] for e in logs]
    assert events.count("access_store_unavailable") == 2 and "access_audit_lost" in events


def test_the_access_section_of_the_config() -> None:
    cfg, p = validate({"access": {"lock_after": 3, "session_idle_min": 10}}, "c.toml", for_daemon=False)
    assert not p.errors and cfg.access == AccessConfig(lock_after=3, session_idle_min=10.0)
    assert validate({}, "c.toml", for_daemon=False)[0].access == AccessConfig()
    _, p = validate({"access": {"lock_after": 0, "max_session": 5, "min_password_length": 4}}, "c.toml",
                    for_daemon=False)  # fmt: skip
    assert "c.toml: access.lock_after: must be a positive number (1-1000), got 0" in p.errors
    assert "c.toml: access.min_password_length: out of range 8-1024: 4" in p.errors
    assert any("access: unknown keys ['max_session']" in e for e in p.errors)


def test_a_username_that_cannot_be_one_is_refused_without_a_lookup(store: SqliteStore) -> None:
    service = AccessService(store, AccessConfig())
    for name in ("ana\x00", "x" * 65, "ana\nadmin"):
        assert run(service.sign_in(name, PASSWORD, "10.0.0.1", T0)).problem == WRONG
    assert [(a, d) for a, _, _, d in _actions(store)] == [("sign_in_refused", "not a username")] * 3
    targets = [e.target for e in store.audit_entries(0, 1e12)]
    assert targets == ["ana\\x00", "x" * 64 + "...", "ana\\nadmin"]
