"""Password hashes (argon2id, argon2-cffi) and the password policy.

The parameters are argon2-cffi's RFC 9106 "low memory" profile (t=3, m=64 MiB, p=4): about
50-100 ms per hash on a small server. A sign-in for an account that does not exist verifies
against a dummy hash of the same parameters, so the answer takes as long as for a real account
and the timing does not reveal which usernames exist."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
MAX_LENGTH = 1024  # longer is refused: hashing a megabyte per attempt would be a cheap attack


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing account (None) spends the same time and is False.
    A hash that is not argon2 (a damaged row) is False, never an exception into a request."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]  # still spend the time; policy() refuses such at set time
    try:
        return HASHER.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than HASHER's (then re-hash at sign-in)."""
    try:
        return HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


@cache
def _dummy() -> str:
    return HASHER.hash("no such account: a dummy to spend the time of a verification")


def policy(password: str, username: str, min_length: int) -> str:
    """The problem with a new password as one sentence, "" when it is acceptable."""
    if len(password) < min_length:
        return f"the password must be at least {min_length} characters long (it has {len(password)})"
    if len(password) > MAX_LENGTH:
        return f"the password must be at most {MAX_LENGTH} characters long"
    if password.strip().casefold() == username.strip().casefold():
        return "the password must not be the username"
    if not password.strip():
        return "the password must not be only spaces"
    return ""
