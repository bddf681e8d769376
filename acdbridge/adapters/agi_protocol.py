"""FastAGI's wire format, without I/O: the agi_* header block (with its limits), command
arguments, and replies. acdbridge.adapters.fastagi moves the bytes; everything here is pure and
is re-exported from there."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

# Bounds on what one connection can make us hold (docs/security.md). Asterisk 22 sends about 25
# header lines of well under 200 bytes, plus one agi_arg_N per argument (res_agi allows 128).
MAX_LINE = 8192  # one header or reply line
MAX_ENV_LINES = 256  # header lines in the block
MAX_ENV_BYTES = 65536  # the whole block
MAX_REPLY_LINES = 256  # lines of one multi-line reply (520-usage text runs to about 20)
MAX_PROVISIONAL = 16  # 1xx lines before a command's final reply (EXEC Gosub sends one)
_REPLY = re.compile(r"(\d{3})(-|\s|$)(.*)", re.ASCII)
_RESULT = re.compile(r"result=(\S*)\s*(.*)")
_ENV_KEY = re.compile(r"agi_[a-z0-9_]{1,64}", re.ASCII)


class AgiHangup(Exception):
    """The channel hung up: a HANGUP line, a 511 reply, a -1 result or the socket closed."""


class AgiProtocolError(Exception):
    """A line that is not AGI; the session cannot go on."""


class AgiOversized(AgiProtocolError):
    """A line, a header block or a reply over its limit."""


class AgiCommandError(AgiProtocolError):
    """Asterisk rejected a command (510 unknown, 520 bad syntax); the session is still in step."""


def _q(line: str, width: int = 80) -> str:
    return repr(line if len(line) <= width else line[:width] + "...")


def quote(arg: str) -> str:
    """One AGI argument: res_agi's parser honours double quotes and backslash escapes."""
    if "\n" in arg or "\r" in arg:  # a newline would end the command and start another one
        raise ValueError(f"newline in AGI argument {_q(arg)}")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class AgiRequest:
    env: dict[str, str]  # the agi_* headers as sent, keys with their agi_ prefix
    script: str  # agi_network_script without query string or surrounding slashes
    args: tuple[str, ...]

    @classmethod
    def from_env(cls, env: dict[str, str]) -> AgiRequest:
        script = env.get("agi_network_script", "").partition("?")[0].strip("/")
        args, n = [], 1
        while (arg := env.get(f"agi_arg_{n}")) is not None:
            args.append(arg)
            n += 1
        return cls(env, script, tuple(args))

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def caller(self) -> str:
        caller = self.env.get("agi_callerid", "")
        return "" if caller == "unknown" else caller

    @property
    def extension(self) -> str:
        return self.env.get("agi_extension", "")

    @property
    def context(self) -> str:
        return self.env.get("agi_context", "")

    @property
    def dnid(self) -> str:
        return self.env.get("agi_dnid", "")


@dataclass(frozen=True)
class AgiReply:
    code: int
    result: str  # "" when the reply has no result= (5xx) or an empty one (GET DATA timeout)
    data: str  # the rest of the line, without the parentheses around it: "timeout", "endpos=12"
    raw: str

    @property
    def result_int(self) -> int | None:
        with contextlib.suppress(ValueError):
            return int(self.result)
        return None

    @classmethod
    def parse(cls, code: int, raw: str) -> AgiReply:
        rest = raw.partition("\n")[0][4:]
        if not (m := _RESULT.match(rest)):
            return cls(code, "", rest, raw)
        data = m[2][1:-1] if m[2].startswith("(") and m[2].endswith(")") else m[2]
        return cls(code, m[1], data, raw)


@dataclass
class EnvBlock:
    """The header block, fed one line at a time (without its line end); feed() is True at the
    blank line that ends it. Raises AgiProtocolError for a line that is not `agi_key: value`
    and AgiOversized past MAX_ENV_LINES or MAX_ENV_BYTES."""

    env: dict[str, str] = field(default_factory=dict)
    lines: int = 0
    size: int = 0

    def feed(self, line: str) -> bool:
        if not line:
            return True
        self.lines, self.size = self.lines + 1, self.size + len(line) + 1
        if self.lines > MAX_ENV_LINES:
            raise AgiOversized(f"header block over {MAX_ENV_LINES} lines")
        if self.size > MAX_ENV_BYTES:
            raise AgiOversized(f"header block over {MAX_ENV_BYTES} bytes")
        key, sep, value = line.partition(": ")
        if not sep:
            raise AgiProtocolError(f"header line without ': ': {_q(line)}")
        if not _ENV_KEY.fullmatch(key):
            raise AgiProtocolError(f"header name is not agi_*: {_q(line)}")
        self.env[key] = value
        return False


def reply_code(line: str) -> tuple[int, bool] | None:
    """A reply line's code and whether it continues on more lines (`520-...`); None if not a reply."""
    if not (m := _REPLY.match(line)):
        return None
    return int(m[1]), m[2] == "-"
