"""Where local state lives and the operator's local (hidden) configuration.

State — config, secrets, the review queue — lives in one directory: the one named by
``HARBOR_CONFLUENCE_HOME``, else the platform's user config directory.  Files are
written atomically with owner-only permissions.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["CONFIG_KEYS", "LocalConfig", "atomic_write", "state_dir"]

HOME_ENV = "HARBOR_CONFLUENCE_HOME"
# base-url: the tenant; site: which accessible site a bearer token uses (name, URL or
# cloudId); identity-url / auth-url: Atlassian's identity hosts (point them at the
# simulator in tests); secret-backend: file (default) or keyring; database-url: a shared
# PostgreSQL queue and audit log (no password: keep it in ~/.pgpass or PGPASSFILE).
CONFIG_KEYS = (
    "base-url",
    "requester",
    "site",
    "identity-url",
    "auth-url",
    "secret-backend",
    "database-url",
)


def state_dir(home: str | Path | None = None) -> Path:
    """Resolve (and create, mode 0700) the state directory."""
    if home is None:
        env = os.environ.get(HOME_ENV)
        if env:
            home = env
        else:
            import platformdirs

            home = platformdirs.user_config_dir("harbor-confluence", appauthor=False)
    path = Path(home).expanduser()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create state directory {path}: {exc.strerror}") from None
    return path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class LocalConfig:
    """Small key/value file (``config.json``) for settings an operator sets locally."""

    def __init__(self, home: Path) -> None:
        self.path = home / "config.json"

    def read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(f"{self.path} is not valid JSON; fix or delete it") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path} must hold a JSON object")
        return data

    def get(self, key: str) -> Any:
        return self.read().get(key)

    def set(self, key: str, value: Any) -> None:
        _check_key(key)
        data = self.read()
        data[key] = value
        atomic_write(self.path, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")

    def unset(self, key: str) -> bool:
        _check_key(key)
        data = self.read()
        if key not in data:
            return False
        del data[key]
        atomic_write(self.path, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
        return True


def _check_key(key: str) -> None:
    if key not in CONFIG_KEYS:
        raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(CONFIG_KEYS)}")
