"""SIGHUP: read the config again. Agent profiles, hotlines and routing apply at once; the rest
(ports, store) needs a restart. A new config that fails any check is rejected whole: the old one
keeps running, one line says why, and `acd_config_reloads_total{result="rejected"}` counts it."""

from __future__ import annotations

from pathlib import Path

import structlog

from acdbridge.adapters.callflow import CallFlow
from acdbridge.config import load
from acdbridge.errors import AcdError

log = structlog.get_logger("acdbridge")


class Reloader:
    def __init__(self, config_path: Path | None, callflow: CallFlow | None) -> None:
        self.config_path, self.callflow = config_path, callflow
        self.results = {"ok": 0, "rejected": 0}

    def _reject(self, problem: str) -> None:
        self.results["rejected"] += 1
        log.error("reload_rejected", problem=problem.replace("\n", "; "))

    def reload(self) -> None:
        if self.config_path is None:
            return
        try:
            cfg = load(self.config_path)
        except (AcdError, OSError, ValueError) as exc:  # any reason at all: keep the old config
            self._reject(str(exc))
            return
        if self.callflow is not None:
            if cfg.flow is None:
                self._reject("the new config has no [agi] section; keeping the old call flow")
                return
            try:
                self.callflow.reload(cfg.flow)
            except Exception as exc:  # a bug applying it must not take the daemon down either
                self._reject(f"{type(exc).__name__}: {exc}")
                return
        self.results["ok"] += 1
        flow = cfg.flow
        log.info(
            "reloaded",
            agents=len(flow.profiles) if flow else 0,
            hotlines=sorted(flow.hotlines) if flow else [],
        )
