"""`acdbridge replay TRACE`: a raw AMI capture through the same core as the live daemon."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from acdbridge.core.pipeline import Pipeline, Record
from acdbridge.errors import AcdError

CHUNK = 1 << 16


class ReplayError(AcdError):
    code = "replay"
    exit_status = 2


def _open(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_chunks(path: Path) -> Iterator[bytes]:
    """The capture's bytes as they came (.gz is decompressed)."""
    try:
        with _open(path) as f:
            while chunk := f.read(CHUNK):
                yield chunk
    except FileNotFoundError as exc:
        raise ReplayError(f"no such trace: {path}") from exc
    except (OSError, EOFError) as exc:
        raise ReplayError(f"cannot read trace {path}: {exc}") from exc


def replay_records(path: Path, wrapup_s: dict[str, float] | None = None,
                   on_problem: Callable[[str], None] | None = None) -> list[Record]:  # fmt: skip
    visits: list[Record] = []
    pipeline = Pipeline(wrapup_s, on_visit=visits.append, on_problem=on_problem)
    for chunk in read_chunks(path):
        pipeline.feed_bytes(chunk)
    pipeline.finish()
    return visits


def dumps(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def replay_metrics(path: Path, wrapup_s: dict[str, float] | None = None) -> bytes:
    """The Prometheus exposition the daemon would serve after the trace's last event."""
    from acdbridge.adapters.metrics import build_families, new_registry, render
    from acdbridge.core.tallies import live_gauges

    pipeline = Pipeline(wrapup_s)
    for chunk in read_chunks(path):
        pipeline.feed_bytes(chunk)
    registry, collector = new_registry()
    live = live_gauges(pipeline.calls, pipeline.agents, pipeline.calls.now)
    collector.publish(build_families(pipeline.tallies, live, None))
    return render(registry)
