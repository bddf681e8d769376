"""The supervisor desk end to end: the daemon on the lab with the example's call flow, the page in
headless Chromium (Playwright), a real call through the greeting to a lab agent (Ana Torres, a
Local-channel agent). A supervisor signs in and sees Ana talking to the caller in the grid, barges
in -- the daemon Originates from the supervisor's phone to ChanSpy on Ana's channel, and the
lab's AMI shows ChanSpyStart with Ana's channel as the spyee --, pauses Ana with a reason from the
page (QueueMemberPause with it), and an agent account is refused the page.

The supervisor's phone is a Local channel into [lab-callers] (it answers at once and listens),
so ChanSpy really runs on the PBX against the agent's live call; a SIPp phone receiving the
audio is not checked here."""

from __future__ import annotations

import asyncio
import re
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
from .phones import LabPhones
from .test_callflow import reset_members
from .test_desk import Phones
from .test_wallboard import ARTIFACTS, browser

__all__ = ["browser"]  # the module's Chromium fixture
ANA = "9104"  # Ana Torres in the lab example: water and complaints
NUMBER = "13800000001"  # Zhang San in examples/callers.csv
PASSWORD = "lab passphrase, long enough"
SUP_PHONE = "Local/9201@lab-callers"  # answers at once and listens (asterisk_conf/extensions.conf)
ROW = 'tr[data-agent="Ana Torres"]'


class TalkingPhones(Phones):
    """Ana answers after 1 s and talks 60 s (time to barge in and pause); the caller presses 4."""

    def run(self) -> None:
        async def main() -> None:
            async with LabPhones(self.lab.ami_port) as phones:
                self.phones, self.loop = phones, asyncio.get_running_loop()
                await reset_members(phones)
                await phones.agent_rings(ANA, 1.0)
                phones.talk_s[ANA] = 60
                phones.keys[(NUMBER, "menu1")] = "4"
                self.ready.set()
                await asyncio.to_thread(self.done.wait, 600)

        asyncio.run(main())


def grant_supervisor_actions(root: Path) -> None:
    """The daemon's AMI user needs write classes `user` and `originate`, and the PBX app_chanspy
    (asterisk_conf has both). A lab started from an older checkout lacks them: add them there."""
    conf = root / "etc/asterisk/manager.conf"
    text = conf.read_text(encoding="utf-8")
    section = text.index("[acdbridge]")
    m = re.compile(r"^write = (.*)$", re.M).search(text, section)
    assert m is not None, "the lab's manager.conf has no write line for [acdbridge]"
    classes = m[1].split(",")
    missing = [c for c in ("user", "originate") if c not in classes]
    if missing:
        line = "write = " + ",".join([*classes, *missing])
        conf.write_text(text[: m.start()] + line + text[m.end() :], encoding="utf-8")
        pbx.asterisk_cli(root, "manager reload")
    shown = pbx.asterisk_cli(root, "module show like app_chanspy").stdout
    if "app_chanspy" not in shown:
        pbx.asterisk_cli(root, "module load app_chanspy.so")
    assert "app_chanspy" in pbx.asterisk_cli(root, "module show like app_chanspy").stdout, (
        "app_chanspy.so did not load in the lab"
    )


@pytest.fixture
def sup_lab(lab: pbx.LabSettings) -> Iterator[pbx.LabSettings]:
    grant_supervisor_actions(lab.root)
    build_lab_prompts(lab.root)
    pbx.asterisk_cli(lab.root, "channel request hangup all")
    yield lab
    pbx.asterisk_cli(lab.root, "channel request hangup all")


def shoot(page: Page, name: str) -> None:
    for width, height in ((1280, 720), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)  # one layout pass
        page.screenshot(path=str(ARTIFACTS / f"supervisor-{name}-{width}x{height}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 720})


def sign_in(page: Page, base: str, user: str) -> None:
    page.goto(f"{base}/supervisor")
    assert urlsplit(page.url).path == "/signin"  # signed out: the sign-in page first
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#submit")


def test_a_supervisor_sees_a_live_call_barges_in_and_pauses_the_agent(
    sup_lab: pbx.LabSettings, tmp_path: Path, browser: Any
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra = flow_config() + f'\n[supervisor]\nphones = {{ sue = "{SUP_PHONE}" }}\n'
    daemon = DaemonProcess(tmp_path, sup_lab.ami_port, http_port=port, extra=extra, board_public=False)
    store = SqliteStore(daemon.store_path)
    hashed = passwords.hash_password(PASSWORD)
    store.put_account(Account("sue", Role.SUPERVISOR, queues=("water", "complaints")), hashed)
    store.put_account(Account("ana", Role.AGENT, agent="Ana Torres"), hashed)
    store.save_login("Ana Torres", time.time())  # logged in: the membership sync adds her at start
    store.close()
    phones = TalkingPhones(sup_lab)
    phones.start()
    assert phones.ready.wait(30), "the lab's phones did not start"
    daemon.start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    try:
        sign_in(page, base, "sue")
        page.wait_for_selector("#link:text('live')", timeout=10_000)
        assert urlsplit(page.url).path == "/supervisor"
        page.wait_for_selector(f"{ROW}[data-state=ready]", timeout=30_000)

        assert phones.phones is not None
        phones.do(phones.phones.call(NUMBER, "6000"))
        page.wait_for_selector(f"{ROW}[data-state=talking]", timeout=60_000)
        assert page.inner_text(f"{ROW} td.caller") == NUMBER
        assert page.inner_text(f"{ROW} td.queue") == "complaints"
        connect = phones.wait("AgentConnect", 5, "Ana answers", calleridnum=NUMBER)
        ana_channel = connect["destchannel"]
        shoot(page, "talking")

        page.click(f"{ROW} button[data-action=barge]")
        spy = phones.wait("ChanSpyStart", 15, "ChanSpy on Ana's channel", spyeechannel=ana_channel)
        assert spy["spyerchannel"].startswith(SUP_PHONE), spy
        page.wait_for_selector("#done:text('barge Ana Torres: done')", timeout=5_000)

        page.select_option("#reason", "lunch")
        page.click(f"{ROW} button[data-action=pause]")
        phones.wait("QueueMemberPause", 10, "the pause", paused="1", pausedreason="lunch")
        page.wait_for_selector(f"{ROW}[data-paused='1'] td.st:has-text('(paused: lunch)')", timeout=5_000)
        shoot(page, "paused")
        page.select_option("#lang", "zh")  # what the script built is re-worded in place
        page.wait_for_selector("h1:text('班长席')", timeout=5_000)
        assert page.inner_text(f"{ROW} button[data-action=barge]") == "强插"
        assert "\uff08暂停\uff1alunch\uff09" in (page.text_content(f"{ROW} td.st") or "")  # full-width ( : )
        shoot(page, "paused-zh")
        page.click(f"{ROW} button[data-action=unpause]")
        phones.wait("QueueMemberPause", 10, "the unpause", paused="0")

        agent_page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
        sign_in(agent_page, base, "ana")
        agent_page.wait_for_url(re.compile(r"/supervisor$"), timeout=10_000)
        resp = agent_page.goto(f"{base}/supervisor")
        assert resp is not None and resp.status == 403
        assert "needs the supervisor role" in agent_page.inner_text("body")
        agent_page.context.close()
    finally:
        context.close()
        phones.done.set()
        phones.join(30)
        assert daemon.stop() == 0
    store = SqliteStore(daemon.store_path)
    try:
        audit = [(e.actor, e.action, e.target, e.outcome) for e in store.audit_entries(0, 1e12, 100)]
    finally:
        store.close()
    for action in ("barge", "pause", "unpause"):
        assert ("sue", action, "Ana Torres", "ok") in audit, audit
