"""The `[journal]` table: where the AMI journal and its checkpoint live, and how they are written.

    [journal]
    dir = "/var/lib/acdbridge/journal"   # default: beside the store (acdbridge.journal)
    fsync_interval_ms = 50                # group commit: at most one fsync per interval
    segment_mb = 64                       # a new segment file beyond this size
    retention_days = 7                    # raw history kept for audits once a checkpoint covers it
    checkpoint_s = 5                      # trackers' state written this often
    enabled = true

`ami.capture`, the older name of the same thing (a raw AMI capture), is read as `journal.dir`:
one mechanism, not two. The journal is a directory of segments, so an old capture *file* at that
path is an error, with what to do about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acdbridge.settings.problems import Problems, get, known

KEYS = {"enabled", "dir", "fsync_interval_ms", "segment_mb", "retention_days", "checkpoint_s"}


@dataclass(frozen=True)
class JournalConfig:
    dir: Path
    fsync_interval_ms: float = 50.0
    segment_mb: float = 64.0
    retention_days: float = 7.0
    checkpoint_s: float = 5.0
    key: str = "journal.dir"  # where dir came from, for the checks' messages; "": beside the store

    @property
    def checkpoint_path(self) -> Path:
        return self.dir / "checkpoint.json"


def default_dir(store_path: Path) -> Path:
    return store_path.with_suffix(".journal")


def parse_journal(
    p: Problems, t: dict[str, Any], capture: Path | None, store_path: Path
) -> JournalConfig | None:
    """The journal's settings; None when `enabled = false`."""
    w = "journal"
    known(p, t, w, KEYS)
    if not get(p, t, "enabled", w, bool, True):
        return None
    given = get(p, t, "dir", w, str, None, empty=False)
    if given is not None and capture is not None and Path(given) != capture:
        p.error("journal.dir", f"and ami.capture ({capture}) name two journals: keep journal.dir only")
    where, path = ("journal.dir", Path(given)) if given else ("ami.capture", capture)
    return JournalConfig(
        dir=path or default_dir(store_path), key=where if path else "",
        fsync_interval_ms=get(p, t, "fsync_interval_ms", w, float, 50.0, lo=1, hi=10_000),
        segment_mb=get(p, t, "segment_mb", w, float, 64.0, lo=0.01, hi=4096),
        retention_days=get(p, t, "retention_days", w, float, 7.0, lo=0, hi=3650),
        checkpoint_s=get(p, t, "checkpoint_s", w, float, 5.0, lo=0.1, hi=3600),
    )  # fmt: skip
