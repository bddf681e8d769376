"""Versioned, forward-only schema migrations for both backends.

Each migration is a numbered list of statements run in one transaction together with its row in
`schema_version`, so a store is always at exactly one version. Version 1 is the schema every
release before migrations created (a store without `schema_version` is at 0 and migration 1 is a
no-op there: CREATE ... IF NOT EXISTS), so an existing store upgrades in place. A store newer than
this code is refused with both versions named: running old code on it could write rows the newer
release reads wrongly. Add a migration by appending a number; never edit a released one.

Version 2 is several PBXes in one store: `pbx` ("" for a single-PBX site) on visits, agent
states, IVR legs and feedback, and in each of their unique keys. PostgreSQL, where several daemons
share one database, also keys the saved tracker state, agent logins and quarantine by it; an
SQLite file is locked by its one daemon, so its tracker state and logins need no key.

Version 3 is access (issue 14): `accounts` (site-wide, keyed by username alone) and `audit`
(who did what, each row with the pbx id of the daemon or command that wrote it).

Version 4 is callers' personal data (issue 14, docs/privacy.md): `pseudonymised_at` on visits and
IVR legs (NULL: the caller fields are as the PBX gave them), with a partial index of the rows
still to do by end time, so the daily job reads only what it has to change and never rescans.

Version 5 is call recordings (issue 17, docs/recording.md): `recordings`, one row per recorded
call, keyed by pbx and the caller's uniqueid, with an index by time for the retention.

Version 6 is the webhooks' outbox (issue 17, docs/webhooks.md): one row per event and endpoint,
unique by (pbx, endpoint, idempotency_key) so a replayed record adds nothing, with a partial
index of the pending rows in id order (the sender reads only those)."""

from __future__ import annotations

from acdbridge.errors import StoreUnusable

LATEST = 6


def _rebuild(table: str, columns: str, key: str, index: str | None) -> list[str]:
    """SQLite cannot change a primary key in place: a new table, the rows copied, the old dropped."""
    names = ", ".join(c.split()[0] for c in columns.split(","))
    out = [
        f"CREATE TABLE {table}_v2 ({columns}, pbx TEXT NOT NULL DEFAULT '', PRIMARY KEY ({key}))",
        f"INSERT INTO {table}_v2 ({names}, pbx) SELECT {names}, '' FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_v2 RENAME TO {table}",
    ]
    return out + ([index] if index else [])


_VISITS = ("uniqueid TEXT NOT NULL, queue TEXT NOT NULL, enter_ts REAL NOT NULL, end_ts REAL NOT NULL, "
           "outcome TEXT NOT NULL, agent TEXT, record TEXT NOT NULL")  # fmt: skip
_STATES = ("interface TEXT NOT NULL, state TEXT NOT NULL, start_ts REAL NOT NULL, end_ts REAL NOT NULL, "
           "agent TEXT, reason TEXT, duration_s REAL NOT NULL")  # fmt: skip
_LEGS = ("uniqueid TEXT NOT NULL, start_ts REAL NOT NULL, end_ts REAL NOT NULL, hotline TEXT NOT NULL, "
         "outcome TEXT NOT NULL, record TEXT NOT NULL")  # fmt: skip
_FEEDBACK = ("uniqueid TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, resolved INTEGER NOT NULL, "
             "queue TEXT NOT NULL, agent TEXT NOT NULL, ts REAL NOT NULL")  # fmt: skip

_RECORDINGS = ("pbx TEXT NOT NULL, uniqueid TEXT NOT NULL, file TEXT NOT NULL, bytes INTEGER NOT NULL, "
               "duration_s REAL NOT NULL, sha256 TEXT NOT NULL, recorded_at REAL NOT NULL, "
               "indexed_at REAL NOT NULL, deleted_at REAL, PRIMARY KEY (pbx, uniqueid)")  # fmt: skip
_RECORDINGS_BY_TIME = "CREATE INDEX recordings_by_time ON recordings (pbx, recorded_at)"
_ACCOUNTS = ("username TEXT PRIMARY KEY, role TEXT NOT NULL, agent TEXT NOT NULL, queues TEXT NOT NULL, "
             "disabled INTEGER NOT NULL, password_hash TEXT NOT NULL, created_at REAL NOT NULL, "
             "updated_at REAL NOT NULL")  # fmt: skip
_AUDIT = ("ts REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, "
          "outcome TEXT NOT NULL, address TEXT NOT NULL, detail TEXT NOT NULL, "
          "pbx TEXT NOT NULL")  # fmt: skip

_OUTBOX = ("pbx TEXT NOT NULL, endpoint TEXT NOT NULL, call_key TEXT NOT NULL, event TEXT NOT NULL, "
           "idempotency_key TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL, "
           "since REAL NOT NULL, attempts INTEGER NOT NULL, next_attempt REAL NOT NULL, "
           "state TEXT NOT NULL, last_error TEXT NOT NULL, delivered_at REAL, "
           "UNIQUE (pbx, endpoint, idempotency_key)")  # fmt: skip
_OUTBOX_INDEX = "CREATE INDEX outbox_pending ON outbox (pbx, endpoint, id) WHERE state = 'pending'"

# both backends: partial indexes (a pseudonymised row leaves the index)
_TO_PSEUDONYMISE = [
    "CREATE INDEX visits_to_pseudonymise ON visits (pbx, end_ts) WHERE pseudonymised_at IS NULL",
    "CREATE INDEX ivr_legs_to_pseudonymise ON ivr_legs (pbx, end_ts) WHERE pseudonymised_at IS NULL",
]

SQLITE: dict[int, list[str]] = {
    1: [  # the schema of every release before migrations, as it created it
        f"CREATE TABLE IF NOT EXISTS visits ({_VISITS}, PRIMARY KEY (uniqueid, queue, enter_ts))",
        "CREATE INDEX IF NOT EXISTS visits_by_end ON visits (end_ts)",
        f"CREATE TABLE IF NOT EXISTS agent_states ({_STATES}, PRIMARY KEY (interface, state, start_ts))",
        f"CREATE TABLE IF NOT EXISTS ivr_legs ({_LEGS}, PRIMARY KEY (uniqueid, start_ts))",
        "CREATE INDEX IF NOT EXISTS ivr_legs_by_end ON ivr_legs (end_ts)",
        f"CREATE TABLE IF NOT EXISTS feedback ({_FEEDBACK}, PRIMARY KEY (uniqueid, kind))",
        "CREATE INDEX IF NOT EXISTS feedback_by_ts ON feedback (ts)",
        "CREATE TABLE IF NOT EXISTS agent_logins (agent TEXT PRIMARY KEY, since REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
        "source TEXT NOT NULL, row TEXT NOT NULL, error TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS tracker_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "saved_at REAL NOT NULL, state TEXT NOT NULL)",
    ],
    2: [
        *_rebuild(
            "visits",
            _VISITS,
            "pbx, uniqueid, queue, enter_ts",
            "CREATE INDEX visits_by_end ON visits (end_ts)",
        ),
        *_rebuild(
            "agent_states",
            _STATES,
            "pbx, interface, state, start_ts",
            "CREATE INDEX agent_states_by_end ON agent_states (end_ts)",
        ),
        *_rebuild(
            "ivr_legs", _LEGS, "pbx, uniqueid, start_ts", "CREATE INDEX ivr_legs_by_end ON ivr_legs (end_ts)"
        ),
        *_rebuild(
            "feedback", _FEEDBACK, "pbx, uniqueid, kind", "CREATE INDEX feedback_by_ts ON feedback (ts)"
        ),
    ],
    3: [
        f"CREATE TABLE accounts ({_ACCOUNTS})",
        f"CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, {_AUDIT})",
        "CREATE INDEX audit_by_ts ON audit (ts)",
    ],
    4: [
        "ALTER TABLE visits ADD COLUMN pseudonymised_at REAL",
        "ALTER TABLE ivr_legs ADD COLUMN pseudonymised_at REAL",
        *_TO_PSEUDONYMISE,
    ],
    5: [f"CREATE TABLE recordings ({_RECORDINGS})", _RECORDINGS_BY_TIME],
    6: [f"CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, {_OUTBOX})", _OUTBOX_INDEX],
}


def _pg_rekey(table: str, key: str) -> str:
    return (f"ALTER TABLE {table} ADD COLUMN pbx TEXT NOT NULL DEFAULT '', "
            f"DROP CONSTRAINT {table}_pkey, ADD PRIMARY KEY ({key})")  # fmt: skip


def _pg(columns: str) -> str:
    return columns.replace(" REAL ", " DOUBLE PRECISION ").replace("resolved INTEGER", "resolved SMALLINT")


POSTGRES: dict[int, list[str]] = {
    1: [  # version 1 in PostgreSQL's types: the same tables, keys and indexes as SQLite's
        f"CREATE TABLE visits ({_pg(_VISITS)}, PRIMARY KEY (uniqueid, queue, enter_ts))",
        "CREATE INDEX visits_by_end ON visits (end_ts)",
        f"CREATE TABLE agent_states ({_pg(_STATES)}, PRIMARY KEY (interface, state, start_ts))",
        f"CREATE TABLE ivr_legs ({_pg(_LEGS)}, PRIMARY KEY (uniqueid, start_ts))",
        "CREATE INDEX ivr_legs_by_end ON ivr_legs (end_ts)",
        f"CREATE TABLE feedback ({_pg(_FEEDBACK)}, PRIMARY KEY (uniqueid, kind))",
        "CREATE INDEX feedback_by_ts ON feedback (ts)",
        "CREATE TABLE agent_logins (agent TEXT PRIMARY KEY, since DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE quarantine (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "at DOUBLE PRECISION NOT NULL, source TEXT NOT NULL, row TEXT NOT NULL, error TEXT NOT NULL)",
        "CREATE TABLE tracker_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "saved_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL)",
    ],
    2: [
        _pg_rekey("visits", "pbx, uniqueid, queue, enter_ts"),
        _pg_rekey("agent_states", "pbx, interface, state, start_ts"),
        "CREATE INDEX agent_states_by_end ON agent_states (end_ts)",
        _pg_rekey("ivr_legs", "pbx, uniqueid, start_ts"),
        _pg_rekey("feedback", "pbx, uniqueid, kind"),
        _pg_rekey("agent_logins", "pbx, agent"),
        # one saved state per PBX: the id = 1 column (and its check) gives way to the pbx key
        "ALTER TABLE tracker_state DROP COLUMN id, ADD COLUMN pbx TEXT NOT NULL DEFAULT '', "
        "ADD PRIMARY KEY (pbx)",
        "ALTER TABLE quarantine ADD COLUMN pbx TEXT NOT NULL DEFAULT ''",
    ],
    3: [
        "CREATE TABLE accounts ("
        + _pg(_ACCOUNTS)
        .replace("queues TEXT", "queues JSONB")
        .replace("disabled INTEGER", "disabled BOOLEAN")
        + ")",
        f"CREATE TABLE audit (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {_pg(_AUDIT)})",
        "CREATE INDEX audit_by_ts ON audit (ts)",
    ],
    4: [
        "ALTER TABLE visits ADD COLUMN pseudonymised_at DOUBLE PRECISION",
        "ALTER TABLE ivr_legs ADD COLUMN pseudonymised_at DOUBLE PRECISION",
        *_TO_PSEUDONYMISE,
    ],
    5: [
        f"CREATE TABLE recordings ({_pg(_RECORDINGS).replace('bytes INTEGER', 'bytes BIGINT')})",
        _RECORDINGS_BY_TIME,
    ],
    6: [
        "CREATE TABLE outbox (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        + _OUTBOX.replace(" REAL", " DOUBLE PRECISION")
        + ")",
        _OUTBOX_INDEX,
    ],
}
assert set(SQLITE) == set(POSTGRES) == set(range(1, LATEST + 1))

VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at {real} NOT NULL)"
)


def pending(current: int, where: str) -> list[int]:
    """The migrations a store at `current` needs; a store newer than this code is refused."""
    if current > LATEST:
        raise StoreUnusable(
            f"{where} has schema version {current}, newer than this acdbridge's {LATEST}: run the "
            f"acdbridge release that upgraded it (a store is never migrated backwards)"
        )
    return list(range(current + 1, LATEST + 1))
