"""The built-in wallboard end to end: the daemon on the lab, the page in headless Chromium (Debian's
package, driven by Playwright), a real call placed in the lab. A screenshot is kept."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from acdbridge.lab import pbx, scenario, traffic

from .daemon_harness import DaemonProcess, free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("ACDBRIDGE_TEST_ARTIFACTS", Path(__file__).parents[2] / "build" / "test-artifacts")
)
# one agent who never answers and a caller who gives up after 6 s: the tile must show the wait
WAITING_CALL = {
    "name": "wallboard",
    "max_duration_s": 40,
    "queues": {"water": {"dial": "6000", "max_wait_s": 30}},
    "agents": [{"id": "9201", "name": "Zhou Min", "queues": ["water"], "ring_delay_s": "never"}],
    "calls": [{"at_s": 1, "queue": "water", "patience_s": 6}],
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: install Debian's chromium package (make test does)")
    with sync_playwright() as p:
        quiet = ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
        args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic", *quiet]
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


def led(page: Page, queue: str) -> str:
    return page.inner_text(f'.tile[data-queue="{queue}"] .led')


def test_a_call_in_the_lab_shows_on_the_wallboard_within_a_second(
    lab: pbx.LabSettings, tmp_path: Path, browser: Browser
) -> None:
    port = free_port()
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=port)
    daemon.start()
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#link:text('live')", timeout=10_000)
        page.wait_for_selector('.tile[data-queue="water"]', timeout=10_000)
        assert led(page, "water").startswith("WAIT 0")

        joined: list[float] = []

        def say(line: str) -> None:
            if "waits in water" in line:
                joined.append(time.monotonic())

        run = threading.Thread(
            target=lambda: asyncio.run(traffic.run_async(scenario.parse(WAITING_CALL), lab, say)), daemon=True
        )
        run.start()
        page.wait_for_function(
            "document.querySelector('.tile[data-queue=\"water\"] .led')?.textContent.startsWith('WAIT 1')",
            timeout=15_000,
            polling=50,
        )
        shown = time.monotonic()
        assert joined, "the caller never joined the queue"
        latency = shown - joined[0]
        print(f"AMI QueueCallerJoin to wallboard tile: {latency * 1000:.0f} ms")
        assert latency < 1.0
        page.wait_for_selector('.agent[data-agent="Zhou Min"].ringing', timeout=5_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "wallboard.png"))
        # the caller gives up: the tile goes back to no one waiting
        page.wait_for_function(
            "document.querySelector('.tile[data-queue=\"water\"] .led')?.textContent.startsWith('WAIT 0')",
            timeout=15_000,
        )
        run.join(60)
        # the page reconnects by itself after a daemon restart
        assert daemon.stop() == 0
        page.wait_for_selector("#link.down", timeout=10_000)
        daemon.start()
        page.wait_for_selector("#link:text('live')", timeout=15_000)
    finally:
        page.close()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop()


def test_the_wallboard_token_is_enforced(lab: pbx.LabSettings, tmp_path: Path, browser: Browser) -> None:
    port = free_port()
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=port)
    with daemon.config.open("a") as f:
        f.write('token = "s3cret"\n')  # appended to the [http] table the harness wrote last
    daemon.start()
    page = browser.new_page()
    try:
        denied = page.goto(f"http://127.0.0.1:{port}/")
        assert denied is not None and denied.status == 403
        page.goto(f"http://127.0.0.1:{port}/?token=s3cret")
        page.wait_for_selector("#link:text('live')", timeout=10_000)
        metrics = page.goto(f"http://127.0.0.1:{port}/metrics")  # scrapers never need the token
        assert metrics is not None and metrics.status == 200
    finally:
        page.close()
        assert daemon.stop() == 0
