"""`acdbridge replay --db` and `acdbridge report` (docs/reports.md): the replayed store holds what the
engine produced, interval maths on the centre's clock (DST days, weeks, months), report rows equal
kpis_over over the same records filtered here, on SQLite and PostgreSQL, and the CLI's errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from acdbridge.adapters.store import PostgresStore, SqliteStore
from acdbridge.cli import main
from acdbridge.replay import replay
from tests.pg import PgCluster

TRACES = Path(__file__).parent / "fixtures" / "traces"
MIXED, CALLFLOW = TRACES / "mixed.ami.gz", TRACES / "callflow.ami"
AnyStore = SqliteStore | PostgresStore


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A --db argument: an SQLite path, or a fresh PostgreSQL database's URL (PGPASSWORD set)."""
    if request.param == "postgres":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        monkeypatch.setenv("PGPASSWORD", cluster.password)
        yield cluster.create_database()
    else:
        yield str(tmp_path / "replayed.sqlite")


def _open(db: str) -> AnyStore:
    return PostgresStore(db) if db.startswith("postgresql://") else SqliteStore(Path(db))


def test_replay_db_stores_what_the_engine_produced_once(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    for trace in (MIXED, CALLFLOW, MIXED):  # the second MIXED adds nothing (idempotent keys)
        assert main(["replay", str(trace), "--db", db]) == 0
    said = capsys.readouterr().out
    assert "31 visits, 107 agent states" in said and "1 visit, 5 agent states" in said
    engines = [replay(MIXED), replay(CALLFLOW)]
    expected = {
        k: [r for e in engines for r in e.records(k)] for k in ("visit", "agent_state", "ivr", "feedback")
    }
    store = _open(db)
    try:
        visits = store.visits(-1e12, 1e12)
        key = lambda v: (v["uniqueid"], v["queue"], v["enter_ts"])  # noqa: E731
        assert sorted(visits, key=key) == sorted(expected["visit"], key=key)
        states = store.agent_states(-1e12, 1e12)
        assert len(states) == len(expected["agent_state"]) == 112
        assert {(s["interface"], s["state"], s["start_ts"]) for s in states} == {
            (s["interface"], s["state"], s["start_ts"]) for s in expected["agent_state"]
        }
        legs = store.ivr_legs(-1e12, 1e12)
        assert [(leg["uniqueid"], leg["call_type"]) for leg in legs] == [
            (leg["uniqueid"], leg["call_type"]) for leg in expected["ivr"]
        ]
        assert sorted(f["kind"] for f in store.feedback(-1e12, 1e12)) == ["disposition", "survey"]
    finally:
        store.close()


def test_replay_db_of_a_missing_trace_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "nope.ami"), "--db", str(tmp_path / "s.sqlite")]) == 2
    assert "no such trace" in capsys.readouterr().err
