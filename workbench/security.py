"""Defences for a server on a public link (no Gradio here; :mod:`workbench.ui.guard` wires them in).

- :func:`check_password`: the password policy of ``users add``.
- :class:`LoginThrottle`: exponential back-off per user name and per client address.
- :class:`PasswordChecker`: password checks (scrypt, ~50 ms of CPU each) in a small
  thread pool with a bounded waiting line, so a login flood cannot take every core
  from the server's event loop (votes, pages, files).
- :class:`RateLimiter`: token buckets per key (session, user) for handlers that write
  to disk.
- :class:`SessionBook`: which login owns each browser session and each login cookie,
  for revocation (user removed, password changed), idle expiry and session binding.
- :func:`sweep_folder`, :func:`free_bytes`: the temp-folder sweep (by age and total size)
  and the free-space floor.
- :func:`restrict_new_files`: files the app creates are 0600 in 0700 folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import AuthError

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- password policy

#: shortest password ``users add`` accepts (characters)
MIN_PASSWORD_CHARS = 10
#: the most common leaked passwords of 10+ characters, plus obvious ones for this app
#: (shorter ones fail the length rule anyway); compared case-insensitively
COMMON_PASSWORDS = frozenset(
    """
    1234567890 0123456789 0987654321 9876543210 1111111111 0000000000 1234512345
    12345678910 123456789a a123456789 1q2w3e4r5t 1q2w3e4r5t6y qwertyuiop asdfghjkl;
    qwerty1234 qwerty12345 1qaz2wsx3edc zaq12wsxcv password12 password123 password1234
    passw0rd12 p@ssw0rd123 password!1 iloveyou12 iloveyou123 abcdefghij abc1234567
    abcd123456 aaaaaaaaaa letmein123 welcome123 welcome1234 administrator admin12345
    admin123456 changeme123 trustno1234 football123 baseball123 princess123 sunshine123
    superman123 starwars123 monkey1234 dragon1234 master1234 qwertyuiop123 1234qwerty
    q1w2e3r4t5 q1w2e3r4t5y6 11223344556 1122334455 123123123123 123321123321 12341234
    1234567890a 123456789q 987654321a listening workbench listening1 workbench1
    workbench123 raterrater adminadmin secret1234 secretsecret
    """.split()
)


def check_password(name: str, password: str) -> None:
    """Refuse a weak password with an :class:`AuthError` saying what to change.

    Rules: at least :data:`MIN_PASSWORD_CHARS` characters, not the user name (in any
    case, nor contained in it either way), not a common password.
    """
    pw = password or ""
    if len(pw) < MIN_PASSWORD_CHARS:
        raise AuthError(
            f"password for {name!r} has {len(pw)} characters; use at least {MIN_PASSWORD_CHARS} "
            "(a few unrelated words are easy to type and hard to guess)"
        )
    low, user = pw.lower(), (name or "").lower()
    if user and (low == user or user in low and len(low) - len(user) < 4):
        raise AuthError(f"password for {name!r} is (almost) the user name; choose something unrelated")
    if low in COMMON_PASSWORDS or len(set(low)) <= 2:
        raise AuthError(f"password for {name!r} is a common password that is guessed first; choose another")


# ---------------------------------------------------------------------------- login throttle


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0  # clock time (s)
    last: float = 0.0  # clock time of the last failure (s)


class LoginThrottle:
    """Exponential back-off after failed logins, per user name and per client address.

    The first ``free`` failures on a key cost nothing; failure number ``free + k``
    (k = 0, 1, ...) locks the key for ``base_s * 2**k`` seconds, at most ``max_s``.
    While a key is locked every attempt on it is refused *without* checking the
    password, so the right password does not get in either, and a refused attempt
    does not lengthen the lock. A key with no failure for ``forget_s`` seconds starts
    again from zero; a successful login clears its user name (not its address, so an
    attacker's own account cannot reset the address count).

    So that a stranger guessing a known user name cannot lock its owner out, an address
    the user logged in from before (the last ``known_per_user`` of them, kept in memory)
    is not held by the user-name lock: attempts from it count on their own (user,
    address) key, with the same back-off, and on the address.
    """

    def __init__(
        self,
        free: int = 5,
        base_s: float = 1.0,
        max_s: float = 900.0,
        forget_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        known_per_user: int = 8,
    ):
        self.free, self.base_s, self.max_s, self.forget_s = free, base_s, max_s, forget_s
        self.clock = clock
        self.max_keys = max_keys
        self.known_per_user = known_per_user
        self._keys: dict[str, _Failures] = {}
        self._known: dict[str, OrderedDict[str, None]] = {}  # user -> addresses it logged in from
        self._lock = threading.Lock()

    @staticmethod
    def _user_keys(user: str, address: str | None) -> tuple[str, str, str]:
        """``user``'s name as the keys hold it, its user-name key, and its (user, address) key."""
        name = user.strip().lower()
        return name, f"user:{name}", f"pair:{name}@{address}"

    def _key_list(self, user: str | None, address: str | None) -> list[str]:
        keys = []
        if user is not None:
            name, user_key, pair_key = self._user_keys(user, address)
            known = address is not None and address in self._known.get(name, ())
            keys.append(pair_key if known else user_key)
        if address:
            keys.append(f"addr:{address}")
        return keys

    def _get(self, key: str, now: float) -> _Failures | None:
        rec = self._keys.get(key)
        if rec is not None and rec.locked_until <= now and now - rec.last > self.forget_s:
            del self._keys[key]
            return None
        return rec

    def wait_s(self, user: str | None, address: str | None) -> float:
        """Seconds until ``user`` from ``address`` may try again (0: now); ``user=None``
        asks about the address alone.
        """
        now = self.clock()
        with self._lock:
            waits = [r.locked_until - now for k in self._key_list(user, address) if (r := self._get(k, now))]
        return max([0.0, *waits])

    def failed(self, user: str, address: str | None) -> float:
        """Count a failed login; returns the lock (s) it started, 0 if none."""
        now = self.clock()
        lock_s = 0.0
        with self._lock:
            if len(self._keys) >= self.max_keys:
                self._prune(now)
            for key in self._key_list(user, address):
                rec = self._get(key, now) or self._keys.setdefault(key, _Failures())
                rec.count += 1
                rec.last = now
                if rec.count >= self.free:
                    s = min(self.max_s, self.base_s * 2 ** min(rec.count - self.free, 40))
                    rec.locked_until = max(rec.locked_until, now + s)
                    lock_s = max(lock_s, s)
        return lock_s

    def succeeded(self, user: str, address: str | None = None) -> None:
        """Clear ``user``'s failures and remember ``address`` as one it logs in from."""
        name, user_key, pair_key = self._user_keys(user, address)
        with self._lock:
            self._keys.pop(user_key, None)
            if address:
                self._keys.pop(pair_key, None)
                known = self._known.setdefault(name, OrderedDict())
                known[address] = None
                known.move_to_end(address)
                while len(known) > self.known_per_user:
                    known.popitem(last=False)

    def _prune(self, now: float) -> None:
        """Drop unlocked keys, oldest failure first, until at most half the cap remain."""
        idle = sorted((r.last, k) for k, r in self._keys.items() if r.locked_until <= now)
        for _, k in idle[: max(0, len(self._keys) - self.max_keys // 2)]:
            del self._keys[k]


class LoginRefused(Exception):
    """A login attempt refused before its password was checked; ``retry_s`` says when to retry."""

    def __init__(self, message: str, retry_s: float):
        super().__init__(message)
        self.retry_s = retry_s


def too_many(wait_s: float) -> LoginRefused:
    """The refusal for a throttled login, rounding ``wait_s`` (seconds) up to whole seconds."""
    n = max(1, math.ceil(wait_s))
    return LoginRefused(f"Too many failed logins: try again in {n} s.", n)


# ---------------------------------------------------------------------------- password checks off the loop


def default_workers() -> int:
    """Threads for password checks: half the cores (at least 1, at most 4), so checks
    under a flood never take every core from the event loop.
    """
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class PasswordChecker:
    """Run ``verify(name, password) -> bool`` in a small pool, off the event loop.

    At most ``workers`` checks run at once (scrypt releases the GIL and takes one core
    each); at most ``max_waiting`` more wait in line. Beyond that :meth:`check` raises
    :class:`LoginRefused` at once ("busy") instead of queueing without bound.
    """

    def __init__(self, verify: Callable[[str, str], bool], workers: int | None = None, max_waiting: int = 256):
        self.verify = verify
        self.workers = workers or default_workers()
        self.max_waiting = max_waiting
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="password-check")
        self._pending = 0  # only touched from the event loop

    async def check(self, name: str, password: str) -> bool:
        if self._pending >= self.workers + self.max_waiting:
            raise LoginRefused("The server is busy checking other logins: try again in 2 s.", 2)
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self.verify, name, password)
        finally:
            self._pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------------- rate limits


class RateLimiter:
    """Token buckets: each key may spend ``burst`` at once, refilled at ``per_s`` per second."""

    def __init__(self, per_s: float, burst: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 50_000):
        self.per_s, self.burst, self.clock, self.max_keys = per_s, burst, clock, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` from ``key``'s bucket; returns 0 if allowed, else seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.per_s)
            if tokens < cost:
                self._buckets[key] = (tokens, now)
                return (cost - tokens) / self.per_s
            if len(self._buckets) >= self.max_keys:  # full buckets carry no information
                full = [k for k, (t, a) in self._buckets.items() if t + (now - a) * self.per_s >= self.burst]
                for k in full:
                    del self._buckets[k]
            self._buckets[key] = (tokens - cost, now)
            return 0.0


# ---------------------------------------------------------------------------- sessions and logins


@dataclass
class _Login:
    user: str
    fingerprint: str | None  # the user's password hash when the cookie was issued
    last_seen: float  # clock time (s)


class SessionBook:
    """Who owns what: login cookies (token -> user) and browser sessions (hash -> user).

    ``fingerprint(user)`` returns a value that changes when the user's password changes
    and None when the user no longer exists; a cookie whose fingerprint moved is revoked.
    """

    def __init__(
        self,
        fingerprint: Callable[[str], str | None],
        idle_s: float = 12 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.fingerprint, self.idle_s, self.clock = fingerprint, idle_s, clock
        self._logins: dict[str, _Login] = {}
        self._sessions: dict[str, str] = {}
        self._lock = threading.Lock()

    def logged_in(self, token: str, user: str) -> None:
        """Record a cookie just issued to ``user``."""
        with self._lock:
            self._logins[token] = _Login(user, self.fingerprint(user), self.clock())

    def check(self, token: str, user: str) -> str | None:
        """None if ``token`` (held by ``user``) is still good (and mark it used), else why not."""
        now = self.clock()
        fp = self.fingerprint(user)
        with self._lock:
            rec = self._logins.get(token)
            if rec is None:  # issued before this book existed: adopt it
                rec = self._logins[token] = _Login(user, fp, now)
            if fp is None:
                why = "user removed"
            elif fp != rec.fingerprint or rec.user != user:
                why = "password changed"
            elif now - rec.last_seen > self.idle_s:
                why = f"idle for more than {self.idle_s:.0f} s"
            else:
                rec.last_seen = now
                return None
            del self._logins[token]
            return why

    def forget(self, token: str) -> None:
        with self._lock:
            self._logins.pop(token, None)

    def claim(self, session_hash: str, user: str) -> bool:
        """Bind ``session_hash`` to ``user`` on first use; False if another user holds it."""
        with self._lock:
            owner = self._sessions.setdefault(session_hash, user)
            if len(self._sessions) > 200_000:  # a flood of made-up hashes: forget the oldest half
                for k in list(self._sessions)[:100_000]:
                    del self._sessions[k]
            return owner == user

    def owner(self, session_hash: str) -> str | None:
        with self._lock:
            return self._sessions.get(session_hash)


# ---------------------------------------------------------------------------- disk


#: default free-space floor (bytes) below which rendering and serving audio refuse
MIN_FREE_BYTES = 1 << 30
#: default largest upload (bytes): only admins upload (a plan file, a zip of old renders)
MAX_UPLOAD_BYTES = 500 * 10**6
#: default cap (bytes) and age (s) for the app's temp folder
TEMP_MAX_BYTES = 2 << 30
TEMP_MAX_AGE_S = 3600.0


def free_bytes(path: str | Path) -> int:
    """Free space (bytes) for unprivileged writes on the file system holding ``path``."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def sweep_folder(folder: str | Path, max_bytes: int = TEMP_MAX_BYTES, max_age_s: float = TEMP_MAX_AGE_S) -> int:
    """Delete files older than ``max_age_s`` seconds, then the oldest until the folder
    holds at most ``max_bytes`` bytes; returns how many files were deleted. Empty
    sub-folders are removed too.
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    files: list[tuple[float, int, Path]] = []
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            try:
                st = p.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, p))
    files.sort()
    total = sum(f[1] for f in files)
    cutoff = time.time() - max_age_s
    deleted = 0
    for mtime, size, p in files:
        if mtime >= cutoff and total <= max_bytes:
            break
        try:
            p.unlink()
            deleted += 1
            total -= size
        except OSError:
            pass
    for dirpath, dirs, names in os.walk(root, topdown=False):
        if Path(dirpath) != root and not dirs and not names:
            with contextlib.suppress(OSError):  # filled again meanwhile: keep it
                os.rmdir(dirpath)
    return deleted


def restrict_new_files() -> int:
    """Make files the process creates from now on private (0600, folders 0700): sets the
    umask to 077 and returns the previous one. Call once at start-up, before any thread.
    """
    return os.umask(0o077)


def make_private(*paths: str | Path) -> None:
    """Chmod existing files to 0600 and folders to 0700 (not recursive); missing paths are skipped."""
    for p in map(Path, paths):
        try:
            p.chmod(0o700 if p.is_dir() else 0o600)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not make %s private: %s", p, e)
