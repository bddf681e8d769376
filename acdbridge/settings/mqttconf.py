"""The `[mqtt]` table: the broker the wallboard's topics go to (adapters/mqtt.py publishes).

Its password comes from `password`, `password_file` or the systemd credential `mqtt-password`;
parse_mqtt checks the rest and stops at its first problem, so [mqtt] reports at most one problem
of its own besides the password's."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acdbridge.settings.problems import Problems
from acdbridge.settings.secrets import secret


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a secret: never in a repr or a log
    tls: bool = False
    ca_file: Path | None = None  # with tls: trust this CA instead of the system's
    client_id: str = "acdbridge"
    topic_prefix: str = "acdbridge"
    republish_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    qos: int = 1
    keepalive_s: int = 30  # the broker sends the will after 1.5x this if the host vanishes silently


def parse_mqtt(table: dict[str, Any], source: str) -> MqttConfig:
    """Validate a TOML `[mqtt]` table; a ValueError names `mqtt.<key>`."""

    def bad(key: str, problem: str) -> ValueError:
        return ValueError(f"{source}: mqtt.{key}: {problem}")

    fields = MqttConfig.__dataclass_fields__
    for key in table:
        if key not in fields:
            raise bad(key, f"unknown key (known: {', '.join(fields)})")
    d = MqttConfig()

    def get(key: str, kind: type, default: Any) -> Any:
        value = table.get(key, default)
        if key not in table:
            return value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise bad(key, f"expected {kind.__name__}, got {value!r}")
        if isinstance(value, float) and (not math.isfinite(value) or value <= 0):
            raise bad(key, f"must be a positive number, got {value!r}")
        if isinstance(value, str) and key != "password" and not value.strip():
            raise bad(key, "must not be empty")
        return value

    port = get("port", int, d.port)
    if not 1 <= port <= 65535:
        raise bad("port", f"out of range 1-65535: {port}")
    qos = get("qos", int, d.qos)
    if qos not in (0, 1, 2):
        raise bad("qos", f"must be 0, 1 or 2, got {qos}")
    keepalive = get("keepalive_s", int, d.keepalive_s)
    if not 5 <= keepalive <= 65535:
        raise bad("keepalive_s", f"out of range 5-65535: {keepalive}")
    prefix = get("topic_prefix", str, d.topic_prefix)
    if set(prefix) & {"+", "#", "\0"} or prefix.startswith(("/", "$")) or prefix.endswith("/"):
        raise bad("topic_prefix", f"no wildcards, no leading '$' or '/', no trailing '/': {prefix!r}")
    username, password = get("username", str, None), get("password", str, None)
    if password is not None and username is None:
        raise bad("password", "given without mqtt.username")
    tls = get("tls", bool, d.tls)
    ca = get("ca_file", str, None)
    if ca is not None and not tls:
        raise bad("ca_file", "given but mqtt.tls is false")
    if ca is not None and not Path(ca).is_file():
        raise bad("ca_file", f"no such file: {ca}")
    low = get("reconnect_min_s", float, d.reconnect_min_s)
    high = get("reconnect_max_s", float, d.reconnect_max_s)
    if high < low:
        raise bad("reconnect_max_s", f"smaller than mqtt.reconnect_min_s ({high} < {low})")
    return MqttConfig(
        host=get("host", str, d.host), port=port, username=username, password=password, tls=tls,
        ca_file=Path(ca) if ca is not None else None, client_id=get("client_id", str, d.client_id),
        topic_prefix=prefix, republish_s=get("republish_s", float, d.republish_s), reconnect_min_s=low,
        reconnect_max_s=high, qos=qos, keepalive_s=keepalive,
    )  # fmt: skip


def parse_mqtt_section(p: Problems, t: dict[str, Any], env: Mapping[str, str]) -> MqttConfig | None:
    rest = {k: v for k, v in t.items() if k not in ("password", "password_file")}
    password = secret(p, t, "mqtt", "password", "mqtt-password", env)
    if password is not None:
        rest["password"] = password  # checked already: parse_mqtt never sees a wrong-typed secret
    elif isinstance(t.get("username"), str) and not {"password", "password_file"} & set(t):
        p.error(
            "mqtt.password",
            "missing while mqtt.username is set: set mqtt.password_file (chmod 600), "
            "mqtt.password, or the systemd credential mqtt-password",
        )
    try:
        return parse_mqtt(rest, p.source)
    except ValueError as exc:
        p.errors.append(str(exc))
        return None
