"""argon2id hashes, the same time for an unknown account, and the password policy."""

from __future__ import annotations

import time

from argon2 import PasswordHasher

from acdbridge.access import passwords


def test_hash_verifies_only_the_right_password() -> None:
    h = passwords.hash_password("correct horse battery")
    assert h.startswith("$argon2id$") and "correct" not in h
    assert passwords.verify(h, "correct horse battery")
    assert not passwords.verify(h, "correct horse batterY")
    assert h != passwords.hash_password("correct horse battery")  # salted
    assert not passwords.needs_rehash(h)


def test_a_missing_account_spends_the_time_of_a_real_one() -> None:
    h = passwords.hash_password("correct horse battery")
    passwords.verify(None, "warm the dummy up")

    def spent(password_hash: str | None) -> float:
        start = time.perf_counter()
        for _ in range(3):
            assert not passwords.verify(password_hash, "wrong password here")
        return time.perf_counter() - start

    real, missing = spent(h), spent(None)
    assert real > 0.01  # argon2 at its parameters is not instant
    assert 0.3 < missing / real < 3.0  # the same work; wide bounds for a busy test machine


def test_damaged_or_weak_hashes() -> None:
    assert not passwords.verify("not a hash", "anything at all")
    assert passwords.needs_rehash("not a hash")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("correct horse battery")
    assert passwords.verify(weak, "correct horse battery")  # still signs in ...
    assert passwords.needs_rehash(weak)  # ... and is then re-hashed


def test_policy() -> None:
    assert (
        passwords.policy("short", "ana", 12) == "the password must be at least 12 characters long (it has 5)"
    )
    assert passwords.policy("ana.torres.99", "Ana.Torres.99", 12) == "the password must not be the username"
    assert passwords.policy(" " * 12, "ana", 12) == "the password must not be only spaces"
    assert "at most 1024" in passwords.policy("x" * 1025, "ana", 12)
    assert passwords.policy("a good long passphrase", "ana", 12) == ""
