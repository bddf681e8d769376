"""The `[privacy]` table: how long callers' personal data is kept, and how it is shown (docs/privacy.md).

    [privacy]
    retain_days = 90          # caller number/name of visits older than this become pseudonyms; journal
                              # segments and quarantined rows older than this are deleted; 0 = keep forever
    run_at = "03:30"          # the daily job, in the centre's time zone ([kpi] timezone)
    mask_logs = true          # caller numbers in logs keep their last 4 digits only
    key_file = "/var/lib/acdbridge/acdbridge.privacy-key"   # default: beside the store
    allow_root = false        # true: no warning when the daemon runs as root (the lab)

90 days by default: long enough for the complaints and quality reviews of a contact centre, short
enough that no site keeps its callers' numbers forever without deciding to (0 is allowed, with a
warning). The KPIs never depend on it: durations and outcomes stay; pseudonyms keep per-caller
counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acdbridge.settings.problems import Problems, get, known

KEYS = {"retain_days", "run_at", "mask_logs", "key_file", "allow_root"}
DEFAULT_RETAIN_DAYS = 90.0
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class PrivacyConfig:
    key_file: Path
    retain_days: float = DEFAULT_RETAIN_DAYS  # 0: callers' data is kept as it is, forever
    run_at: tuple[int, int] = (3, 30)  # hour, minute in the centre's time zone
    mask_logs: bool = True
    allow_root: bool = False
    key_set: bool = False  # key_file was given (else beside the store, whose directory is checked)

    @property
    def retain_s(self) -> float | None:
        return self.retain_days * 86_400 if self.retain_days > 0 else None


def default_key_file(store_path: Path) -> Path:
    return store_path.with_suffix(".privacy-key")


def parse_privacy(p: Problems, t: dict[str, Any], store_path: Path) -> PrivacyConfig:
    w = "privacy"
    known(p, t, w, KEYS)
    retain = get(p, t, "retain_days", w, float, DEFAULT_RETAIN_DAYS, lo=0, hi=36_500)
    if retain == 0:
        p.warn("privacy.retain_days", "is 0: callers' numbers and names are kept forever (set the days "
                                      "your site may keep them, e.g. 90)")  # fmt: skip
    elif retain < 1:
        p.error("privacy.retain_days", f"{retain!r} is under a day: the job runs daily (0 keeps forever)")
        retain = DEFAULT_RETAIN_DAYS
    text = get(p, t, "run_at", w, str, "03:30")
    m = _HHMM.match(text)
    if m is None:
        p.error("privacy.run_at", f'expected a time of day "HH:MM" (00:00-23:59), got {text!r}')
    key = get(p, t, "key_file", w, str, None, empty=False)
    return PrivacyConfig(
        key_file=Path(key) if key else default_key_file(store_path), retain_days=retain,
        run_at=(int(m.group(1)), int(m.group(2))) if m else (3, 30),
        mask_logs=get(p, t, "mask_logs", w, bool, True), allow_root=get(p, t, "allow_root", w, bool, False),
        key_set=key is not None,
    )  # fmt: skip
