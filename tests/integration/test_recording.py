"""Recording with consent on the real lab (docs/recording.md): the telecom hotline of the lab
example records unless the caller presses 9 at the notice. Two callers, one silent (consents)
and one pressing 9; Wang Fang answers each and talks 6 s. The consenting call leaves a WAV file
whose length is the stored talk time within 1 s, indexed once with its SHA-256; the opted-out
call leaves none; both choices are on the IVR legs. A supervisor of broadband hears it over HTTP
(audited); a supervisor of other queues and an agent are refused (audited too)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path

import aiohttp

from acdbridge.access import passwords
from acdbridge.access.model import Account, Role
from acdbridge.adapters.store import SqliteStore
from acdbridge.lab import pbx

from .daemon_harness import DaemonProcess, flow_config, free_port
from .phones import LabPhones, event
from .test_callflow import GREETING_S, WANG, callflow_lab, connected, login, run

__all__ = ["callflow_lab"]  # the fixture: the lab with the example's prompts built
CONSENTS, REFUSES = "13900000091", "13900000092"
TALK_S = 6.0
PASSWORD = "lab passphrase, long enough"


def _accounts(daemon: DaemonProcess) -> None:
    store = SqliteStore(daemon.store_path)
    hashed = passwords.hash_password(PASSWORD)
    store.put_account(Account("bo", Role.SUPERVISOR, queues=("broadband",)), hashed)
    store.put_account(Account("wa", Role.SUPERVISOR, queues=("water",)), hashed)
    store.put_account(Account("wang", Role.AGENT, agent="Wang Fang"), hashed)
    store.close()


def _calls(lab: pbx.LabSettings) -> None:
    async def scenario(phones: LabPhones) -> None:
        await phones.agent_rings(WANG, 1)
        phones.talk_s[WANG] = TALK_S
        await login(phones, WANG)
        for number, consent_key in ((CONSENTS, None), (REFUSES, "9")):
            phones.keys[(number, "menu1")] = "2"  # broadband: Wang Fang's best skill
            if consent_key:
                phones.keys[(number, "consent")] = consent_key
            await phones.call(number, "6100")
            await phones.wait_for(connected(number), GREETING_S, f"{number} answered")
            hangup = event("Hangup", calleridnum=number)
            await phones.wait_for(hangup, TALK_S + 20, f"{number}'s call ended")
            await asyncio.sleep(11)  # broadband's 10 s wrap-up, before the next call

    run(scenario, lab)


async def _get(base: str, user: str, path: str) -> tuple[int, bytes]:
    # unsafe=True: aiohttp's jar otherwise refuses cookies from an IP address host
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        form = await (await http.get(f"{base}/signin")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, form
        data = {"username": user, "password": PASSWORD, "csrf": csrf[1], "next": "/"}
        signed = await http.post(f"{base}/signin", data=data, allow_redirects=False)
        assert signed.status == 303, await signed.text()
        resp = await http.get(f"{base}{path}")
        return resp.status, await resp.read()


def test_a_consenting_callers_call_is_recorded_and_an_opted_out_one_is_not(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    port = free_port()
    daemon = DaemonProcess(tmp_path, callflow_lab.ami_port, http_port=port, extra=flow_config(),
                           board_public=False)  # fmt: skip
    _accounts(daemon)
    daemon.start()
    monitor = callflow_lab.root / "var/spool/asterisk/monitor"
    before = set(monitor.glob("acdbridge-*.wav")) if monitor.exists() else set()
    _calls(callflow_lab)
    store = SqliteStore(daemon.store_path)
    try:
        deadline = time.monotonic() + 40  # the indexer's scan (2 s) after the file settles (5 s)
        legs = {str(leg["caller"]): leg for leg in store.ivr_legs(0, 1e12)}
        while (rec := store.recording(str(legs.get(CONSENTS, {}).get("uniqueid", "")))) is None:
            assert time.monotonic() < deadline, f"never indexed:\n{daemon.log_text()[-3000:]}"
            time.sleep(0.5)
            legs = {str(leg["caller"]): leg for leg in store.ivr_legs(0, 1e12)}
        visits = {str(v["caller"]): v for v in store.visits(0, 1e12)}
    finally:
        store.close()
    assert (legs[CONSENTS]["recording"], legs[REFUSES]["recording"]) == ("consent", "opted_out")
    new = set(monitor.glob("acdbridge-*.wav")) - before
    assert [p.name for p in new] == [f"acdbridge-{legs[CONSENTS]['uniqueid']}.wav"]  # none for the refusal
    talk = float(visits[CONSENTS]["talk_s"])
    print(f"recording {rec.duration_s:.2f} s, talk time {talk:.2f} s")
    assert abs(rec.duration_s - talk) <= 1.0
    assert rec.sha256 == hashlib.sha256((monitor / rec.file).read_bytes()).hexdigest()

    base, path = f"http://127.0.0.1:{port}", f"/api/recordings/{rec.uniqueid}/audio"
    status, body = asyncio.run(_get(base, "bo", path))
    assert status == 200 and hashlib.sha256(body).hexdigest() == rec.sha256
    assert asyncio.run(_get(base, "wa", path))[0] == 403  # broadband is not among water's
    assert asyncio.run(_get(base, "wang", path))[0] == 403  # agents hear no recordings
    assert daemon.stop() == 0
    store = SqliteStore(daemon.store_path)
    try:
        audit = [(e.actor, e.action, e.outcome) for e in store.audit_entries(0, 1e12, 100)]
    finally:
        store.close()
    for who, outcome in (("bo", "ok"), ("wa", "refused"), ("wang", "refused")):
        assert (who, "recording_play", outcome) in audit
