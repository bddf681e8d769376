"""Agents played by SIPp (Debian's sip-tester): real SIP softphones that REGISTER with digest
auth, answer queue calls with RTP echo, put the caller on hold and back with re-INVITEs
(a=sendonly / a=sendrecv) and hang up. The call flow is the checked scenario in sipp/."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from importlib import resources
from pathlib import Path

from acdbridge.errors import LabError

REGISTER_TIMEOUT_S = 10.0


def scenario_file(name: str) -> Path:
    return Path(str(resources.files("acdbridge.lab") / "sipp" / name))


def require_sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise LabError(
            "SIPp missing: the scenario has SIP agents and 'sipp' is not installed",
            detail="apt-get install sip-tester (make demo / make test do it)",
        )
    return path


def endpoint_password(pjsip_conf: Path, endpoint: str) -> str:
    """The digest password of an endpoint's auth section ([1001](agent-auth) ... password = ...)."""
    section = None
    for line in pjsip_conf.read_text(encoding="utf-8").splitlines():
        head = re.match(r"^\[([^\]]+)\](\(([^)]*)\))?", line)
        if head:
            section = (head.group(1), head.group(3) or "")
            continue
        m = re.match(r"^\s*password\s*=\s*(\S+)", line)
        if m and section and section[0] == endpoint:
            return m.group(1)
    raise LabError(f"{pjsip_conf}: no password for endpoint {endpoint}")


class SippAgent:
    """One softphone: registers as `endpoint`, then answers calls until stopped."""

    def __init__(
        self, endpoint: str, password: str, pbx: str, port: int, media_port: int, log_dir: Path
    ) -> None:
        self.endpoint, self.password, self.pbx = endpoint, password, pbx
        self.port, self.media_port, self.log_dir = port, media_port, log_dir
        self.proc: asyncio.subprocess.Process | None = None

    def _base(self, scenario: str) -> list[str]:
        return [
            require_sipp(), "-sf", str(scenario_file(scenario)), "-i", "127.0.0.1", "-p", str(self.port),
            "-mi", "127.0.0.1", "-mp", str(self.media_port), "-nostdin", "-timeout_error", "-trace_err",
            "-error_file", str(self.log_dir / f"sipp-{self.endpoint}-{scenario}.err"),
        ]  # fmt: skip

    async def _run_once(self, scenario: str, args: list[str], within_s: float, what: str) -> None:
        auth = ["-s", self.endpoint, "-au", self.endpoint, "-ap", self.password]
        once = ["-m", "1", "-timeout", f"{within_s:.0f}s"]
        cmd = [*self._base(scenario), *auth, *args, *once, self.pbx]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), within_s + 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise LabError(f"SIPp agent {self.endpoint} did not finish: {what}") from None
        if proc.returncode != 0:
            raise LabError(
                f"SIPp agent {self.endpoint} failed: {what} (sipp exit {proc.returncode})",
                detail=err.decode(errors="replace")[-2000:],
            )

    async def register(self) -> None:
        await self._run_once("agent_register_uac.xml", [], REGISTER_TIMEOUT_S, f"registering with {self.pbx}")

    async def dial_feature_code(self, code: str, within_s: float = 20.0) -> None:
        """The softphone dials a feature code (e.g. "*51") and stays on until Asterisk hangs up."""
        await self._run_once(
            "agent_feature_code_uac.xml", ["-key", "code", code], within_s, f"dialling {code}"
        )

    async def start(self) -> None:
        await self.register()
        cmd = [*self._base("agent_answer_hold_uas.xml"), "-key", "pbx", self.pbx, "-rtp_echo", self.pbx]
        self.proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
