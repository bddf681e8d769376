"""The real Asterisk 22 lab, brought up once per test run. If it cannot start, every test that
needs it fails with the reason: integration tests never skip."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from acdbridge.errors import LabError
from acdbridge.lab import pbx
from tests.conftest import LAB_FACTS

from .daemon_harness import free_port, stop_leftovers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.asterisk)


@pytest.fixture(scope="session")
def lab_settings() -> pbx.LabSettings:
    return pbx.LabSettings()


@pytest.fixture(scope="session")
def lab(lab_settings: pbx.LabSettings, request: pytest.FixtureRequest) -> Iterator[pbx.LabSettings]:
    was_running = pbx.running_state(lab_settings) is not None
    try:
        pbx.up(lab_settings, print)
    except LabError as exc:
        pytest.fail(f"the Asterisk lab could not start: {exc}", pytrace=False)
    version = pbx.asterisk_cli(lab_settings.root, "core show version").stdout.split(" built by")[0]
    ami = f"{lab_settings.host}:{lab_settings.ami_port}"
    request.config.stash[LAB_FACTS] = f"{version} in {lab_settings.root}, AMI {ami}"
    yield lab_settings
    if not was_running:  # leave a lab someone else started as we found it
        pbx.down(lab_settings, print)


@contextlib.contextmanager
def running_prometheus(work: Path, targets: list[int]) -> Iterator[int]:
    """Debian's Prometheus on loopback scraping `targets` every second, its tsdb in `work`; its
    port once ready. Fails (never skips) when the binary is missing or it does not start."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: install Debian's prometheus package (make test does)")
    web = free_port()
    work.mkdir(parents=True, exist_ok=True)
    config = work / "prometheus.yml"
    listed = ", ".join(f"'127.0.0.1:{t}'" for t in targets)
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: acdbridge\n    static_configs:\n"
        f"      - targets: [{listed}]\n"
    )
    with (work / "prometheus.log").open("w") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{web}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{web}/-/ready", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.3)
            else:
                pytest.fail(f"prometheus did not start: {(work / 'prometheus.log').read_text()[-2000:]}")
            yield web
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """(prometheus port, the port it scrapes acdbridge on)."""
    target = free_port()
    with running_prometheus(tmp_path, [target]) as web:
        yield web, target


@pytest.fixture(autouse=True)
def no_daemon_left_behind() -> Iterator[None]:
    """A test that fails half-way must not leave `acdbridge run` watching the next test's calls."""
    yield
    stop_leftovers()
