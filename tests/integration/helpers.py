from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict

from acdbridge.lab.queuelog import QueueLogEntry

TERMINAL = {
    "COMPLETEAGENT", "COMPLETECALLER", "ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY", "EXITWITHKEY",
    "BLINDTRANSFER", "ATTENDEDTRANSFER",
}  # fmt: skip


def acdbridge(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a person would."""
    return subprocess.run(
        [sys.executable, "-m", "acdbridge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def visits(entries: list[QueueLogEntry]) -> dict[tuple[str, str], list[str]]:
    """queue_log events per caller visit (caller uniqueid, queue), in order; member
    management lines (callid MANAGER or NONE) are not visits."""
    callers = {e.callid for e in entries if e.event == "ENTERQUEUE"}
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in entries:
        if e.callid in callers:
            out[(e.callid, e.queue)].append(e.event)
    return dict(out)
