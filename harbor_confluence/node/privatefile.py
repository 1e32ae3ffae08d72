"""A node's private JSON settings file (0600), read into a model, re-read only on change.

``identities.json`` and ``webhooks.json`` are edited by commands on the node host while the
node runs; the node sees the change at its next request for one ``stat`` while nothing
changed, and refuses a file others could read.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from harbor_confluence.errors import ConfigError

__all__ = ["PrivateJsonFile"]

M = TypeVar("M", bound=BaseModel)


class PrivateJsonFile(Generic[M]):
    """``load()`` gives the file's model (``empty`` when there is no file)."""

    def __init__(self, path: Path, model: type[M], empty: M, what: str) -> None:
        self.path = path
        self._model = model
        self._empty = empty
        self._what = what
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._data = empty

    def invalidate(self) -> None:
        """Read the file again next time (after this process wrote it)."""
        self._seen = None

    def load(self) -> M:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._data = None, self._empty
            return self._data
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if stamp != self._seen:
                if st.st_mode & 0o077:
                    raise ConfigError(
                        f"{self.path} is readable by others (mode {st.st_mode & 0o777:o}); "
                        f"run: chmod 600 {self.path}"
                    )
                try:
                    self._data = self._model.model_validate_json(self.path.read_bytes())
                except ValueError as exc:
                    raise ConfigError(f"{self.path} is not {self._what}: {exc}") from None
                self._seen = stamp
            return self._data
