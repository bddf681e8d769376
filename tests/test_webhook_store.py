"""The webhooks' outbox in the store, on SQLite and on a real PostgreSQL (tests/pg.py): events
committed in the records' own transaction, idempotent by key, read in call order, settled,
listed and retried; and `acdbridge webhooks list|retry` on it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from acdbridge.adapters.store import SqliteStore
from acdbridge.adapters.store.outbox import OutboxRows
from acdbridge.cli import main
from acdbridge.config import validate
from acdbridge.core.webhooks import DEAD, DELIVERED, EVENTS, PENDING, Endpoint, Settled, events_of
from acdbridge.replay import replay_into_store
from acdbridge.runtime.writer import StoreWriter
from tests.stores import Factory

TRACES = Path(__file__).parent / "fixtures" / "traces"
CRM = Endpoint("crm", "https://crm.example/hook", "k", frozenset(EVENTS))


def visit(uid: str, enter: float, outcome: str = "answered") -> dict[str, Any]:
    return {
        "uniqueid": uid,
        "linkedid": uid,
        "queue": "water",
        "enter_ts": enter,
        "end_ts": enter + 30,
        "outcome": outcome,
        "agent": "Ana",
        "wait_s": 3.0,
    }


def test_events_are_stored_with_their_visits_once_and_read_in_call_order(make_store: Factory) -> None:
    store = make_store(pbx="east")
    a, b = visit("a.1", 100.0, "abandoned"), visit("b.1", 101.0)
    events = [e for v in (a, b) for e in events_of([CRM], "east", "visit", v)]
    assert store.write([a, b], [], outbox=events) == 2 + 3
    assert store.write([a, b], [], outbox=events) == 0  # a replay after a crash: nothing new
    due = store.outbox_due("crm")
    assert [(r.call_key, r.event) for r in due] == [
        ("a.1", "visit.ended"),
        ("a.1", "call.abandoned"),
        ("b.1", "visit.ended"),
    ]
    assert [r.idempotency_key for r in due] == [e.key for e in events]
    assert due[0].payload.startswith('{"schema":1,"event":"visit.ended"') and due[0].state == PENDING
    assert store.outbox_due("other") == []
    assert store.outbox_counts() == {("crm", "pending"): 3}


def test_a_failed_batch_stores_neither_the_visit_nor_its_events(
    make_store: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store()
    sql = store._sql("INSERT INTO outbox (no_such_column) VALUES (?)")
    broken = lambda events: (sql, [(1,)])  # noqa: E731
    monkeypatch.setattr(store, "outbox_statement", broken)
    a = visit("a.1", 100.0)
    with pytest.raises(Exception, match="no_such_column"):
        store.write([a], [], outbox=events_of([CRM], "", "visit", a))
    assert store.count("visits") == 0  # the one transaction rolled back


def test_settle_list_retry_and_prune(make_store: Factory) -> None:
    store = make_store()
    a, b = visit("a.1", 100.0), visit("b.1", 101.0)
    store.write([a, b], [], outbox=[e for v in (a, b) for e in events_of([CRM], "", "visit", v)])
    first, second = store.outbox_due("crm")
    store.outbox_settle(first.id, Settled(DELIVERED, 1, 0.0, ""), now=5000.0)
    store.outbox_settle(second.id, Settled(DEAD, 7, 0.0, "HTTP 500 " + "x" * 900), now=5001.0)
    assert store.outbox_due("crm") == []
    dead = store.outbox_list(DEAD)
    assert [(r.id, r.attempts, r.last_error[:8], len(r.last_error)) for r in dead] == [
        (second.id, 7, "HTTP 500", 500)
    ]
    assert store.outbox_list(DELIVERED)[0].delivered_at == 5000.0
    assert [r.id for r in store.outbox_list()] == [second.id, first.id]  # newest first
    assert store.outbox_counts() == {("crm", "dead"): 1}
    assert store.outbox_retry(first.id, now=6000.0) == 0  # delivered: left alone
    assert store.outbox_retry(None, now=6000.0) == 1
    again = store.outbox_due("crm")
    assert [(r.id, r.state, r.attempts, r.since, r.next_attempt) for r in again] == [
        (second.id, PENDING, 0, 6000.0, 6000.0)
    ]
    assert store.outbox_prune(before=4999.0) == 0 and store.outbox_prune(before=5000.5) == 1
    assert store.outbox_row(first.id) is None and store.outbox_row(second.id) is not None
    store.outbox_settle(second.id, Settled(DEAD, 1, 0.0, "HTTP 500"), now=7000.0)
    assert store.outbox_prune(before=0.0, dead_before=6000.0) == 0  # its window began at 6000
    assert store.outbox_prune(before=0.0, dead_before=6000.5) == 1 and store.outbox_list() == []


def test_each_pbx_sees_its_own_rows(make_store: Factory) -> None:
    east, west = make_store(pbx="east"), make_store(pbx="west")
    a = visit("a.1", 100.0)
    east.write([a], [], outbox=events_of([CRM], "east", "visit", a))
    west.write([a], [], outbox=events_of([CRM], "west", "visit", a))
    assert len(east.outbox_due("crm")) == len(west.outbox_due("crm")) == 1
    assert east.outbox_due("crm")[0].idempotency_key != west.outbox_due("crm")[0].idempotency_key


def test_a_nan_in_an_event_is_quarantined_not_the_batch(make_store: Factory) -> None:
    store = make_store()
    good, bad = visit("a.1", 100.0), visit("b.1", 101.0) | {"wait_s": float("nan")}
    events = [*events_of([CRM], "", "visit", good), *events_of([CRM], "", "visit", bad)]
    store.write([good], [], outbox=events)  # bad's visit itself would be quarantined by write too
    assert [r.call_key for r in store.outbox_due("crm")] == ["a.1"]
    assert store.count("quarantine") == 1


def test_the_writer_commits_dispositions_with_their_feedback_and_wakes_the_sender(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")

    async def scenario() -> bool:
        writer = StoreWriter(store, 100, hooks=(CRM,))
        writer.put("visit", visit("a.1", 100.0))
        writer.put(
            "feedback",
            {
                "uniqueid": "a.1",
                "kind": "disposition",
                "value": "resolved",
                "resolved": True,
                "queue": "water",
                "agent": "Ana",
                "ts": 140.0,
            },
        )
        writer.put(
            "call_event",
            {
                "event": "call.offered",
                "uniqueid": "b.1",
                "queue": "water",
                "enter_ts": 120.0,
                "interface": "PJSIP/1",
                "ts": 121.0,
            },
        )
        await writer.drain()
        return writer.outboxed.is_set()

    assert asyncio.run(scenario())
    assert [(r.call_key, r.event) for r in store.outbox_due("crm")] == [
        ("a.1", "visit.ended"),
        ("b.1", "call.offered"),
        ("a.1", "disposition"),
    ]
    assert store.count("feedback") == 1
    store.close()


def test_replay_db_fills_the_outbox_once_and_the_cli_lists_and_retries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.sqlite"
    config = tmp_path / "c.toml"
    config.write_text(
        f'[store]\npath = "{db}"\n[[webhooks]]\nname = "crm"\nurl = "https://crm.example/"\n'
        'secret = "k"\nevents = ["visit.ended", "call.abandoned"]\n'
    )
    cfg = validate(
        {
            "store": {"path": str(db)},
            "webhooks": [
                {
                    "name": "crm",
                    "url": "https://crm.example/",
                    "secret": "k",
                    "events": ["visit.ended", "call.abandoned"],
                }
            ],
        },
        for_daemon=False,
    )[0]
    for _ in range(2):
        store = SqliteStore(db)
        asyncio.run(replay_into_store(TRACES / "mixed.ami.gz", cfg, store))
        store.close()
    store = SqliteStore(db)
    visits = store.visits(0, 1e12)
    rows = store.outbox_due("crm", limit=1000)
    assert len(rows) == len(visits) + sum(v["outcome"] == "abandoned" for v in visits)
    store.outbox_settle(rows[0].id, Settled(DEAD, 3, 0.0, "HTTP 503"), now=1.0)
    store.close()
    capsys.readouterr()
    assert main(["webhooks", "list", "--config", str(config), "--state", "dead"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("id\tstate") and len(out) == 2 and f"{rows[0].id}\tdead\tcrm" in out[1]
    assert main(["webhooks", "list", "--db", str(db), "--limit", "2", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["webhooks", "retry", "--config", str(config), str(rows[1].id)]) == 2
    assert f"outbox row {rows[1].id} is pending: only dead rows are retried" in capsys.readouterr().err
    assert main(["webhooks", "retry", "--config", str(config), "999999"]) == 2
    assert "no outbox row 999999" in capsys.readouterr().err
    assert main(["webhooks", "retry", "--config", str(config)]) == 2
    assert "give one outbox ID or --all-dead" in capsys.readouterr().err
    assert main(["webhooks", "retry", "--config", str(config), "--all-dead"]) == 0
    assert "1 webhook event pending again" in capsys.readouterr().out
    store = SqliteStore(db)
    assert store.outbox_counts() == {("crm", "pending"): len(rows)}
    assert [e.action for e in store.audit_entries(0, 1e12)] == ["webhook_retry"]
    store.close()
    assert main(["webhooks", "list", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no store at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["webhooks", "list", "--db", str(db), "--limit", "0"])


def test_both_backends_have_the_outbox_methods() -> None:
    from acdbridge.adapters.store import PostgresStore

    assert issubclass(SqliteStore, OutboxRows) and issubclass(PostgresStore, OutboxRows)


def test_an_erasure_deletes_the_webhook_events_naming_the_caller(make_store: Factory) -> None:
    from acdbridge.core import pseudonym

    store = make_store()
    mine, other = (
        visit("a.1", 100.0) | {"caller": "+4930111111"},
        visit("b.1", 101.0) | {"caller": "+4930999"},
    )
    store.write([], [], outbox=[e for v in (mine, other) for e in events_of([CRM], "", "visit", v)])
    pattern = pseudonym.number_pattern("+49 30 111111")
    match = pseudonym.caller_matcher("+49 30 111111", None)
    dry = store.erase_caller(match, lambda text: bool(pattern.search(text)), 1.0, dry_run=True)
    assert dry.outbox == 1 and len(store.outbox_due("crm")) == 2
    done = store.erase_caller(match, lambda text: bool(pattern.search(text)), 1.0)
    assert done.outbox == 1 and [r.call_key for r in store.outbox_due("crm")] == ["b.1"]
