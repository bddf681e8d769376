"""Event -> MQTT message and event -> web page latency under lab traffic, and the daemon's CPU
time against Asterisk's over the same run. Needs the lab (`acdbridge lab up`) and mosquitto.

For every call an agent answers, the traffic generator notes when it saw AgentConnect on its own
AMI connection; the benchmark notes when the agent's state turned "talking" on the MQTT topic
and in the wallboard's Server-Sent Events. Prints p50/p99 of both and the CPU ratio.
Run: .venv/bin/python benchmarks/live_latency.py [--scenario steady]"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from acdbridge.lab import pbx, scenario, traffic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.daemon_harness import DaemonProcess, free_port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


async def watch_sse(port: int, seen: dict[str, float], stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    state: dict[str, str] = {}
    while not stop.is_set():
        line = await reader.readline()
        if line.startswith(b"data: "):
            now = time.monotonic()
            for name, agent in json.loads(line[6:])["agents"].items():
                if agent["state"] == "talking" and state.get(name) != "talking":
                    seen.setdefault(f"{name}#{sum(k.startswith(name + '#') for k in seen)}", now)
                state[name] = agent["state"]
    writer.close()


async def watch_mqtt(port: int, seen: dict[str, float], stop: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="latency-bench") as client:
        await client.subscribe("acdbridge/agent/+/state")
        state: dict[str, str] = {}
        async for message in client.messages:
            name = str(message.topic).split("/")[2]
            value = bytes(message.payload).decode() if isinstance(message.payload, bytes | bytearray) else ""
            if value == "talking" and state.get(name) != "talking":
                seen.setdefault(f"{name}#{sum(k.startswith(name + '#') for k in seen)}", time.monotonic())
            state[name] = value
            if stop.is_set():
                break


async def main_async(args: argparse.Namespace) -> None:
    lab = pbx.LabSettings()
    if pbx.running_state(lab) is None:
        raise SystemExit("start the lab first: acdbridge lab up")
    work = Path(tempfile.mkdtemp(prefix="acd-latency-"))
    broker_port, http_port = free_port(), free_port()
    (work / "mosquitto.conf").write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\n")
    broker = await asyncio.create_subprocess_exec(
        "/usr/sbin/mosquitto", "-c", str(work / "mosquitto.conf"), stderr=asyncio.subprocess.DEVNULL
    )
    daemon = DaemonProcess(work, lab.ami_port, http_port=http_port)
    with daemon.config.open("a") as f:
        f.write(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n')
    await asyncio.sleep(0.5)
    await asyncio.to_thread(daemon.start)
    state = pbx.running_state(lab)
    assert state is not None and daemon.proc is not None
    cpu0 = (cpu_seconds(daemon.proc.pid), cpu_seconds(state.pid))
    answered: dict[str, float] = {}

    def say(line: str) -> None:
        if " answered in " in line:
            name = line.rsplit(" by ", 1)[1].strip().replace(" ", "_")
            answered.setdefault(f"{name}#{sum(k.startswith(name + '#') for k in answered)}", time.monotonic())

    stop = asyncio.Event()
    sse: dict[str, float] = {}
    mqtt: dict[str, float] = {}
    watchers = [
        asyncio.create_task(watch_sse(http_port, sse, stop)),
        asyncio.create_task(watch_mqtt(broker_port, mqtt, stop)),
    ]
    started = time.monotonic()
    await traffic.run_async(scenario.load(args.scenario), lab, say)
    wall = time.monotonic() - started
    cpu1 = (cpu_seconds(daemon.proc.pid), cpu_seconds(state.pid))
    stop.set()
    await asyncio.sleep(1.5)
    for w in watchers:
        w.cancel()
    await asyncio.to_thread(daemon.stop)
    broker.terminate()
    await broker.wait()

    def norm(seen: dict[str, float]) -> dict[str, float]:
        return {k.replace(" ", "_"): v for k, v in seen.items()}

    print(f"scenario {args.scenario}: {len(answered)} answered calls in {wall:.0f} s")
    for label, seen in (("event -> MQTT agent state", norm(mqtt)), ("event -> wallboard SSE", norm(sse))):
        lat = [(seen[k] - t) * 1000 for k, t in answered.items() if k in seen]
        if lat:
            figures = f"p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms, max {max(lat):.0f} ms"
            print(f"{label}: {figures} (n={len(lat)})")
    daemon_cpu, asterisk_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    ratio = f"{daemon_cpu / asterisk_cpu:.2f}" if asterisk_cpu else "n/a"
    print(f"CPU over the run: acdbridge {daemon_cpu:.2f} s, Asterisk {asterisk_cpu:.2f} s, ratio {ratio}")
    print(f"command: .venv/bin/python benchmarks/live_latency.py --scenario {args.scenario}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="steady")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
