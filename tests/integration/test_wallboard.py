"""The built-in wallboard and the sign-in end to end: the daemon on the lab, the pages in headless
Chromium (Debian's package, driven by Playwright), real calls placed in the lab. Screenshots of
the sign-in page, the wallboard and the audit page at 1280x720 and 1920x1080 are kept."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from acdbridge.access import passwords
from acdbridge.access.model import Account, Role
from acdbridge.adapters.store import SqliteStore
from acdbridge.lab import pbx, scenario, traffic

from .daemon_harness import DaemonProcess, flow_config, free_port

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
        # selectors, not wait_for_function: the page's CSP forbids the eval that one needs
        page.wait_for_selector('.tile[data-queue="water"] .led:text-matches("^WAIT 1")', timeout=15_000)
        shown = time.monotonic()
        assert joined, "the caller never joined the queue"
        latency = shown - joined[0]
        print(f"AMI QueueCallerJoin to wallboard tile: {latency * 1000:.0f} ms")
        assert latency < 1.0
        page.wait_for_selector('.agent[data-agent="Zhou Min"].ringing', timeout=5_000)
        # a red tile says which figure missed which target; a chip counts its time in state
        page.wait_for_selector('.tile.alarm[data-queue="water"] .missed:text("1 waiting, no agent ready")',
                               timeout=3_000)  # fmt: skip
        page.wait_for_selector('.agent[data-agent="Zhou Min"] .in:text-matches("^0:0[0-9]$")', timeout=3_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "wallboard.png"))
        # the caller gives up: the tile goes back to no one waiting, red for its service level
        page.wait_for_selector('.tile[data-queue="water"] .led:text-matches("^WAIT 0")', timeout=15_000)
        page.wait_for_selector('.tile.alarm[data-queue="water"] .missed:text("SL 0% below its 80% target")',
                               timeout=5_000)  # fmt: skip
        _led_lines_fit(page)
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


def test_a_tile_says_how_many_agents_the_queue_needs_and_has(
    lab: pbx.LabSettings, tmp_path: Path, browser: Browser
) -> None:
    """After the smoke scenario's answered calls (an AHT to staff for), each tile reads "need N,
    have M" from Erlang's figure and the members logged in and not paused, red exactly when N > M."""
    port = free_port()
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=port)
    daemon.start()
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#link:text('live')", timeout=10_000)
        # in a thread: Playwright's sync API holds this thread's event loop
        run = threading.Thread(
            target=lambda: asyncio.run(traffic.run_async(scenario.load("smoke"), lab, lambda _line: None)),
            daemon=True,
        )
        run.start()
        run.join(90)
        assert not run.is_alive(), "the smoke scenario did not finish in 90 s"
        # the KPI windows (and with them the staffing) are refreshed every 10 s
        need_have = '.tile[data-queue="water"] .staff:text-matches("^need [0-9]+, have [0-9]+")'
        staff = page.wait_for_selector(need_have, timeout=25_000)
        assert staff is not None
        text = staff.inner_text()
        match = re.match(r"need (\d+), have (\d+)", text)
        assert match, text
        need, have = int(match.group(1)), int(match.group(2))
        assert need >= 1, text  # answered calls in the last half hour need an agent
        short = "short" in (staff.get_attribute("class") or "")
        assert short == (need > have), f"{text!r}: red is {short}"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for width, height in VIEWPORTS:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(200)
            page.screenshot(path=str(ARTIFACTS / f"wallboard-staffing-{width}x{height}.png"))
            box = staff.bounding_box()
            tile_box = page.query_selector('.tile[data-queue="water"]')
            assert box is not None and tile_box is not None
            outer = tile_box.bounding_box()
            assert outer is not None and box["x"] + box["width"] <= outer["x"] + outer["width"]
    finally:
        page.close()
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop()


def _led_lines_fit(page: Page) -> None:
    """Each LED line fits its tile at both wall-screen sizes: the one shown, and the longest
    usual one ('SL 100%' was cut off at 1280x720 before)."""
    longest = "WAIT 99 LONG 99:59 SL 100%"
    for width, height in VIEWPORTS:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(200)  # the resize handler re-fits the lines
        page.screenshot(path=str(ARTIFACTS / f"wallboard-{width}x{height}.png"))
        for line in page.query_selector_all(".tile .led"):
            shown = line.evaluate("e => [e.textContent, e.scrollWidth, e.clientWidth]")
            assert shown[1] <= shown[2], f"LED line {shown[0]!r} overflows its tile at {width}x{height}"
            fits = line.evaluate(f"e => {{ e.style.fontSize = ''; e.textContent = {longest!r}; "
                                 "return e.scrollWidth <= e.clientWidth; }")  # fmt: skip
            assert fits, f"{longest!r} would be cut off at {width}x{height}"


def test_the_wallboard_token_is_enforced(lab: pbx.LabSettings, tmp_path: Path, browser: Browser) -> None:
    port = free_port()
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=port, board_public=False)
    with daemon.config.open("a") as f:
        f.write('token = "s3cret"\n')  # appended to the [http] table the harness wrote last
    daemon.start()
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{port}/?token=wrong")  # neither the key nor a session
        assert urlsplit(page.url).path == "/signin"
        page.goto(f"http://127.0.0.1:{port}/?token=s3cret")
        page.wait_for_selector("#link:text('live')", timeout=10_000)
        metrics = page.goto(f"http://127.0.0.1:{port}/metrics")  # scrapers never need the token
        assert metrics is not None and metrics.status == 200
    finally:
        page.close()
        assert daemon.stop() == 0


PASSWORD = "lab passphrase, long enough"
VIEWPORTS = [(1280, 720), (1920, 1080)]


def _accounts(daemon: DaemonProcess) -> None:
    """Accounts in the daemon's store before it starts (`acdbridge users add` writes the same rows)."""
    store = SqliteStore(daemon.store_path)
    hashed = passwords.hash_password(PASSWORD)
    store.put_account(Account("boss", Role.ADMIN), hashed)
    store.put_account(Account("wang", Role.AGENT, agent="Wang Fang"), hashed)
    store.put_account(Account("li", Role.VIEWER), hashed)
    store.close()


def _sign_in(page: Page, base: str, user: str, password: str = PASSWORD) -> None:
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#submit")


def _calls(lab: pbx.LabSettings) -> threading.Thread:
    run = threading.Thread(
        target=lambda: asyncio.run(traffic.run_async(scenario.parse(WAITING_CALL), lab, lambda _l: None)),
        daemon=True,
    )
    run.start()
    return run


def test_sign_in_roles_audit_and_sign_out_in_the_browser(
    lab: pbx.LabSettings, tmp_path: Path, browser: Browser
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=port, extra=flow_config(), board_public=False)
    _accounts(daemon)
    daemon.start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    calls = _calls(lab)  # a caller waiting in water while the pages are shot
    try:
        for width, height in VIEWPORTS:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.goto(f"{base}/audit")  # signed out: sent to sign in, and back after
            assert urlsplit(page.url).path == "/signin"
            page.screenshot(path=str(ARTIFACTS / f"signin-{width}x{height}.png"))
            _sign_in(page, base, "boss")
            page.wait_for_selector("#entries tr", timeout=10_000)
            assert urlsplit(page.url).path == "/audit"
            assert "sign_in" in page.inner_text("#entries")
            page.screenshot(path=str(ARTIFACTS / f"audit-{width}x{height}.png"))
            page.goto(f"{base}/")
            page.wait_for_selector("#link:text('live')", timeout=10_000)
            page.wait_for_selector('.tile[data-queue="water"]', timeout=10_000)
            page.wait_for_selector("#session:not([hidden])", timeout=5_000)
            page.screenshot(path=str(ARTIFACTS / f"wallboard-{width}x{height}.png"))
            if width == VIEWPORTS[0][0]:  # signed out in another tab: the board's stream ends too
                other = context.new_page()
                other.goto(f"{base}/audit")
                other.wait_for_selector("#session:not([hidden])", timeout=5_000)
                other.click("#signout")
                other.wait_for_url("**/signin", timeout=5_000)
                page.wait_for_url("**/signin?next=*", timeout=20_000)
            else:
                page.click("#signout")
                page.wait_for_url("**/signin", timeout=5_000)
            assert page.goto(f"{base}/api/me").status == 401  # type: ignore[union-attr]
            context.close()
        _agent_is_refused(browser, base)
    finally:
        calls.join(60)
        assert daemon.stop() == 0


def _agent_is_refused(browser: Browser, base: str) -> None:
    """An agent: 403 on the admins' page, and on the supervisor API for another agent."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/signin")
    _sign_in(page, base, "wang")
    page.wait_for_selector("#link:text('live')", timeout=10_000)
    audit = page.goto(f"{base}/audit")
    assert audit is not None and audit.status == 403
    page.goto(f"{base}/")
    status = page.evaluate(
        """async () => {
            const me = await (await fetch("/api/me")).json();
            const r = await fetch("/api/agents/" + encodeURIComponent("Zhou Min") + "/pause", {
                method: "POST", headers: {"X-CSRF-Token": me.csrf, "Content-Type": "application/json"},
                body: JSON.stringify({reason: "lunch"})});
            return [r.status, (await r.json()).error];
        }"""
    )
    assert status[0] == 403 and "your own desk only" in status[1], status
    no_csrf = page.evaluate(
        """async () => (await fetch("/api/agents/" + encodeURIComponent("Wang Fang") + "/unpause",
                                   {method: "POST"})).status"""
    )
    assert no_csrf == 403
    context.close()


def test_six_wrong_passwords_lock_the_account_in_the_browser(
    lab: pbx.LabSettings, tmp_path: Path, browser: Browser
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = DaemonProcess(tmp_path, lab.ami_port, http_port=port, board_public=False)
    _accounts(daemon)
    daemon.start()
    page = browser.new_page()
    try:
        page.goto(f"{base}/")
        for _ in range(5):
            _sign_in(page, base, "li", "not the password")
            page.wait_for_selector("#problem:text('wrong username or password')", timeout=10_000)
        _sign_in(page, base, "li")  # the right one, the 6th attempt: locked
        page.wait_for_selector("#problem:text('too many wrong passwords')", timeout=10_000)
        assert urlsplit(page.url).path == "/signin"
        assert page.goto(f"{base}/api/board").status == 401  # type: ignore[union-attr]
    finally:
        page.close()
        assert daemon.stop() == 0
