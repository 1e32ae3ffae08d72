"""Dock/Hub catalog documents: export the live port, import one as the live port.

A hub document is how a port travels between Harbor installations (the reference keeps
them at ``apps/hub/catalog/integrations/<publisher>/<port>.json``): the manifest plus who
published it, with the placeholder tenant URL and never a credential.  Importing one is
the only way besides ``drafts publish`` to change the live port, so it is validated in
full before anything is written, shows what changes, and is recorded in the audit log.

The live port lives in the state directory:

    port/manifest.json   the installed manifest (``Port.load`` prefers it to the packaged one)
    port/policy.yaml     its policy, generated from each action's defaultPolicy; once the
                         operator edits it, imports and publishes keep it as it is
    port/drafts/         proposed actions (see drafts.py), never callable
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from .config import atomic_write
from .documents import find_credentials, load_document
from .errors import EXIT_INVALID, HarborError, ManifestError
from .manifest import (
    PLACEHOLDER_BASE_URL,
    Action,
    Manifest,
    Publisher,
    _describe,
    manifest_from_data,
)
from .policy import Policy, policy_from_data
from .speccheck import admin_route_problem

__all__ = [
    "FORMAT",
    "ActionChange",
    "CatalogDocument",
    "CatalogRefused",
    "ImportPlan",
    "InstalledPaths",
    "ManifestDiff",
    "PolicyPlan",
    "apply_import",
    "bump_minor",
    "catalog_from_data",
    "catalog_json_schema",
    "compare_versions",
    "diff_manifests",
    "export_document",
    "generate_policy",
    "install",
    "installed_manifest",
    "installed_paths",
    "load_catalog",
    "manifest_data",
    "operator_identity",
    "plan_import",
    "plan_policy",
    "policy_state",
    "port_lock",
    "record_audit",
]

FORMAT = "harbor.hub.integration/v1"
_GENERATED_MARK = "# generated-sha256: "
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
JSON_BODY_CAP = 1_000_000


class CatalogRefused(HarborError):
    """A catalog import or publish was refused; nothing was installed."""

    code = "catalog_refused"
    exit_code = EXIT_INVALID


class CatalogDocument(Manifest):
    """A Dock/Hub integration document: a manifest plus the publisher of the hub entry.

    ``publisher`` repeats ``port.publisher`` at the top so a hub can file the document
    under its publisher without reading the port; the two must agree.
    """

    format: Literal["harbor.hub.integration/v1"] = Field(
        description="hub document format and version"
    )
    publisher: Publisher


def catalog_json_schema() -> dict[str, Any]:
    """The JSON Schema of the hub document format (``schemas/catalog.schema.json``)."""
    schema = CatalogDocument.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://harbor-confluence.invalid/schemas/catalog.schema.json"
    return schema


# -- reading and checking -----------------------------------------------------------------


def catalog_from_data(data: Any, source: str) -> CatalogDocument:
    """Validate a parsed hub document: credentials, the manifest rules, hub-only rules.

    Every problem names the field (and action) so the publisher can fix the document.
    """
    problems = list(find_credentials(data))
    if problems:
        raise ManifestError(source, [f"credential refused at {p}" for p in problems])
    if not isinstance(data, dict):
        raise ManifestError(source, ["a hub document must be a JSON object"])
    try:
        doc = CatalogDocument.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(source, _describe(exc, data)) from None
    out: list[str] = []
    if doc.port.base_url.rstrip("/") != PLACEHOLDER_BASE_URL.rstrip("/"):
        out.append(
            f"field port.baseUrl: a hub document carries the placeholder {PLACEHOLDER_BASE_URL},"
            f" not a tenant URL ({doc.port.base_url}); operators set theirs locally with "
            "'harbor-confluence config set base-url'"
        )
    if doc.publisher != doc.port.publisher:
        out.append(
            f"field publisher: {doc.publisher.slug!r} does not match port.publisher "
            f"{doc.port.publisher.slug!r}"
        )
    for i, action in enumerate(doc.actions):
        problem = admin_route_problem(action.method, action.route)
        if problem:
            out.append(f"action {action.name!r} (actions[{i}]) field route: {problem}")
    if out:
        raise ManifestError(source, out)
    return doc


def load_catalog(path: str | Path) -> tuple[CatalogDocument, str]:
    """Read and validate a hub document file; returns it and the file's SHA-256."""
    p = Path(path)
    if p.suffix.lower() != ".json":
        raise ManifestError(str(p), ["a hub document is a JSON file (name ending in .json)"])
    data = load_document(p)  # size cap, strict JSON, clear parse errors
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    return catalog_from_data(data, str(p)), digest


def _manifest_of(doc: CatalogDocument) -> Manifest:
    return Manifest(manifest_version=doc.manifest_version, port=doc.port, actions=doc.actions)


def _dump(model: Manifest) -> dict[str, Any]:
    data = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    # exclude_none would drop an explicit ``tokenPrefix: null``, which means something.
    data["port"]["auth"] = model.port.auth.model_dump(mode="json", by_alias=True)
    return data


def manifest_data(manifest: Manifest) -> dict[str, Any]:
    """The manifest as JSON data, in the same shape a manifest file has."""
    data = _dump(manifest)
    return {k: data[k] for k in ("manifestVersion", "port", "actions")}


def export_document(manifest: Manifest) -> dict[str, Any]:
    """The live port as a hub document: placeholder base URL, no local settings.

    The result is validated as an import would validate it, so an export never produces
    a document that another installation would refuse.
    """
    port = manifest.port.model_copy(update={"base_url": PLACEHOLDER_BASE_URL})
    body = manifest_data(manifest.model_copy(update={"port": port}))
    doc = {
        "format": FORMAT,
        "manifestVersion": body["manifestVersion"],
        "publisher": body["port"]["publisher"],
        "port": body["port"],
        "actions": body["actions"],
    }
    catalog_from_data(doc, f"export of {manifest.port.name} {manifest.manifest_version}")
    return doc


# -- versions -----------------------------------------------------------------------------


def _version_key(version: str) -> tuple[int, int, int, int, str]:
    core, _, pre = version.partition("-")
    major, minor, patch = (int(x) for x in core.split("."))
    return major, minor, patch, 0 if pre else 1, pre


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as SemVer ``a`` is lower than, equal to or higher than ``b``."""
    ka, kb = _version_key(a), _version_key(b)
    return (ka > kb) - (ka < kb)


def bump_minor(version: str) -> str:
    """1.4.2 -> 1.5.0 (a pre-release suffix is dropped): a new action is a minor change."""
    major, minor, _, _, _ = _version_key(version)
    return f"{major}.{minor + 1}.0"


# -- diff ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionChange:
    name: str
    details: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ManifestDiff:
    """What an import would change in the live action set."""

    old_version: str
    new_version: str
    added: tuple[Action, ...] = ()
    removed: tuple[Action, ...] = ()
    changed: tuple[ActionChange, ...] = ()
    port: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.port)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.old_version,
            "to": self.new_version,
            "added": [_brief(a) for a in self.added],
            "removed": [_brief(a) for a in self.removed],
            "changed": [{"name": c.name, "details": list(c.details)} for c in self.changed],
            "port": list(self.port),
        }

    def lines(self) -> list[str]:
        out = [f"manifest {self.old_version} -> {self.new_version}"]
        out += [f"  port: {line}" for line in self.port]
        for a in self.added:
            out.append(f"  + {a.name}  {a.method} {a.route}  (defaultPolicy {a.default_policy})")
        for a in self.removed:
            out.append(f"  - {a.name}  {a.method} {a.route}")
        for c in self.changed:
            out.append(f"  ~ {c.name}")
            out += [f"      {d}" for d in c.details]
        if self.empty:
            out.append("  (no change to the action set)")
        return out


def _brief(a: Action) -> dict[str, str]:
    return {
        "name": a.name,
        "method": a.method,
        "route": a.route,
        "defaultPolicy": a.default_policy,
    }


def diff_manifests(old: Manifest, new: Manifest) -> ManifestDiff:
    """Added, removed and changed actions (routes, parameters, policies, the rest)."""
    before, after = old.by_name, new.by_name
    changed = []
    for name in sorted(before.keys() & after.keys()):
        details = _action_changes(before[name], after[name])
        if details:
            changed.append(ActionChange(name, tuple(details)))
    old_port = old.port.model_dump(mode="json", by_alias=True)
    new_port = new.port.model_dump(mode="json", by_alias=True)
    port = [
        f"{key}: {json.dumps(old_port.get(key))} -> {json.dumps(new_port.get(key))}"
        for key in sorted(old_port.keys() | new_port.keys())
        if old_port.get(key) != new_port.get(key)
    ]
    return ManifestDiff(
        old.manifest_version,
        new.manifest_version,
        tuple(after[n] for n in sorted(after.keys() - before.keys())),
        tuple(before[n] for n in sorted(before.keys() - after.keys())),
        tuple(changed),
        tuple(port),
    )


def _action_changes(a: Action, b: Action) -> list[str]:
    out: list[str] = []
    if (a.method, a.route) != (b.method, b.route):
        out.append(f"route: {a.method} {a.route} -> {b.method} {b.route}")
    if a.default_policy != b.default_policy:
        out.append(f"defaultPolicy: {a.default_policy} -> {b.default_policy}")
    if a.scopes != b.scopes:
        out.append(f"scopes: {a.scopes} -> {b.scopes}")
    for loc in ("path", "query", "body"):
        out.extend(_schema_changes(f"parameters.{loc}", getattr(a.parameters, loc),
                                   getattr(b.parameters, loc)))  # fmt: skip
    da = a.model_dump(mode="json", by_alias=True)
    db = b.model_dump(mode="json", by_alias=True)
    for key in sorted(da.keys() | db.keys()):
        if key in ("method", "route", "defaultPolicy", "scopes", "parameters"):
            continue
        if da.get(key) != db.get(key):
            out.append(f"{key} changed")
    return out


def _schema_changes(where: str, a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    if a == b:
        return []
    if a is None or b is None:
        return [f"{where}: {'added' if a is None else 'removed'}"]
    pa, pb = a.get("properties", {}), b.get("properties", {})
    parts = []
    if added := sorted(pb.keys() - pa.keys()):
        parts.append(f"added {', '.join(added)}")
    if removed := sorted(pa.keys() - pb.keys()):
        parts.append(f"removed {', '.join(removed)}")
    if changed := sorted(k for k in pa.keys() & pb.keys() if pa[k] != pb[k]):
        parts.append(f"changed {', '.join(changed)}")
    if sorted(a.get("required", [])) != sorted(b.get("required", [])):
        parts.append(f"required {sorted(a.get('required', []))} -> {sorted(b.get('required', []))}")
    rest_a = {k: v for k, v in a.items() if k not in ("properties", "required")}
    rest_b = {k: v for k, v in b.items() if k not in ("properties", "required")}
    if rest_a != rest_b:
        parts.append("schema changed")
    return [f"{where}: {'; '.join(parts)}"]


# -- the live port's files and policy -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstalledPaths:
    dir: Path
    manifest: Path
    policy: Path
    drafts: Path


def installed_paths(home: Path) -> InstalledPaths:
    """Where the installed live port lives inside a state directory."""
    d = Path(home) / "port"  # the layout paths.live_port_paths reads
    return InstalledPaths(d, d / "manifest.json", d / "policy.yaml", d / "drafts")


@contextlib.contextmanager
def port_lock(home: Path) -> Iterator[None]:
    """Serialise changes to the live port across processes (import, publish).

    The lock file sits beside ``port/`` so that a refused import leaves no ``port/``.
    """
    fd = os.open(Path(home) / ".port.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def generate_policy(manifest: Manifest) -> str:
    """A policy from each action's defaultPolicy, marked with a digest of its own text.

    JSON bodies keep the packaged policy's 1 MB cap.  Actions whose defaultPolicy is
    ``deny`` get no rule: the policy denies anything no rule allows.
    """
    by_decision: dict[str, list[str]] = {"auto": [], "require_approval": []}
    capped: list[str] = []
    for a in manifest.actions:
        if a.default_policy in by_decision:
            by_decision[a.default_policy].append(a.name)
            if a.request_body_mode == "json":
                capped.append(a.name)
    rules: list[dict[str, Any]] = []
    if capped:
        rules.append({
            "name": "json-body-cap", "actions": capped, "bodyBytesOver": JSON_BODY_CAP,
            "decision": "deny", "reason": "JSON bodies over 1 MB must be sent by a person",
        })  # fmt: skip
    if by_decision["auto"]:
        rules.append({
            "name": "catalog-auto", "actions": by_decision["auto"], "decision": "auto",
            "reason": "defaultPolicy auto in the port manifest",
        })  # fmt: skip
    if by_decision["require_approval"]:
        rules.append({
            "name": "catalog-review", "actions": by_decision["require_approval"],
            "decision": "require_approval",
            "reason": "defaultPolicy require_approval in the port manifest",
        })  # fmt: skip
    body = yaml.safe_dump({"version": 1, "rules": rules}, sort_keys=False, width=100)
    policy_from_data(yaml.safe_load(body), "generated policy")  # never write a bad one
    header = (
        f"# Generated by harbor-confluence from each action's defaultPolicy "
        f"({manifest.port.name} {manifest.manifest_version}).\n"
        "# Edit freely: once this file differs from what was generated, catalog import and\n"
        "# drafts publish keep it and list the actions no rule allows.\n"
        f"{_GENERATED_MARK}{hashlib.sha256(body.encode()).hexdigest()}\n"
    )
    return header + body


def policy_state(path: Path) -> Literal["missing", "generated", "edited"]:
    """Whether the live policy is absent, as generated, or the operator's own."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return "missing"
    except (OSError, UnicodeDecodeError):
        return "edited"
    head, sep, body = text.partition("\nversion:")
    for line in head.splitlines():
        if line.startswith(_GENERATED_MARK) and sep:
            digest = line[len(_GENERATED_MARK) :].strip()
            if hashlib.sha256(("version:" + body).encode()).hexdigest() == digest:
                return "generated"
    return "edited"


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    """What happens to ``port/policy.yaml``: replaced by ``text``, or kept as it is."""

    text: str | None
    kept: bool
    uncovered: tuple[str, ...] = ()  # actions the kept policy denies against their default

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": "kept (edited by the operator)" if self.kept else "generated",
            "denied_by_kept_policy": list(self.uncovered),
        }


def plan_policy(manifest: Manifest, paths: InstalledPaths) -> PolicyPlan:
    """Regenerate the live policy unless the operator has made it their own."""
    if policy_state(paths.policy) != "edited":
        return PolicyPlan(generate_policy(manifest), kept=False)
    from .policy import load_policy

    policy: Policy = load_policy(paths.policy)
    uncovered = []
    for a in manifest.actions:
        decision, conditional = policy.static_decision(a)
        if a.default_policy != "deny" and decision.outcome == "deny" and not conditional:
            uncovered.append(a.name)
    return PolicyPlan(None, kept=True, uncovered=tuple(uncovered))


def install(manifest: Manifest, policy: PolicyPlan, paths: InstalledPaths) -> None:
    """Write the live port: policy first, manifest last (the manifest is what Port.load
    looks for, so a crash in between never leaves a manifest without its policy)."""
    data = manifest_data(manifest)
    manifest_from_data(data, str(paths.manifest))  # what is written must load back
    paths.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if policy.text is not None:
        atomic_write(paths.policy, policy.text.encode())
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    atomic_write(paths.manifest, text.encode())


def installed_manifest(paths: InstalledPaths) -> Manifest | None:
    if not paths.manifest.is_file():
        return None
    from .manifest import load_manifest

    return load_manifest(paths.manifest)


# -- import -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """A validated import, before it is applied; ``needs_confirmation`` for changes."""

    source: str
    sha256: str
    document: CatalogDocument
    manifest: Manifest
    kind: Literal["install", "unchanged", "upgrade", "downgrade"]
    current: Manifest | None
    diff: ManifestDiff | None
    policy: PolicyPlan
    notes: tuple[str, ...] = field(default=())

    @property
    def needs_confirmation(self) -> bool:
        return self.kind in ("upgrade", "downgrade")

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "sha256": self.sha256,
            "port": self.manifest.port.name,
            "kind": self.kind,
            "from": self.current.manifest_version if self.current else None,
            "to": self.manifest.manifest_version,
            "diff": self.diff.to_dict() if self.diff else None,
            **self.policy.to_dict(),
        }


def plan_import(path: str | Path, home: Path, *, force: bool = False) -> ImportPlan:
    """Validate a hub document against the live port; raise if it must be refused."""
    doc, digest = load_catalog(path)
    new = _manifest_of(doc)
    paths = installed_paths(home)
    current = installed_manifest(paths)
    diff = diff_manifests(current, new) if current is not None else None
    kind: Literal["install", "unchanged", "upgrade", "downgrade"] = "install"
    if current is not None:
        order = compare_versions(new.manifest_version, current.manifest_version)
        if order == 0:
            if manifest_data(new) != manifest_data(current):
                changes = "\n  ".join((diff.lines() if diff else [])[1:]) or "(metadata)"
                raise CatalogRefused(
                    f"{path}: version {new.manifest_version} is already installed with "
                    f"different content; a changed port needs a higher manifestVersion. "
                    f"Differences:\n  {changes}"
                )
            kind = "unchanged"
        elif order < 0:
            if not force:
                raise CatalogRefused(
                    f"{path}: version {new.manifest_version} is lower than the installed "
                    f"{current.manifest_version}; pass --force to downgrade"
                )
            kind = "downgrade"
        else:
            kind = "upgrade"
    return ImportPlan(str(path), digest, doc, new, kind, current, diff, plan_policy(new, paths))


def apply_import(plan: ImportPlan, home: Path, *, operator: str) -> dict[str, Any]:
    """Install a planned import (re-checked under the lock) and record it in the audit log."""
    paths = installed_paths(home)
    with port_lock(home):
        now = installed_manifest(paths)
        before = manifest_data(now) if now is not None else None
        planned = manifest_data(plan.current) if plan.current is not None else None
        if before != planned:
            raise CatalogRefused(
                "the live port changed while this import was being confirmed; run it again"
            )
        if plan.kind != "unchanged":
            install(plan.manifest, plan.policy, paths)
    summary = plan.to_dict()
    diff = plan.diff
    record_audit(
        home, "catalog-import", operator=operator, file=plan.source, sha256=plan.sha256,
        port=plan.manifest.port.name, kind=plan.kind, from_version=summary["from"],
        to_version=plan.manifest.manifest_version,
        added=[a.name for a in (diff.added if diff else plan.manifest.actions)],
        removed=[a.name for a in diff.removed] if diff else [],
        changed=[c.name for c in diff.changed] if diff else [],
        policy=summary["policy"],
    )  # fmt: skip
    return summary


def record_audit(home: Path, event: str, **fields: Any) -> dict[str, Any]:
    """Append to the state directory's hash-chained audit log."""
    from .audit import AuditLog

    return AuditLog.for_home(home).append(event, **fields)


def operator_identity(explicit: str | None = None) -> str:
    """Who is acting: ``--as``, else ``$HARBOR_OPERATOR``, else the OS user."""
    from .queue import default_operator

    name = (explicit if explicit is not None else default_operator()).strip()
    if not _IDENTITY.match(name):
        raise CatalogRefused(
            f"identity {name!r} is not usable: 1-64 characters, letters, digits and ._@+-"
        )
    return name
