"""Run `acdbridge run` as a real process against the lab, optionally through a TCP proxy the
test can cut (a dropped AMI link), and collect what it stored."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from acdbridge.adapters.store import SqliteStore
from acdbridge.config import load
from acdbridge.core.pipeline import Record
from acdbridge.lab.pbx import AMI_USERS
from acdbridge.prompts import build_prompts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CuttableProxy:
    """A loopback TCP proxy to the lab's AMI in its own thread; cut() drops every connection."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.cuts = 0
        self.refuse_until = 0.0  # monotonic: new connections are closed at once until then
        self._writers: set[asyncio.StreamWriter] = set()
        self._frozen: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ami-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self.refuse_until:  # the PBX out of reach: the link stays down
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if dst in self._frozen:
                        continue  # a hung PBX: the TCP connection stays up, nothing comes back
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        def close_all() -> None:
            for w in list(self._writers):
                w.transport.abort()

        self.cuts += 1
        self._loop.call_soon_threadsafe(close_all)

    def cut_for(self, seconds: float) -> None:
        """Drop every connection and refuse new ones for `seconds`: an outage, not a blip."""
        self.refuse_until = time.monotonic() + seconds
        self.cut()

    def freeze(self) -> None:
        """From now on the current connections carry nothing back to the client."""

        def freeze_all() -> None:
            self._frozen |= self._writers

        self._loop.call_soon_threadsafe(freeze_all)

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


REPO = Path(__file__).resolve().parents[2]
LAB_CONFIG = REPO / "examples/acdbridge-lab.toml"


def flow_config() -> str:
    """The lab example's call-flow sections ([kpi] onwards: greeting, routing, profiles), with the
    caller directory at an absolute path."""
    text = LAB_CONFIG.read_text(encoding="utf-8")
    return text[text.index("[kpi]") :].replace('"examples/callers.csv"', f'"{REPO / "examples/callers.csv"}"')


def build_lab_prompts(root: Path) -> None:
    """The example's greetings spoken into the lab's sounds (unchanged ones are skipped)."""
    flow = load(LAB_CONFIG).flow
    assert flow is not None
    build_prompts(flow.prompts, root / "usr/share/asterisk/sounds", say=lambda _line: None, root=root)


RUNNING: list[subprocess.Popen[str]] = []  # every daemon started, so a failed test leaves none behind


def stop_leftovers() -> None:
    for proc in RUNNING:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    RUNNING.clear()


class DaemonProcess:
    def __init__(self, workdir: Path, ami_port: int, http_port: int | None = None, extra: str = "",
                 ami_extra: str = "", *, board_public: bool = True) -> None:  # fmt: skip
        self.workdir = workdir
        self.config = workdir / "acdbridge.toml"
        self.store_path = workdir / "store.sqlite"
        self.capture = workdir / "capture.ami"
        secret = workdir / "ami-secret"  # the secret in its own file (chmod 600), as in production
        secret.write_text(AMI_USERS["acdbridge"] + "\n")
        secret.chmod(0o600)
        self.http_port = http_port or free_port()
        self.config.write_text(
            f'[ami]\nhost = "127.0.0.1"\nport = {ami_port}\nusername = "acdbridge"\n'
            f'secret_file = "{secret}"\nping_interval_s = 2\naction_timeout_s = 3\n'
            f'reconnect_min_s = 0.2\nreconnect_max_s = 2\ncapture = "{self.capture}"\n{ami_extra}'
            f'[store]\npath = "{self.store_path}"\n'
            f'[http]\nlisten = "127.0.0.1:{self.http_port}"\nboard_public = {str(board_public).lower()}\n'
            + extra
        )
        self.proc: subprocess.Popen[str] | None = None
        self.logs: list[str] = []

    def start(self) -> None:
        log = (self.workdir / f"daemon-{len(self.logs)}.log").open("w")
        self.logs.append(log.name)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "acdbridge", "run", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        RUNNING.append(self.proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "ami_connected" not in Path(self.logs[-1]).read_text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited at start:\n{Path(self.logs[-1]).read_text()}")
            time.sleep(0.1)
        if "ami_connected" not in Path(self.logs[-1]).read_text():
            raise RuntimeError(f"the daemon did not connect:\n{Path(self.logs[-1]).read_text()}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def log_text(self) -> str:
        return "\n".join(Path(p).read_text() for p in self.logs)

    def stored_visits(self) -> list[Record]:
        return self.stored("visits")

    def stored(self, table: str) -> list[Record]:
        """Every row of a record table: visits, agent_states, ivr_legs or feedback."""
        store = SqliteStore(self.store_path)
        try:
            rows: list[Record] = getattr(store, table)(0, 1e12)
            return rows
        finally:
            store.close()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return str(r.read().decode())


def query(port: int, promql: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])
