"""The store of benchmarks/recovery_bench.py: the visits and agent states of one copy of the
recorded lab traces (replayed through the Pipeline: real records), cloned with their own ids at
4,000 visits a day back from now, written through SqliteStore.write (the daemon's own write path
and schema) until the file holds the size asked for. Built once into build/recovery-bench/ and
copied for each run; a copy is topped up to now, so the KPI windows' recent rows are there as
live."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ami_load import one_copy  # noqa: E402
from fake_pbx import BANNER, getconfig_reply  # noqa: E402

from acdbridge.adapters.store import SqliteStore  # noqa: E402
from acdbridge.adapters.store.schema import LATEST  # noqa: E402
from acdbridge.core.pipeline import Pipeline, Record  # noqa: E402

CACHE = ROOT / "build" / "recovery-bench"
VISITS_PER_DAY = 4_000


def template() -> tuple[list[Record], list[Record], float]:
    """One copy of the lab traces replayed: its visits, its agent states, its period."""
    visits: list[Record] = []
    states: list[Record] = []
    p = Pipeline(on_visit=visits.append, on_agent_state=states.append)
    p.feed_bytes(BANNER + getconfig_reply("acdbridge-getconfig-queues"))
    frames, period = one_copy()
    for _, frame in frames:
        p.feed_bytes(frame)
    p.finish()
    return visits, states, period


def shifted(value: Any, dt: float, prefix: str) -> Any:
    """A record with every *_ts moved by dt and its call ids given their own prefix."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k.endswith("_ts") and isinstance(v, float):
                out[k] = v + dt
            elif k in ("uniqueid", "linkedid") and isinstance(v, str):
                out[k] = prefix + v
            else:
                out[k] = shifted(v, dt, prefix)
        return out
    if isinstance(value, list):
        return [shifted(v, dt, prefix) for v in value]
    return value


def write_history(store: SqliteStore, since: float, until: float, first_copy: int,
                  max_bytes: int | None = None) -> int:  # fmt: skip
    """Copies of the template's records ending between since and until (or until the file holds
    max_bytes), newest first, 200 copies a transaction; how many copies."""
    visits, states, _ = template()
    spacing = 86_400.0 * len(visits) / VISITS_PER_DAY
    end = max(v["end_ts"] for v in visits)
    k = 0
    while until - k * spacing > since:
        batch_v: list[Record] = []
        batch_s: list[Record] = []
        for j in range(k, k + 200):
            dt = until - j * spacing - end
            prefix = f"h{first_copy + j}-"
            batch_v += (shifted(v, dt, prefix) for v in visits)
            batch_s += (shifted(s, dt, prefix) for s in states)
        store.write(batch_v, batch_s)
        k += 200
        if max_bytes is not None and store.path.stat().st_size + wal_size(store.path) >= max_bytes:
            break
    return k


def wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def cached_store(gb: float) -> tuple[Path, dict[str, Any]]:
    """The store of --store-gb, built once (build/recovery-bench/), with what it holds."""
    path = CACHE / f"store-{gb:g}gb-schema{LATEST}.sqlite"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(path.name + "*"):
        old.unlink()
    started = time.perf_counter()
    now = time.time()
    store = SqliteStore(path)
    copies = write_history(store, 0.0, now, 0, int(gb * 1e9))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    meta = {"built_at": now, "copies": copies, "seconds": round(time.perf_counter() - started, 1)}
    meta_path.write_text(json.dumps(meta))
    return path, meta


def store_copy(gb: float, where: Path) -> dict[str, Any]:
    """A copy of the cached store, topped up with the visits of the time since it was built."""
    cached, meta = cached_store(gb)
    shutil.copyfile(cached, where)
    store = SqliteStore(where)
    now = time.time()
    newest = store.db.execute("SELECT MAX(end_ts) FROM visits").fetchone()[0] or now
    write_history(store, newest + 1.0, now, int(meta["copies"]) + int(now))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {t: store.count(t) for t in ("visits", "agent_states")}
    store.close()
    span = now - (sqlite3.connect(where).execute("SELECT MIN(end_ts) FROM visits").fetchone()[0] or now)
    return {**counts, "bytes": where.stat().st_size, "days": span / 86_400, "built_s": meta["seconds"]}
