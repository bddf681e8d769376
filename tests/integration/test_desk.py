"""The agent desk end to end: the daemon on the lab with the example's call flow, the page in
headless Chromium (Playwright), a real call through the greeting to a lab agent. The agent signs
in and logs in from the page; the call rings and the screen pop shows the caller (the
AgentCalled -> page time is printed: the goal is 300 ms); the disposition picked in wrap-up ends
it (the stored visit's wrap_s says so); pause and unpause from the page reach app_queue
(QueueMemberPause with the reason). Screenshots at 1280x720, 1920x1080 and 390x844 are kept."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from acdbridge.access import passwords
from acdbridge.access.model import Account, Role
from acdbridge.adapters.store import SqliteStore
from acdbridge.lab import pbx

from .daemon_harness import DaemonProcess, build_lab_prompts, flow_config, free_port
from .phones import Event, LabPhones, event
from .test_callflow import reset_members
from .test_wallboard import ARTIFACTS, browser

__all__ = ["browser"]  # the module's Chromium fixture
ANA = "9104"  # Ana Torres in the lab example: water and complaints
NUMBER = "13800000001"  # Zhang San in examples/callers.csv: account W-100231
PASSWORD = "lab passphrase, long enough"
SIZES = [(1280, 720), (1920, 1080), (390, 844)]
# when the screen pop's caller first shows, by the page's clock (the host's: the same machine)
POP_CLOCK = """
new MutationObserver(() => {
  const el = document.getElementById("pop-caller");
  if (el && el.textContent.trim() && !window.popShownAt) window.popShownAt = Date.now();
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


class Phones(threading.Thread):
    """The lab's phones on their own loop: Ana answers after 4 s and talks 5 s; the caller
    presses 4 (complaint). `seen` collects the AMI events the test waits for."""

    def __init__(self, lab: pbx.LabSettings) -> None:
        super().__init__(daemon=True)
        self.lab, self.go, self.done = lab, threading.Event(), threading.Event()
        self.phones: LabPhones | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        async def main() -> None:
            async with LabPhones(self.lab.ami_port) as phones:
                self.phones, self.loop = phones, asyncio.get_running_loop()
                await reset_members(phones)
                await phones.agent_rings(ANA, 4.0)  # time for the ringing pop's screenshots
                phones.talk_s[ANA] = 5
                phones.keys[(NUMBER, "menu1")] = "4"
                self.ready.set()
                await asyncio.to_thread(self.done.wait, 600)  # the test's calls run on this loop

        asyncio.run(main())

    def do(self, coro: Any, timeout: float = 90) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def wait(self, name: str, within_s: float, what: str, **headers: str) -> Event:
        assert self.phones is not None
        return self.do(self.phones.wait_for(event(name, **headers), within_s, what))  # type: ignore[no-any-return]


def grant_user_events(root: Path) -> None:
    """The desk's disposition is a UserEvent: write class `user` (asterisk_conf/manager.conf has
    it). A lab started from an older checkout lacks it; add it there and reload the manager
    (only sessions that log in afterwards, this test's daemon, get it)."""
    conf = root / "etc/asterisk/manager.conf"
    text = conf.read_text(encoding="utf-8")
    old = "write = agent,reporting,config\n"
    if "[acdbridge]" in text and old in text:
        conf.write_text(text.replace(old, "write = agent,reporting,config,user\n", 1), encoding="utf-8")
        pbx.asterisk_cli(root, "manager reload")


@pytest.fixture
def desk_lab(lab: pbx.LabSettings) -> Iterator[pbx.LabSettings]:
    grant_user_events(lab.root)
    build_lab_prompts(lab.root)
    pbx.asterisk_cli(lab.root, "channel request hangup all")  # members are reset by Phones
    yield lab
    pbx.asterisk_cli(lab.root, "channel request hangup all")


def shoot(page: Page, name: str) -> None:
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)  # one layout pass
        page.screenshot(path=str(ARTIFACTS / f"desk-{name}-{width}x{height}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 720})


def _in_the_browsers_language(browser: Any, base: str) -> None:
    """A browser set to Chinese gets the sign-in page and the desk in Chinese; the switcher turns
    it to Spanish, and the choice holds across a reload."""
    context = browser.new_context(viewport={"width": 1280, "height": 720}, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{base}/desk")
        page.wait_for_selector("label[for=username]:text('用户名')", timeout=5_000)
        page.fill("#username", "ana")
        page.fill("#password", PASSWORD)
        page.click("#submit")
        page.wait_for_selector("#link:text('实时')", timeout=10_000)
        page.wait_for_selector("#state:text('就绪')", timeout=5_000)
        assert page.inner_text("#login") == "签入" and page.inner_text("#signout") == "退出登录"
        assert page.inner_text(".fig[data-figure=answered] .name") == "接听数"
        assert page.get_attribute("html", "lang") == "zh"
        page.screenshot(path=str(ARTIFACTS / "desk-zh-1280x720.png"))
        page.select_option("#lang", "es")
        page.wait_for_selector("#state:text('Disponible')", timeout=5_000)
        assert page.inner_text(".fig[data-figure=answered] .name") == "Llamadas atendidas"
        page.reload()
        page.wait_for_selector("#state:text('Disponible')", timeout=10_000)
        assert page.inner_text("#pause") == "Pausa"
        page.screenshot(path=str(ARTIFACTS / "desk-es-1280x720.png"))
    finally:
        context.close()


def test_the_agent_desk_pops_the_caller_and_its_buttons_act_as_the_feature_codes(
    desk_lab: pbx.LabSettings, tmp_path: Path, browser: Any
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = DaemonProcess(
        tmp_path, desk_lab.ami_port, http_port=port, extra=flow_config(), board_public=False
    )
    store = SqliteStore(daemon.store_path)
    store.put_account(Account("ana", Role.AGENT, agent="Ana Torres"), passwords.hash_password(PASSWORD))
    store.close()
    daemon.start()
    phones = Phones(desk_lab)
    phones.start()
    assert phones.ready.wait(30), "the lab's phones did not start"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.add_init_script(POP_CLOCK)
    page = context.new_page()
    try:
        page.goto(f"{base}/desk")
        assert urlsplit(page.url).path == "/signin"  # signed out: sign in first, then back here
        page.fill("#username", "ana")
        page.fill("#password", PASSWORD)
        page.click("#submit")
        page.wait_for_selector("#link:text('live')", timeout=10_000)
        assert urlsplit(page.url).path == "/desk"
        page.click("#login")  # as *51
        page.wait_for_selector("body[data-state=ready]", timeout=20_000)

        assert phones.phones is not None
        phones.do(phones.phones.call(NUMBER, "6000"))
        # the page first, then the event; the time is the page's own (POP_CLOCK): Playwright's
        # wait polls every 500 ms once it has waited a while, which would add up to that
        page.wait_for_selector(f"#pop-caller:text('{NUMBER}')", timeout=60_000)
        shown = page.evaluate("() => window.popShownAt") / 1000
        called = phones.wait("AgentCalled", 5, "Ana rings", calleridnum=NUMBER)
        latency_ms = (shown - float(called["received"])) * 1000
        print(f"AMI AgentCalled to the screen pop on the page: {latency_ms:.0f} ms")
        assert page.inner_text("#pop-account") == "W-100231"
        assert page.inner_text("#pop-name") == "Zhang San"
        assert page.inner_text("#pop-calltype") == "complaint"
        assert page.inner_text("#pop-hotline") == "water"
        shoot(page, "ringing")
        page.wait_for_selector("body[data-state=talking]", timeout=10_000)
        page.wait_for_selector("body[data-state=wrapup]", timeout=20_000)  # the caller's wrap-up: 15 s
        shoot(page, "wrapup")
        wrap_seen = time.monotonic()
        page.click("#dispositions button[data-code=resolved]")  # as *551
        page.wait_for_selector("body[data-state=ready]", timeout=10_000)
        assert time.monotonic() - wrap_seen < 12, "the disposition did not end the wrap-up"
        # (the UserEvent itself is not visible to the lab's AMI user: the store shows it, below)

        page.select_option("#reason", "lunch")
        page.click("#pause")  # as *532
        phones.wait("QueueMemberPause", 10, "the pause", paused="1", pausedreason="lunch")
        page.wait_for_selector("#state:text('Paused: lunch')", timeout=10_000)
        shoot(page, "paused")
        page.click("#unpause")  # as *54
        phones.wait("QueueMemberPause", 10, "the unpause", paused="0")
        page.wait_for_selector("body[data-state=ready]", timeout=10_000)
        _in_the_browsers_language(browser, base)
    finally:
        context.close()
        phones.done.set()
        phones.join(30)
        assert daemon.stop() == 0
    store = SqliteStore(daemon.store_path)
    try:
        (visit,) = [v for v in store.visits(0, 1e12) if v["caller"] == NUMBER]
        feedback = store.feedback(0, 1e12)
        audit = [(e.actor, e.action, e.outcome) for e in store.audit_entries(0, 1e12, 100)]
    finally:
        store.close()
    assert visit["agent"] == "Ana Torres" and visit["queue"] == "complaints"
    # the disposition ended the wrap-up a few seconds in, long before app_queue's 15 s wrapuptime
    assert visit["wrap_s"] is not None and float(visit["wrap_s"]) < 10.0
    assert ("disposition", "resolved", visit["uniqueid"]) in {
        (f["kind"], f["value"], f["uniqueid"]) for f in feedback
    }
    for action in ("login", "disposition", "pause", "unpause"):
        assert ("ana", action, "ok") in audit
