"""The caller's path on the real lab: the daemon's FastAGI greeting classifies callers by DTMF,
skills routing picks the queue and penalties, feature codes drive agent state, the survey and the
disposition are stored with the call, and the dialplan's fallback keeps calls flowing when the
daemon is down. Asterisk's queue_log is the independent record checked against."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from acdbridge.adapters.store import SqliteStore
from acdbridge.lab import pbx, queuelog
from acdbridge.lab.sipp import SippAgent, endpoint_password
from acdbridge.logmask import mask_number
from acdbridge.replay import replay_legs

from .daemon_harness import CuttableProxy, DaemonProcess, build_lab_prompts, flow_config, free_port
from .phones import LabPhones, event

AGI_PORT = 24573  # asterisk_conf/extensions.conf ACD_AGI
ANA, WANG, ZHOU, LUCIA = "9104", "9101", "9102", "9103"  # extensions of the profiles in LAB_CONFIG
GREETING_S = 60.0  # generous bound for greeting + menu + routing + answer


def run(coro_fn: Callable[[LabPhones], Awaitable[None]], lab: pbx.LabSettings) -> None:
    async def main() -> None:
        async with LabPhones(lab.ami_port) as phones:
            await asyncio.wait_for(coro_fn(phones), 240)

    try:
        asyncio.run(main())
    finally:
        pbx.asterisk_cli(lab.root, "channel request hangup all")


async def reset_members(phones: LabPhones) -> None:
    """Every dynamic member out: only the agents a test logs in may answer its calls."""
    for msg in await phones.ami.action({"Action": "QueueStatus"}, as_list=True):
        if str(msg.get("Event", "")) == "QueueMember" and msg.get("Membership") == "dynamic":
            await phones.ami.action(
                {"Action": "QueueRemove", "Queue": msg["Queue"], "Interface": msg["Location"]}
            )


@pytest.fixture
def callflow_lab(lab: pbx.LabSettings) -> Iterator[pbx.LabSettings]:
    root = lab.root
    build_lab_prompts(root)
    pbx.asterisk_cli(root, "channel request hangup all")
    run(reset_members, lab)
    yield lab
    pbx.asterisk_cli(root, "channel request hangup all")


def start_daemon(
    tmp_path: Path, lab: pbx.LabSettings, http_port: int | None = None, ami_port: int | None = None
) -> DaemonProcess:
    daemon = DaemonProcess(tmp_path, ami_port or lab.ami_port, http_port, extra=flow_config())
    daemon.start()
    deadline = time.monotonic() + 10
    while "fastagi_listening" not in daemon.log_text():
        assert time.monotonic() < deadline, f"FastAGI did not start:\n{daemon.log_text()[-3000:]}"
        time.sleep(0.1)
    return daemon


async def login(phones: LabPhones, *extensions: str) -> None:
    for ext in extensions:
        await phones.feature(ext, "51")
        added = event("QueueMemberAdded", interface=f"Local/{ext}@lab-agents/n")
        await phones.wait_for(added, 15, f"{ext} logged in")
    await asyncio.sleep(1.0)  # the other group queues of the same agents


def connected(number: str) -> Callable[[dict[str, str]], bool]:
    return lambda ev: ev.get("event") == "AgentConnect" and ev.get("calleridnum") == number


def stored(
    daemon: DaemonProcess,
) -> tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]:
    store = SqliteStore(daemon.store_path)
    try:
        return store.visits(0, 1e12), store.ivr_legs(0, 1e12), store.feedback(0, 1e12)
    finally:
        store.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_menu_choice_and_language_route_each_caller_to_a_skilled_agent(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    daemon = start_daemon(tmp_path, callflow_lab)
    started = time.time()
    # (caller, hotline DID, key) -> the queue and the agent with the skill
    plan = {
        "13900000011": ("6000", "3", "water", "Ana Torres"),  # leak report
        "13800000001": ("6000", "1", "water", "Ana Torres"),  # a known caller in Haidian: hears the notice
        "13800000002": ("6000", "2", "water_es", "Lucía Vega"),  # a known Spanish speaker: repair
        "13900000012": ("6100", "1", "fixed_line", "Zhou Min"),
        "13900000013": ("6100", "2", "broadband", "Wang Fang"),
    }

    async def scenario(phones: LabPhones) -> None:
        for ext in (ANA, WANG, ZHOU, LUCIA):
            await phones.agent_rings(ext, 1)
            phones.talk_s[ext] = 2
        await login(phones, ANA, WANG, ZHOU, LUCIA)
        for number, (did, key, _q, _a) in plan.items():
            phones.keys[(number, "menu1")] = key
            await phones.call(number, did)
        for number, (_d, _k, queue, agent) in plan.items():
            ev = await phones.wait_for(connected(number), GREETING_S, f"{number} answered")
            assert (ev["queue"], ev["membername"]) == (queue, agent), number
        lang = phones.find(
            lambda ev: ev.get("variable") == "ACD_LANG" and ev.get("calleridnum") == "13800000002"
        )
        assert [ev["value"] for ev in lang] == ["es"]
        await asyncio.sleep(13)  # talk, hang up, wrap-up (10 s in broadband)

    run(scenario, callflow_lab)
    daemon.stop()
    entries = queuelog.read(callflow_lab.queue_log, since=started)
    by_caller = {e.callid: e for e in entries if e.event == "ENTERQUEUE"}
    connects = {e.callid: (e.queue, e.agent) for e in entries if e.event == "CONNECT"}
    visits, legs, _ = stored(daemon)
    assert len(legs) == 5 and {leg["outcome"] for leg in legs} == {"routed"}
    greetings = [json.loads(line) for line in daemon.log_text().splitlines() if '"greeting"' in line]
    notices = {g["caller"]: g.get("notice") for g in greetings if g.get("event") == "greeting"}
    # the log masks callers' numbers (docs/privacy.md): the last 4 digits tell these callers apart
    assert notices == {
        mask_number(number): ("haidian-mains" if number == "13800000001" else None) for number in plan
    }
    for leg in legs:
        _d, _k, queue, agent = plan[str(leg["caller"])]
        assert leg["queue"] == queue and by_caller[str(leg["uniqueid"])].queue == queue  # queue_log agrees
        assert connects[str(leg["uniqueid"])] == (queue, agent)
        assert 0 < float(leg["ivr_s"]) < GREETING_S  # type: ignore[arg-type]
    assert {(v["queue"], v["agent"]) for v in visits} == {(q, a) for _d, _k, q, a in plan.values()}


def test_broadband_rings_the_expert_first_and_the_generalist_once_the_wait_widens_the_pool(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    start_daemon(tmp_path, callflow_lab)

    async def scenario(phones: LabPhones) -> None:
        for ext in (WANG, ZHOU):
            await phones.agent_rings(ext, 1)
        phones.talk_s[WANG], phones.talk_s[ZHOU] = 40, 1
        await login(phones, WANG, ZHOU)
        for number in ("13900000041", "13900000042"):
            phones.keys[(number, "menu1")] = "2"
        # the generalist is free, yet the first broadband caller rings only the expert
        await phones.call("13900000041", "6100")
        first = await phones.wait_for(connected("13900000041"), GREETING_S, "the expert answers")
        assert first["membername"] == "Wang Fang"
        # the expert is busy: the next caller waits until queuerules widen-fast lets the generalist in
        await phones.call("13900000042", "6100")
        join = await phones.wait_for(event("QueueCallerJoin", calleridnum="13900000042"), GREETING_S, "join")
        assert join["queue"] == "broadband"
        answer = await phones.wait_for(connected("13900000042"), 40, "the generalist answers")
        assert answer["membername"] == "Zhou Min"
        rung = phones.find(
            lambda ev: ev.get("event") == "AgentCalled" and ev.get("calleridnum") == "13900000042"
        )
        waited = float(rung[0]["timestamp"]) - float(join["timestamp"])
        assert waited >= 8.0, f"the generalist rang after {waited:.1f} s, before queuerules widen-fast (8 s)"
        assert {ev["membername"] for ev in rung} == {"Zhou Min"}
        ringing = phones.find(
            lambda ev: ev.get("event") == "AgentCalled" and ev.get("calleridnum") == "13900000041"
        )
        assert {ev["membername"] for ev in ringing} == {"Wang Fang"}

    run(scenario, callflow_lab)


def test_a_vip_caller_jumps_the_queue(callflow_lab: pbx.LabSettings, tmp_path: Path) -> None:
    start_daemon(tmp_path, callflow_lab)

    async def scenario(phones: LabPhones) -> None:
        await phones.agent_rings(ANA, 0.5)
        phones.talk_s[ANA] = 25
        await login(phones, ANA)
        for number in ("13900000051", "13900000052", "13800000003"):  # the last is VIP in callers.csv
            phones.keys[(number, "menu1")] = "1"
        await phones.call("13900000051", "6000")
        await phones.wait_for(connected("13900000051"), GREETING_S, "the first caller talks")
        await phones.call("13900000052", "6000")
        await phones.wait_for(
            event("QueueCallerJoin", calleridnum="13900000052"), GREETING_S, "a caller waits"
        )
        await phones.call("13800000003", "6000")
        vip = await phones.wait_for(
            event("QueueCallerJoin", calleridnum="13800000003"), GREETING_S, "VIP joins"
        )
        assert vip["position"] == "1", "the VIP is placed before the caller who waited longer"
        nxt = await phones.wait_for(
            lambda ev: ev.get("event") == "AgentConnect" and ev.get("calleridnum") != "13900000051",
            60,
            "next",
        )
        assert nxt["calleridnum"] == "13800000003"

    run(scenario, callflow_lab)


def test_feature_codes_log_in_pause_with_a_reason_and_log_out(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    daemon = start_daemon(tmp_path, callflow_lab)

    async def scenario(phones: LabPhones) -> None:
        await login(phones, ANA)
        added = phones.find(
            lambda ev: ev.get("event") == "QueueMemberAdded" and ev.get("membername") == "Ana Torres"
        )
        assert {(ev["queue"], ev["penalty"]) for ev in added} == {("water", "0"), ("complaints", "1")}
        await phones.feature(ANA, "532")  # lunch
        paused = await phones.wait_for(
            event("QueueMemberPause", membername="Ana Torres", paused="1"), 15, "pause"
        )
        assert paused["pausedreason"] == "lunch"
        await asyncio.sleep(1.5)
        await phones.feature(ANA, "54")
        await phones.wait_for(event("QueueMemberPause", membername="Ana Torres", paused="0"), 15, "unpause")
        await phones.feature(ANA, "52")
        await phones.wait_for(event("QueueMemberRemoved", membername="Ana Torres"), 15, "logged out")
        await asyncio.sleep(1.5)

    run(scenario, callflow_lab)
    daemon.stop()
    store = SqliteStore(daemon.store_path)
    try:
        states = store.agent_states(0, 1e12)
        assert store.logins() == {}
    finally:
        store.close()
    lunch = [s for s in states if s["agent"] == "Ana Torres" and s["state"] == "paused"]
    assert lunch and lunch[0]["reason"] == "lunch" and float(lunch[0]["duration_s"]) >= 1.0


def test_a_sip_softphone_logs_in_pauses_and_logs_out_with_feature_codes(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    start_daemon(tmp_path, callflow_lab)
    conf = callflow_lab.root / "etc/asterisk/pjsip.conf"
    phone = SippAgent("1005", endpoint_password(conf, "1005"), f"127.0.0.1:{callflow_lab.sip_port}",
                      free_port(), free_port(), tmp_path)  # fmt: skip

    async def scenario(phones: LabPhones) -> None:
        await phone.dial_feature_code("*51")
        await phones.wait_for(
            event("QueueMemberAdded", interface="PJSIP/1005", queue="water"), 10, "logged in"
        )
        await asyncio.sleep(0.5)
        added = phones.find(event("QueueMemberAdded", interface="PJSIP/1005", membername="Chen Li"))
        # water 3 -> penalty 2; a water agent is a generalist for complaints (widen_to)
        assert {(ev["queue"], ev["penalty"]) for ev in added} == {("water", "2"), ("complaints", "10")}
        await phone.dial_feature_code("*533")
        paused = await phones.wait_for(
            event("QueueMemberPause", interface="PJSIP/1005", paused="1"), 10, "pause"
        )
        assert paused["pausedreason"] == "training"
        await phone.dial_feature_code("*52")
        await phones.wait_for(event("QueueMemberRemoved", interface="PJSIP/1005"), 10, "logged out")
        assert not phones.find(event("VarSet", variable="ACD_FALLBACK"))

    run(scenario, callflow_lab)


def test_disposition_and_survey_score_are_stored_with_the_call(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    http = free_port()
    daemon = start_daemon(tmp_path, callflow_lab, http)
    number = "13900000061"

    async def scenario(phones: LabPhones) -> None:
        await phones.agent_rings(ANA, 0.5)
        phones.talk_s[ANA] = 2
        await login(phones, ANA)
        phones.keys[(number, "menu1")] = "4"  # complaint
        phones.keys[(number, "survey")] = "5"
        await phones.call(number, "6000")
        done = await phones.wait_for(
            event("AgentComplete", calleridnum=number), GREETING_S + 10, "the talk ends"
        )
        assert done["queue"] == "complaints"
        await phones.feature(ANA, "551")  # resolved
        await phones.wait_for(event("VarSet", variable="ACD_SURVEY_SCORE", calleridnum=number), 20, "survey")
        await phones.wait_for(event("VarSet", variable="ACD_DISPOSITION"), 20, "disposition")
        await asyncio.sleep(2)
        metrics = await asyncio.to_thread(scrape, http)
        assert 'acd_survey_responses_total{queue="complaints",score="5"} 1.0' in metrics
        assert 'acd_dispositions_total{code="resolved",queue="complaints",resolved="true"} 1.0' in metrics

    run(scenario, callflow_lab)
    daemon.stop()
    visits, legs, feedback = stored(daemon)
    (visit,) = [v for v in visits if v["caller"] == number]
    assert {(f["kind"], f["value"], f["uniqueid"]) for f in feedback} == {
        ("survey", "5", visit["uniqueid"]),
        ("disposition", "resolved", visit["uniqueid"]),
    }
    # the disposition ended after-call work before the queue's wrapuptime (15 s for complaints)
    assert visit["wrap_s"] is not None and float(visit["wrap_s"]) < 15.0  # type: ignore[arg-type]
    assert [leg["call_type"] for leg in legs] == ["complaint"]
    # one code path: the daemon's own AMI capture replays to the same legs and feedback
    replayed = replay_legs(daemon.capture)
    assert [
        {k: v for k, v in r.items() if k != "record"} for r in replayed if r["record"] == "ivr_leg"
    ] == legs
    replayed_feedback = {
        (r["kind"], r["value"], r["uniqueid"], r["ts"]) for r in replayed if r["record"] == "feedback"
    }
    assert replayed_feedback == {(f["kind"], f["value"], f["uniqueid"], f["ts"]) for f in feedback}


def test_a_caller_who_hangs_up_in_the_greeting_is_ivr_abandoned_not_a_queue_abandon(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    daemon = start_daemon(tmp_path, callflow_lab)
    started = time.time()

    async def scenario(phones: LabPhones) -> None:
        await login(phones, ANA)
        phones.ivr_hangup["13900000071"] = 1.0
        await phones.call("13900000071", "6000")
        await phones.wait_for(event("Hangup", calleridnum="13900000071"), 30, "the caller hangs up")
        await asyncio.sleep(2)

    run(scenario, callflow_lab)
    daemon.stop()
    visits, legs, _ = stored(daemon)
    assert [(leg["caller"], leg["outcome"]) for leg in legs] == [("13900000071", "ivr_abandoned")]
    assert not [v for v in visits if v["caller"] == "13900000071"]
    assert not [e for e in queuelog.read(callflow_lab.queue_log, since=started) if e.event == "ENTERQUEUE"]


def test_a_caller_who_hangs_up_during_the_notice_is_informed_and_counted_per_notice(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    daemon = start_daemon(tmp_path, callflow_lab)
    started = time.time()

    async def scenario(phones: LabPhones) -> None:
        await login(phones, ANA)
        phones.notice_hangup["13800000001"] = 1.0  # a known caller in Haidian: hears the mains notice
        await phones.call("13800000001", "6000")
        await phones.wait_for(event("Hangup", calleridnum="13800000001"), 30, "the caller hangs up")
        await asyncio.sleep(2)

    run(scenario, callflow_lab)
    metrics = scrape(daemon.http_port)
    daemon.stop()
    visits, legs, _ = stored(daemon)
    assert [(leg["caller"], leg["outcome"], leg["notice"]) for leg in legs] == [
        ("13800000001", "informed", "haidian-mains")
    ]
    assert 'acd_notices_played_total{hotline="water",notice="haidian-mains",result="informed"} 1.0' in metrics
    assert 'acd_ivr_calls_total{hotline="water",outcome="informed"} 1.0' in metrics
    assert not [v for v in visits if v["caller"] == "13800000001"]
    assert not [e for e in queuelog.read(callflow_lab.queue_log, since=started) if e.event == "ENTERQUEUE"]


def test_without_the_daemon_calls_still_reach_the_default_queue(callflow_lab: pbx.LabSettings) -> None:
    with socket.socket() as s:  # nothing listens where the dialplan's AGI points
        assert s.connect_ex(("127.0.0.1", AGI_PORT)) != 0

    async def scenario(phones: LabPhones) -> None:
        await phones.agent_rings(ANA, 0.5)
        phones.talk_s[ANA] = 1
        interface = f"Local/{ANA}@lab-agents/n"
        await phones.ami.action({"Action": "QueueAdd", "Queue": "broadband", "Interface": interface})
        await phones.call("13900000081", "6100")
        ev = await phones.wait_for(connected("13900000081"), 30, "answered from the default queue")
        assert ev["queue"] == "broadband"
        fallback = phones.find(event("VarSet", variable="ACD_FALLBACK", calleridnum="13900000081"))
        assert [f["value"] for f in fallback] == ["FAILURE"]

    run(scenario, callflow_lab)


def test_a_daemon_killed_mid_greeting_hands_the_caller_to_the_default_queue(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    daemon = start_daemon(tmp_path, callflow_lab)

    async def scenario(phones: LabPhones) -> None:
        await phones.agent_rings(ANA, 0.5)
        phones.talk_s[ANA] = 1
        await login(phones, ANA)  # stays a member in Asterisk after the daemon dies
        await phones.call("13900000091", "6000")
        await phones.wait_for(
            event("VarSet", variable="ACD_IVR_STAGE", calleridnum="13900000091"), 30, "menu"
        )
        assert daemon.proc is not None
        os.kill(daemon.proc.pid, signal.SIGKILL)
        ev = await phones.wait_for(connected("13900000091"), 30, "answered from the default queue")
        assert ev["queue"] == "water"

    run(scenario, callflow_lab)


def test_a_malformed_agi_session_and_a_port_probe_leave_the_server_serving(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    daemon = start_daemon(tmp_path, callflow_lab)
    with socket.create_connection(("127.0.0.1", AGI_PORT), timeout=5):
        pass  # a bare probe
    with socket.create_connection(("127.0.0.1", AGI_PORT), timeout=5) as s:
        s.sendall(b"agi_network: yes\nthis is not an agi header\n\n")
        s.settimeout(5)
        assert s.recv(100) == b""  # the server ends that session

    async def scenario(phones: LabPhones) -> None:
        phones.keys[("13900000101", "menu1")] = "2"
        await phones.call("13900000101", "6000")
        ev = await phones.wait_for(
            event("VarSet", variable="ACD_IVR", calleridnum="13900000101"), GREETING_S, "IVR"
        )
        assert ev["value"] == "routed"

    run(scenario, callflow_lab)
    assert "not an agi header" in daemon.log_text()  # the error names the bad line


def test_profiles_apply_without_a_restart_and_drift_is_repaired(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    daemon = start_daemon(tmp_path, callflow_lab)
    zhou = f"Local/{ZHOU}@lab-agents/n"

    async def scenario(phones: LabPhones) -> None:
        await login(phones, ZHOU)
        assert phones.find(event("QueueMemberAdded", queue="broadband", interface=zhou))[0]["penalty"] == "10"
        # Zhou trains up in broadband: the new profile applies on SIGHUP
        text = daemon.config.read_text(encoding="utf-8")
        daemon.config.write_text(
            text.replace("skills = { fixed_line = 4 }", "skills = { fixed_line = 4, broadband = 5 }")
        )
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        ev = await phones.wait_for(
            event("QueueMemberPenalty", queue="broadband", interface=zhou), 15, "penalty"
        )
        assert ev["penalty"] == "0"
        # removed by hand behind the daemon's back: put back
        await phones.ami.action({"Action": "QueueRemove", "Queue": "fixed_line", "Interface": zhou})
        since = len(phones.events)
        await phones.wait_for(
            event("QueueMemberAdded", queue="fixed_line", interface=zhou), 15, "re-added", since
        )

    run(scenario, callflow_lab)
    # a restart keeps who is logged in; members lost while the daemon was down come back
    daemon.stop()

    async def while_down(phones: LabPhones) -> None:
        await phones.ami.action({"Action": "QueueRemove", "Queue": "fixed_line", "Interface": zhou})
        daemon.start()
        await phones.wait_for(event("QueueMemberAdded", queue="fixed_line", interface=zhou), 20, "restored")

    run(while_down, callflow_lab)


def test_memberships_lost_while_the_ami_link_was_down_are_restored(
    callflow_lab: pbx.LabSettings, tmp_path: Path
) -> None:
    proxy = CuttableProxy(callflow_lab.ami_port)
    try:
        start_daemon(tmp_path, callflow_lab, ami_port=proxy.port)
        ana = f"Local/{ANA}@lab-agents/n"

        async def scenario(phones: LabPhones) -> None:
            await login(phones, ANA)
            proxy.freeze()  # the link hangs: the daemon's ping times out and it reconnects
            await phones.ami.action({"Action": "QueueRemove", "Queue": "water", "Interface": ana})
            since = len(phones.events)
            await phones.wait_for(
                event("QueueMemberAdded", queue="water", interface=ana), 30, "restored", since
            )

        run(scenario, callflow_lab)
    finally:
        proxy.close()
