"""Every problem of a config file in one run: parsers record a problem and carry on with the
default, so one mistake never hides the next. Each problem is one line, `FILE: dotted.key: text`.

The getters here are the only place that checks a value's type and range, and `listen()` is the
one HOST:PORT parser for every listener."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# TOML's own names for the types, so a message speaks the file's language
_TOML_TYPE = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
              dict: "a table"}  # fmt: skip


def dotted(path: str, *keys: str | int) -> str:
    """`path` (already dotted) and then keys as written in TOML: agents."Ana Torres".skills,
    notices[0].end."""
    out = path
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
            continue
        text = key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)
        out = f"{out}.{text}" if out else text
    return out


def toml_type(value: Any) -> str:
    return next((name for kind, name in _TOML_TYPE.items() if type(value) is kind), type(value).__name__)


@dataclass
class Problems:
    source: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, key: str, text: str) -> None:
        self.errors.append(f"{self.source}: {key}: {text}" if key else f"{self.source}: {text}")

    def warn(self, key: str, text: str) -> None:
        self.warnings.append(f"{self.source}: {key}: warning: {text}")


def table(p: Problems, value: Any, key: str) -> dict[str, Any]:
    """A TOML table, or {} (recorded) when it is something else."""
    if isinstance(value, dict):
        return value
    p.error(key, f"expected a table, got {toml_type(value)}")
    return {}


def known(p: Problems, t: dict[str, Any], key: str, allowed: set[str]) -> None:
    unknown = sorted(set(t) - allowed)
    if unknown:
        p.error(key, f"unknown keys {unknown}; known: {', '.join(sorted(allowed))}")


def get(
    p: Problems, t: dict[str, Any], key: str, where: str, kind: type, default: Any, *,
    lo: float | None = None, hi: float | None = None, secret: bool = False, empty: bool = True,
) -> Any:  # fmt: skip
    """t[key] checked for its type (an int is a float too) and range; the default when absent or
    wrong. A secret's value never appears in a message, only its type."""
    if key not in t:
        return default
    name, value = dotted(where, key) if where else key, t[key]
    if kind is float and type(value) is int:
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        shown = toml_type(value) if secret else f"{toml_type(value)} {_short(value)}"
        p.error(name, f"expected {kind.__name__}, got {shown}")
        return default
    if isinstance(value, float) and not math.isfinite(value):
        p.error(name, f"must be a finite number, got {value!r}")
        return default
    if isinstance(value, str) and not empty and not value.strip():
        p.error(name, "must not be empty")
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _ranged(p, name, value, default, lo, hi)
    return value


def _ranged(p: Problems, name: str, value: float, default: Any, lo: float | None, hi: float | None) -> Any:
    if (lo is None or value >= lo) and (hi is None or value <= hi):
        return value
    if lo is not None and hi is not None:
        span = f"{lo:g}-{hi:g}"
    else:
        span = f">= {lo:g}" if lo is not None else f"<= {hi:g}"
    if lo is not None and lo > 0 >= value:
        p.error(name, f"must be a positive number ({span}), got {value!r}")
    else:
        p.error(name, f"out of range {span}: {value!r}")
    return default


def str_list(p: Problems, t: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        p.error(dotted(where, key), f"expected an array of strings, got {_short(value)}")
        return ()
    return tuple(value)


def listen(p: Problems, t: dict[str, Any], where: str, default: str) -> tuple[str, int]:
    """`listen = "HOST:PORT"` (IPv6 in brackets: "[::1]:4573"), for every listener."""
    text = get(p, t, "listen", where, str, default)
    parsed = parse_hostport(text)
    if parsed is None:
        p.error(dotted(where, "listen"), f"expected HOST:PORT with a port 1-65535, got {text!r}")
        parsed = parse_hostport(default)
        assert parsed is not None
    return parsed


def parse_hostport(text: str) -> tuple[str, int] | None:
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None  # a bare IPv6 address: which colon ends it is a guess
    if not sep or not host.strip() or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
