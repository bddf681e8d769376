"""Sign-in, roles, CSRF, /metrics credentials and HTTPS over real loopback HTTP: the daemon's web
site (adapters/web/site.py) with a real AccessService over a real SqliteStore, and AgentActions
whose AMI `send` records what the PBX would get."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from acdbridge.access import passwords, service
from acdbridge.access.model import Account, Role
from acdbridge.access.service import AccessService
from acdbridge.adapters.agentactions import AgentActions
from acdbridge.adapters.members import MembershipSync
from acdbridge.adapters.store import SqliteStore
from acdbridge.adapters.web.metrics import MetricsAuth
from acdbridge.adapters.web.server import WebServer
from acdbridge.adapters.web.site import Gates, build_site
from acdbridge.core.agents import AgentTracker
from acdbridge.core.routing import AgentProfile, MemberBook, RoutingConfig, SkillGroup
from acdbridge.flowconfig import FlowConfig
from acdbridge.settings.accessconf import AccessConfig
from acdbridge.settings.httpconf import check_tls, tls_context
from acdbridge.settings.problems import Problems

pytestmark = pytest.mark.timeout(60)
PW = "a long passphrase for everyone"
ACCOUNTS = [
    Account("admin", Role.ADMIN),
    Account("sue", Role.SUPERVISOR, queues=("water",)),
    Account("wang", Role.AGENT, agent="Wang Fang"),
    Account("li", Role.AGENT, agent="Li Lei"),
    Account("vic", Role.VIEWER),
]
FLOW = FlowConfig(
    profiles={
        "Wang Fang": AgentProfile("Wang Fang", "9101", "PJSIP/9101", {"water": 3}),
        "Li Lei": AgentProfile("Li Lei", "9102", "PJSIP/9102", {"broadband": 3}),
    },
    routing=RoutingConfig(groups=(SkillGroup("water", "water"), SkillGroup("broadband", "broadband"))),
)


@pytest.fixture(scope="module")
def hashed() -> str:
    return passwords.hash_password(PW)  # once: argon2 takes ~0.1 s


@pytest.fixture
def store(tmp_path: Path, hashed: str) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "s.sqlite")
    for account in ACCOUNTS:
        s.put_account(account, hashed)
    yield s
    s.close()


class Site:
    def __init__(self, server: WebServer, sent: list[dict[str, str]], scheme: str = "http") -> None:
        self.server, self.sent = server, sent
        self.base = f"{scheme}://127.0.0.1:{server.port}"


@asynccontextmanager
async def site(store: SqliteStore, *, tls: ssl.SSLContext | None = None, **gates: Any) -> AsyncIterator[Site]:
    sent: list[dict[str, str]] = []

    async def send(fields: dict[str, str]) -> dict[str, str]:
        sent.append(fields)
        return {"Response": "Success"}

    book = MemberBook()
    actions = AgentActions(FLOW, MembershipSync(FLOW, book, send, store), AgentTracker(), book, send)
    access = AccessService(store, AccessConfig(lock_after=5, lock_min=15))
    server = build_site("127.0.0.1", 0, lambda: b"acd_up 1\n", lambda: (True, {}), lambda: b'{"queues": {}}',
                        gates=Gates(**gates), tls=tls, access=access, actions=actions)  # fmt: skip
    await server.start()
    try:
        yield Site(server, sent, "https" if tls else "http")
    finally:
        await server.stop()


def client() -> aiohttp.ClientSession:
    # ssl=False: the HTTPS test's certificate is self-signed
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=False),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        timeout=aiohttp.ClientTimeout(total=20),
    )


async def sign_in(
    http: aiohttp.ClientSession, s: Site, user: str, password: str = PW
) -> aiohttp.ClientResponse:
    form = await (await http.get(f"{s.base}/signin")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf, form
    data = {"username": user, "password": password, "csrf": csrf[1], "next": "/"}
    return await http.post(f"{s.base}/signin", data=data, allow_redirects=False)


async def me(http: aiohttp.ClientSession, s: Site) -> dict[str, Any]:
    resp = await http.get(f"{s.base}/api/me")
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def test_sign_in_sets_a_strict_http_only_cookie_and_signed_out_browsers_go_to_signin(
    store: SqliteStore,
) -> None:
    async def main() -> None:
        async with site(store) as s, client() as http:
            page = await http.get(f"{s.base}/audit?x=1", allow_redirects=False)
            assert page.status == 302 and page.headers["Location"] == "/signin?next=/audit?x%3D1"
            api = await http.get(f"{s.base}/api/me")
            assert api.status == 401 and "not signed in" in (await api.json())["error"]
            signin = await http.get(f"{s.base}/signin")
            expected = {"Content-Security-Policy": "default-src 'self'", "Referrer-Policy": "no-referrer",
                        "X-Content-Type-Options": "nosniff"}  # fmt: skip
            for header, value in expected.items():
                assert value in signin.headers[header]
            assert "frame-ancestors 'none'" in signin.headers["Content-Security-Policy"]
            assert "unsafe-inline" not in signin.headers["Content-Security-Policy"]
            # one script only, from /static/ (it words the page in the browser's language)
            scripts = re.findall(r"<script[^>]*>", await signin.text())
            assert scripts == ['<script src="/static/i18n.js" defer>']
            ok = await sign_in(http, s, "wang")
            assert ok.status == 303 and ok.headers["Location"] == "/"
            cookie = next(c for c in ok.headers.getall("Set-Cookie") if c.startswith("acd_session="))
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
            assert (await me(http, s))["role"] == "agent"
            board = await http.get(f"{s.base}/api/board")
            assert board.status == 200
            csrf = (await me(http, s))["csrf"]
            out = await http.post(f"{s.base}/signout", data={"csrf": csrf}, allow_redirects=False)
            assert out.status == 303 and out.headers["Location"] == "/signin"
            assert (await http.get(f"{s.base}/api/me")).status == 401
        actions = [(e.actor, e.action, e.outcome) for e in store.audit_entries(0, 1e12)]
        assert ("", "sign_in", "ok") not in actions and ("wang", "sign_in", "ok") in actions
        assert ("wang", "sign_out", "ok") in actions

    asyncio.run(main())


def test_state_changing_requests_need_the_sessions_csrf_token(store: SqliteStore) -> None:
    async def main() -> None:
        async with site(store) as s, client() as http:
            assert (await sign_in(http, s, "wang")).status == 303
            url = f"{s.base}/api/agents/Wang%20Fang/pause"
            missing = await http.post(url, json={"reason": "lunch"})
            assert missing.status == 403 and "CSRF token missing" in (await missing.json())["error"]
            wrong = await http.post(url, json={"reason": "lunch"}, headers={"X-CSRF-Token": "x" * 43})
            assert wrong.status == 403 and "CSRF token wrong" in (await wrong.json())["error"]
            assert s.sent == []  # nothing reached the PBX
            csrf = {"X-CSRF-Token": (await me(http, s))["csrf"]}
            ok = await http.post(url, json={"reason": "lunch"}, headers=csrf)
            assert ok.status == 200, await ok.text()
            assert s.sent == [
                {"Action": "QueuePause", "Interface": "PJSIP/9101", "Paused": "true", "Reason": "lunch"}
            ]
            by_code = await http.post(url, json={"reason": "1"}, headers=csrf)  # the keypad code of "break"
            assert by_code.status == 200 and s.sent[-1]["Reason"] == "break"
            bad = await http.post(url, json={"reason": "nap"}, headers=csrf)
            assert bad.status == 400 and "not one of [pause_reasons]" in (await bad.json())["error"]
            not_json = await http.post(url, data=b"{", headers={**csrf, "Content-Type": "application/json"})
            assert not_json.status == 400 and "not JSON" in (await not_json.json())["error"]
            un = await http.post(f"{s.base}/api/agents/Wang%20Fang/unpause", headers=csrf)
            assert un.status == 200 and s.sent[-1]["Paused"] == "false"
            # a sign-in form posted from elsewhere (no form token of ours) is refused
            forged = await http.post(f"{s.base}/signin", data={"username": "wang", "password": PW})
            assert forged.status == 403 and "expired" in await forged.text()
            assert s.server.stats.csrf_refused == 3
        rows = [(e.actor, e.action, e.target, e.outcome) for e in store.audit_entries(0, 1e12)]
        assert rows.count(("wang", "pause", "Wang Fang", "ok")) == 2
        assert ("wang", "pause", "Wang Fang", "refused") in rows and (
            "wang",
            "unpause",
            "Wang Fang",
            "ok",
        ) in rows

    asyncio.run(main())


def test_roles_and_scopes_agent_own_desk_supervisor_own_queues(store: SqliteStore) -> None:
    async def act(http: aiohttp.ClientSession, s: Site, agent: str) -> tuple[int, str]:
        csrf = {"X-CSRF-Token": (await me(http, s))["csrf"]}
        r = await http.post(f"{s.base}/api/agents/{agent}/unpause", headers=csrf)
        return r.status, (await r.json()).get("error", "")

    async def main() -> dict[str, list[tuple[int, str]]]:
        out: dict[str, list[tuple[int, str]]] = {}
        async with site(store) as s:
            for user in ("wang", "sue", "admin", "vic"):
                async with client() as http:
                    assert (await sign_in(http, s, user)).status == 303
                    out[user] = [await act(http, s, "Wang Fang"), await act(http, s, "Li Lei"),
                                 await act(http, s, "Nobody")]  # fmt: skip
                    audit = await http.get(f"{s.base}/api/audit")
                    page = await http.get(f"{s.base}/audit")
                    out[user].append((audit.status, ""))
                    out[user].append((page.status, ""))
        return out

    got = asyncio.run(main())
    wang, sue, admin, vic = got["wang"], got["sue"], got["admin"], got["vic"]
    assert wang[0][0] == 200 and wang[1][0] == 403 and "your own desk only" in wang[1][1]
    assert sue[0][0] == 200 and sue[1][0] == 403 and "not in your queues (water)" in sue[1][1]
    assert admin[0][0] == 200 and admin[1][0] == 200 and admin[2][0] == 404
    assert vic[0][0] == 403 and "needs the agent role" in vic[0][1]
    assert [w[0] for w in (wang[3], wang[4], sue[3], sue[4], vic[3])] == [403] * 5
    assert admin[3][0] == 200 and admin[4][0] == 200
    refused = [
        (e.actor, e.target)
        for e in store.audit_entries(0, 1e12)
        if e.outcome == "refused" and e.action == "unpause"
    ]
    assert ("wang", "Li Lei") in refused and ("sue", "Li Lei") in refused


def test_six_wrong_passwords_lock_the_account_even_for_the_right_one(store: SqliteStore) -> None:
    async def main() -> list[tuple[int, str]]:
        async with site(store) as s, client() as http:
            answers = []
            for password in ["wrong"] * 5 + [PW]:
                r = await sign_in(http, s, "li", password)
                answers.append((r.status, await r.text()))
            return answers

    answers = asyncio.run(main())
    assert all(status == 401 and "wrong username or password" in text for status, text in answers[:5])
    assert answers[5][0] == 401 and "too many wrong passwords: try again in 15 minutes" in answers[5][1]
    outcomes = [(e.action, e.outcome) for e in store.audit_entries(0, 1e12) if e.target == "li"]
    assert outcomes == [("sign_in_refused", "refused")] * 5 + [("sign_in_refused", "locked")]


def test_passwd_or_disable_from_another_process_ends_open_sessions(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RECHECK_S", 0.0)  # every request re-reads the account

    async def main() -> tuple[int, int, int]:
        async with site(store) as s, client() as a, client() as b:
            assert (await sign_in(a, s, "wang")).status == 303 and (await sign_in(b, s, "sue")).status == 303
            await me(a, s)
            store.set_password("wang", passwords.hash_password("another long passphrase"))
            store.set_disabled("sue", True)
            ended_a = (await a.get(f"{s.base}/api/me")).status
            ended_b = (await b.get(f"{s.base}/api/me")).status
            fresh = await sign_in(a, s, "wang", "another long passphrase")
            return ended_a, ended_b, fresh.status

    assert asyncio.run(main()) == (401, 401, 303)
    details = {e.target: e.detail for e in store.audit_entries(0, 1e12) if e.action == "session_ended"}
    assert details == {"wang": "password changed", "sue": "account disabled"}


def test_board_public_and_the_kiosk_token(store: SqliteStore) -> None:
    async def main() -> list[int]:
        out = []
        async with site(store, board_public=True) as s, client() as http:
            out.append((await http.get(f"{s.base}/api/board")).status)
            out.append((await http.get(f"{s.base}/api/me")).status)  # the board only
        async with site(store, token="kiosk-key") as s, client() as http:
            out.append((await http.get(f"{s.base}/api/board?token=kiosk-key")).status)
            out.append((await http.get(f"{s.base}/api/board?token=nope")).status)
            out.append((await http.get(f"{s.base}/?token=nope", allow_redirects=False)).status)
        return out

    assert asyncio.run(main()) == [200, 401, 200, 401, 302]


def test_metrics_bearer_and_basic_auth_and_healthz_stays_open(store: SqliteStore) -> None:
    auth = MetricsAuth(token="scrape-token", user="prom", password="scrape-pass")

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    async def main() -> list[tuple[int, str]]:
        async with site(store, metrics=auth) as s, client() as http:
            cases = [{}, {"Authorization": "Bearer scrape-token"}, {"Authorization": "Bearer wrong"},
                     basic("prom", "scrape-pass"), basic("prom", "wrong"),
                     {"Authorization": "Basic !!"}]  # fmt: skip
            out = []
            for headers in cases:
                r = await http.get(f"{s.base}/metrics", headers=headers)
                out.append((r.status, r.headers.get("WWW-Authenticate", "")))
            out.append(((await http.get(f"{s.base}/healthz")).status, ""))
            return out

    got = asyncio.run(main())
    assert [status for status, _ in got] == [401, 200, 401, 200, 401, 401, 200]
    assert got[0][1].startswith("Basic realm=")


def _cert(tmp_path: Path, name: str = "web") -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_https_marks_the_session_cookie_secure(store: SqliteStore, tmp_path: Path) -> None:
    cert, key = _cert(tmp_path)

    async def main() -> tuple[str, int]:
        async with site(store, tls=tls_context(cert, key)) as s, client() as http:
            ok = await sign_in(http, s, "vic")
            cookie = next(c for c in ok.headers.getall("Set-Cookie") if c.startswith("acd_session="))
            try:
                plain = await http.get(f"http://127.0.0.1:{s.server.port}/healthz")
                status = plain.status
            except aiohttp.ClientError:
                status = 0
            return cookie, status

    cookie, plain = asyncio.run(main())
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert plain in (0, 400)  # plain HTTP to the TLS port is not served


def test_check_config_names_a_missing_or_mismatched_cert(tmp_path: Path) -> None:
    cert, key = _cert(tmp_path)
    _, other_key = _cert(tmp_path, "other")
    (tmp_path / "junk.crt").write_text("not a certificate\n")
    found = {}
    for name, pair in {"missing": (tmp_path / "nope.crt", key), "mismatch": (cert, other_key),
                       "junk": (tmp_path / "junk.crt", key), "good": (cert, key)}.items():  # fmt: skip
        p = Problems("t.toml")
        check_tls(p, *pair)
        found[name] = " ".join(p.errors)
    assert "cannot read" in found["missing"] and "nope.crt" in found["missing"]
    assert "the key does not match the certificate" in found["mismatch"]
    assert "not a PEM certificate" in found["junk"]
    assert found["good"] == ""


def test_the_lockout_address_comes_from_x_forwarded_for_only_behind_a_trusted_proxy() -> None:
    from aiohttp.test_utils import make_mocked_request

    from acdbridge.adapters.web.access import client_address

    def address(peer: str, xff: str, proxies: tuple[str, ...]) -> str:
        request = make_mocked_request("GET", "/", headers={"X-Forwarded-For": xff} if xff else {})
        request._transport_peername = (peer, 1234)
        return client_address(request, proxies)

    assert address("10.0.0.5", "6.6.6.6", ()) == "10.0.0.5"  # no proxies trusted: the header is ignored
    assert address("10.0.0.5", "6.6.6.6", ("127.0.0.1/32",)) == "10.0.0.5"  # not from a trusted proxy
    assert address("10.0.0.5", "1.2.3.4, 6.6.6.6", ("10.0.0.0/8",)) == "6.6.6.6"  # the proxy's client
    assert address("10.0.0.5", "6.6.6.6, 10.0.0.9", ("10.0.0.0/8",)) == "6.6.6.6"  # two proxies deep


def test_http_config_keys_are_checked() -> None:
    from acdbridge.config import validate

    base: dict[str, Any] = {"ami": {"secret": "x"}}
    cases = {
        "metrics_user": ({"metrics_user": "prom"}, "needs both metrics_user and metrics_password"),
        "tls half": ({"tls_cert": "/nonexistent.crt"}, "needs both tls_cert and tls_key"),
        "proxies": ({"trusted_proxies": ["not-an-ip"]}, "is not an IP address or network"),
        "unknown": ({"tokn": "x"}, "unknown keys ['tokn']"),
    }
    for name, (http, words) in cases.items():
        _cfg, p = validate({**base, "http": http}, "t.toml", {})
        assert any(words in e for e in p.errors), (name, p.errors)
    cfg, p = validate({**base, "http": {"metrics_token": "t", "board_public": True,
                                        "trusted_proxies": ["10.0.0.0/8"]}}, "t.toml", {})  # fmt: skip
    assert p.errors == [] and cfg.http.board_public and cfg.http.trusted_proxies == ("10.0.0.0/8",)


def test_sign_in_counts_reach_metrics_families(store: SqliteStore) -> None:
    from dataclasses import asdict

    from acdbridge.adapters.metrics import access_families

    async def main() -> dict[str, float]:
        async with site(store) as s, client() as http:
            await sign_in(http, s, "vic")
            await sign_in(http, s, "vic", "wrong")
            assert s.server.access_stats is not None
            families = access_families(asdict(s.server.access_stats()))
        return {f"{m.name}{dict(m.labels)}": m.value for f in families for m in f.samples}

    samples = asyncio.run(main())
    assert samples["acd_access_events_total{'kind': 'sign_ins_ok'}"] == 1
    assert samples["acd_access_events_total{'kind': 'sign_ins_refused'}"] == 1
    assert samples["acd_access_sessions_open{}"] == 1


def test_an_event_stream_ends_when_its_session_does(store: SqliteStore) -> None:
    async def main() -> tuple[bytes, bytes]:
        async with site(store) as s, client() as http:
            assert (await sign_in(http, s, "vic")).status == 303
            stream = await http.get(f"{s.base}/events")
            assert stream.status == 200
            first = await asyncio.wait_for(stream.content.readuntil(b"}\n\n"), 5)  # the board at once
            csrf = (await me(http, s))["csrf"]
            assert (
                await http.post(f"{s.base}/signout", data={"csrf": csrf}, allow_redirects=False)
            ).status == 303
            s.server.broadcast(b'{"queues": {"after": 1}}')
            rest = await asyncio.wait_for(stream.content.read(), 5)  # ends: the update is not sent
            return first, rest

    first, rest = asyncio.run(main())
    assert b'data: {"queues": {}}' in first and b"after" not in rest
