"""The desk's HTTP side over real loopback HTTP (adapters/web/desk.py on the daemon's site): who
may open which desk, who may press its buttons, CSRF, the audit rows, the AMI actions the
buttons send (the feature codes' own), and the live stream's screen pop at AgentCalled."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from acdbridge.access import passwords
from acdbridge.access.model import Account, AuditEntry, Role
from acdbridge.access.service import AccessService
from acdbridge.adapters.agentactions import AgentActions
from acdbridge.adapters.members import MembershipSync
from acdbridge.adapters.store import SqliteStore
from acdbridge.adapters.web.server import WebServer
from acdbridge.adapters.web.site import build_site
from acdbridge.core.kpi import KpiConfig
from acdbridge.core.routing import AgentProfile, RoutingConfig, SkillGroup
from acdbridge.flowconfig import Disposition, FlowConfig
from acdbridge.runtime.desk import DeskFeed
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.views import Views
from acdbridge.settings.accessconf import AccessConfig
from tests.test_web_access import client, sign_in

pytestmark = pytest.mark.timeout(60)
PW = "a long passphrase for everyone"
T0 = 1_800_000_000.0
ACCOUNTS = [
    Account("admin", Role.ADMIN),
    Account("sue", Role.SUPERVISOR, queues=("water",)),
    Account("bob", Role.SUPERVISOR, queues=("broadband",)),
    Account("wang", Role.AGENT, agent="Wang Fang"),
    Account("li", Role.AGENT, agent="Li Lei"),
]
FLOW = FlowConfig(
    profiles={
        "Wang Fang": AgentProfile("Wang Fang", "9101", "PJSIP/9101", {"water": 3}),
        "Li Lei": AgentProfile("Li Lei", "9102", "PJSIP/9102", {"broadband": 3}),
    },
    routing=RoutingConfig(groups=(SkillGroup("water", "water"), SkillGroup("broadband", "broadband"))),
    dispositions={"1": Disposition("resolved", True), "2": Disposition("callback", False)},
)


def ami(name: str, ts: float, **headers: str) -> bytes:
    lines = [f"Event: {name}", f"Timestamp: {ts:.6f}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


MEMBER = {"Queue": "water", "Interface": "PJSIP/9101", "MemberName": "Wang Fang", "Paused": "0"}
CALLER = {"Uniqueid": "c1", "Linkedid": "c1", "CallerIDNum": "13900000001", "CallerIDName": "Zhang Wei"}


@pytest.fixture(scope="module")
def hashed() -> str:
    return passwords.hash_password(PW)


@pytest.fixture
def store(tmp_path: Path, hashed: str) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "s.sqlite")
    for account in ACCOUNTS:
        s.put_account(account, hashed)
    yield s
    s.close()


class Site:
    def __init__(self, server: WebServer, engine: Engine, sent: list[dict[str, str]], access: AccessService):
        self.server, self.engine, self.sent, self.access = server, engine, sent, access
        self.base = f"http://127.0.0.1:{server.port}"

    async def audit(self) -> list[AuditEntry]:
        return await self.access.audit_entries(0, time.time() + 10, 100)


@asynccontextmanager
async def site(store: SqliteStore) -> AsyncIterator[Site]:
    sent: list[dict[str, str]] = []

    async def send(fields: dict[str, str]) -> dict[str, str]:
        sent.append(fields)
        return {"Response": "Success"}

    engine = Engine(KpiConfig())
    engine.feed_bytes(b"Asterisk Call Manager/5.0.0\r\n" + ami("QueueMemberAdded", T0, **MEMBER), 0.0)
    p = engine.pipeline
    actions = AgentActions(FLOW, MembershipSync(FLOW, p.members, send, store), p.agents, p.members, send)
    access = AccessService(store, AccessConfig(lock_after=5, lock_min=15))
    feed = DeskFeed(engine, Views(engine, KpiConfig()), store)
    server = build_site("127.0.0.1", 0, lambda: b"", lambda: (True, {}), access=access, actions=actions,
                        desk=feed, clock=lambda: engine.now)  # fmt: skip
    await server.start()
    try:
        yield Site(server, engine, sent, access)
    finally:
        await server.stop()


async def csrf_of(http: aiohttp.ClientSession, s: Site) -> str:
    body: dict[str, Any] = await (await http.get(f"{s.base}/api/me")).json()
    return str(body["csrf"])


def test_an_agent_opens_their_own_desk_only_and_a_supervisor_of_their_queue_reads_it(
    store: SqliteStore,
) -> None:
    async def main() -> None:
        async with site(store) as s:
            async with client() as http:
                page = await http.get(f"{s.base}/desk", allow_redirects=False)
                assert page.status == 302 and page.headers["Location"].startswith("/signin?next=/desk")
                await sign_in(http, s, "wang")  # type: ignore[arg-type]
                page = await http.get(f"{s.base}/desk")
                html = await page.text()
                assert page.status == 200 and '<script src="/static/desk.js"' in html
                assert "<script>" not in html and "onclick" not in html  # the CSP: no inline script
                desk = await (await http.get(f"{s.base}/api/desk")).json()
                assert (desk["agent"], desk["state"], desk["own"], desk["since"]) == (
                    "Wang Fang",
                    "ready",
                    True,
                    T0,
                )
                assert {"key": "1", "code": "resolved"} in desk["dispositions"]
                other = await http.get(f"{s.base}/api/desk", params={"agent": "Li Lei"})
                assert other.status == 403 and "own desk only" in (await other.json())["error"]
            for who, status in (("sue", 200), ("bob", 403), ("admin", 200)):
                async with client() as http:
                    await sign_in(http, s, who)  # type: ignore[arg-type]
                    resp = await http.get(f"{s.base}/api/desk", params={"agent": "Wang Fang"})
                    assert resp.status == status, (who, await resp.text())
                    if status == 200:
                        assert (await resp.json())["own"] is False
                    none = await http.get(f"{s.base}/api/desk")
                    assert none.status == 400 and "?agent=NAME" in (await none.json())["error"]

    asyncio.run(main())


def test_the_buttons_send_the_feature_codes_actions_are_csrf_checked_and_audited(store: SqliteStore) -> None:
    async def main() -> None:
        async with site(store) as s, client() as http:
            await sign_in(http, s, "wang")  # type: ignore[arg-type]
            url = f"{s.base}/api/desk/Wang Fang"
            bare = await http.post(f"{url}/pause", json={"value": "lunch"})
            assert bare.status == 403 and "CSRF" in (await bare.json())["error"]
            headers = {"X-CSRF-Token": await csrf_of(http, s)}
            ok = await http.post(f"{url}/pause", json={"value": "2"}, headers=headers)  # *532: lunch
            assert ok.status == 200 and (await ok.json())["detail"] == "lunch"
            assert s.sent[-1] == {"Action": "QueuePause", "Interface": "PJSIP/9101", "Paused": "true",
                                  "Reason": "lunch"}  # fmt: skip
            bad = await http.post(f"{url}/pause", json={"value": "nap"}, headers=headers)
            assert bad.status == 400 and "not one of [pause_reasons]" in (await bad.json())["error"]
            assert (await http.post(f"{url}/unpause", headers=headers)).status == 200
            assert s.sent[-1]["Paused"] == "false"
            done = await http.post(f"{url}/disposition", json={"value": "resolved"}, headers=headers)
            assert done.status == 200
            assert s.sent[-1] == {"Action": "UserEvent", "UserEvent": "AcdDisposition",
                                  "Value": "PJSIP/9101|resolved|1"}  # fmt: skip  # *551's value
            unknown = await http.post(f"{url}/disposition", json={"value": "9"}, headers=headers)
            assert unknown.status == 400 and "resolved, callback" in (await unknown.json())["error"]
            theirs = await http.post(f"{s.base}/api/desk/Li Lei/pause", json={"value": "1"}, headers=headers)
            assert theirs.status == 403 and "only the agent" in (await theirs.json())["error"]
            nothing = await http.post(f"{url}/dance", headers=headers)
            assert nothing.status == 404 and "no desk action" in (await nothing.json())["error"]
            rows = [(e.actor, e.action, e.target, e.outcome, e.detail) for e in await s.audit()]
            assert ("wang", "pause", "Wang Fang", "ok", "lunch") in rows
            assert ("wang", "pause", "Wang Fang", "refused", "unknown reason") in rows
            assert ("wang", "unpause", "Wang Fang", "ok", "") in rows
            assert ("wang", "disposition", "Wang Fang", "ok", "resolved") in rows
            assert ("wang", "pause", "Li Lei", "refused", "not their own desk") in rows
        async with site(store) as s, client() as http:  # a supervisor reads, never presses
            await sign_in(http, s, "sue")  # type: ignore[arg-type]
            headers = {"X-CSRF-Token": await csrf_of(http, s)}
            resp = await http.post(f"{s.base}/api/desk/Wang Fang/logout", headers=headers)
            assert resp.status == 403 and s.sent == []

    asyncio.run(main())


async def next_desk(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            line = await resp.content.readline()
            assert line, "the stream ended"
            if line.startswith(b"data: "):
                data: dict[str, Any] = json.loads(line[6:])
                return data


async def data_line(resp: aiohttp.ClientResponse) -> bytes:
    """The next event's data line (blank lines and heartbeats skipped); the stream must not end."""
    while True:
        line = await resp.content.readline()
        assert line, "the stream ended"
        if line.startswith(b"data: "):
            return line


def test_the_stream_pops_the_caller_at_agent_called(store: SqliteStore) -> None:
    async def main() -> None:
        async with site(store) as s, client() as http:
            await sign_in(http, s, "wang")  # type: ignore[arg-type]
            resp = await http.get(f"{s.base}/api/desk/events")
            assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
            first = await next_desk(resp)
            assert first["desk"]["state"] == "ready" and first["desk"]["call"] is None
            greeting = [ami("VarSet", T0 + 1, Uniqueid="c1", Variable=v, Value=x)
                        for v, x in (("ACD_HOTLINE", "water"), ("__ACD_ACCOUNT", "W-1001"),
                                     ("__ACD_VIP", "1"), ("ACD_CALLTYPE", "repair"))]  # fmt: skip
            join = ami("QueueCallerJoin", T0 + 2, Queue="water", Position="1", Count="1", **CALLER)
            called = ami("AgentCalled", T0 + 7, Queue="water", Interface="PJSIP/9101",
                         MemberName="Wang Fang", DestUniqueid="a1", **CALLER)  # fmt: skip
            s.engine.feed_bytes(b"".join([*greeting, join, called]), 0.0)
            s.server.tick()  # as the daemon's board refresh does
            pop = await next_desk(resp)
            desk, call = pop["desk"], pop["desk"]["call"]
            assert desk["state"] == "ringing" and desk["since"] == T0 + 7 and pop["now"] == T0 + 7
            assert call["enter_ts"] == T0 + 2  # the page counts the wait from here
            assert (call["caller"], call["caller_name"], call["queue"], call["wait_s"]) == (
                "13900000001", "Zhang Wei", "water", None)  # fmt: skip
            assert call["card"]["account"] == "W-1001" and call["card"]["vip"] is True
            assert call["card"]["call_type"] == "repair" and call["card"]["hotline"] == "water"
            if not call["history_loaded"]:  # the store's answer comes as one more update
                assert (await next_desk(resp))["desk"]["call"]["history_loaded"] is True
            s.server.tick()
            s.server.tick()  # nothing changed: nothing is sent
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(data_line(resp), 0.5)
            resp.close()

    asyncio.run(main())
