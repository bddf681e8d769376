"""`make_store`: opens stores of one backend (SQLite or a real PostgreSQL from tests/pg.py) on one
fresh place; closes them after. A test that takes it runs once per backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acdbridge.adapters.store import PostgresStore, SqliteStore
from tests.pg import PgCluster

AnyStore = SqliteStore | PostgresStore
Factory = Callable[..., AnyStore]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    opened: list[AnyStore] = []
    if request.param == "postgres":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()

        def make(**kw: Any) -> AnyStore:
            opened.append(PostgresStore(url, password=cluster.password, **kw))
            return opened[-1]
    else:

        def make(**kw: Any) -> AnyStore:
            opened.append(SqliteStore(tmp_path / "s.sqlite", **kw))
            return opened[-1]

    yield make
    for store in opened:
        store.close()
