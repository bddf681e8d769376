"""The supervisor desk's HTTP side over real loopback HTTP (adapters/web/supervisor.py on the
daemon's site): who may open it and act from it (role and queue scope), CSRF, the audit rows, the
AMI actions the buttons send (the feature codes' own for pause/unpause/logout; Originate to
ChanSpy for listen/whisper/barge; the membership sync for a skill change), bad input named, and
the live stream sending only the rows that changed."""

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
from acdbridge.core.supgrid import TimeLimits
from acdbridge.flowconfig import FlowConfig
from acdbridge.runtime.engine import Engine
from acdbridge.runtime.supervisor import SupervisorFeed
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
]
FLOW = FlowConfig(
    profiles={
        "Wang Fang": AgentProfile("Wang Fang", "9101", "PJSIP/9101", {"water": 3}),
        "Li Lei": AgentProfile("Li Lei", "9102", "PJSIP/9102", {"broadband": 3}),
    },
    routing=RoutingConfig(groups=(SkillGroup("water", "water"), SkillGroup("broadband", "broadband"))),
)
PHONES = {"sue": "PJSIP/9201", "admin": "PJSIP/9200"}


def ami(name: str, ts: float, **headers: str) -> bytes:
    lines = [f"Event: {name}", f"Timestamp: {ts:.6f}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


WANG = {"Queue": "water", "Interface": "PJSIP/9101", "MemberName": "Wang Fang", "Paused": "0", "Penalty": "2"}
LI = {"Queue": "broadband", "Interface": "PJSIP/9102", "MemberName": "Li Lei", "Paused": "0", "Penalty": "2"}
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
    def __init__(self, server: WebServer, engine: Engine, sent: list[dict[str, str]], access: AccessService,
                 feed: SupervisorFeed, actions: AgentActions) -> None:  # fmt: skip
        self.server, self.engine, self.sent, self.access = server, engine, sent, access
        self.feed, self.actions = feed, actions
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
    engine.feed_bytes(b"Asterisk Call Manager/5.0.0\r\n" + ami("QueueMemberAdded", T0, **WANG)
                      + ami("QueueMemberAdded", T0, **LI), 0.0)  # fmt: skip
    p = engine.pipeline
    p.members.synced = True  # as after a QueueStatus: the membership sync may act
    actions = AgentActions(FLOW, MembershipSync(FLOW, p.members, send, store), p.agents, p.members, send)
    actions.members.logged_in = {"Wang Fang": T0, "Li Lei": T0}
    access = AccessService(store, AccessConfig(lock_after=5, lock_min=15))
    feed = SupervisorFeed(engine, Views(engine, KpiConfig()), lambda: actions.flow,
                          TimeLimits({"break": 900.0, "wrapup": 60.0}))  # fmt: skip
    server = build_site("127.0.0.1", 0, lambda: b"", lambda: (True, {}), access=access, actions=actions,
                        supervisor=feed, phones=PHONES, clock=lambda: engine.now)  # fmt: skip
    await server.start()
    try:
        yield Site(server, engine, sent, access, feed, actions)
    finally:
        await server.stop()


async def csrf_of(http: aiohttp.ClientSession, s: Site) -> str:
    body: dict[str, Any] = await (await http.get(f"{s.base}/api/me")).json()
    return str(body["csrf"])


def talking(s: Site) -> None:
    """Zhang Wei waits in water, rings Wang Fang and talks to him on PJSIP/9101-00000007."""
    join = ami("QueueCallerJoin", T0 + 2, Queue="water", Position="1", Count="1", **CALLER)
    called = ami("AgentCalled", T0 + 7, Queue="water", Interface="PJSIP/9101", MemberName="Wang Fang",
                 DestUniqueid="a1", DestChannel="PJSIP/9101-00000007", **CALLER)  # fmt: skip
    connect = ami("AgentConnect", T0 + 9, Queue="water", Interface="PJSIP/9101", MemberName="Wang Fang",
                  DestUniqueid="a1", DestChannel="PJSIP/9101-00000007", HoldTime="7", RingTime="2",
                  **CALLER)  # fmt: skip
    s.engine.feed_bytes(join + called + connect, 0.0)


def test_only_supervisors_open_the_desk_and_each_sees_their_queues(store: SqliteStore) -> None:
    async def main() -> None:
        async with site(store) as s:
            async with client() as http:
                page = await http.get(f"{s.base}/supervisor", allow_redirects=False)
                assert page.status == 302 and page.headers["Location"].startswith("/signin?next=/supervisor")
                assert (await http.get(f"{s.base}/api/supervisor")).status == 401
                await sign_in(http, s, "wang")  # type: ignore[arg-type]
                for path in ("/supervisor", "/api/supervisor", "/api/supervisor/events"):
                    resp = await http.get(f"{s.base}{path}")
                    assert resp.status == 403 and "supervisor role" in await resp.text(), path
            async with client() as http:
                await sign_in(http, s, "sue")  # type: ignore[arg-type]
                page = await http.get(f"{s.base}/supervisor")
                html = await page.text()
                assert page.status == 200 and '<script src="/static/supervisor.js"' in html
                assert "<script>" not in html and "style=" not in html and "onclick" not in html
                grid = await (await http.get(f"{s.base}/api/supervisor")).json()
                assert set(grid["rows"]) == {"Wang Fang"} and set(grid["queues"]) == {"water"}
                row = grid["rows"]["Wang Fang"]
                assert (row["state"], row["since"], row["queues"], row["level"]) == (
                    "ready",
                    T0,
                    ["water"],
                    "ok",
                )
                assert grid["phone"] == "PJSIP/9201" and grid["limits"]["break"] == 900.0
            async with client() as http:
                await sign_in(http, s, "admin")  # type: ignore[arg-type]
                grid = await (await http.get(f"{s.base}/api/supervisor")).json()
                assert set(grid["rows"]) == {"Wang Fang", "Li Lei"}

    asyncio.run(main())


def test_barge_originates_chanspy_on_the_agents_channel_in_scope_only(store: SqliteStore) -> None:
    async def main() -> None:
        async with site(store) as s:
            async with client() as http:
                await sign_in(http, s, "sue")  # type: ignore[arg-type]
                url, headers = f"{s.base}/api/supervisor/agents", {"X-CSRF-Token": await csrf_of(http, s)}
                bare = await http.post(f"{url}/Wang Fang/barge")
                assert bare.status == 403 and "CSRF" in (await bare.json())["error"]
                idle = await http.post(f"{url}/Wang Fang/barge", headers=headers)
                assert idle.status == 409 and "in no call" in (await idle.json())["error"]
                talking(s)
                grid = await (await http.get(f"{s.base}/api/supervisor")).json()
                row = grid["rows"]["Wang Fang"]
                assert (row["state"], row["caller"], row["call_queue"], row["answer_ts"], row["spyable"]) == (
                    "talking", "13900000001", "water", T0 + 9, True)  # fmt: skip
                for mode, options in (("listen", "qE"), ("whisper", "qwE"), ("barge", "qBE")):
                    ok = await http.post(f"{url}/Wang Fang/{mode}", headers=headers)
                    assert ok.status == 200, await ok.text()
                    assert s.sent[-1] == {"Action": "Originate", "Channel": "PJSIP/9201",
                                          "Application": "ChanSpy", "Data": f"PJSIP/9101-00000007,{options}",
                                          "CallerID": f"{mode} Wang Fang", "Timeout": "30000",
                                          "Async": "true"}  # fmt: skip
                sent = len(s.sent)
                out = await http.post(f"{url}/Li Lei/barge", headers=headers)
                assert out.status == 403 and "not in your queues (water)" in (await out.json())["error"]
                nobody = await http.post(f"{url}/Nobody/pause", json={"reason": "lunch"}, headers=headers)
                assert nobody.status == 404 and "no agent named" in (await nobody.json())["error"]
                dance = await http.post(f"{url}/Wang Fang/dance", headers=headers)
                assert dance.status == 404 and "listen, whisper, barge" in (await dance.json())["error"]
                assert len(s.sent) == sent
            async with client() as http:  # bob has no phone configured
                await sign_in(http, s, "bob")  # type: ignore[arg-type]
                headers = {"X-CSRF-Token": await csrf_of(http, s)}
                resp = await http.post(f"{s.base}/api/supervisor/agents/Li Lei/listen", headers=headers)
                assert resp.status == 409 and "[supervisor] phones" in (await resp.json())["error"]
            rows = [(e.actor, e.action, e.target, e.outcome) for e in await s.audit()]
            assert ("sue", "barge", "Wang Fang", "ok") in rows and (
                "sue",
                "listen",
                "Wang Fang",
                "ok",
            ) in rows
            assert ("sue", "barge", "Li Lei", "refused") in rows and (
                "bob",
                "listen",
                "Li Lei",
                "refused",
            ) in rows

    asyncio.run(main())


def test_pause_logout_and_skill_go_through_the_agent_actions(store: SqliteStore) -> None:
    async def main() -> None:
        async with site(store) as s, client() as http:
            await sign_in(http, s, "sue")  # type: ignore[arg-type]
            url, headers = (
                f"{s.base}/api/supervisor/agents/Wang Fang",
                {"X-CSRF-Token": await csrf_of(http, s)},
            )
            ok = await http.post(f"{url}/pause", json={"reason": "lunch"}, headers=headers)
            assert ok.status == 200 and (await ok.json())["detail"] == "lunch"
            assert s.sent[-1] == {"Action": "QueuePause", "Interface": "PJSIP/9101", "Paused": "true",
                                  "Reason": "lunch"}  # fmt: skip  # as *532
            bad = await http.post(f"{url}/pause", json={"reason": "nap"}, headers=headers)
            assert bad.status == 400 and "not one of [pause_reasons]" in (await bad.json())["error"]
            assert (await http.post(f"{url}/unpause", headers=headers)).status == 200
            assert s.sent[-1]["Paused"] == "false"
            # proficiency 3 -> 5: penalty 2 -> 0, applied at once by the membership sync
            skill = await http.post(f"{url}/skill", json={"skill": "water", "level": 5}, headers=headers)
            assert skill.status == 200 and (await skill.json())["detail"] == "water=5"
            assert s.sent[-1] == {"Action": "QueuePenalty", "Queue": "water", "Interface": "PJSIP/9101",
                                  "Penalty": "0"}  # fmt: skip
            assert s.actions.flow.profiles["Wang Fang"].skills == {"water": 5}
            s.actions.reload(FLOW)  # a SIGHUP keeps the live change
            assert s.actions.flow.profiles["Wang Fang"].skills == {"water": 5}
            wrong = (({"skill": "knitting", "level": 3}, "not one routing knows: broadband, water"),
                     ({"skill": "water", "level": 9}, "level must be an integer 0..5"),
                     ({"skill": "water", "level": "5"}, "level must be an integer 0..5"))  # fmt: skip
            for body, problem in wrong:
                resp = await http.post(f"{url}/skill", json=body, headers=headers)
                assert resp.status == 400 and problem in (await resp.json())["error"], body
            notjson = await http.post(f"{url}/pause", data=b"lunch", headers=headers)
            assert notjson.status == 400 and "not JSON" in (await notjson.json())["error"]
            logout = await http.post(f"{url}/logout", headers=headers)
            assert logout.status == 200 and "Wang Fang" not in s.actions.members.logged_in
            assert s.sent[-1] == {"Action": "QueueRemove", "Queue": "water", "Interface": "PJSIP/9101"}
            rows = [(e.actor, e.action, e.target, e.outcome, e.detail) for e in await s.audit()]
            assert ("sue", "pause", "Wang Fang", "ok", "lunch") in rows
            assert ("sue", "skill", "Wang Fang", "ok", "water=5") in rows
            assert ("sue", "logout", "Wang Fang", "ok", "") in rows
            assert any(r[:4] == ("sue", "skill", "Wang Fang", "refused") for r in rows)

    asyncio.run(main())


async def next_update(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            line = await resp.content.readline()
            assert line, "the stream ended"
            if line.startswith(b"data: "):
                data: dict[str, Any] = json.loads(line[6:])
                return data


def test_the_stream_sends_changed_rows_only_and_abandons_can_be_marked_handled(store: SqliteStore) -> None:
    async def main() -> None:
        async with site(store) as s, client() as http:
            await sign_in(http, s, "admin")  # type: ignore[arg-type]
            resp = await http.get(f"{s.base}/api/supervisor/events")
            first = await next_update(resp)
            assert first["full"] is True and set(first["rows"]) == {"Wang Fang", "Li Lei"}
            talking(s)
            s.server.tick()
            update = await next_update(resp)
            assert set(update["rows"]) == {"Wang Fang"} and "full" not in update  # Li Lei unchanged
            assert update["rows"]["Wang Fang"]["state"] == "talking"
            s.server.tick()  # nothing changed: nothing sent
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(next_update(resp), 0.5)
            # a caller waits 40 s in broadband and hangs up: an abandon to call back
            other = {
                "Uniqueid": "c2",
                "Linkedid": "c2",
                "CallerIDNum": "13900000002",
                "CallerIDName": "Li Na",
            }
            s.engine.feed_bytes(
                ami("QueueCallerJoin", T0 + 10, Queue="broadband", Position="1", Count="1", **other)
                + ami("QueueCallerAbandon", T0 + 50, Queue="broadband", Position="1", OriginalPosition="1",
                      HoldTime="40", **other)
                + ami("Hangup", T0 + 50, Cause="16", **other), 0.0)  # fmt: skip
            s.server.tick()
            update = await next_update(resp)
            (abandon,) = update["abandons"]
            assert (abandon["caller"], abandon["queue"], abandon["wait_s"]) == (
                "13900000002",
                "broadband",
                40.0,
            )
            headers = {"X-CSRF-Token": await csrf_of(http, s)}
            url = f"{s.base}/api/supervisor/abandons/handled"
            unknown = await http.post(url, json={"key": "nope"}, headers=headers)
            assert unknown.status == 404 and "no open abandoned call" in (await unknown.json())["error"]
            assert (await http.post(url, json={}, headers=headers)).status == 400
            done = await http.post(url, json={"key": abandon["key"]}, headers=headers)
            assert done.status == 200 and s.feed.handled[abandon["key"]].by == "admin"
            assert (await next_update(resp))["abandons"] == []
            resp.close()
            rows = [(e.actor, e.action, e.outcome) for e in await s.audit()]
            assert ("admin", "abandon_handled", "ok") in rows and (
                "admin",
                "abandon_handled",
                "refused",
            ) in rows
            # a restarted daemon reads its marks back from the audit log: the call stays handled
            restarted = SupervisorFeed(s.engine, Views(s.engine, KpiConfig()), lambda: s.actions.flow,
                                       TimeLimits({}))  # fmt: skip
            assert restarted.restore_handled(store.audit_actions("abandon_handled", "ok", 0.0)) == 1
            assert restarted.handled[abandon["key"]].by == "admin"
            assert store.audit_actions("abandon_handled", "ok", T0 + 1e9) == []  # only from `since`

    asyncio.run(main())
