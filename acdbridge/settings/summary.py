"""What `acdbridge check-config` prints for a config without errors: enough to see at a glance
that the file says what its author meant (hotlines and their DIDs, groups, agents, listeners)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acdbridge.config import Config


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def summary(cfg: Config) -> list[str]:
    lines = [f"ami: {cfg.ami.username}@{_hostport(cfg.ami.host, cfg.ami.port)}"]
    listeners = [f"http {_hostport(cfg.http.host, cfg.http.port)}" + (" (token)" if cfg.http.token else "")]
    flow = cfg.flow
    if flow is not None:
        listeners.append(f"agi {_hostport(flow.agi_host, flow.agi_port)}")
    lines.append("listeners: " + ", ".join(listeners))
    lines.append(f"store: {cfg.store.describe()}" + (f", journal {cfg.journal.dir}" if cfg.journal else ""))
    lines.append(_privacy(cfg))
    if schedules := cfg.reports.schedules:
        made = [f"{r.name} every {r.when.every} at {r.when.run_at[0]:02d}:{r.when.run_at[1]:02d} "
                f"({', '.join(r.formats)}) to {r.directory}"
                + (f", mailed to {len(r.mail_to)}" if r.mail_to else "")
                for r in schedules]  # fmt: skip
        lines.append(f"reports ({len(made)}): " + "; ".join(made))
    if cfg.mqtt is not None:
        lines.append(f"mqtt: {_hostport(cfg.mqtt.host, cfg.mqtt.port)} topics {cfg.mqtt.topic_prefix}/...")
    if flow is None:
        lines.append("call flow: none (no [agi] section: the daemon only watches)")
        return lines
    hotlines = []
    for name, h in flow.hotlines.items():
        dids = [d for d, owner in flow.dids.items() if owner == name]
        hotlines.append(f"{name} ({', '.join(dids) or 'no DIDs'}) -> {h.default_queue}")
    lines.append(f"hotlines ({len(hotlines)}): " + ("; ".join(hotlines) or "none"))
    groups = [
        g.queue + (f" [{g.skill}/{g.language}]" if g.language else f" [{g.skill}]")
        for g in flow.routing.groups
    ]
    lines.append(f"skill groups ({len(groups)}): " + (", ".join(groups) or "none"))
    agents = [f"{p.name} {p.extension}" for p in flow.profiles.values()]
    lines.append(f"agents ({len(agents)}): " + (", ".join(agents) or "none"))
    if flow.directory is not None:
        lines.append(f"caller directory: {flow.directory}")
    return lines


def _privacy(cfg: Config) -> str:
    pv = cfg.privacy
    logs = "logs masked" if pv.mask_logs else "logs NOT masked"
    if pv.retain_s is None:
        return f"privacy: callers' data kept forever (retain_days = 0), {logs}"
    at = f"{pv.run_at[0]:02d}:{pv.run_at[1]:02d} {cfg.kpi.timezone}"
    return f"privacy: callers' data pseudonymised after {pv.retain_days:g} days (daily at {at}), {logs}"
