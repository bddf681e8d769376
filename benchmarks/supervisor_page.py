"""The supervisor page's own cost at 500 agents and 50 queues, in headless Chromium: the daemon's
real site (loopback, an admin signed in) over benchmarks/supervisor_grid.py's synthetic engine,
ticked every 0.1 s as the daemon's board refresh. Chromium's Performance metrics (CDP
Performance.getMetrics: ScriptDuration, LayoutDuration, RecalcStyleDuration) are read over a quiet
spell first (the baseline in the same run: the page's own once-a-second clock, no update) and
then under traffic; printed per second and per update. Screenshots of the 500-agent grid at
1280x720 and 1920x1080 go to build/test-artifacts/.
Run: .venv/bin/python benchmarks/supervisor_page.py [--seconds 30]"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import CDPSession, async_playwright

from acdbridge.access import passwords
from acdbridge.access.model import Account, Role
from acdbridge.access.service import AccessService
from acdbridge.adapters.store import SqliteStore
from acdbridge.adapters.web.site import build_site
from acdbridge.core.kpi import KpiConfig
from acdbridge.core.supgrid import TimeLimits
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.supervisor import SupervisorFeed
from acdbridge.runtime.views import Views
from acdbridge.settings.accessconf import AccessConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from supervisor_grid import QUEUES, T0, Traffic, centre, members

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "build" / "test-artifacts"
PASSWORD = "a long benchmark passphrase"
METRICS = ("ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "TaskDuration")
# counts the stream's messages in the page (an init script is injected by CDP: not under the CSP)
COUNT = """(() => { const E = window.EventSource; window.acdMessages = 0;
  window.EventSource = function (url, opts) { const es = new E(url, opts);
    es.addEventListener("message", () => { window.acdMessages += 1; }); return es; }; })()"""


async def metrics(cdp: CDPSession) -> dict[str, float]:
    got: dict[str, Any] = await cdp.send("Performance.getMetrics")
    return {m["name"]: float(m["value"]) for m in got["metrics"] if m["name"] in METRICS}


async def run(seconds: float, quiet_s: float, store_dir: Path) -> None:
    flow, profiles = centre()
    engine = Engine(KpiConfig(), dict.fromkeys(QUEUES, 10.0))
    engine.feed_bytes(members(profiles), 0.0)
    views = Views(engine, KpiConfig())
    clock = [T0]
    limits = TimeLimits({"break": 60.0, "wrapup": 5.0, "talking": 10.0})  # rows go amber and red
    feed = SupervisorFeed(engine, views, lambda: flow, limits)
    store = SqliteStore(store_dir / "s.sqlite")
    store.put_account(Account("admin", Role.ADMIN), passwords.hash_password(PASSWORD))
    access = AccessService(store, AccessConfig())
    server = build_site("127.0.0.1", 0, lambda: b"", lambda: (True, {}), access=access, supervisor=feed,
                        clock=lambda: clock[0])  # fmt: skip
    await server.start()
    traffic = Traffic(profiles, 2.0)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            await page.add_init_script(COUNT)
            base = f"http://127.0.0.1:{server.port}"
            await page.goto(f"{base}/supervisor")
            await page.fill("#username", "admin")
            await page.fill("#password", PASSWORD)
            await page.click("#submit")
            await page.wait_for_selector("#link:text('live')", timeout=20_000)
            await page.wait_for_function(
                "document.querySelectorAll('#rows tr').length === 500", timeout=20_000
            )
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Performance.enable")

            async def spell(span: float, busy: bool) -> tuple[dict[str, float], int]:
                before, seen = await metrics(cdp), int(await page.evaluate("window.acdMessages"))
                for _ in range(int(span / 0.1)):
                    clock[0] += 0.1
                    if busy:
                        engine.feed_bytes(traffic.until(clock[0], 0.1), clock[0])
                        engine.advance(clock[0])
                        server.tick()
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.3)  # the last update's render
                after, now_seen = await metrics(cdp), int(await page.evaluate("window.acdMessages"))
                return {k: (after[k] - before[k]) * 1000 for k in METRICS}, now_seen - seen

            quiet, _ = await spell(quiet_s, busy=False)
            busy, updates = await spell(seconds, busy=True)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for width, height in ((1280, 720), (1920, 1080)):
                await page.set_viewport_size({"width": width, "height": height})
                await page.wait_for_timeout(200)
                await page.screenshot(path=str(ARTIFACTS / f"supervisor-500-{width}x{height}.png"))
            await page.select_option("#f-state", "talking")  # past 10 s amber, past 20 s red
            await page.wait_for_timeout(1200)
            await page.screenshot(path=str(ARTIFACTS / "supervisor-500-talking-1920x1080.png"))
            await browser.close()
    finally:
        await server.stop()
        store.close()
    print(f"500 agents, 50 queues, {traffic.n / seconds:.2f} calls/s for {seconds:g} s: {updates} updates "
          f"({updates / seconds:.2f}/s); quiet spell {quiet_s:g} s (the page's clock only)")  # fmt: skip
    print(f"{'Chromium, ms':<22} {'quiet, per s':>14} {'traffic, per s':>15} {'per update':>11}")
    for k in METRICS:
        extra = (busy[k] - quiet[k] * seconds / quiet_s) / max(updates, 1)  # the clock's share taken out
        print(f"  {k:<20} {quiet[k] / quiet_s:>14.2f} {busy[k] / seconds:>15.2f} {extra:>11.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--quiet-seconds", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.seconds, args.quiet_seconds, Path(tmp)))


if __name__ == "__main__":
    main()
