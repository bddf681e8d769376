"""The `[access]` table: sign-in sessions, lockout and the password policy (access/service.py).

    [access]
    session_idle_min = 30        # a session unused this long is signed out
    session_max_h = 12           # and any session this old, used or not
    lock_after = 5               # wrong passwords for one account within lock_window_min lock it
    lock_window_min = 15
    lock_min = 15                # how long a lock lasts (an account's or an address's)
    address_lock_after = 20      # wrong passwords from one client address, any account
    max_sessions = 1000          # sessions open at once; beyond it the oldest is dropped
    min_password_length = 12

Accounts themselves live in the store (`acdbridge users ...`), not in this file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acdbridge.settings.problems import Problems, get, known


@dataclass(frozen=True)
class AccessConfig:
    session_idle_min: float = 30.0
    session_max_h: float = 12.0
    lock_after: int = 5
    lock_window_min: float = 15.0
    lock_min: float = 15.0
    address_lock_after: int = 20
    max_sessions: int = 1000
    min_password_length: int = 12


def parse_access(p: Problems, t: dict[str, Any]) -> AccessConfig:
    w = "access"
    d = AccessConfig()
    known(p, t, w, set(d.__dataclass_fields__))
    cfg = AccessConfig(
        session_idle_min=get(p, t, "session_idle_min", w, float, d.session_idle_min, lo=1, hi=24 * 60),
        session_max_h=get(p, t, "session_max_h", w, float, d.session_max_h, lo=0.1, hi=24 * 31),
        lock_after=get(p, t, "lock_after", w, int, d.lock_after, lo=1, hi=1000),
        lock_window_min=get(p, t, "lock_window_min", w, float, d.lock_window_min, lo=1, hi=24 * 60),
        lock_min=get(p, t, "lock_min", w, float, d.lock_min, lo=1, hi=7 * 24 * 60),
        address_lock_after=get(p, t, "address_lock_after", w, int, d.address_lock_after, lo=1, hi=100_000),
        max_sessions=get(p, t, "max_sessions", w, int, d.max_sessions, lo=1, hi=1_000_000),
        min_password_length=get(p, t, "min_password_length", w, int, d.min_password_length, lo=8, hi=1024),
    )
    if cfg.session_idle_min > cfg.session_max_h * 60:
        p.warn("access.session_idle_min", "is longer than session_max_h: sessions end at session_max_h")
    if cfg.address_lock_after < cfg.lock_after:
        p.warn("access.address_lock_after", "is below lock_after: one user's typos lock their whole address")
    return cfg
