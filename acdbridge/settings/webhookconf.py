"""`[[webhooks]]`: HTTP(S) endpoints that receive signed JSON events (docs/webhooks.md).

[[webhooks]]
name = "crm"                 # optional: the outbox's name for it (default: the URL's host and path)
url = "https://crm.example.org/acdbridge/events"
secret_file = "/etc/acdbridge/webhook-crm"   # or secret = "...", or the credential webhook-<name>
events = ["call.offered", "visit.ended", "disposition"]
retry_for_s = 86400          # retried with backoff this long, then dead (acdbridge webhooks list)
timeout_s = 10               # per request
backoff_min_s = 1            # the first retry's wait, doubling up to backoff_max_s (with jitter)
backoff_max_s = 600
concurrency = 4              # requests in flight at once, each to a different call
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from acdbridge.core.webhooks import EVENTS, RESERVED_PREFIX, Endpoint
from acdbridge.settings.problems import Problems, dotted, get, known, str_list, table
from acdbridge.settings.secrets import secret

KEYS = {"name", "url", "secret", "secret_file", "events", "retry_for_s", "timeout_s", "backoff_min_s",
        "backoff_max_s", "concurrency"}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _url(p: Problems, t: dict[str, Any], where: str) -> str:
    url: str | None = get(p, t, "url", where, str, None, empty=False, secret=True)  # may carry a token
    if url is None:
        if "url" not in t:
            p.error(dotted(where, "url"), "is required")
        return ""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number, or out of range
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        p.error(dotted(where, "url"), "expected an http:// or https:// URL with a host (and a port 1-65535)")
        return ""
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        p.warn(dotted(where, "url"), "is plain http off this host: events carry callers' data; use https")
    return url


def _events(p: Problems, t: dict[str, Any], where: str) -> frozenset[str]:
    if "events" not in t:
        p.error(dotted(where, "events"), f"is required: a list from {', '.join(EVENTS)}")
        return frozenset()
    names = str_list(p, t, "events", where)
    if t["events"] == []:
        p.error(dotted(where, "events"), "is empty: name at least one event")
    for name in names:
        if name.startswith(RESERVED_PREFIX):
            p.error(dotted(where, "events"), f"{name!r}: callback.* events are reserved (not sent yet)")
        elif name not in EVENTS:
            p.error(dotted(where, "events"), f"unknown event {name!r}; known: {', '.join(EVENTS)}")
    return frozenset(n for n in names if n in EVENTS)


def _endpoint(p: Problems, t: dict[str, Any], where: str, env: Mapping[str, str]) -> Endpoint | None:
    known(p, t, where, KEYS)
    url = _url(p, t, where)
    parts = urlsplit(url)
    name = get(p, t, "name", where, str, f"{parts.hostname or ''}{parts.path}" if url else "", empty=False)
    if "name" in t and not _NAME.match(name):
        p.error(dotted(where, "name"), f"expected 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    key = secret(p, t, where, "secret", f"webhook-{name}", env)
    if key is None:
        p.error(dotted(where, "secret"), f"is required: secret, secret_file or the credential webhook-{name}")
    events = _events(p, t, where)
    low = get(p, t, "backoff_min_s", where, float, 1.0, lo=0.01, hi=3600)
    high = get(p, t, "backoff_max_s", where, float, 600.0, lo=0.01, hi=86400)
    if high < low:
        p.error(dotted(where, "backoff_max_s"), f"{high:g} is below backoff_min_s ({low:g})")
    retry_for = get(p, t, "retry_for_s", where, float, 86400.0, lo=0, hi=30 * 86400)
    ep = Endpoint(
        name, url, key or "", events, retry_for_s=retry_for,
        timeout_s=get(p, t, "timeout_s", where, float, 10.0, lo=0.1, hi=300), backoff_min_s=low,
        backoff_max_s=max(low, high), concurrency=get(p, t, "concurrency", where, int, 4, lo=1, hi=64),
    )  # fmt: skip
    return ep if url and key and events else None


def parse_webhooks(p: Problems, value: Any, env: Mapping[str, str]) -> tuple[Endpoint, ...]:
    """Every entry checked; the ones with an error left out (the config is not run with errors)."""
    if not isinstance(value, list):
        p.error("webhooks", "expected an array of tables: [[webhooks]]")
        return ()
    out: list[Endpoint] = []
    for i, entry in enumerate(value):
        where = dotted("webhooks", i)
        ep = _endpoint(p, table(p, entry, where), where, env)
        if ep is None:
            continue
        if any(e.name == ep.name for e in out):
            p.error(dotted(where, "name"), f"{ep.name!r} is taken by an earlier webhook: give each its own")
            continue
        out.append(ep)
    return tuple(out)
