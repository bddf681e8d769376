"""`acdbridge webhooks list|retry`: the outbox as the operator sees it (docs/webhooks.md).

    acdbridge webhooks list --config FILE [--state dead|pending|delivered] [--limit N] [--json]
    acdbridge webhooks retry --config FILE (ID | --all-dead)

Both go through the store (either backend) of the config's PBX, while the daemon runs: a retried
row is pending again with a fresh retry window, and the daemon's sender picks it up within a
second. Every retry is in the audit table."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from acdbridge.access.model import AuditEntry
from acdbridge.access.usercli import actor
from acdbridge.core.webhooks import STATES
from acdbridge.errors import AcdError


class WebhookCliError(AcdError):
    code = "webhooks"
    exit_status = 2


def _open(args: argparse.Namespace) -> Any:
    """The store of --config (its pbx id) or --db (an SQLite file, --pbx)."""
    from acdbridge import config
    from acdbridge.adapters.store import SqliteStore, open_store

    if args.db is not None:
        if not args.db.exists():
            raise WebhookCliError(f"no store at {args.db}")
        return SqliteStore(args.db, pbx=args.pbx)
    settings = config.load(args.config, for_daemon=False).store
    if not settings.url and not settings.path.exists():
        raise WebhookCliError(f"no store at {settings.path}")
    return open_store(settings)


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _cmd_list(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        rows = store.outbox_list(args.state, args.limit)
    finally:
        store.close()
    if args.json:
        for row in rows:
            print(json.dumps(row.summary(), ensure_ascii=False, sort_keys=True))
        return 0
    print("id\tstate\tendpoint\tevent\tcall\tattempts\tcreated\tnext_attempt\tlast_error")
    for r in rows:
        due = _when(r.next_attempt) if r.state == "pending" else "-"
        print(f"{r.id}\t{r.state}\t{r.endpoint}\t{r.event}\t{r.call_key}\t{r.attempts}\t"
              f"{_when(r.created)}\t{due}\t{r.last_error or '-'}")  # fmt: skip
    return 0


def _cmd_retry(args: argparse.Namespace) -> int:
    if (args.id is None) == (not args.all_dead):
        raise WebhookCliError("give one outbox ID or --all-dead (acdbridge webhooks list --state dead)")
    store = _open(args)
    try:
        if args.id is not None:
            row = store.outbox_row(args.id)
            if row is None:
                raise WebhookCliError(f"no outbox row {args.id} (of pbx {store.pbx!r})")
            if row.state != "dead":
                raise WebhookCliError(f"outbox row {args.id} is {row.state}: only dead rows are retried")
        n = store.outbox_retry(args.id, time.time())
        target = "all-dead" if args.id is None else str(args.id)
        store.audit(AuditEntry(time.time(), actor(), "webhook_retry", target, "ok", "", f"rows {n}"))
    finally:
        store.close()
    print(f"{n} webhook event{'' if n == 1 else 's'} pending again (sent by the daemon within a second)")
    return 0


def _limit(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of rows, got {text!r}") from None
    if not 1 <= n <= 100_000:
        raise argparse.ArgumentTypeError(f"expected 1-100000 rows, got {n}")
    return n


def _row_id(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an outbox row id (a number), got {text!r}")
    return int(text)


def _source(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the daemon's config (its [store] and pbx)")
    where.add_argument("--db", type=Path, help="an SQLite store")
    p.add_argument("--pbx", default="", help="with --db: the PBX id whose rows to show (default none)")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("webhooks", help="the webhooks' outbox: list events, retry dead ones")
    hooks = p.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")
    q = hooks.add_parser("list", help="outbox rows, newest first")
    _source(q)
    q.add_argument("--state", choices=STATES, help="only rows in this state")
    q.add_argument("--limit", type=_limit, default=100, help="at most N rows (default 100)")
    q.add_argument("--json", action="store_true", help="one JSON object per row, the payload included")
    q.set_defaults(func=_cmd_list)
    r = hooks.add_parser("retry", help="dead rows pending again, with a fresh retry window")
    _source(r)
    r.add_argument("id", nargs="?", type=_row_id, help="the outbox row id (webhooks list)")
    r.add_argument("--all-dead", action="store_true", help="every dead row of this PBX")
    r.set_defaults(func=_cmd_retry)
