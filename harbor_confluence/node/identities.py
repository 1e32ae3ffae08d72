"""Who may talk to a node: agent and operator identities, each reached by a bearer token.

Why it is built this way:

- A token is 256 random bits, shown once when it is made.  The node keeps only its
  SHA-256: a stolen ``identities.json`` lets nobody in, and a token of that entropy
  needs no slow hash.
- A name may hold an agent token and an operator token (a person who also runs an
  agent).  Tickets record names, so ``forbidSelfApproval`` stops that person approving
  what their agent asked for.
- An agent's grant (toolsets, kind, action globs) narrows what it may call; operators
  may call every action and work the review queue.
- The file is re-read when it changes, so ``node add-agent`` and ``node revoke`` take
  effect on a running node at the next request.
- An operator may also have a password (``node add-operator NAME --password``) to sign in
  to the review page.  People choose passwords, so unlike tokens they get a slow,
  salted hash (argon2id, from ``argon2-cffi``), stored beside the token's.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harbor_confluence.config import atomic_write
from harbor_confluence.errors import AuthError, ConfigError

from .privatefile import PrivateJsonFile

__all__ = [
    "IDENTITIES_FILE",
    "MIN_PASSWORD_CHARS",
    "TOKEN_PREFIX",
    "Grant",
    "Identity",
    "IdentityStore",
    "Role",
]

IDENTITIES_FILE = "identities.json"
TOKEN_PREFIX = "hbn_"  # noqa: S105 - a prefix, not a token
Role = Literal["agent", "operator"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grant(_Model):
    """What an agent token may call; every field narrows (None: no narrowing)."""

    toolsets: tuple[str, ...] | None = None
    kind: Literal["read", "write"] | None = None
    actions: tuple[str, ...] | None = None  # names or globs

    def allows(self, name: str, toolset: str, kind: str) -> bool:
        if self.toolsets is not None and toolset not in self.toolsets:
            return False
        if self.kind is not None and kind != self.kind:
            return False
        return self.actions is None or any(fnmatch.fnmatchcase(name, g) for g in self.actions)

    def describe(self) -> str:
        bits = []
        if self.toolsets is not None:
            bits.append("toolsets " + ",".join(self.toolsets))
        if self.kind is not None:
            bits.append(f"{self.kind} only")
        if self.actions is not None:
            bits.append("actions " + ",".join(self.actions))
        return "; ".join(bits) or "every action"


class _TokenRecord(_Model):
    id: str
    name: str
    role: Role
    sha256: str
    created_at: float
    grant: Grant = Field(default_factory=Grant)
    password: str | None = None  # argon2id hash (operators only): the review page's sign-in


class _File(_Model):
    version: Literal[1] = 1
    tokens: tuple[_TokenRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: the name on tickets and approvals, its role and grant."""

    name: str
    role: Role
    token_id: str
    grant: Grant

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def may_call(self, name: str, toolset: str, kind: str) -> bool:
        return self.is_operator or self.grant.allows(name, toolset, kind)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "role": self.role, "token": self.token_id}
        if not self.is_operator:
            out["grant"] = self.grant.model_dump(exclude_none=True)
        return out


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _hasher() -> Any:
    try:
        from argon2 import PasswordHasher
    except ImportError:
        raise ConfigError(
            "operator passwords need argon2-cffi: pip install 'harbor-confluence[node]'"
        ) from None
    return PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters


def hash_password(password: str) -> str:
    """The argon2id hash stored for an operator's password (never the password)."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ConfigError(
            f"a password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    return str(_hasher().hash(password))


_DUMMY_HASH: list[str] = []


def _verify_password(stored: str | None, password: str) -> bool:
    """argon2 verify; with no stored hash, verify against a dummy so the time taken does
    not tell whether the name exists."""
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = _hasher()
    if stored is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hasher.hash(secrets.token_urlsafe(16)))
        stored = _DUMMY_HASH[0]  # a random password's hash: this never verifies
    try:
        return bool(hasher.verify(stored, password[:MAX_PASSWORD_CHARS]))
    except (VerificationError, InvalidHashError):
        return False


def check_name(name: str) -> str:
    """Identity names: lower-case letters, digits and ``._@-``, at most 64 characters."""
    clean = name.strip().casefold()
    if not _NAME.match(clean):
        raise ConfigError(
            f"identity name {name!r}: use 1-64 lower-case letters, digits, '.', '_', '@' "
            "or '-', starting with a letter or digit"
        )
    return clean


class IdentityStore:
    """``identities.json`` in the node's state directory (0600), re-read when it changes."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / IDENTITIES_FILE
        self._file = PrivateJsonFile(self.path, _File, _File(), "an identities file")
        self._by_digest: dict[str, _TokenRecord] = {}
        self._indexed: _File | None = None

    def __repr__(self) -> str:
        return f"IdentityStore({str(self.path)!r})"

    # -- reading ----------------------------------------------------------------------

    def _load(self) -> _File:
        """The file as it is now; the token index follows it."""
        data = self._file.load()
        if data is not self._indexed:
            self._by_digest = {t.sha256: t for t in data.tokens}
            self._indexed = data
        return data

    def authenticate(self, token: str | None) -> Identity:
        """The identity a bearer token stands for; AuthError (never echoing it) if none."""
        if not token:
            raise AuthError("no node token: set HARBOR_NODE_TOKEN to your agent or operator token")
        self._load()
        digest = _digest(token)
        record = self._by_digest.get(digest)
        if record is None or not hmac.compare_digest(record.sha256, digest):
            raise AuthError("the node token is not valid (unknown or revoked)")
        return Identity(record.name, record.role, record.id, record.grant)

    def authenticate_password(self, name: str, password: str) -> Identity:
        """The operator ``name`` signing in with a password; AuthError if the name, the
        password or the role does not fit (one message for all: no name probing)."""
        who = name.strip().casefold()
        record = next(
            (t for t in self._load().tokens if t.name == who and t.role == "operator"), None
        )
        ok = _verify_password(record.password if record is not None else None, password)
        if record is None or record.password is None or not ok:
            raise AuthError("wrong operator name or password")
        return Identity(record.name, record.role, record.id, record.grant)

    def by_token_id(self, token_id: str) -> Identity | None:
        """The identity of a token still on file (a signed-in session re-checks it on
        every request, so a revoked operator is signed out)."""
        for t in self._load().tokens:
            if t.id == token_id:
                return Identity(t.name, t.role, t.id, t.grant)
        return None

    def list(self) -> list[dict[str, object]]:
        """Every token by id, name, role and grant (never the token or its hash)."""
        return [
            {
                "id": t.id,
                "name": t.name,
                "role": t.role,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t.created_at)),
                "grant": t.grant.describe() if t.role == "agent" else "operator",
                **({"password": True} if t.password else {}),
            }
            for t in self._load().tokens
        ]

    # -- changing (the node's own OS user, on the node host) ---------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_File]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(".identities.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._file.invalidate()
            yield self._load()
        finally:
            os.close(fd)

    def _save(self, data: _File) -> None:
        text = json.dumps(data.model_dump(mode="json"), indent=2) + "\n"
        atomic_write(self.path, text.encode())
        self._file.invalidate()

    def add(
        self,
        name: str,
        role: Role,
        grant: Grant | None = None,
        *,
        password_hash: str | None = None,
    ) -> tuple[str, str]:
        """Make a token for ``name`` in ``role``; returns (token id, the token, shown once).

        A name holds at most one token per role: adding again replaces (rotates) it, and
        its password with it (``password_hash``, from :func:`hash_password`; operators).
        """
        if password_hash is not None and role != "operator":
            raise ConfigError("only operators sign in with a password")
        who = check_name(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = _TokenRecord(
            id="k_" + secrets.token_hex(6),
            name=who,
            role=role,
            sha256=_digest(token),
            created_at=time.time(),
            grant=grant if grant is not None and role == "agent" else Grant(),
            password=password_hash,
        )
        with self._locked() as data:
            kept = tuple(t for t in data.tokens if not (t.name == who and t.role == role))
            self._save(_File(tokens=(*kept, record)))
        return record.id, token

    def revoke(self, name: str, role: Role | None = None) -> int:
        """Remove ``name``'s tokens (one role, or all); returns how many were removed."""
        who = name.strip().casefold()
        with self._locked() as data:
            kept = tuple(
                t
                for t in data.tokens
                if not ((t.name == who or t.id == name) and (role is None or t.role == role))
            )
            removed = len(data.tokens) - len(kept)
            if removed:
                self._save(_File(tokens=kept))
        return removed
