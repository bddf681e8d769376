"""The [mqtt] table: its password from `password`, `password_file` or the systemd credential
`mqtt-password`, then adapters/mqtt.py's parse_mqtt for the rest. parse_mqtt stops at its first
problem, so [mqtt] reports at most one problem of its own besides the password's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acdbridge.adapters.mqtt import MqttConfig, parse_mqtt
from acdbridge.settings.problems import Problems
from acdbridge.settings.secrets import secret


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
