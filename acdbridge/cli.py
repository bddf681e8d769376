"""The `acdbridge` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acdbridge import __version__
from acdbridge.access.usercli import add_parser as add_users_parser
from acdbridge.errors import AcdError
from acdbridge.lab.labcli import add_parser as add_lab_parser
from acdbridge.purge import add_parser as add_purge_parser
from acdbridge.reportcli import add_parser as add_report_parser
from acdbridge.reportrun import add_parser as add_report_run_parser
from acdbridge.webhookcli import add_parser as add_webhooks_parser


def _say(line: str) -> None:
    print(line, flush=True)


def _count(items: Sequence[object], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"acdbridge {__version__}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    import json

    from acdbridge import config
    from acdbridge.replay import dumps, replay_kpis, replay_legs, replay_metrics, replay_records

    cfg = config.load(args.config, for_daemon=False) if args.config else config.Config()
    problems: list[str] = []  # the first of each kind, said after the output (stderr)
    if args.db is not None:
        _replay_into(args, cfg, problems)
    elif args.metrics:
        sys.stdout.write(replay_metrics(args.trace, cfg, now=args.at, on_problem=problems.append).decode())
    elif args.kpi:
        kpis = replay_kpis(args.trace, cfg, on_problem=problems.append)
        sys.stdout.write(json.dumps(kpis, ensure_ascii=False, sort_keys=True) + "\n")
    elif args.legs:
        for record in replay_legs(args.trace):
            sys.stdout.write(dumps(record) + "\n")
    else:
        for record in replay_records(args.trace, cfg.wrapup_s, on_problem=problems.append):
            sys.stdout.write(dumps(record) + "\n")
    for problem in problems:
        print(f"acdbridge: warning: {problem}", file=sys.stderr)
    return 0


def _replay_into(args: argparse.Namespace, cfg: Any, problems: list[str]) -> None:
    """replay --db: the trace's records into a store through the daemon's writer, one line said."""
    import asyncio

    from acdbridge.replay import ReplayError, replay_into_store

    store = open_db(args.db, cfg.store.pbx)
    try:
        writer = asyncio.run(replay_into_store(args.trace, cfg, store, on_problem=problems.append))
    finally:
        store.close()
    stats = writer.stats
    failed = stats.records_dropped + stats.records_lost
    if failed:
        raise ReplayError(f"{failed} records could not be stored in {args.db} (see the log above)")
    visits, states = ["v"] * stats.visits_stored, ["s"] * stats.states_stored
    _say(f"{args.trace}: {_count(['r'] * writer.emitted, 'record')} ({_count(visits, 'visit')}, "
         f"{_count(states, 'agent state')}) stored in {args.db}")  # fmt: skip


def open_db(db: str, pbx: str = "") -> Any:
    """--db: an SQLite file (made if missing) or a postgresql:// URL (password: PGPASSWORD)."""
    from acdbridge.adapters.store import PostgresStore, SqliteStore

    if db.startswith(("postgresql://", "postgres://")):
        return PostgresStore(db, pbx=pbx)
    return SqliteStore(Path(db), pbx=pbx)


def _cmd_run(args: argparse.Namespace) -> int:
    from acdbridge import app, config

    return app.run(config.load(args.config), args.config)


def _cmd_check_config(args: argparse.Namespace) -> int:
    """Every problem of the file, one per line (exit 2 when there is an error); with --pbx also
    the comparison with the PBX over AMI. Warnings never change the exit status."""
    import asyncio

    from acdbridge import config
    from acdbridge.settings.pbxcheck import check_pbx
    from acdbridge.settings.summary import summary

    try:
        data = config.read(args.config)
    except config.ConfigError as exc:
        print(exc)
        return exc.exit_status
    cfg, problems = config.validate(data, str(args.config))
    if args.pbx:
        ami_errors = [e for e in problems.errors if e.startswith(f"{args.config}: ami.")]
        if ami_errors:
            problems.error("ami", "not compared with the PBX: fix the ami settings first")
        else:
            asyncio.run(check_pbx(cfg, problems))
    for line in (*problems.errors, *problems.warnings):
        print(line)
    if problems.errors:
        print(f"{args.config}: {_count(problems.errors, 'error')}, {_count(problems.warnings, 'warning')}")
        return 2
    compared = " and matches the PBX" if args.pbx else ""
    print(f"{args.config}: OK{compared} ({_count(problems.warnings, 'warning')})")
    for line in summary(cfg):
        print(f"  {line}")
    return 0


def _cmd_prompts_build(args: argparse.Namespace) -> int:
    from acdbridge import config, prompts

    flow = config.load(args.config, for_daemon=False).flow
    if flow is None or not flow.prompts:
        raise config.ConfigError(f"{args.config}: no [agi] section with hotline prompts to build")
    root = None if args.sounds_dir else args.dir / "root"
    sounds = args.sounds_dir or args.dir / "root/usr/share/asterisk/sounds"
    report = prompts.build_prompts(flow.prompts, sounds, say=_say, force=args.force, root=root)
    _say(
        f"{len(report.built)} built, {len(report.skipped)} unchanged, "
        f"{report.seconds:.1f} s of speech in {sounds}"
    )
    return 0


def _when(text: str) -> float:
    """Epoch seconds, or ISO 8601 (a time without a zone is UTC)."""
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time (epoch seconds or ISO 8601): {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


EXPORT_COLUMNS = (
    "uniqueid", "linkedid", "queue", "caller", "outcome", "blocked_reason", "enter_ts", "answer_ts",
    "end_ts", "wait_s", "ring_s", "talk_s", "hold_s", "hold_count", "wrap_s", "agent", "agent_interface",
    "ended_by",
)  # fmt: skip


def _open_for(args: argparse.Namespace) -> Any:
    """The store named by --db, --url or --config (a reader: no lock; opening migrates it)."""
    from acdbridge import config
    from acdbridge.adapters.store import PostgresStore, SqliteStore, open_store

    if getattr(args, "url", None):
        return PostgresStore(args.url)  # the password from PGPASSWORD or ~/.pgpass, as libpq does
    if args.db:
        if not args.db.exists():
            raise config.ConfigError(f"no store at {args.db}")
        return SqliteStore(args.db)
    settings = config.load(args.config, for_daemon=False).store
    if not settings.url and not settings.path.exists():
        raise config.ConfigError(f"no store at {settings.path}")
    return open_store(settings)


def _cmd_export(args: argparse.Namespace) -> int:
    import csv

    from acdbridge.privatefile import text_output
    from acdbridge.replay import dumps

    store = _open_for(args)
    out = text_output(args.output)
    try:  # streamed: a month of a large centre is never held in memory at once
        visits = store.each_visit(args.since, args.until, args.queue, pbx=args.pbx)
        if args.format == "jsonl":
            for v in visits:
                out.write(dumps(v) + "\n")
        else:
            writer = csv.writer(out)
            writer.writerow([*EXPORT_COLUMNS, "transfer_kind", "transfer_to", "ring_attempts", "pbx"])
            for v in visits:
                transfer = v.get("transfer") or {}
                row = [v.get(c) for c in EXPORT_COLUMNS]
                attempts = len(v.get("ring_attempts", []))
                writer.writerow([*row, transfer.get("kind"), transfer.get("to"), attempts, v.get("pbx", "")])
    finally:
        store.close()
        if out is not sys.stdout:
            out.close()
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Bring the store's schema to this release's version (forward only; the daemon does the
    same at start). Safe to run again: an up-to-date store is left as it is."""
    store = _open_for(args)
    try:
        before, after = store.upgraded
        where = getattr(store, "where", None) or getattr(store, "path", "")
    finally:
        store.close()
    if before == after:
        _say(f"store {where}: schema version {after}, up to date")
    else:
        _say(f"store {where}: schema version {before} -> {after}")
    return 0


def _store_source(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the daemon's config (its [store])")
    where.add_argument("--db", type=Path, help="the SQLite store itself")
    where.add_argument(
        "--url", help="a PostgreSQL store, postgresql://USER@HOST:PORT/DB (password: PGPASSWORD)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acdbridge", description="Contact-centre bridge for Asterisk")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser("run", help="run the daemon: AMI in, call legs and agent states to the store")
    p.add_argument("--config", type=Path, required=True, help="TOML config (see docs/daemon.md)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check-config", help="report every mistake in a config file (exit 2 if any)")
    p.add_argument("--config", type=Path, required=True, help="TOML config (see docs/config.md)")
    p.add_argument("--pbx", action="store_true", help="also log into AMI and compare with the PBX")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("export", help="print stored queue visits that ended in [--from, --to)")
    p.add_argument("--from", dest="since", type=_when, required=True, help="epoch seconds or ISO 8601 (UTC)")
    p.add_argument("--to", dest="until", type=_when, required=True, help="epoch seconds or ISO 8601 (UTC)")
    p.add_argument("--queue", help="only this queue")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--pbx", help="only this PBX's visits (default: every PBX of the store)")
    p.add_argument("--output", type=Path, help="write to FILE, made 0600 (callers' numbers); default stdout")
    _store_source(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("db", help="the store's schema")
    db_sub = p.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    p = db_sub.add_parser("upgrade", help="migrate the store to this release's schema (forward only)")
    _store_source(p)
    p.set_defaults(func=_cmd_db_upgrade)

    _add_replay(sub)
    add_report_parser(sub)
    add_report_run_parser(sub)
    add_users_parser(sub)
    add_purge_parser(sub)
    add_webhooks_parser(sub)
    _add_prompts(sub)
    add_lab_parser(sub)
    return parser


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="replay a raw AMI capture or a journal through the daemon's engine")
    p.add_argument("trace", type=Path, help="raw AMI bytes as an AMI client receives them (.gz accepted)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--records", action="store_true", help="print one JSON object per finished queue visit")
    mode.add_argument(
        "--db",
        metavar="STORE",
        help="store the visits, agent states, IVR legs and feedback as the daemon does: an SQLite"
        " file (made if missing) or a postgresql:// URL; [store] pbx of --config is their pbx id",
    )
    mode.add_argument(
        "--kpi", action="store_true", help="print the KPIs over the whole trace as one JSON object"
    )
    mode.add_argument(
        "--legs", action="store_true", help="print the greeting (IVR) legs, dispositions and survey scores"
    )
    mode.add_argument(
        "--metrics",
        action="store_true",
        help="print the Prometheus text the daemon would serve at the trace's end",
    )
    p.add_argument(
        "--config", type=Path, help="acdbridge config: KPI thresholds, time zone, wrapuptime fallback"
    )
    p.add_argument(
        "--at",
        type=unix_seconds,
        help="with --metrics: the moment (Unix seconds, as acd_kpi_windows_time_seconds shows) to"
        " compute the KPI windows and live gauges for; default the trace's last event",
    )
    p.set_defaults(func=_cmd_replay)


def unix_seconds(text: str) -> float:
    """A Unix time in seconds; argparse turns the ValueError into a message naming --at."""
    value = float(text)
    if not 0 < value < 1e11:  # NaN fails too
        raise ValueError(text)
    return value


def _add_prompts(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from acdbridge.lab.pbx import DEFAULT_DIR

    p = sub.add_parser("prompts", help="spoken prompts for the greetings (espeak-ng + sox)")
    prompts_sub = p.add_subparsers(dest="prompts_command", required=True, metavar="PROMPTS_COMMAND")
    p = prompts_sub.add_parser(
        "build", help="speak every hotline prompt of the config into Asterisk WAV files"
    )
    p.add_argument(
        "--config", type=Path, required=True, help="the daemon's config (hotlines, notices, survey)"
    )
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"lab directory (default {DEFAULT_DIR})")
    p.add_argument("--sounds-dir", type=Path, help="Asterisk's sounds directory (default: the lab's)")
    p.add_argument("--force", action="store_true", help="rebuild prompts whose text did not change too")
    p.set_defaults(func=_cmd_prompts_build)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except AcdError as exc:
        print(f"acdbridge: {exc.code} error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("acdbridge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    return status
