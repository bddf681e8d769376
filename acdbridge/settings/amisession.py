"""A small AMI session of its own for `check-config --pbx`: log in with events off, send one
action at a time, every read under a timeout. The daemon's long-lived AMI client (adapters/ami.py)
is built for a stream of events; a checker needs a few request/reply pairs and a clear failure."""

from __future__ import annotations

import asyncio
import itertools
import re
import ssl
from dataclasses import dataclass, field

from acdbridge.settings import amitls
from acdbridge.settings.amiconf import AmiConfig

Message = dict[str, str]
_GLOBAL = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AmiFailure(Exception):
    """The PBX could not be reached, refused the login or broke the protocol."""


class AmiSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout_s: float) -> None:
        self._reader, self._writer, self.timeout_s = reader, writer, timeout_s
        self._ids = itertools.count(1)

    @classmethod
    async def login(cls, cfg: AmiConfig) -> AmiSession:
        host, port, timeout_s = cfg.host, cfg.port, cfg.action_timeout_s
        try:
            ctx = amitls.client_context(cfg)
        except (OSError, ssl.SSLError) as exc:
            raise AmiFailure(f"TLS: cannot load ami.tls_ca {cfg.tls_ca}: {exc}") from None
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ctx, server_hostname=amitls.server_name(cfg)
                )
                banner = await reader.readline()
        except (OSError, EOFError, TimeoutError) as exc:
            said = amitls.describe_failure(cfg, exc) if cfg.tls else None
            if said is None and isinstance(exc, TimeoutError):
                said = f"cannot connect to AMI at {host}:{port}: no banner within {timeout_s:g} s" + (
                    " (is it a plain-TCP port?)" if cfg.tls else " (a TLS port? then set ami.tls = true)"
                )
            raise AmiFailure(said or f"cannot connect to AMI at {host}:{port}: {exc}") from None
        if not banner.startswith(b"Asterisk Call Manager"):
            writer.close()
            raise AmiFailure(f"{host}:{port} is not an Asterisk Manager Interface (it said {banner[:40]!r})")
        session = cls(reader, writer, timeout_s)
        login = {"Action": "Login", "Username": cfg.username, "Secret": cfg.secret, "Events": "off"}
        reply = (await session.action(login))[0]
        if reply.get("Response", "").lower() != "success":
            session.close()
            raise AmiFailure(f"login as {cfg.username!r} refused: {reply.get('Message', 'no reason given')}")
        return session

    def close(self) -> None:
        self._writer.close()

    async def action(self, fields: dict[str, str], *, as_list: bool = False) -> list[Message]:
        """The reply (first) and, with as_list, the events of its list up to the Complete one."""
        action_id = f"check-{next(self._ids)}"
        text = "".join(f"{k}: {v}\r\n" for k, v in {**fields, "ActionID": action_id}.items()) + "\r\n"
        try:
            async with asyncio.timeout(self.timeout_s):
                self._writer.write(text.encode())
                await self._writer.drain()
                return await self._collect(action_id, as_list)
        except TimeoutError:
            raise AmiFailure(
                f"the PBX did not answer {fields['Action']} within {self.timeout_s:g} s"
            ) from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise AmiFailure(f"the AMI connection broke during {fields['Action']}: {exc}") from None

    async def _collect(self, action_id: str, as_list: bool) -> list[Message]:
        out: list[Message] = []
        while True:
            msg = await self._read()
            if msg.get("ActionID") != action_id:
                continue  # an event from before Events: off took effect
            out.append(msg)
            if "Response" in msg and (not as_list or msg["Response"].lower() != "success"):
                return out  # the reply to a plain action, or a list action refused
            if "Response" not in msg and msg.get("EventList", "").lower() == "complete":
                return out

    async def _read(self) -> Message:
        raw = await self._reader.readuntil(b"\r\n\r\n")
        msg: Message = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            key, sep, value = line.partition(":")
            if sep:
                msg.setdefault(key.strip(), value.strip())
        return msg


@dataclass
class PbxFacts:
    """What the PBX says, gathered once; pbxcheck.py compares it with the config (pure code).
    A config file is None when GetConfig was refused; `denied` names the actions refused."""

    files: dict[str, dict[str, list[tuple[str, str]]] | None] = field(default_factory=dict)
    templates: set[str] = field(default_factory=set)  # "file:category" of templates
    dialplan: list[Message] | None = None  # ListDialplan entries
    globals: dict[str, str] = field(default_factory=dict)
    denied: dict[str, str] = field(default_factory=dict)  # action -> Asterisk's message


def _categories(reply: Message, file: str, facts: PbxFacts) -> dict[str, list[tuple[str, str]]]:
    """GetConfig's Category-N / Line-N-M; categories of one name (pjsip's 1001) are merged."""
    out: dict[str, list[tuple[str, str]]] = {}
    names = {k.split("-", 1)[1]: v for k, v in reply.items() if k.startswith("Category-")}
    for n, name in names.items():
        if reply.get(f"IsTemplate-{n}") == "1":
            facts.templates.add(f"{file}:{name}")
        lines = out.setdefault(name, [])
        for key in sorted(
            (k for k in reply if k.startswith(f"Line-{n}-")), key=lambda k: int(k.rsplit("-", 1)[1])
        ):
            var, _, value = reply[key].partition("=")
            lines.append((var.strip(), value.strip()))
    return out


async def gather(session: AmiSession, files: tuple[str, ...]) -> PbxFacts:
    facts = PbxFacts()
    for file in files:
        reply = (await session.action({"Action": "GetConfig", "Filename": file}))[0]
        if reply.get("Response", "").lower() == "success":
            facts.files[file] = _categories(reply, file, facts)
        else:
            facts.files[file] = None
            facts.denied[f"GetConfig {file}"] = reply.get("Message", "")
    replies = await session.action({"Action": "ShowDialPlan"}, as_list=True)
    if replies[0].get("Response", "").lower() == "success":
        facts.dialplan = [m for m in replies[1:] if m.get("Event") == "ListDialplan" and "Application" in m]
        walked = [m for m in facts.dialplan if m["Application"].lower() in ("agi", "goto", "gotoif")]
        wanted = {v for m in walked for v in _GLOBAL.findall(m.get("AppData", ""))} - {"EXTEN"}
        for name in sorted(wanted):
            reply = (await session.action({"Action": "Getvar", "Variable": name}))[0]
            if reply.get("Response", "").lower() == "success" and reply.get("Value"):
                facts.globals[name] = reply["Value"]
    else:
        facts.denied["ShowDialPlan"] = replies[0].get("Message", "")
    return facts
