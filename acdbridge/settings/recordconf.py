"""`[recording]`: where the daemon finds the PBX's call recordings (docs/recording.md). Which
hotlines record, and with whose consent, is `[hotlines.X] record`; this is only the files' side.

    [recording]
    dir = "/var/spool/asterisk/monitor"   # Asterisk's monitor directory, as this host sees it
    scan_s = 10                            # how often new files are indexed (and old ones deleted)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acdbridge.settings.problems import Problems, get, known

DEFAULT_DIR = Path("/var/spool/asterisk/monitor")


@dataclass(frozen=True)
class RecordingConfig:
    dir: Path = DEFAULT_DIR
    scan_s: float = 10.0


def parse_recording(p: Problems, t: dict[str, Any]) -> RecordingConfig:
    known(p, t, "recording", {"dir", "scan_s"})
    return RecordingConfig(
        dir=Path(get(p, t, "dir", "recording", str, str(DEFAULT_DIR), empty=False)),
        scan_s=get(p, t, "scan_s", "recording", float, 10.0, lo=1.0, hi=3600.0),
    )
