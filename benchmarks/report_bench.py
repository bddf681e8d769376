"""Interval-report speed: `acdbridge report` of a month by half hour by queue, SQLite and PostgreSQL.

A month of a 1,000-seat centre is about 1.5 M queue visits. The visits are the recorded lab
traces' own records (tests/fixtures/traces, as benchmarks/store_bench.py writes them), repeated
with fresh uniqueids and spread evenly over 30 days; they are written through each backend's
write() in the daemon's batches, then `acdbridge report --interval 30m --by queue` (JSON to
/dev/null) runs as a command, timed whole (start-up, the store's reads, kpis_over per interval,
the output). Prints figures and the PostgreSQL/SQLite ratio; asserts nothing about timing.

Beside the command (the one-pass path, core/reportsums.py), the same report is made by the
reference path (kpis_over per interval, reportcli.rows(scan=True)) in a child process of its own
over the same store: the benchmark prints the reference/new ratio and checks the two JSON
outputs are byte-equal.

    nice -n 10 .venv/bin/python benchmarks/report_bench.py                  # 150,000 visits (quick)
    nice -n 10 .venv/bin/python benchmarks/report_bench.py --visits 1500000 # the month, ~6 min
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `import acdbridge` and tests.pg even without the editable install
sys.path.insert(0, str(ROOT / "benchmarks"))  # the store benchmark's visit generator

from store_bench import MONTH_S, START, batches, templates  # noqa: E402

from acdbridge.adapters.store import PostgresStore, SqliteStore  # noqa: E402
from tests.pg import remove_cluster, start_cluster  # noqa: E402

Store = SqliteStore | PostgresStore


def fill(store: Store, n: int) -> float:
    started = time.perf_counter()
    for batch in batches(n, templates()):
        store.write(batch, [])
    return time.perf_counter() - started


Figures = tuple[float, float, float, bytes]


def scan_child(db: str, out: Path) -> None:
    """The month's report by the reference path (kpis_over per interval), as the command writes it."""
    from acdbridge.cli import open_db
    from acdbridge.core.kpi import KpiConfig
    from acdbridge.core.report import ReportConfig, targets_of
    from acdbridge.reportcli import render, rows

    cfg, rcfg, store = KpiConfig(), ReportConfig(), open_db(db)
    made = list(rows(store, cfg, rcfg, START, START + MONTH_S, "30m", "queue", scan=True))
    store.close()
    out.write_bytes(render({"rows": made, "targets": targets_of(cfg, rcfg)}, "json", ""))


def run_report(where: list[str], env: dict[str, str], scan: bool = False) -> Figures:
    """(wall seconds, CPU seconds, peak RSS in MB, output) of the month's report as a command
    (scan: by the reference path). CPU time (user + system, the child's alone) says more than
    wall time on a machine shared with other work."""
    times = ["--from", str(START), "--to", str(START + MONTH_S), "--interval", "30m", "--by", "queue"]
    command = [sys.executable, "-m", "acdbridge", "report", *where, *times]
    if scan:
        command = [sys.executable, __file__, "--scan-child", where[-1]]  # --out follows, as for the command
    peak_kb = 0
    with tempfile.NamedTemporaryFile() as out:
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.Popen([*command, "--out", out.name], env={**os.environ, **env}, cwd=ROOT)
        while proc.poll() is None:
            try:  # the child's own peak (its rusage would carry ours over from the fork)
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        assert proc.returncode == 0, proc.returncode
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        return seconds, cpu, peak_kb / 1024, Path(out.name).read_bytes()


def both(where: list[str], env: dict[str, str], name: str, figures: dict[str, Figures]) -> None:
    figures[name] = run_report(where, env)
    figures[f"{name} (kpis_over)"] = old = run_report(where, env, scan=True)
    assert old[3] == figures[name][3], f"{name}: the two paths' reports differ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, default=150_000, help="visits in the month (default 150,000)")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--scan-child", metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scan_child:
        return scan_child(args.scan_child, args.out)
    n = args.visits
    print(f"$ {shlex.join(['benchmarks/report_bench.py', *sys.argv[1:]])}")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; {n:,} visits over 30 days", flush=True)
    figures: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="acdbridge-report-bench-") as tmp:
        lite = SqliteStore(Path(tmp) / "bench.sqlite")
        print(f"SQLite filled in {fill(lite, n):.0f} s", flush=True)
        lite.close()
        both(["--db", str(lite.path)], {}, "SQLite", figures)
    if not args.skip_postgres:
        cluster = start_cluster()
        try:
            pg = PostgresStore(cluster.create_database(), password=cluster.password)
            print(f"PostgreSQL filled in {fill(pg, n):.0f} s", flush=True)
            pg.close()
            both(["--db", pg.url], {"PGPASSWORD": cluster.password}, "PostgreSQL", figures)
        finally:
            remove_cluster(cluster)
    print(f"\nacdbridge report, 30 days by 30m by queue (1,440 intervals), {n:,} visits")
    print(f"{'':26}{'wall s':>9}{'CPU s':>8}{'visits/s':>11}{'peak MB':>9}{'output KB':>11}")
    for name, (seconds, cpu, mb, out) in figures.items():
        print(f"{name:26}{seconds:>9.2f}{cpu:>8.2f}{n / seconds:>11,.0f}{mb:>9,.0f}{len(out) / 1024:>11,.0f}")
    for name in ("SQLite", "PostgreSQL"):
        if name in figures:
            (wall_new, cpu_new, *_), (wall_old, cpu_old, *_) = figures[name], figures[f"{name} (kpis_over)"]
            ratios = f"{wall_old / wall_new:.2f}x wall, {cpu_old / cpu_new:.2f}x CPU"
            print(f"{name}: kpis_over path / new path: {ratios} (outputs byte-equal)")
    if "PostgreSQL" in figures:
        (wall_l, cpu_l, *_), (wall_p, cpu_p, *_) = figures["SQLite"], figures["PostgreSQL"]
        print(
            f"PostgreSQL/SQLite: {wall_p / wall_l:.2f}x wall, {cpu_p / cpu_l:.2f}x CPU of the report process "
            "(PostgreSQL's own server CPU not included)"
        )


if __name__ == "__main__":
    main()
