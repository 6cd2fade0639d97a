"""Password hashing for study accounts: scrypt with a random salt, compared in constant time.

The stored form is one self-describing string, ``scrypt$n$r$p$salt_hex$hash_hex``, so the cost
parameters can be raised later without breaking old accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# scrypt cost: 2^14 × 8 × 128 B = 16 MiB and ~50 ms per check on one core — slow for a guesser,
# unnoticeable at a login.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
MIN_LENGTH = 8


def hash_password(password: str) -> str:
    """The stored form of ``password``: ``scrypt$n$r$p$salt$hash`` (hex)."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters, got {len(password)}")
    salt = secrets.token_bytes(_SALT_BYTES)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_KEY_BYTES)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored`` (from ``hash_password``); False for any malformed one."""
    try:
        scheme, n, r, p, salt_hex, key_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, key = bytes.fromhex(salt_hex), bytes.fromhex(key_hex)
        got = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p),
                             dklen=len(key), maxmem=256 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, key)
