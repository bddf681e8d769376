"""`acdbridge replay TRACE`: a raw AMI capture or a journal through the live daemon's engine."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from acdbridge.adapters.journal import CONNECT, QUEUE_LOG, TornTail, iter_inputs
from acdbridge.adapters.metrics import new_registry, render
from acdbridge.adapters.store import Store
from acdbridge.config import Config
from acdbridge.core.kpi import Kpis, kpis_over
from acdbridge.core.pipeline import Record
from acdbridge.core.webhooks import wants_call_events
from acdbridge.errors import AcdError
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.track import QUEUE_SIZE
from acdbridge.runtime.views import Views
from acdbridge.runtime.writer import BATCH, StoreWriter


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


def replay(path: Path, cfg: Config | None = None, finish: bool = True,
           on_problem: Callable[[str], None] | None = None) -> Engine:  # fmt: skip
    """The whole trace through the engine the live daemon uses (runtime/engine.py), record by
    record as it was read, each chunk with its receive time (so a PBX without timestampevents
    replays to the same times); `finish` ends the calls in progress as at an orderly stop."""
    cfg = cfg or Config()
    engine = Engine(cfg.kpi, cfg.wrapup_s, limits=cfg.limits, on_problem=on_problem)
    for _ in feed(engine, path, finish):
        pass
    return engine


def feed(engine: Engine, path: Path, finish: bool = True) -> Iterator[None]:
    """Feed the trace to `engine` chunk by chunk, as it was read; yields after each chunk, so a
    caller can act between them (replay_into_store drains the store writer there)."""
    torn: list[TornTail] = []
    for kind, chunk, received_at in read_inputs(path, torn):
        engine.feed_record(kind, chunk, received_at or 0.0)
        yield
    for tail in torn:  # expected after a crash: the last record was being written
        engine.pipeline.problems.count(
            "journal_torn_tail", f"{tail.path} at byte {tail.offset}: {tail.reason}"
        )
    if finish:
        engine.finish()


async def replay_into_store(path: Path, cfg: Config, store: Store,
                            on_problem: Callable[[str], None] | None = None) -> StoreWriter:  # fmt: skip
    """`acdbridge replay TRACE --db STORE`: the trace through the daemon's engine into the daemon's
    store writer (runtime/writer.py), as the start after a crash replays a journal tail
    (runtime/recovery.py): the writer is drained whenever a batch is queued, so a long trace
    never overflows its queue. Visits, agent states, IVR legs and feedback land in their tables
    exactly as the live daemon writes them (idempotent keys: a second replay adds nothing)."""
    writer = StoreWriter(store, QUEUE_SIZE, hooks=cfg.webhooks, pbx=cfg.store.pbx)  # the daemon's size
    engine = Engine(cfg.kpi, cfg.wrapup_s, lambda o: writer.put(o.kind, o.record), cfg.limits,
                    on_problem=on_problem, call_events=wants_call_events(cfg.webhooks))  # fmt: skip
    for _ in feed(engine, path):
        if writer.queue.qsize() >= BATCH:
            await writer.drain()
    await writer.drain()
    return writer


def replay_records(path: Path, wrapup_s: dict[str, float] | None = None,
                   on_problem: Callable[[str], None] | None = None) -> list[Record]:  # fmt: skip
    cfg = Config() if wrapup_s is None else dataclasses.replace(Config(), wrapup_s=wrapup_s)
    return replay(path, cfg, on_problem=on_problem).records("visit")


def dumps(record: Record) -> str:
    # strict: NaN or Infinity is not JSON; a record holding one is a bug, never silently written
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def replay_kpis(
    path: Path, cfg: Config | None = None, on_problem: Callable[[str], None] | None = None
) -> Kpis:
    """KPIs over the whole trace (every visit and agent stretch in it, however long)."""
    cfg = cfg or Config()
    engine = replay(path, cfg, on_problem=on_problem)
    return kpis_over(engine.records("visit"), engine.records("agent_state"), cfg.kpi,
                     feedback=engine.records("feedback"))  # fmt: skip


def replay_legs(path: Path) -> list[Record]:
    """The greeting legs, dispositions and survey scores in the trace, in time order, each with
    "record": "ivr_leg" | "feedback"."""
    engine = replay(path)
    out = [{"record": "ivr_leg", **leg} for leg in engine.records("ivr")]
    out += [{"record": "feedback", **f} for f in engine.records("feedback")]
    return sorted(out, key=lambda r: float(r.get("end_ts", r.get("ts", 0.0))))


def replay_metrics(path: Path, cfg: Config | None = None, now: float | None = None,
                   on_problem: Callable[[str], None] | None = None) -> bytes:  # fmt: skip
    """The core's Prometheus exposition the daemon would serve at `now` (default: the trace's
    last event time) after the trace: counters, live gauges, KPI windows (runtime/views.py)."""
    cfg = cfg or Config()
    engine = replay(path, cfg, finish=False, on_problem=on_problem)
    if now is None:
        now = engine.now
    else:  # the clock moved on to `now`: wrap-ups due by then have ended, as in the daemon
        engine.advance(now)
    views = Views(engine, cfg.kpi)
    if cfg.flow is not None:
        views.oncall_hotlines = cfg.flow.oncall_hotlines
    views.refresh_windows(now)
    registry, collector = new_registry(cfg.store.pbx)
    collector.publish(views.families(now))
    return render(registry)
