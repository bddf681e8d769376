"""A CI-sized run of the AMI fuzz campaign (benchmarks/fuzz_ami.py): generated and mutated frames
through the parser, trackers, KPIs, board, metrics, a real SQLite store and strict JSON. Nothing
may escape, and memory must stay flat after warm-up. The full campaign (1,000,000 frames) and
its figures: docs/security.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz_ami.py"


def fuzz_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_ami", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_ami"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_fuzzed_frames_never_escape_and_memory_stays_bounded() -> None:
    fuzz = fuzz_module()
    figures = fuzz.run(200_000, seed=7, hypothesis_examples=500)
    assert figures.frames >= 200_000 and figures.messages > 60_000
    assert sum(figures.records.values()) > 1_000  # the mutated calls still make records downstream
    assert not figures.escapes, "\n".join(figures.first_escape.values())
    assert not figures.grew, figures.rss_mb
    assert {"timestamp_out_of_range", "not_ascii_digits", "malformed_frame"} <= figures.problems.keys()
