"""The hidden token store: where the operator's credential lives between runs.

Two backends.  ``file`` (the default) keeps one JSON record in
``$HARBOR_CONFLUENCE_HOME/secrets/credential.json``: the directory is 0700, the file 0600,
written atomically, and reading refuses a file or directory that others could read, as
ssh does, because a leaked token is worse than a failed run.  ``keyring`` keeps the same
record in the system keyring when the user asks for it and a real keyring backend is
importable (the ``[keyring]`` extra; the library's fail backend does not count).

A :class:`SecretRecord` never shows its values in repr, str or pickle.  Only
``credentials.py`` turns one into a request header; nothing agent-facing returns one.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from harbor_confluence.config import LocalConfig, atomic_write
from harbor_confluence.errors import ConfigError

__all__ = [
    "BACKENDS",
    "FileBackend",
    "KeyringBackend",
    "SecretKind",
    "SecretRecord",
    "SecretStore",
]

SecretKind = Literal["basic", "bearer", "oauth"]
BackendName = Literal["file", "keyring"]
BACKENDS: tuple[BackendName, ...] = ("file", "keyring")
KINDS: tuple[SecretKind, ...] = ("basic", "bearer", "oauth")
KEYRING_SERVICE = "harbor-confluence"
MAX_SECRET_BYTES = 64 * 1024
_SECRET_FIELDS = ("api_token", "access_token", "refresh_token", "client_secret")
_PLAIN_FIELDS = ("email", "client_id", "expires_at")


@dataclass(slots=True, repr=False, eq=False)
class SecretRecord:
    """One stored credential.  ``kind`` and the plain fields are shown; secrets never are."""

    kind: SecretKind
    email: str | None = None
    api_token: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    expires_at: float | None = None  # wall-clock expiry of access_token, when known

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ConfigError(f"incomplete {self.kind} credential: {problem}")

    def problem(self) -> str | None:
        """What a record of this kind is missing (names fields, never values)."""
        if self.kind not in KINDS:
            return f"unknown kind {self.kind!r}"
        if self.kind == "basic" and not (self.email and self.api_token):
            return "Basic auth needs an email and an API token"
        if self.kind == "bearer" and not self.access_token:
            return "Bearer auth needs an access token"
        if self.kind == "oauth" and not (
            self.client_id and self.client_secret and self.refresh_token
        ):
            return "OAuth refresh needs a client id, a client secret and a refresh token"
        return None

    def describe(self) -> dict[str, Any]:
        """What ``token status`` may show: the kind and the non-secret fields."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.email:
            out["email"] = self.email
        if self.client_id:
            out["client_id"] = self.client_id
        if self.kind == "oauth":
            out["has_access_token"] = bool(self.access_token)
            out["has_refresh_token"] = bool(self.refresh_token)
        if self.expires_at is not None:
            out["access_token_expires_at"] = self.expires_at
        return out

    def to_bytes(self) -> bytes:
        data = {"version": 1, "kind": self.kind}
        for name in (*_PLAIN_FIELDS, *_SECRET_FIELDS):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return json.dumps(data, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> SecretRecord:
        broken = ConfigError(
            f"{where} does not hold a valid credential record; "
            "replace it with: harbor-confluence token set"
        )
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise broken from None
        if not isinstance(data, dict) or data.get("kind") not in KINDS:
            raise broken
        fields: dict[str, Any] = {}
        for name in (*_PLAIN_FIELDS, *_SECRET_FIELDS):
            value = data.get(name)
            if name == "expires_at":
                if value is not None and not isinstance(value, int | float):
                    raise broken
            elif value is not None and not isinstance(value, str):
                raise broken
            fields[name] = value
        try:
            return cls(kind=cast(SecretKind, data["kind"]), **fields)
        except ConfigError:
            raise broken from None

    def __repr__(self) -> str:
        return f"<SecretRecord kind={self.kind} secret=***>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secret records cannot be pickled")


class FileBackend:
    """``secrets/credential.json`` under the state directory, owner-only, ssh-strict."""

    name: BackendName = "file"

    def __init__(self, home: Path) -> None:
        self.directory = home / "secrets"
        self.path = self.directory / "credential.json"

    @property
    def location(self) -> str:
        return str(self.path)

    def load(self) -> SecretRecord | None:
        self._check_directory()
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if os.path.islink(self.path):
                raise ConfigError(
                    f"{self.path} is a symbolic link; refusing to read a credential through "
                    f"it. Remove it and run: harbor-confluence token set"
                ) from None
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            info = os.fstat(fd)
            _check_private(self.path, info, 0o600, "file")
            if info.st_size > MAX_SECRET_BYTES:
                raise ConfigError(f"{self.path} is larger than {MAX_SECRET_BYTES} bytes")
            with os.fdopen(fd, "rb", closefd=False) as fh:
                raw = fh.read(MAX_SECRET_BYTES + 1)
        finally:
            os.close(fd)
        return SecretRecord.from_bytes(raw, str(self.path))

    def save(self, record: SecretRecord) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.directory)
            if not stat.S_ISDIR(info.st_mode):
                raise ConfigError(f"{self.directory} is not a directory")
            if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != 0o700:
                os.chmod(self.directory, 0o700)  # ours: tighten rather than refuse to write
            self._check_directory()
            atomic_write(self.path, record.to_bytes(), 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {exc.strerror}") from None

    def delete(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ConfigError(f"cannot delete {self.path}: {exc.strerror}") from None
        return True

    def _check_directory(self) -> None:
        try:
            info = os.lstat(self.directory)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"cannot inspect {self.directory}: {exc.strerror}") from None
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise ConfigError(
                f"{self.directory} must be a real directory (not a link); "
                f"remove it and run: harbor-confluence token set"
            )
        _check_private(self.directory, info, 0o700, "directory")


def _check_private(path: Path, info: os.stat_result, wanted: int, what: str) -> None:
    """Refuse, naming the fix, when someone other than the owner could read or write."""
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{path} is owned by uid {info.st_uid}, not by you (uid {os.geteuid()}); "
            f"refusing to use it. Fix with: chown {os.geteuid()} {path}"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"permissions {mode:04o} for {what} {path} are too open: others could read the "
            f"credential, so it is refused. Fix with: chmod {wanted:o} {path}"
        )


class KeyringBackend:
    """The system keyring (``pip install 'harbor-confluence[keyring]'``), one entry per home."""

    name: BackendName = "keyring"

    def __init__(self, home: Path) -> None:
        self._username = f"credential:{home.resolve()}"
        self._keyring: Any = _usable_keyring()

    @property
    def location(self) -> str:
        backend = type(self._keyring).__name__
        return f"keyring {backend} (service {KEYRING_SERVICE!r}, entry {self._username!r})"

    def load(self) -> SecretRecord | None:
        raw = self._call("get_password", KEYRING_SERVICE, self._username)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise ConfigError("the keyring entry is not text; run: harbor-confluence token set")
        return SecretRecord.from_bytes(raw.encode(), "the keyring entry")

    def save(self, record: SecretRecord) -> None:
        self._call("set_password", KEYRING_SERVICE, self._username, record.to_bytes().decode())

    def delete(self) -> bool:
        if self._call("get_password", KEYRING_SERVICE, self._username) is None:
            return False
        self._call("delete_password", KEYRING_SERVICE, self._username)
        return True

    def _call(self, method: str, *args: str) -> Any:
        import keyring.errors

        try:
            return getattr(self._keyring, method)(*args)
        except keyring.errors.KeyringError as exc:
            # The type only: a backend's message is not ours to vet for secrets.
            raise ConfigError(f"the keyring refused {method}: {type(exc).__name__}") from None


def _usable_keyring() -> Any:
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        raise ConfigError(
            "the keyring backend needs the keyring package: "
            "pip install 'harbor-confluence[keyring]' (or use the default file backend)"
        ) from None
    backend = keyring.get_keyring()
    chained = getattr(backend, "backends", None)
    if isinstance(backend, fail.Keyring) or (isinstance(chained, list) and not chained):
        raise ConfigError(
            "no usable keyring backend on this machine (keyring fell back to its fail "
            "backend); use the file backend: harbor-confluence config set secret-backend file"
        )
    return backend


class SecretStore:
    """The configured backend (``secret-backend`` in local config; default ``file``)."""

    def __init__(self, home: Path, backend: str | None = None) -> None:
        self.home = home
        name = backend or LocalConfig(home).get("secret-backend") or "file"
        if name not in BACKENDS:
            raise ConfigError(f"unknown secret backend {name!r}; choose one of: file, keyring")
        self.backend: FileBackend | KeyringBackend = (
            FileBackend(home) if name == "file" else KeyringBackend(home)
        )

    @property
    def name(self) -> BackendName:
        return self.backend.name

    @property
    def location(self) -> str:
        return self.backend.location

    def load(self) -> SecretRecord | None:
        return self.backend.load()

    def save(self, record: SecretRecord) -> None:
        self.backend.save(record)

    def delete(self) -> bool:
        return self.backend.delete()

    def __repr__(self) -> str:
        return f"<SecretStore {self.name} at {self.location}>"
