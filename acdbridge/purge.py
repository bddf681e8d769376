"""`acdbridge purge --caller NUMBER [--dry-run]`: an erasure request (docs/privacy.md, "Erasure").

Everywhere the daemon keeps a caller's data: in the store, the caller fields of their visits and
IVR legs are blanked (the visits stay, anonymous, so past KPIs do not change), quarantined rows
naming the number are deleted and saved calls in progress blanked; their pseudonyms count as
theirs (a pseudonym is still personal data while the key exists). The journal is append-only
and CRC-framed, so it is not rewritten: its segments holding the number are deleted, except those
a crash recovery still needs (from the last checkpoint on), which are named with what to do. The
caller directory and Asterisk's own files are the site's: purge says when they hold the number.
Call recordings of the caller's calls (docs/recording.md) are deleted from this PBX's `[recording]
dir` (indexed or not yet), their rows marked; another PBX's are named, for its host.
Every purge, dry runs too, is in the audit table under the caller's pseudonym, never the number."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acdbridge.access.model import AuditEntry
from acdbridge.access.usercli import actor
from acdbridge.adapters.journal import segments
from acdbridge.adapters.privacykey import read_key
from acdbridge.adapters.store.privacy import Erasure
from acdbridge.core import pseudonym
from acdbridge.errors import AcdError
from acdbridge.logmask import mask_number
from acdbridge.runtime import checkpoint
from acdbridge.runtime.recordings import PREFIX, SUFFIX
from acdbridge.settings.journalconf import default_dir
from acdbridge.settings.privacyconf import default_key_file

MIN_DIGITS = 5


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class PurgeError(AcdError):
    """The purge cannot start (no such store, not a number); nothing was changed."""

    code = "purge"
    exit_status = 2


@dataclass
class Site:
    """Where a site keeps callers' data, from its config (or beside a --db store)."""

    open_store: Callable[[], Any]  # SqliteStore | PostgresStore
    journal: Path | None
    key_file: Path
    directory: Path | None = None
    recordings: Path | None = None  # this PBX's [recording] dir (None: --db, not known)
    pbx: str = ""


@dataclass
class RecordingScan:
    deleted: list[str] = field(default_factory=list)  # file names
    kept: list[str] = field(default_factory=list)  # "name (why)": for the operator to delete


@dataclass
class JournalScan:
    deleted: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # needed by a crash recovery
    in_checkpoint: bool = False  # a call of this caller is in progress


def site_of(args: argparse.Namespace) -> Site:
    from acdbridge import config
    from acdbridge.adapters.store import SqliteStore, open_store

    if args.db:
        if not args.db.exists():
            raise PurgeError(f"no store at {args.db}")
        beside = default_dir(args.db)
        return Site(lambda: SqliteStore(args.db), beside if beside.is_dir() else None,
                    default_key_file(args.db))  # fmt: skip
    cfg = config.load(args.config, for_daemon=False)
    if not cfg.store.url and not cfg.store.path.exists():
        raise PurgeError(f"no store at {cfg.store.path}")
    directory = cfg.flow.directory if cfg.flow is not None else None
    journal = cfg.journal.dir if cfg.journal is not None else None
    return Site(lambda: open_store(cfg.store), journal, cfg.privacy.key_file, directory,
                cfg.recording.dir, cfg.store.pbx)  # fmt: skip


def scan_journal(directory: Path, found: Callable[[str], bool], dry_run: bool) -> JournalScan:
    """Segments naming the number: deleted when a checkpoint covers them (a recovery starts at
    its resume segment), else kept. Read one segment at a time (64 MB at most by default)."""
    scan = JournalScan()
    try:
        cp = checkpoint.load(directory / checkpoint.NAME)
    except checkpoint.CheckpointError:
        cp = None  # a damaged checkpoint: the next start replays every segment, so keep them all
    covered = cp.resume.segment if cp is not None else 0
    scan.in_checkpoint = cp is not None and found(checkpoint.encode(cp).decode())
    for seq, path in segments(directory):
        try:
            text = path.read_bytes().decode("latin-1")  # AMI is ASCII; latin-1 never fails
        except FileNotFoundError:
            continue  # pruned meanwhile
        if not found(text):
            continue
        if seq < covered:
            if not dry_run:
                path.unlink(missing_ok=True)
            scan.deleted.append(path)
        else:
            scan.kept.append(path)
    return scan


def erase_recordings(store: Any, calls: set[tuple[str, str]], site: Site, now: float,
                     dry_run: bool) -> RecordingScan:  # fmt: skip
    """The recordings of the caller's calls: the indexed file, else the dialplan's name for one
    the indexer has not reached yet (the call ended a moment ago). A row's file already gone is
    marked too; a file that cannot be deleted is named, as are other PBXes' (their own hosts)."""
    scan = RecordingScan()
    rows = store.recordings_of(sorted(calls))
    for pbx, uid in sorted(calls):
        row = rows.get((pbx, uid))
        if row is not None and row.deleted_at is not None:
            continue
        name = row.file if row is not None else f"{PREFIX}{uid}{SUFFIX}"
        if site.recordings is None or pbx != site.pbx:
            if row is not None:
                where = "--db does not say where" if site.recordings is None else f"PBX {pbx!r}'s host"
                scan.kept.append(f"{name} ({where})")
            continue
        path = site.recordings / name
        if not path.exists():
            if row is not None and not dry_run:
                store.recording_erased(pbx, uid, now)
            continue
        if not dry_run:
            try:
                path.unlink()
            except OSError as exc:
                scan.kept.append(f"{name} ({exc.strerror})")
                continue
            if row is not None:
                store.recording_erased(pbx, uid, now)
        scan.deleted.append(name)
    return scan


def _in_directory(path: Path | None, number: str) -> bool:
    from acdbridge.adapters.directory import Directory

    return path is not None and Directory(path).lookup(number) is not None


def report(number: str, erasure: Erasure, scan: JournalScan | None, recs: RecordingScan, site: Site,
           dry_run: bool) -> list[str]:  # fmt: skip
    verb = "would be" if dry_run else "were"
    visits, legs = _n(erasure.rows["visits"], "visit"), _n(erasure.rows["ivr_legs"], "IVR leg")
    lines = [f"caller {mask_number(number)}{' (dry run: nothing changed)' if dry_run else ''}:",
             f"  store: {visits} and {legs} {verb} "
             f"made anonymous (caller number and name blanked; durations and outcomes kept)",
             f"  store: {_n(erasure.quarantine, 'quarantined row')} and "
             f"{_n(erasure.outbox, 'webhook event')} {verb} deleted, "
             f"{_n(erasure.saved_state, 'saved call')} in progress {verb} blanked"]  # fmt: skip
    lines.append(f"  recordings: {_n(len(recs.deleted), 'file')} {verb} deleted")
    if recs.kept:
        kept = _n(len(recs.kept), "file")
        lines.append(f"  recordings: {kept} KEPT, delete by hand: {', '.join(recs.kept)}")
    if scan is None:
        lines.append("  journal: none")
    else:
        lines.append(f"  journal: {_n(len(scan.deleted), 'segment')} {verb} deleted")
        if scan.kept:
            names = ", ".join(p.name for p in scan.kept)
            kept = _n(len(scan.kept), "segment")
            lines.append(f"  journal: {kept} KEPT, a crash recovery needs them: {names}; "
                         "run purge again once the daemon has checkpointed past them (after its next "
                         "restart, or when they rotate out)")  # fmt: skip
        if scan.in_checkpoint:
            lines.append("  checkpoint: this caller has a call in progress; run purge again once it ended")
    if _in_directory(site.directory, number):
        lines.append(f"  caller directory {site.directory} lists this number: it is the site's own file, "
                     "remove the row there")  # fmt: skip
    lines.append("  not reached: exports already written, Asterisk's own files (queue_log, CDR, recordings "
                 "made outside acdbridge's dialplan) and backups: see docs/privacy.md")  # fmt: skip
    return lines


def _cmd_purge(args: argparse.Namespace) -> int:
    number = args.caller
    digits = len(pseudonym.normalise(number))
    if not digits:
        raise PurgeError(f"--caller {number!r} is not a number (no digits)")
    if digits < MIN_DIGITS:  # "123" is also a priority, a count, an extension in the raw AMI
        raise PurgeError(f"--caller {number!r} has {digits} digits: too short to tell from other "
                         f"numbers in the journal (at least {MIN_DIGITS})")  # fmt: skip
    site = site_of(args)
    key = read_key(site.key_file)
    match = pseudonym.caller_matcher(number, key)
    pattern = pseudonym.number_pattern(number)
    pseudo = pseudonym.number_pseudonym(key, number) if key is not None else None

    def found(text: str) -> bool:
        return bool(pattern.search(text)) or (pseudo is not None and pseudo in text)

    store = site.open_store()
    try:
        erasure = store.erase_caller(match, found, time.time(), dry_run=args.dry_run)
        scan = scan_journal(site.journal, found, args.dry_run) if site.journal is not None else None
        recs = erase_recordings(store, erasure.calls, site, time.time(), args.dry_run)
        detail = (f"visits {erasure.rows['visits']}, ivr_legs {erasure.rows['ivr_legs']}, quarantine "
                  f"{erasure.quarantine}, outbox {erasure.outbox}, saved {erasure.saved_state}, segments "
                  f"deleted {len(scan.deleted) if scan else 0}, kept {len(scan.kept) if scan else 0}, "
                  f"recordings deleted {len(recs.deleted)}, kept {len(recs.kept)}")  # fmt: skip
        target = pseudo or mask_number(number)
        store.audit(AuditEntry(time.time(), actor(), "caller_purge", target,
                               "dry_run" if args.dry_run else "ok", "", detail))  # fmt: skip
    finally:
        store.close()
    for line in report(number, erasure, scan, recs, site, args.dry_run):
        print(line)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "purge", help="erase one caller's data everywhere the daemon keeps it (erasure request)"
    )
    p.add_argument(
        "--caller", required=True, metavar="NUMBER", help="the caller's number, as the PBX shows it"
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be erased; change nothing")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="the daemon's config (store, journal, key, directory)")
    where.add_argument("--db", type=Path, help="an SQLite store (its journal and key beside it)")
    p.set_defaults(func=_cmd_purge)
