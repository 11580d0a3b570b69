"""The instance's users: names, roles and scrypt password hashes, kept in the queue's database.

One ``--queue URL`` names the queue, the CMDB and the users alike. A password is never stored,
logged or shown: only ``scrypt$N$r$p$salt$hash``. ``UserStore.authenticate`` checks HTTP basic
auth; a password it has verified is remembered as an HMAC under a key this process made, so an
agent polling every second costs one scrypt, not one per request, and for ``RECENT_SECONDS`` a
login it verified is taken without reading the user again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from midprobe.capabilities.errors import ConfigError, CredentialError
from midprobe.runner.cmdb.database import Clock, Database, SqlStore, open_database
from midprobe.runner.ecc.record import ALL_AGENTS, normalize_agent_name

ROLES: Final[tuple[str, ...]] = ("admin", "discovery_admin", "mid_server")
"""``admin``: everything; ``discovery_admin``: start, watch and cancel discoveries and read the tables;
``mid_server``: what a MID does (read, answer with inputs)."""

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
MAX_PASSWORD_LENGTH: Final = 1024
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_CACHE_SIZE: Final = 1024
RECENT_SECONDS: Final = 5.0
"""How long a verified login is taken as it is, without reading the user again (roles, MIDs, password)."""

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS instance_user (
        name TEXT PRIMARY KEY, roles TEXT NOT NULL, password_hash TEXT NOT NULL, created_on TEXT NOT NULL)""",
    #: The MIDs a ``mid_server`` user may act as (none: any MID).
    """CREATE TABLE IF NOT EXISTS instance_user_mid (
        user_name TEXT NOT NULL, mid TEXT NOT NULL, PRIMARY KEY (user_name, mid))""",
)


def check_user_name(name: str) -> str:
    """Return ``name`` if it is a user name (letters, digits, ``._@-``, at most 100), else ``ConfigError``."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ConfigError(
            "a user name is 1 to 100 letters, digits, '.', '_', '@' or '-' (starting with a letter or digit)",
            field="name",
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"{role!r} is not a role ({', '.join(ROLES)})", field="role")
    return role


def check_mid_name(name: str) -> str:
    """The MID a user is bound to, as ``mid.server.NAME`` (one MID, never ``*``)."""
    normalized = normalize_agent_name(name)
    if normalized == ALL_AGENTS:
        raise ConfigError("a user is bound to named MIDs, not to every MID (*)", field="--mid")
    return normalized


def check_password(password: str) -> str:
    """A password may be any text of 1 to ``MAX_PASSWORD_LENGTH`` characters without control characters."""
    if not password:
        raise CredentialError("the password is empty", field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise CredentialError(
            f"the password is longer than {MAX_PASSWORD_LENGTH} characters", field="password"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in password):
        raise CredentialError("the password holds control characters or undecodable bytes", field="password")
    return password


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex) of ``password``, with a fresh 16-byte salt unless given one."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` hashes to ``stored``; a stored value of another shape verifies nothing."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=64 * 1024 * 1024
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


@dataclass(frozen=True)
class User:
    """An instance user: a name, its roles and the MIDs it is bound to (never its password)."""

    name: str
    roles: tuple[str, ...]
    #: The MIDs (``mid.server.NAME``) a ``mid_server`` user may act as; empty: any MID.
    mids: tuple[str, ...] = ()

    def has_role(self, role: str) -> bool:
        return "admin" in self.roles or role in self.roles

    def may_act_as(self, agent: str) -> bool:
        """Whether this user may speak for MID ``agent`` (``ConfigError`` if it is not an agent name)."""
        wanted = normalize_agent_name(agent)
        return "admin" in self.roles or not self.mids or wanted in self.mids


def parse_basic_auth(header: str) -> tuple[str, str] | None:
    """``Basic base64(name:password)`` -> (name, password); ``None`` for anything else."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, colon, password = decoded.partition(":")
    if not colon:
        return None
    return name, password


class UserStore(SqlStore):
    """The ``instance_user`` table in the queue's database."""

    schema = SCHEMA

    def __init__(self, database: Database, *, clock: Clock | None = None) -> None:
        super().__init__(database, clock=clock)
        self._key = secrets.token_bytes(32)
        self._verified: dict[tuple[str, str], bytes] = {}
        #: HMAC of ``name:password`` -> the user it logged in as, and until when (monotonic) that holds.
        self._recent: dict[bytes, tuple[User, float]] = {}
        self._monotonic = time.monotonic
        self._lock = threading.Lock()

    def add(self, name: str, password: str, roles: tuple[str, ...], *, mids: tuple[str, ...] = ()) -> User:
        """Create ``name`` with these roles (and MIDs it is bound to), or replace its password, roles and MIDs."""
        check_user_name(name)
        check_password(password)
        if not roles:
            raise ConfigError("a user needs at least one role", field="role")
        for role in roles:
            check_role(role)
        bound = tuple(sorted({check_mid_name(mid) for mid in mids}))
        if bound and "mid_server" not in roles:
            raise ConfigError("only a mid_server user is bound to MIDs", field="--mid")
        ordered = tuple(sorted(set(roles)))
        stored = hash_password(password)
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM instance_user WHERE name = ?", (name,))
            tx.execute("DELETE FROM instance_user_mid WHERE user_name = ?", (name,))
            tx.execute(
                "INSERT INTO instance_user (name, roles, password_hash, created_on) VALUES (?, ?, ?, ?)",
                (name, ",".join(ordered), stored, self._now()),
            )
            for mid in bound:
                tx.execute("INSERT INTO instance_user_mid (user_name, mid) VALUES (?, ?)", (name, mid))
        return User(name, ordered, bound)

    def _row(self, name: str) -> tuple[str, str, tuple[str, ...]] | None:
        """The user's roles, password hash and MIDs, in one query."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT u.roles, u.password_hash, m.mid FROM instance_user u"
                " LEFT JOIN instance_user_mid m ON m.user_name = u.name WHERE u.name = ? ORDER BY m.mid",
                (name,),
            )
        if not rows:
            return None
        return str(rows[0][0]), str(rows[0][1]), tuple(str(row[2]) for row in rows if row[2] is not None)

    def get(self, name: str) -> User | None:
        if _NAME.fullmatch(name) is None:
            return None
        row = self._row(name)
        return User(name, tuple(row[0].split(",")), row[2]) if row else None

    def list(self) -> list[User]:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT name, roles FROM instance_user ORDER BY name")
            bindings = tx.execute("SELECT user_name, mid FROM instance_user_mid ORDER BY mid")
        mids: dict[str, list[str]] = {}
        for user_name, mid in bindings:
            mids.setdefault(str(user_name), []).append(str(mid))
        return [
            User(str(name), tuple(str(roles).split(",")), tuple(mids.get(str(name), ())))
            for name, roles in rows
        ]

    def authenticate(
        self, name: str, password: str, *, before_scrypt: Callable[[], None] | None = None
    ) -> User | None:
        """The user whose name and password these are, or ``None`` (unknown name, wrong password).

        ``before_scrypt`` is called when the password must be hashed (it is not the one verified
        last): the login throttle raises there, so a remembered password is never throttled.
        """
        if _NAME.fullmatch(name) is None or not 0 < len(password) <= MAX_PASSWORD_LENGTH:
            return None
        row = self._row(name)
        if row is None:
            return None
        roles, stored, mids = row
        presented = hmac.new(self._key, password.encode("utf-8", "surrogatepass"), "sha256").digest()
        with self._lock:
            remembered = self._verified.get((name, stored))
        if remembered is None or not hmac.compare_digest(remembered, presented):
            if before_scrypt is not None:
                before_scrypt()
            if not verify_password(password, stored):
                return None
            with self._lock:
                if len(self._verified) >= _CACHE_SIZE:
                    self._verified.clear()
                self._verified[(name, stored)] = presented
        user = User(name, tuple(roles.split(",")), mids)
        with self._lock:
            if len(self._recent) >= _CACHE_SIZE:
                self._recent.clear()
            self._recent[self._login_key(name, password)] = (user, self._monotonic() + RECENT_SECONDS)
        return user

    def _login_key(self, name: str, password: str) -> bytes:
        return hmac.new(self._key, f"{name}:{password}".encode("utf-8", "surrogatepass"), "sha256").digest()

    def recently_verified(self, name: str, password: str) -> User | None:
        """The user these credentials logged in as within ``RECENT_SECONDS``, or ``None``.

        In memory only (no database, no scrypt): the instance asks this first, on its event loop,
        so an agent's steady stream of requests costs no thread hop and no query for its login.
        A changed password, role or MID binding takes effect within ``RECENT_SECONDS``.
        """
        key = self._login_key(name, password)
        with self._lock:
            found = self._recent.get(key)
        if found is None or found[1] <= self._monotonic():
            return None
        return found[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_users(url: str) -> UserStore:
    """The users of the instance whose queue is ``url``."""
    return UserStore(open_database(url))


__all__ = [
    "MAX_PASSWORD_LENGTH",
    "ROLES",
    "User",
    "UserStore",
    "check_mid_name",
    "check_password",
    "check_role",
    "check_user_name",
    "hash_password",
    "open_users",
    "parse_basic_auth",
    "verify_password",
]
