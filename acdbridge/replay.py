"""`acdbridge replay TRACE`: a raw AMI capture through the same core as the live daemon."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from acdbridge.adapters.journal import CONNECT, QUEUE_LOG, TornTail, iter_inputs
from acdbridge.adapters.metrics import build_families, new_registry, render, window_kpis
from acdbridge.config import Config
from acdbridge.core.backfill import lines_of
from acdbridge.core.kpi import KpiEngine, Kpis, kpis_over
from acdbridge.core.pipeline import Pipeline, Record
from acdbridge.core.tallies import live_gauges
from acdbridge.errors import AcdError


class ReplayError(AcdError):
    code = "replay"
    exit_status = 2


def read_inputs(path: Path, torn: list[TornTail]) -> Iterator[tuple[int, bytes, float | None]]:
    """(kind, bytes, receive time) as they came (adapters/journal.py iter_inputs)."""
    try:
        yield from iter_inputs(path, torn)
    except FileNotFoundError as exc:
        raise ReplayError(f"no such trace: {path}") from exc
    except (OSError, EOFError, ValueError) as exc:
        raise ReplayError(f"cannot read trace {path}: {exc}") from exc


def read_chunks(path: Path) -> Iterator[bytes]:
    """The trace's AMI bytes alone, b"" at each new AMI connection."""
    for kind, data, _ in read_inputs(path, []):
        if kind != QUEUE_LOG:
            yield b"" if kind == CONNECT else data


def _feed(pipeline: Pipeline, path: Path, finish: bool = True) -> Pipeline:
    """The whole trace through the pipeline, as the live daemon fed it: a fresh parser at each
    new connection, each chunk with its receive time (so a PBX without timestampevents replays
    to the same times); `finish` ends open wrap-ups as at an orderly stop."""
    torn: list[TornTail] = []
    for kind, chunk, received_at in read_inputs(path, torn):
        if kind == CONNECT:  # as the live adapter and the crash recovery do: a parser per connection
            pipeline.parser = pipeline.new_parser()
        elif kind == QUEUE_LOG:  # the lines the daemon read for a gap: the same visits again
            pipeline.backfill(lines_of(chunk))
        else:
            pipeline.feed_bytes(chunk, received_at or 0.0)
    for tail in torn:  # expected after a crash: the last record was being written
        pipeline.problems.count("journal_torn_tail", f"{tail.path} at byte {tail.offset}: {tail.reason}")
    if finish:
        pipeline.finish()
    return pipeline


def replay_records(path: Path, wrapup_s: dict[str, float] | None = None,
                   on_problem: Callable[[str], None] | None = None) -> list[Record]:  # fmt: skip
    visits: list[Record] = []
    _feed(Pipeline(wrapup_s, on_visit=visits.append, on_problem=on_problem), path)
    return visits


def dumps(record: Record) -> str:
    # strict: NaN or Infinity is not JSON; a record holding one is a bug, never silently written
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _run(path: Path, cfg: Config, finish: bool) -> tuple[Pipeline, KpiEngine, list[Record], list[Record]]:
    visits: list[Record] = []
    states: list[Record] = []
    short = {q: c.short_abandon_s for q, c in cfg.kpi.queues.items()}
    pipeline = Pipeline(
        cfg.wrapup_s, on_visit=visits.append, on_agent_state=states.append, short_abandon_s=short
    )
    _feed(pipeline, path, finish)
    engine = KpiEngine(cfg.kpi)
    for v in visits:
        engine.add_visit(v)
    for s in states:
        engine.add_agent_state(s)
    for f in pipeline.feedback:
        engine.add_feedback(f)
    return pipeline, engine, visits, states


def replay_kpis(path: Path, cfg: Config | None = None) -> Kpis:
    """KPIs over the whole trace (every visit and agent stretch in it)."""
    cfg = cfg or Config()
    pipeline, _, visits, states = _run(path, cfg, finish=True)
    return kpis_over(visits, states, cfg.kpi, feedback=pipeline.feedback)


def replay_legs(path: Path) -> list[Record]:
    """The greeting legs, dispositions and survey scores in the trace, in time order, each with
    "record": "ivr_leg" | "feedback"."""
    pipeline = _feed(Pipeline(), path)
    out = [{"record": "ivr_leg", **leg} for leg in pipeline.ivr_legs]
    out += [{"record": "feedback", **f} for f in pipeline.feedback]
    return sorted(out, key=lambda r: float(r.get("end_ts", r.get("ts", 0.0))))


def replay_metrics(path: Path, cfg: Config | None = None) -> bytes:
    """The Prometheus exposition the daemon would serve after the trace's last event."""
    cfg = cfg or Config()
    pipeline, engine, _, _ = _run(path, cfg, finish=False)
    registry, collector = new_registry()
    now = pipeline.calls.now
    live = live_gauges(pipeline.calls, pipeline.agents, now)
    windows = window_kpis(engine, cfg.kpi, now)
    collector.publish(build_families(pipeline.tallies, live, None, windows, cfg.kpi))
    return render(registry)
