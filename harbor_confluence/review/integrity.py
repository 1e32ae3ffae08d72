"""The integrity key: tamper evidence that the queue database and the audit log cannot hold.

Why a key: an unkeyed hash (SHA-256) over a ticket or an audit record only shows that the
data is self-consistent.  Anyone who can write the data can recompute it.  A MAC made with
a key that lives outside that data (HMAC-SHA256) can be checked by the runner but not
forged by someone who can only rewrite ``queue.sqlite3`` or ``audit.jsonl``.

The key is 32 random bytes in ``<state dir>/secrets/integrity.key``: created on first use
(atomically, never overwritten), the directory 0700 and the file 0600, and refused, as
ssh refuses a private key, when it is a link, is owned by someone else or others could
read it.  Whoever can read that file can forge seals, so it is guarded like the
credential next to it.  No repr, log line or exception shows the key.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import NoReturn

from harbor_confluence.errors import ConfigError

__all__ = ["KEY_BYTES", "KEY_FILE", "IntegrityKey"]

KEY_BYTES = 32
KEY_FILE = Path("secrets") / "integrity.key"
_KEY_TEXT_BYTES = 2 * KEY_BYTES + 1  # hex and a newline


class IntegrityKey:
    """An HMAC-SHA256 key for seals.  Only MACs leave this object, never the key."""

    __slots__ = ("_base", "_by_purpose", "location")

    def __init__(self, secret: bytes, *, location: str = "memory") -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"an integrity key is {KEY_BYTES} bytes")
        # Keep a keyed HMAC state, not the key bytes: each MAC is a copy of it.
        self._base = hmac.new(secret, digestmod="sha256")
        self._by_purpose: dict[str, hmac.HMAC] = {}  # the keyed state with the purpose fed in
        self.location = location

    @classmethod
    def generate(cls) -> IntegrityKey:
        """A fresh random key that lives only in memory (tests, throwaway queues)."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def for_home(cls, home: str | Path) -> IntegrityKey:
        """The key of one state directory, created on first use."""
        return _load_or_create(Path(home))

    def mac(self, purpose: str, data: bytes) -> str:
        """HMAC-SHA256 (hex) of ``data``; ``purpose`` separates the kinds of seal, so a
        MAC made for one thing (an audit record) is never valid for another (a ticket)."""
        start = self._by_purpose.get(purpose)
        if start is None:
            start = self._base.copy()
            start.update(_prefix(purpose))
            self._by_purpose[purpose] = start
        h = start.copy()
        h.update(data)
        return h.hexdigest()

    def check(self, purpose: str, data: bytes, mac: object) -> bool:
        """Whether ``mac`` is this key's MAC of ``data`` (constant-time comparison)."""
        if not isinstance(mac, str) or not mac.isascii():
            return False
        return hmac.compare_digest(self.mac(purpose, data), mac)

    def __repr__(self) -> str:
        return f"<IntegrityKey {self.location} secret=***>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("integrity keys cannot be pickled")


def _prefix(purpose: str) -> bytes:
    if not purpose or "\0" in purpose:
        raise ValueError("a MAC purpose is a non-empty name without NUL")
    return purpose.encode() + b"\0"


# -- the key file ------------------------------------------------------------------------


def _load_or_create(home: Path) -> IntegrityKey:
    path = home / KEY_FILE
    directory = path.parent
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {directory}: {exc.strerror}") from None
    _check_directory(directory)
    for _ in range(3):
        key = _read(path)
        if key is not None:
            return key
        _create(path)
    raise ConfigError(f"cannot create the integrity key {path}")  # pragma: no cover


def _read(path: Path) -> IntegrityKey | None:
    """The key in ``path``, None when there is none yet; refused when unsafe or damaged."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise ConfigError(
                f"{path} is a symbolic link; refusing to use an integrity key through it. "
                "Remove the link (the key is made again, and seals made with the old one "
                "no longer verify)"
            ) from None
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file")
        _check_private(path, info, 0o600, "file")
        raw = os.read(fd, _KEY_TEXT_BYTES + 1)
    finally:
        os.close(fd)
    text = raw.strip()
    try:
        if len(text) != 2 * KEY_BYTES:
            raise ValueError
        secret = bytes.fromhex(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        # Never quote the content: it is (part of) the key.
        raise ConfigError(
            f"{path} does not hold a valid integrity key ({2 * KEY_BYTES} hex characters). "
            "Restore it from a backup; a new key cannot verify the queue's tickets or the "
            "audit log written with the old one"
        ) from None
    return IntegrityKey(secret, location=str(path))


def _create(path: Path) -> None:
    """Write a new key next to ``path`` and link it into place: all or nothing, and a key
    another process created first is kept (``link`` fails when the name exists)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.fchmod(fd, 0o600)
            data = secrets.token_bytes(KEY_BYTES).hex().encode() + b"\n"
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made the key first: use theirs
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            _create_in_place(path, data)  # a filesystem without hard links
        _fsync_directory(path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot create the integrity key {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _create_in_place(path: Path, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_directory(directory: Path) -> None:
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise ConfigError(f"cannot inspect {directory}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{directory} must be a real directory (not a link)")
    _check_private(directory, info, 0o700, "directory")


def _check_private(path: Path, info: os.stat_result, wanted: int, what: str) -> None:
    """Refuse, naming the fix, when someone other than the owner could read or write.

    (As ``secretstore``'s check, worded for a key: a readable key lets others forge seals.)
    """
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{path} is owned by uid {info.st_uid}, not by you (uid {os.geteuid()}); "
            f"refusing to use it. Fix with: chown {os.geteuid()} {path}"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"permissions {mode:04o} for {what} {path} are too open: others could read the "
            f"integrity key and forge the queue's seals, so it is refused. "
            f"Fix with: chmod {wanted:o} {path}"
        )
