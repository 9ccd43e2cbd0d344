"""Passwords (argon2id), the password policy, bearer tokens (stored as SHA-256), login limits.

Nothing here touches the database; `service.accounts.service` does.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.errors import BadRequest

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything, but a megabyte "password" is an attack
TOKEN_PREFIX = "sp_"
TOKEN_LIFETIME = timedelta(hours=12)
MAX_FAILED_LOGINS = 5  # consecutive failures before the account locks
LOCKOUT = timedelta(minutes=15)
LOGIN_ATTEMPTS_PER_IP = 20  # per LOGIN_WINDOW_SECONDS, whatever the usernames
LOGIN_WINDOW_SECONDS = 60.0

# The same words for an unknown user, a wrong password, a locked or a deactivated account.
LOGIN_REFUSED = "Those credentials were not accepted. Check them, or try again later."

# NIST SP 800-63B (5.1.1.2): length, no composition rules, and a refusal of passwords that are
# known to be common, or that name the service or the user. Two small lists: whole passwords
# seen first in every breach list, and the words those passwords are built on, which are
# refused however many digits or symbols surround them ("Password2024!", "P@ssw0rd!!").
COMMON_PASSWORDS = frozenset({
    "password1234", "password12345", "password123456", "passwordpassword", "password123!",
    "123456789012", "1234567890123", "12345678901234", "111111111111", "000000000000",
    "qwertyuiop12", "qwerty123456", "qwertyuiopasdf", "1q2w3e4r5t6y", "abc123456789",
    "iloveyou1234", "letmein12345", "welcome12345", "welcome123456", "changeme1234",
    "administrator", "admin1234567", "trustno11234", "monkey123456", "dragon123456",
    "football1234", "baseball1234", "sunshine1234", "princess1234", "superman1234",
    "correcthorsebatterystaple", "p@ssw0rd1234", "p@ssword1234", "signpost1234",
})
COMMON_WORDS = frozenset({
    "password", "passwords", "passwort", "qwerty", "qwertyuiop", "asdfghjkl", "letmein",
    "welcome", "iloveyou", "changeme", "administrator", "admin", "trustno", "monkey", "dragon",
    "football", "baseball", "sunshine", "princess", "superman", "master", "secret", "login",
    "abcdefghijkl", "abcdefghijklmnop", "signpost", "casemanager", "supervisor", "partner",
})

_hasher = PasswordHasher()  # argon2id with the library's current (RFC 9106) parameters
_DUMMY_HASH = _hasher.hash("a password nobody has: equalises the time of unknown users")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "!": "i"})


def _base_word(password: str) -> str:
    """The word a password is built on: digits and symbols at either end and spaces dropped,
    look-alike characters read as letters ("P@ssw0rd2024!" -> "password")."""
    core = "".join(password.casefold().split())
    start, end = 0, len(core)
    while start < end and not core[start].isalpha():
        start += 1
    while end > start and not core[end - 1].isalpha():
        end -= 1
    return core[start:end].translate(_LEET)


def password_problem(password: str, *, username: str) -> str | None:
    """What is wrong with a password under the policy, in words for its owner; None if
    nothing. The CLI, the API and the pages all ask this one function."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password must be at most {MAX_PASSWORD_LENGTH} characters"
    lowered = password.casefold()
    name = username.strip().casefold()
    if name and (lowered == name or (len(name) >= 4 and name in lowered)):
        return "the password must not be or contain the username"
    squashed = "".join(lowered.split())
    if (lowered in COMMON_PASSWORDS or squashed in COMMON_PASSWORDS
            or _base_word(password) in COMMON_WORDS or len(set(password)) < 4):
        return "the password is too common or too easy to guess; choose another"
    return None


def check_password_policy(password: str, *, username: str) -> None:
    """Raise BadRequest (field `password`) unless the password is acceptable."""
    problem = password_problem(password, username=username)
    if problem is not None:
        raise BadRequest(problem, field="password")


def hash_password(password: str) -> str:
    """An argon2id PHC string."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; with no hash, spends the same time and answers False."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with older parameters than the current ones."""
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> str:
    """A fresh bearer token (shown to its owner once, never stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class AttemptLimiter:
    """At most `limit` attempts per key in a sliding window (in memory, per process).

    The account lockout (in the database) is what holds across processes; this only slows
    one address trying many usernames.
    """

    def __init__(self, limit: int = LOGIN_ATTEMPTS_PER_IP,
                 window_seconds: float = LOGIN_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window_seconds
        self._attempts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count an attempt for `key`; False when it is over the limit."""
        now = time.monotonic()
        with self._lock:
            attempts = self._attempts.setdefault(key, deque())
            while attempts and attempts[0] <= now - self.window:
                attempts.popleft()
            if len(attempts) >= self.limit:
                return False
            attempts.append(now)
            if len(self._attempts) > 10_000:  # forget idle addresses
                for k in [k for k, v in self._attempts.items() if not v]:
                    del self._attempts[k]
            return True
