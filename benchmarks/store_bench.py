"""Store throughput, SQLite against PostgreSQL: visits/s written in the daemon's batches of 500,
and `export`-style reads of one month of a 1,000-seat centre (about 1.5 M queue visits).

Prints figures and PostgreSQL/SQLite ratios from one run; it asserts nothing about timing. Run
from the repository root (as root it starts PostgreSQL as the user acdtest-pg, as the tests do):

    nice -n 10 .venv/bin/python benchmarks/store_bench.py [--quick | --visits N]

The visits are the recorded lab traces' own records (tests/fixtures/traces), repeated with fresh
uniqueids and spread evenly over 30 days. PostgreSQL is a throwaway cluster from tests/pg.py
(initdb in a temp dir, default durability: every batch's COMMIT waits for its WAL fsync); SQLite
is the daemon's WAL file with synchronous=NORMAL (no fsync per commit, one at each checkpoint)."""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `import acdbridge` and tests.pg even without the editable install

import psycopg  # noqa: E402

from acdbridge.adapters.store import PostgresStore, SqliteStore  # noqa: E402
from acdbridge.replay import replay_records  # noqa: E402
from tests.pg import remove_cluster, start_cluster  # noqa: E402

TRACES = ROOT / "tests" / "fixtures" / "traces"
BATCH = 500  # the daemon's writer batch (runtime/writer.py)
MONTH_S = 30 * 86400.0
START = 1_796_083_200.0  # 2026-12-01T00:00Z
Store = SqliteStore | PostgresStore


def templates() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("mixed.ami.gz", "edge.ami", "sip_hold.ami", "smoke.ami"):
        out += replay_records(TRACES / name)
    return out


def batches(n: int, base: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """n visits in batches of BATCH, end times spread over the month in order (as they end)."""
    step = MONTH_S / n
    for first in range(0, n, BATCH):
        batch = []
        for i in range(first, min(first + BATCH, n)):
            t = base[i % len(base)]
            shift = START + i * step - t["end_ts"]
            uid = f"bench-{i}.{i % 97}"
            batch.append(t | {"uniqueid": uid, "linkedid": uid, "enter_ts": t["enter_ts"] + shift,
                              "answer_ts": None if t["answer_ts"] is None else t["answer_ts"] + shift,
                              "end_ts": t["end_ts"] + shift})  # fmt: skip
        yield batch


def write_all(store: Store, n: int, base: list[dict[str, Any]]) -> float:
    """Seconds spent in store.write alone (making the records is not the store's cost)."""
    spent = 0.0
    for batch in batches(n, base):
        started = time.perf_counter()
        new = store.write(batch, [])
        spent += time.perf_counter() - started
        assert new == len(batch), (new, len(batch))
    return spent


def timed(read: Callable[[], Iterable[dict[str, Any]]]) -> tuple[float, int]:
    """Seconds to read (and parse) every visit of a range, and how many: counted as they come,
    so the benchmark itself never holds a month of visits."""
    gc.collect()
    started = time.perf_counter()
    rows = sum(1 for _ in read())
    return time.perf_counter() - started, rows


def measure(store: Store, n: int, base: list[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    figures = {"write": (write_all(store, n, base), n)}
    again = next(batches(n, base))  # the first batch again: idempotent, nothing new
    started = time.perf_counter()
    assert store.write(again, []) == 0
    figures["rewrite"] = (time.perf_counter() - started, len(again))
    day = START + 15 * 86400
    figures["day"] = timed(lambda: store.visits(day, day + 86400))
    figures["queue"] = timed(lambda: store.each_visit(START, START + MONTH_S, "water"))
    figures["month"] = timed(lambda: store.each_visit(START, START + MONTH_S))
    return figures


def cli_export(where: list[str], env: dict[str, str]) -> tuple[float, float]:
    """`acdbridge export` of the month as JSON lines to /dev/null: (seconds, its peak RSS in MB).
    The peak is the child's VmHWM, read while it runs: its rusage would carry this process's
    own peak over from the fork (Linux keeps ru_maxrss across exec)."""
    times = ["--from", str(START), "--to", str(START + MONTH_S)]
    command = [sys.executable, "-m", "acdbridge", "export", *where, *times]
    peak_kb = 0
    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(command, stdout=sink, env={**os.environ, **env}, cwd=ROOT)
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
            except (OSError, IndexError, ValueError):
                pass  # between exit and reaping
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.returncode
    return seconds, peak_kb / 1024


def size_of(store: Store) -> int:
    if isinstance(store, SqliteStore):
        return sum(p.stat().st_size for p in store.path.parent.glob(store.path.name + "*"))
    return int(store._select("SELECT pg_database_size(current_database())", [])[0][0])


def report(results: dict[str, dict[str, tuple[float, int]]], sizes: dict[str, int], n: int) -> None:
    lite, pg = results["sqlite"], results["postgres"]
    print(f"\n{n:,} visits over 30 days, written in batches of {BATCH}")
    print(f"{'':42}{'SQLite':>14}{'PostgreSQL':>14}{'PG/SQLite':>11}")
    w_l, w_p = lite["write"][1] / lite["write"][0], pg["write"][1] / pg["write"][0]
    print(f"{'write, visits/s':42}{w_l:>14,.0f}{w_p:>14,.0f}{w_p / w_l:>10.2f}x")
    b_l, b_p = lite["write"][0] / n * BATCH * 1000, pg["write"][0] / n * BATCH * 1000
    print(f"{'one batch of 500, ms':42}{b_l:>14.1f}{b_p:>14.1f}{b_p / b_l:>10.2f}x")
    r_l, r_p = lite["rewrite"][0] * 1000, pg["rewrite"][0] * 1000
    print(f"{'the same batch again (0 new), ms':42}{r_l:>14.1f}{r_p:>14.1f}{r_p / r_l:>10.2f}x")
    for key, label in (("day", "export one day"), ("queue", "export one queue, month"),
                       ("month", "each_visit, the month")):  # fmt: skip
        (s_l, rows), (s_p, rows_p) = lite[key], pg[key]
        assert rows == rows_p, (key, rows, rows_p)
        print(f"{label + f' ({rows:,} visits), s':42}{s_l:>14.2f}{s_p:>14.2f}{s_p / s_l:>10.2f}x")
        print(f"{'  visits/s read':42}{rows / s_l:>14,.0f}{rows / s_p:>14,.0f}")
    mb_l, mb_p = sizes["sqlite"] / 1e6, sizes["postgres"] / 1e6
    print(f"{'on disk, MB':42}{mb_l:>14,.0f}{mb_p:>14,.0f}{mb_p / mb_l:>10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, default=1_500_000, help="visits in the month (default 1.5 M)")
    parser.add_argument("--quick", action="store_true", help="150,000 visits (a tenth of the month)")
    args = parser.parse_args()
    n = 150_000 if args.quick else args.visits
    print(f"$ {shlex.join(['benchmarks/store_bench.py', *sys.argv[1:]])}")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}", flush=True)
    base = templates()
    results: dict[str, dict[str, tuple[float, int]]] = {}
    sizes: dict[str, int] = {}
    exports: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="acdbridge-bench-") as tmp:
        lite = SqliteStore(Path(tmp) / "bench.sqlite")
        results["sqlite"], sizes["sqlite"] = measure(lite, n, base), size_of(lite)
        lite.close()
        exports["sqlite"] = cli_export(["--db", str(lite.path)], {})
        print(f"SQLite done: {n / results['sqlite']['write'][0]:,.0f} visits/s written")
    cluster = start_cluster()
    try:
        with psycopg.connect(cluster.url(), password=cluster.password) as db:
            print(str(db.execute("SELECT version()").fetchone()).split(" on ")[0].strip("('"))
        pg = PostgresStore(cluster.create_database(), password=cluster.password)
        results["postgres"], sizes["postgres"] = measure(pg, n, base), size_of(pg)
        pg.close()
        exports["postgres"] = cli_export(["--url", pg.url], {"PGPASSWORD": cluster.password})
    finally:
        remove_cluster(cluster)
    report(results, sizes, n)
    (s_l, mb_l), (s_p, mb_p) = exports["sqlite"], exports["postgres"]
    print(f"{'acdbridge export, the month, s':42}{s_l:>14.2f}{s_p:>14.2f}{s_p / s_l:>10.2f}x")
    print(f"{'  peak RSS of the export, MB':42}{mb_l:>14,.0f}{mb_p:>14,.0f}")


if __name__ == "__main__":
    main()
