"""Install asterisk_conf/ into the lab with the lab's own ports.

The sample configuration is what an operator copies to /etc/asterisk, with standard ports.
The lab changes only the keys listed in an override table, so the file it runs is the file
we ship. Pure text handling: no I/O beyond reading and writing the files given."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

_SECTION = re.compile(r"^\[([^\]]+)\]")
_KEY = re.compile(r"^(\s*)([A-Za-z_][\w\-.]*)(\s*=>?\s*)([^;]*?)(\s*(;.*)?)$")


@dataclass(frozen=True)
class Override:
    file: str
    section: str
    key: str
    value: str


def rewrite(text: str, section: str, key: str, value: str) -> tuple[str, int]:
    """Set every `key = ...` inside [section] to value; returns the text and the count changed."""
    out: list[str] = []
    current = ""
    changed = 0
    for line in text.splitlines(keepends=True):
        head = _SECTION.match(line)
        if head:
            current = head.group(1)
        elif current == section:
            m = _KEY.match(line.rstrip("\r\n"))
            if m and m.group(2) == key:
                ending = line[len(line.rstrip("\r\n")) :]
                line = f"{m.group(1)}{m.group(2)}{m.group(3)}{value}{m.group(5)}{ending}"
                changed += 1
        out.append(line)
    return "".join(out), changed


def install(src: Path, dst: Path, overrides: list[Override]) -> None:
    """Copy every *.conf from src to an emptied dst, applying overrides. An override that
    matches nothing is an error: the sample config and the lab must not drift apart silently."""
    if not any(src.glob("*.conf")):
        raise FileNotFoundError(f"no *.conf files in {src}")
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    by_file: dict[str, list[Override]] = {}
    for o in overrides:
        by_file.setdefault(o.file, []).append(o)
    for conf in sorted(src.glob("*.conf")):
        text = conf.read_text(encoding="utf-8")
        for o in by_file.pop(conf.name, []):
            text, n = rewrite(text, o.section, o.key, o.value)
            if n == 0:
                raise ValueError(f"{conf.name}: no key '{o.key}' in section [{o.section}] to set for the lab")
        (dst / conf.name).write_text(text, encoding="utf-8")
    if by_file:
        raise ValueError(f"lab overrides name missing files: {sorted(by_file)}")
