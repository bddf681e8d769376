"""The AccessStore methods on both backends: SQLite in tmp_path and the real PostgreSQL of
tests/pg.py. Accounts are site-wide, audit rows carry the writer's pbx id; `db upgrade` brings
a store of the release before access (schema 2) to the accounts and audit tables."""

from __future__ import annotations

import io
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from acdbridge.access.model import Account, AuditEntry, Role
from acdbridge.adapters.store import SCHEMA_VERSION, PostgresStore, SqliteStore, schema
from acdbridge.cli import main
from tests.pg import PgCluster
from tests.stores import AnyStore

V1_STORE = Path(__file__).parent / "fixtures/store-v1.sqlite"


def test_accounts_round_trip(make_store: Callable[..., AnyStore]) -> None:
    store = make_store()
    assert store.account("ana") is None and store.accounts() == []
    ana = Account("ana", Role.SUPERVISOR, queues=("water", "Eñe queue"), created_at=1000.0)
    store.put_account(ana, "$argon2id$one")
    store.put_account(Account("bo", Role.AGENT, agent="Bo Li"), "$argon2id$two")
    assert store.account("ana") == (ana, "$argon2id$one")
    assert store.account("ANA") is None  # names are exact (the service lowercases them)
    assert [a.username for a in store.accounts()] == ["ana", "bo"]
    bo = store.accounts()[1]
    assert bo.agent == "Bo Li" and bo.queues == () and bo.created_at > 1e9  # stamped when not given
    # replacing keeps created_at
    store.put_account(Account("ana", Role.ADMIN, created_at=5.0), "$argon2id$three")
    assert store.account("ana") == (Account("ana", Role.ADMIN, created_at=1000.0), "$argon2id$three")
    assert store.set_password("ana", "$argon2id$four") and store.account("ana") == (
        Account("ana", Role.ADMIN, created_at=1000.0), "$argon2id$four")  # fmt: skip
    assert store.set_disabled("bo", True)
    found = store.account("bo")
    assert found is not None and found[0].disabled
    assert store.set_disabled("bo", False) and not store.accounts()[1].disabled
    assert not store.set_password("nobody", "x") and not store.set_disabled("nobody", True)


def test_accounts_are_site_wide_and_audit_rows_carry_the_pbx(make_store: Callable[..., AnyStore]) -> None:
    east, west = make_store(pbx="east"), make_store(pbx="west")
    east.put_account(Account("ana", Role.VIEWER), "h")
    assert west.account("ana") == (Account("ana", Role.VIEWER, created_at=west.accounts()[0].created_at), "h")
    entries = [AuditEntry(10.0, "ana", "sign_in", "ana", "ok", "10.0.0.1"),
               AuditEntry(11.0, "", "sign_in_refused", "bad\x00name", "refused", "10.0.0.2", "unknown user"),
               AuditEntry(12.0, "cli:root", "user_add", "bo", detail="role agent")]  # fmt: skip
    east.audit(entries[0])
    west.audit(entries[1])
    east.audit(entries[2])
    got = west.audit_entries(0, 100)
    assert got[0] == entries[0] and got[2] == entries[2]
    assert got[1].target == "bad\ufffdname"  # a NUL cannot be stored in PostgreSQL text, nor hide
    assert west.audit_entries(11, 12) == [got[1]]  # [since, until)
    assert west.audit_entries(0, 100, limit=2) == got[:2]
    sql = "SELECT pbx FROM audit ORDER BY id"
    rows = east.db.execute(sql).fetchall() if isinstance(east, SqliteStore) else east._select(sql, [])
    assert [r[0] for r in rows] == ["east", "west", "east"]
    # one action's rows of this PBX alone, newest `limit` kept, oldest first (the handled marks)
    for ts in (20.0, 21.0, 22.0):
        east.audit(AuditEntry(ts, "sue", "abandon_handled", f"c{ts:g}|water", "ok"))
    west.audit(AuditEntry(23.0, "bo", "abandon_handled", "w1|water", "ok"))
    assert [e.target for e in east.audit_actions("abandon_handled", "ok", 0.0)] == [
        "c20|water",
        "c21|water",
        "c22|water",
    ]
    assert [e.target for e in east.audit_actions("abandon_handled", "ok", 0.0, limit=2)] == [
        "c21|water",
        "c22|water",
    ]
    assert east.audit_actions("abandon_handled", "refused", 0.0) == []


def test_a_schema_2_sqlite_store_gets_the_access_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copy(V1_STORE, path)
    with monkeypatch.context() as m:  # the release before access: schema 2
        m.setattr(schema, "LATEST", 2)
        SqliteStore(path).close()
    assert "accounts" not in _sqlite_tables(path)
    assert main(["db", "upgrade", "--db", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"store {path}: schema version 2 -> {SCHEMA_VERSION}"
    assert {"accounts", "audit"} <= _sqlite_tables(path)
    store = SqliteStore(path)
    assert len(store.visits(0, 1e12)) == 32  # the old rows are all there
    store.put_account(Account("ana", Role.ADMIN), "h")
    assert store.account("ana") is not None
    store.close()


def _sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_schema_2_postgres_database_gets_the_access_tables(pg_cluster: PgCluster, pg_url: str) -> None:
    with psycopg.connect(pg_url, password=pg_cluster.password, autocommit=True) as db:
        db.execute(schema.VERSION_TABLE.format(real="DOUBLE PRECISION").encode())
        for version in (1, 2):
            for statement in schema.POSTGRES[version]:
                db.execute(statement.encode())
            db.execute("INSERT INTO schema_version VALUES (%s, 0)", (version,))
    store = PostgresStore(pg_url, password=pg_cluster.password)
    assert store.upgraded == (2, SCHEMA_VERSION)
    store.put_account(Account("ana", Role.SUPERVISOR, queues=("water",)), "h")
    store.close()
    with psycopg.connect(pg_url, password=pg_cluster.password, autocommit=True) as db:
        row = db.execute("SELECT queues, jsonb_typeof(queues), disabled FROM accounts").fetchone()
    assert row == (["water"], "array", False)  # real JSON and a real boolean in PostgreSQL


def test_users_commands_on_a_postgres_store_named_by_the_config(
    pg_cluster: PgCluster, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = tmp_path / "acdbridge.toml"
    config.write_text(f'[store]\nurl = "{pg_url}"\npassword = "{pg_cluster.password}"\npbx = "east"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase for ana\n"))
    add = ["users", "add", "ana", "--role", "supervisor", "--queue", "water", "--password-stdin"]
    assert main([*add, "--config", str(config)]) == 0
    assert main(["users", "disable", "ana", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["users", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["ana", "supervisor", "-", "water", "yes"]
    store = PostgresStore(pg_url, password=pg_cluster.password)
    assert [(e.action, e.target) for e in store.audit_entries(0, 1e12)] == [
        ("user_add", "ana"), ("user_disable", "ana"), ("user_list", "")]  # fmt: skip
    assert store._select("SELECT DISTINCT pbx FROM audit", []) == [("east",)]
    store.close()
