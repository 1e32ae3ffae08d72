"""Where the live port's files are, answered with the standard library only.

The CLI must start fast (agents spawn it per call), so locating the manifest and policy
must not import pydantic, jsonschema or httpx.  ``executor`` and ``catalog`` use the
same answers.
"""

from __future__ import annotations

from pathlib import Path

from .config import state_dir
from .errors import ConfigError

__all__ = ["data_file", "default_manifest_path", "default_policy_path", "live_port_paths"]

_PACKAGE = Path(__file__).resolve().parent


def data_file(kind: str, name: str) -> Path:
    """Packaged copy in a wheel, else the checkout's top-level folder."""
    for base in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        candidate = base / name
        if candidate.is_file():
            return candidate
    raise ConfigError(f"cannot find the packaged {kind}/{name}")


def default_manifest_path() -> Path:
    """The packaged manifest: the live port until one is installed in the state dir."""
    return data_file("manifests", "confluence-cloud.yaml")


def default_policy_path() -> Path:
    """The packaged default policy."""
    return data_file("policies", "default.yaml")


def live_port_paths(home: str | Path | None = None) -> tuple[Path, Path]:
    """The manifest and policy ``Port.load`` uses when given none.

    The port installed in the state dir (``catalog import``, ``drafts publish``) wins over
    the packaged one.  The policy is ``port/policy.yaml`` when present (written by an
    import, a publish or ``node policy set``), else the packaged policy (which denies any
    action it does not name).
    """
    port_dir = state_dir(home) / "port"
    manifest = port_dir / "manifest.json"
    policy = port_dir / "policy.yaml"  # also set alone, by an operator (node policy set)
    return (
        manifest if manifest.is_file() else default_manifest_path(),
        policy if policy.is_file() else default_policy_path(),
    )
