"""Users and roles for login: a JSON file of salted scrypt password hashes.

Roles: ``rater`` (reaches only the Blind A/B flow) and ``admin`` (everything).
The file is rewritten atomically; passwords are never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import AuthError
from .fsutil import atomic_open

Role = Literal["rater", "admin"]
ROLES: tuple[Role, ...] = ("rater", "admin")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
#: scrypt cost parameters (n=2**14, r=8, p=1: about 50 ms, 16 MB per check)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class User:
    """A login: name, role and the scrypt hash of the password (never the password)."""

    name: str
    role: Role
    salt: str  # hex
    hash: str  # hex scrypt digest


def _digest(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT).hex()


class UserStore:
    """Users kept in one JSON file: ``{"users": {name: {role, salt, hash}}}``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # the parsed file and the (inode, mtime, size) it was read at: every request of a
        # logged-in user checks the role, so the file is re-read only when it changed
        self._cache: tuple[tuple, dict[str, User]] | None = None

    def _read(self) -> dict[str, User]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise AuthError(f"{self.path}: cannot read the users file ({e})") from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cache = self._cache
        if cache is not None and cache[0] == stamp:
            return dict(cache[1])
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            users = {n: User(name=n, **u) for n, u in raw.get("users", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise AuthError(f"{self.path}: not a valid users file ({e}); fix or remove it") from None
        self._cache = (stamp, users)
        return dict(users)

    def _write(self, users: dict[str, User]) -> None:
        data = {"users": {u.name: {"role": u.role, "salt": u.salt, "hash": u.hash} for u in users.values()}}
        with atomic_open(self.path, "w", encoding="utf-8", file_mode=0o600) as f:
            json.dump(data, f, indent=2)

    def add(self, name: str, password: str, role: Role = "rater") -> User:
        """Add or update a user (a new salt every time)."""
        if not _NAME.match(name or ""):
            raise AuthError(f"user name {name!r} is not valid: use letters, digits, _ . @ - (max 64)")
        if role not in ROLES:
            raise AuthError(f"role {role!r} is not valid; choose one of: {', '.join(ROLES)}")
        if len(password or "") < 6:
            raise AuthError("password must have at least 6 characters")
        salt = secrets.token_bytes(16)
        users = self._read()
        users[name] = User(name=name, role=role, salt=salt.hex(), hash=_digest(password, salt))
        self._write(users)
        return users[name]

    def remove(self, name: str) -> None:
        users = self._read()
        if name not in users:
            raise AuthError(f"no user {name!r}; known users: {', '.join(users) or '(none)'}")
        del users[name]
        self._write(users)

    def list(self) -> list[User]:
        return sorted(self._read().values(), key=lambda u: u.name)

    def verify(self, name: str, password: str) -> bool:
        """True when ``name`` exists and ``password`` matches (constant-time compare)."""
        user = self._read().get(name)
        if user is None:
            _digest(password or "", b"0" * 16)  # same cost for unknown users
            return False
        return hmac.compare_digest(user.hash, _digest(password or "", bytes.fromhex(user.salt)))

    def fingerprint(self, name: str) -> str | None:
        """A value that changes when ``name``'s password changes; None if there is no such user."""
        user = self._read().get(name or "")
        return user.hash[:16] if user else None

    def role(self, name: str | None) -> Role | None:
        user = self._read().get(name or "")
        return user.role if user else None
