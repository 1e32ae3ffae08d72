"""A content-addressed cache of the action listing, so ``actions --json`` starts fast.

Agents call ``harbor-confluence actions --json`` as a subprocess, often.  The listing
depends only on the manifest and policy bytes (and this code), so it is cached under the
state directory keyed by their SHA-256; a hit needs only the standard library.  The cache
is informational: every call is still decided by the real policy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from harbor_confluence.config import atomic_write, state_dir
from harbor_confluence.paths import default_policy_path, live_port_paths

__all__ = ["action_rows"]

_CODE = ("pipeline/policy.py", "pipeline/manifest.py", "pipeline/executor.py", "cli/listing.py")


def _sources(manifest: str | None, policy: str | None) -> tuple[Path, Path]:
    """The same choice ``Port.load`` makes for these arguments."""
    if manifest:
        return Path(manifest), Path(policy) if policy else default_policy_path()
    live_manifest, live_policy = live_port_paths()
    return live_manifest, Path(policy) if policy else live_policy


def action_rows(manifest: str | None, policy: str | None) -> list[dict[str, Any]]:
    """Rows as ``Port.actions()`` gives them, from the cache when the inputs are unchanged."""
    m, p = _sources(manifest, policy)
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent.parent  # the package
    try:
        for path in (m, p):
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
        for name in _CODE:
            digest.update(str((here / name).stat().st_mtime_ns).encode())
    except OSError:
        return _build(m, p)  # let Port.load report the missing file properly
    cache = state_dir() / "cache" / f"actions-{digest.hexdigest()[:40]}.json"
    try:
        rows: list[dict[str, Any]] = json.loads(cache.read_bytes())
        return rows
    except (OSError, ValueError):
        pass
    rows = _build(m, p)
    with contextlib.suppress(OSError):  # a read-only state dir only costs speed
        atomic_write(cache, json.dumps(rows).encode())
    return rows


def _build(manifest: Path, policy: Path) -> list[dict[str, Any]]:
    from harbor_confluence.pipeline.executor import Port

    return [info.to_dict() for info in Port.load(manifest, policy).actions()]
