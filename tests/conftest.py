from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg import pg_cluster, pg_url  # noqa: F401  (fixtures: a real PostgreSQL, tests/pg.py)
from tests.stores import make_store  # noqa: F401  (fixture: one store per backend)

REPO = Path(__file__).resolve().parents[1]
# What the integration tests ran against, for the closing summary.
LAB_FACTS = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if LAB_FACTS in config.stash:
        terminalreporter.write_sep("-", "integration tests ran against the real lab")
        terminalreporter.write_line(config.stash[LAB_FACTS])


@pytest.fixture
def repo() -> Path:
    return REPO
