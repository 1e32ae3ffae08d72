"""Dock/Hub catalog documents: export the live port, import one as the live port.

A hub document is how a port travels between Harbor installations (the reference keeps
them at ``apps/hub/catalog/integrations/<publisher>/<port>.json``): the manifest plus who
published it, with the placeholder tenant URL and never a credential.  Importing one is
the only way besides ``drafts publish`` to change the live port, so it is validated in
full before anything is written, shows what changes, and is recorded in the audit log.

The live port lives in the state directory:

    port/manifest.json   the installed manifest (``Port.load`` prefers it to the packaged one)
    port/policy.yaml     its policy: the packaged policy at the first install, then only ever
                         added to by imports and publishes (``plan_policy``); a document's
                         defaultPolicy is a proposal the operator accepts explicitly, and
                         never loosens a live decision or makes a write automatic
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from harbor_confluence.config import atomic_write
from harbor_confluence.errors import EXIT_INVALID, HarborError, ManifestError
from harbor_confluence.pipeline.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENT_DEPTH,
    find_credentials,
    json_too_deep,
    load_document,
    parse_document,
)
from harbor_confluence.pipeline.manifest import (
    PLACEHOLDER_BASE_URL,
    Action,
    Manifest,
    Publisher,
    _describe,
    manifest_from_data,
)
from harbor_confluence.pipeline.policy import Outcome, Policy, Rule, policy_from_data

__all__ = [
    "FORMAT",
    "ActionChange",
    "CatalogDocument",
    "CatalogRefused",
    "ImportPlan",
    "InstalledPaths",
    "ManifestDiff",
    "PolicyChange",
    "PolicyPlan",
    "apply_import",
    "baseline_digest",
    "bump_minor",
    "catalog_from_data",
    "catalog_json_schema",
    "compare_versions",
    "diff_manifests",
    "document_publisher",
    "export_document",
    "install",
    "installed_manifest",
    "installed_paths",
    "live_manifest",
    "load_catalog",
    "load_catalog_bytes",
    "manifest_data",
    "operator_identity",
    "packaged_manifest",
    "plan_import",
    "plan_policy",
    "policy_state",
    "port_lock",
    "read_source",
    "record_audit",
]

FORMAT = "harbor.hub.integration/v1"
_GENERATED_MARK = "# generated-sha256: "
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
JSON_BODY_CAP = 1_000_000
UPLOAD_CAP = 5 * 1024 * 1024


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
    # Admin and permission routes are refused by the Action model itself (pipeline/manifest.py).
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


def load_catalog_bytes(raw: bytes, source: str) -> tuple[CatalogDocument, str]:
    """Validate a hub document from its bytes (fetched from a hub, or read and verified):
    the same caps and checks as a file; returns it and the bytes' SHA-256."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ManifestError(source, [f"document is larger than {MAX_DOCUMENT_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(source, ["not UTF-8 text"]) from None
    at = json_too_deep(text, MAX_DOCUMENT_DEPTH)
    if at is not None:
        raise ManifestError(
            source,
            [
                f"document is nested more than {MAX_DOCUMENT_DEPTH} levels deep (the limit is "
                f"{MAX_DOCUMENT_DEPTH}) (at character {at})"
            ],
        )
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ManifestError(source, [f"not valid JSON: {exc}"]) from None
    return catalog_from_data(data, source), hashlib.sha256(raw).hexdigest()


def document_publisher(raw: bytes, source: str) -> str:
    """The publisher slug a hub document names (validating the whole document)."""
    doc, _ = load_catalog_bytes(raw, source)
    return doc.publisher.slug


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


# -- the live port's files ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstalledPaths:
    dir: Path
    manifest: Path
    policy: Path
    drafts: Path

    @property
    def policy_backup(self) -> Path:
        return self.dir / "policy.yaml.bak"


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


def policy_state(path: Path) -> Literal["missing", "generated", "edited"]:
    """Whether the live policy is absent, as Harbor wrote it, or the operator's own."""
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


def _stamp(text: str) -> str:
    """Mark ``text`` as written by Harbor (``policy_state`` then says "generated")."""
    at = text.find("\nversion:")
    head, body = (text[: at + 1], text[at + 1 :]) if at >= 0 else ("", text)
    head = "".join(line for line in head.splitlines(keepends=True)
                   if not line.startswith(_GENERATED_MARK))  # fmt: skip
    digest = hashlib.sha256(body.encode()).hexdigest()
    return f"{head}{_GENERATED_MARK}{digest}\n{body}"


# -- the live policy: imports and publishes only ever tighten it ------------------------------
#
# A document's defaultPolicy is a proposal.  The policy an import or publish installs is the
# live policy (port/policy.yaml; before the first install, the packaged policy) with rules
# *added*, never removed or loosened:
#
#   - an action new to the live port gets a rule only if no existing rule names it: a write
#     is held (two approvers, not the requester, for DELETE), a read is denied, unless the
#     operator accepts proposals, and even then a write is never automatic;
#   - an action whose method or route changed is treated as new: its old decision stays the
#     most it can get, and without accepted proposals a read is denied, a write held;
#   - no write can ever be sent without approval: any rule that would auto-send one gets a
#     require_approval copy (same conditions, the action's strictest approval settings)
#     in front of it;
#   - an accepted proposal may tighten an existing action, never loosen it.
#
# Existing rules keep their place, so conditional rules (purge deny, size and limit caps)
# and approval settings (approvers, forbidSelfApproval) still decide first.

_STRICTNESS: dict[str, int] = {"auto": 0, "require_approval": 1, "deny": 2}
Status = Literal["new", "changed", "existing"]
_BODY_CAPS: dict[str, tuple[int, str]] = {
    "json": (JSON_BODY_CAP, "JSON bodies over 1 MB must be sent by a person"),
    "multipart": (UPLOAD_CAP, "uploads over 5 MB must be made by a person"),
}


def _stricter(a: Outcome, b: Outcome) -> Outcome:
    return a if _STRICTNESS[a] >= _STRICTNESS[b] else b


def _loosest(rules: list[Rule], action: Action) -> Outcome:
    """The most permissive outcome any input can get for ``action`` under ``rules``."""
    out: Outcome = "deny"
    for rule in rules:
        if not rule.applies_to(action):
            continue
        if _STRICTNESS[rule.decision] < _STRICTNESS[out]:
            out = rule.decision
        if not rule.conditional:
            return out
    return out  # nothing matched: deny


def _describe_decision(policy: Policy, action: Action) -> str:
    decision, conditional = policy.static_decision(action)
    text = f"{decision.outcome} (rule {decision.rule}"
    if decision.outcome == "require_approval":
        text += f", {decision.approvers} approver{'s' if decision.approvers > 1 else ''}"
        if decision.forbid_self_approval:
            text += ", not the requester"
    text += ")"
    if conditional:
        text += f"; first: {', '.join(conditional)}"
    return text


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """What the installed policy decides for one action, against what was proposed."""

    action: str
    kind: Literal["read", "write"]
    status: Status
    proposal: str
    accepted: bool
    before: str | None
    after: str
    rules_added: tuple[str, ...]
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "status": self.status,
            "proposal": self.proposal,
            "proposal_accepted": self.accepted,
            "before": self.before,
            "after": self.after,
            "rules_added": list(self.rules_added),
            "note": self.note,
        }

    def line(self) -> str:
        sign = {"new": "+", "changed": "~", "existing": "="}[self.status]
        label = f"{self.status} {self.kind}" if self.status != "existing" else self.kind
        return f"  {sign} {self.action} ({label}): {self.after}; {self.note}"


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    """What happens to ``port/policy.yaml``: ``text`` is written, or (None) it is kept."""

    text: str | None
    source: Literal["installed", "packaged"]
    base_state: Literal["generated", "edited", "packaged"]
    base_sha256: str
    changes: tuple[PolicyChange, ...] = ()
    added_rules: tuple[str, ...] = ()
    uncovered: tuple[str, ...] = ()  # actions the policy denies although proposed otherwise
    backup: bool = False  # the operator's file is rewritten; the old one goes to .bak

    @property
    def kept(self) -> bool:
        return self.text is None

    @property
    def summary(self) -> str:
        n = len(self.added_rules)
        added = f"{n} rule{'s' if n != 1 else ''} added"
        if self.kept:
            return "kept (edited by the operator)" if self.base_state == "edited" else "kept"
        if self.source == "packaged":
            return "installed from the packaged policy" + (f", {added}" if n else "")
        extra = "; your previous file is kept as port/policy.yaml.bak" if self.backup else ""
        return f"updated: {added}{extra}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.summary,
            "policy_source": self.source,
            "policy_rules_added": list(self.added_rules),
            "policy_changes": [c.to_dict() for c in self.changes],
            "denied_by_policy": list(self.uncovered),
        }

    def lines(self) -> list[str]:
        out = [f"policy: {self.summary}"]
        out += [c.line() for c in self.changes]
        if any(c.note.endswith("--accept-proposals)") for c in self.changes):
            out.append(
                "  proposals were not accepted: re-run with --accept-proposals to accept them "
                "(a write is never automatic, and no live decision is loosened)"
            )
        return out


def _rule_name(base: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._") or "rule"
    if len(name) > 56:
        name = f"{name[:47]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


def _baseline(paths: InstalledPaths) -> tuple[Path, Literal["installed", "packaged"]]:
    """The policy in force for the live port: ``port/policy.yaml`` (written by an import,
    a publish or an operator's ``node policy set``), else the packaged one."""
    if paths.policy.is_file():
        return paths.policy, "installed"
    from harbor_confluence.paths import default_policy_path

    return default_policy_path(), "packaged"


def _read_policy(path: Path) -> tuple[str, Policy]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(str(path), [f"cannot read: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(str(path), ["not UTF-8 text"]) from None
    return text, policy_from_data(parse_document(text, str(path)), str(path))


def baseline_digest(paths: InstalledPaths) -> str:
    """SHA-256 of the policy now in force (re-checked under the lock before installing)."""
    path, source = _baseline(paths)
    try:
        return f"{source}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    except OSError:
        return f"{source}:unreadable"


def plan_policy(
    manifest: Manifest,
    paths: InstalledPaths,
    *,
    live: Manifest,
    accept_proposals: bool = False,
    origin: str = "catalog import",
) -> PolicyPlan:
    """The live policy for ``manifest`` replacing ``live``: the policy in force, tightened
    where needed, with rules for new actions (see the comment above)."""
    base_path, source = _baseline(paths)
    base_text, base = _read_policy(base_path)
    base_state: Literal["generated", "edited", "packaged"] = "packaged"
    if source == "installed":
        base_state = "generated" if policy_state(base_path) == "generated" else "edited"
    rules: list[Rule] = list(base.rules)
    taken = {r.name for r in rules}
    prefix = origin.replace("catalog import", "catalog").replace("drafts publish", "draft")
    changes: list[PolicyChange] = []
    grants: dict[tuple[Literal["read", "write"], Outcome], list[Action]] = {}
    per_action: dict[str, list[str]] = {}
    statuses: dict[str, Status] = {}
    held_existing: set[str] = set()  # existing actions that needed a hold in front of an auto rule

    for a in manifest.actions:
        prev = live.by_name.get(a.name)
        status: Status = (
            "new" if prev is None
            else "changed" if (prev.method, prev.route) != (a.method, a.route)
            else "existing"
        )  # fmt: skip
        statuses[a.name] = status
        least: Outcome = "require_approval" if not a.is_read else "auto"
        floor: Outcome
        if status == "existing":
            floor = least
            if accept_proposals:
                floor = _stricter(a.default_policy, floor)
        elif accept_proposals:
            floor = _stricter(a.default_policy, least)
        else:
            floor = "require_approval" if not a.is_read else "deny"
        added: list[str] = []
        if status == "new" and not any(r.applies_to(a) for r in rules):
            if floor != "deny":
                grants.setdefault((a.kind, floor), []).append(a)
        elif floor == "deny":
            if _loosest(rules, a) != "deny":
                why = (
                    f"{a.method} {a.route} is not what the live policy decided for"
                    if status == "changed"
                    else "proposal deny accepted for"
                )
                name = _rule_name(f"{prefix}-deny-{a.name}", taken)
                rules.insert(0, Rule(name=name, actions=[a.name], decision="deny",
                                     reason=f"{origin}: {why} {a.name}"[:300]))  # fmt: skip
                added.append(name)
        elif floor == "require_approval":
            held = _cap_auto(rules, a, taken, prefix, origin)
            if held and status == "existing":
                held_existing.add(a.name)
            added += held
        per_action[a.name] = added

    appended: list[Rule] = []
    for (kind, decision), actions in sorted(grants.items()):
        names = [a.name for a in actions]
        for mode, (cap, reason) in _BODY_CAPS.items():
            capped = [a.name for a in actions if a.request_body_mode == mode]
            if capped:
                name = _rule_name(f"{prefix}-{mode}-body-cap", taken)
                appended.append(Rule(name=name, actions=capped, body_bytes_over=cap,
                                     decision="deny", reason=reason))  # fmt: skip
                for n in capped:
                    per_action[n].append(name)
        groups: list[tuple[str, list[str], int, bool]] = []
        if decision == "require_approval":
            deletes = [a.name for a in actions if a.destructive]
            others = [n for n in names if n not in deletes]
            if deletes:
                groups.append(("deletes-review", deletes, 2, True))
            if others:
                groups.append(("review", others, 1, False))
        else:
            groups.append(("auto", names, 1, False))
        for label, members, approvers, forbid in groups:
            name = _rule_name(f"{prefix}-{kind}s-{label}", taken)
            why = (
                f"{origin}: new {kind} actions are held for an operator"
                if decision == "require_approval" and not accept_proposals
                else f"{origin}: proposal {decision} accepted by the operator"
            )
            appended.append(
                Rule(name=name, actions=members, kind=kind, decision=decision, reason=why,
                     approvers=approvers, forbid_self_approval=forbid)
            )  # fmt: skip
            for n in members:
                per_action[n].append(name)
    final_rules = rules + appended
    final = Policy(rules=final_rules)
    _check_invariants(manifest, base, final, statuses, appended)

    uncovered = []
    for a in manifest.actions:
        verdict, conditional = final.static_decision(a)
        if a.default_policy != "deny" and verdict.outcome == "deny" and not conditional:
            uncovered.append(a.name)
        status = statuses[a.name]
        note = _note(a, status, verdict.outcome, accept_proposals)
        if not note and a.name in held_existing:
            note = "a write is never sent without approval: held where a rule would have sent it"
        if status == "existing" and not per_action[a.name] and not note:
            continue
        before = None if status == "new" else _describe_decision(base, a)
        changes.append(PolicyChange(a.name, a.kind, status, a.default_policy,
                                    accept_proposals, before, _describe_decision(final, a),
                                    tuple(per_action[a.name]), note or "unchanged"))  # fmt: skip

    added_names = tuple(r.name for r in final_rules if r.name not in {x.name for x in base.rules})
    text: str | None
    backup = False
    if not added_names:
        text = None if source == "installed" else _stamp(_FIRST_HEADER + base_text)
    else:
        start = _FIRST_HEADER + base_text if source == "packaged" else base_text
        text = _append_rules(start, final_rules, appended, origin) if rules == base.rules else None
        if text is None:
            header = _FIRST_HEADER if base_state != "edited" else ""
            header += f"# Rewritten by harbor-confluence ({origin}): rules added, none removed.\n"
            if base_state == "edited":
                header += "# Your previous file, with its comments, is port/policy.yaml.bak.\n"
            text = header + yaml.safe_dump(
                {"version": 1, "rules": [_rule_data(r) for r in final_rules]},
                sort_keys=False, width=100,
            )  # fmt: skip
            backup = base_state == "edited"
        if base_state != "edited":
            text = _stamp(text)
        reread = policy_from_data(yaml.safe_load(text), "the planned policy")
        if reread.rules != final_rules:  # pragma: no cover - a bug, never install it
            raise CatalogRefused("internal error: the planned policy does not read back")
    return PolicyPlan(
        text=text,
        source=source,
        base_state=base_state,
        base_sha256=f"{source}:{hashlib.sha256(base_text.encode()).hexdigest()}",
        changes=tuple(changes),
        added_rules=added_names,
        uncovered=tuple(uncovered),
        backup=backup,
    )


_FIRST_HEADER = (
    "# The live port's policy.  It started as the packaged policy; catalog import and\n"
    "# drafts publish only add rules to it (new actions, caps), never remove or loosen one.\n"
    "# Edit freely: once you edit it, it is yours and is only ever added to.\n"
)


def _cap_auto(rules: list[Rule], a: Action, taken: set[str], prefix: str, origin: str) -> list[str]:
    """Put a require_approval copy in front of every rule that could auto-send ``a``."""
    approvers, forbid, ttl = (2, True, 86_400) if a.destructive else (1, False, 86_400)
    for r in rules:
        if r.applies_to(a) and r.decision == "require_approval":
            approvers = max(approvers, r.approvers)
            forbid = forbid or r.forbid_self_approval
            ttl = min(ttl, r.ttl_seconds)
    added: list[str] = []
    i = 0
    while i < len(rules):
        r = rules[i]
        if not r.applies_to(a):
            i += 1
            continue
        if r.decision == "auto":
            name = _rule_name(f"{prefix}-hold-{a.name}", taken)
            reason = (f"{origin}: {a.name} ({a.kind}) may not be sent without approval "
                      f"(it would have matched rule {r.name})")  # fmt: skip
            guard = Rule(name=name, actions=[a.name], kind=r.kind, when=r.when, unless=r.unless,
                         body_bytes_over=r.body_bytes_over, decision="require_approval",
                         reason=reason[:300], approvers=approvers, forbid_self_approval=forbid,
                         ttl_seconds=ttl)  # fmt: skip
            rules.insert(i, guard)
            added.append(name)
            i += 1
        if not r.conditional:
            break
        i += 1
    return added


def _note(a: Action, status: Status, outcome: Outcome, accepted: bool) -> str:
    proposal = a.default_policy
    if proposal == outcome:
        return "" if status == "existing" else "as proposed"
    if status == "new" and not accepted:
        if a.is_read:
            return (
                f"proposal {proposal} not accepted: a new read is denied (pass --accept-proposals)"
            )
        return (
            f"proposal {proposal} not accepted: a new write is held for an operator "
            "(pass --accept-proposals)"
        )
    if status == "changed" and not accepted:
        return (
            f"method or route changed; proposal {proposal} not accepted: "
            + ("denied" if a.is_read else "held")
            + " (pass --accept-proposals)"
        )
    if proposal == "auto" and not a.is_read:
        return "proposal auto refused: a write is never sent without approval"
    if _STRICTNESS[proposal] < _STRICTNESS[outcome]:
        return f"proposal {proposal} not applied: an import never loosens the live policy"
    if not accepted:
        return f"proposal {proposal} not accepted (pass --accept-proposals)"
    return f"proposal {proposal} applied where the live policy allowed more"


def _check_invariants(
    manifest: Manifest,
    base: Policy,
    final: Policy,
    statuses: dict[str, Status],
    appended: list[Rule],
) -> None:
    """What must hold whatever the document says; a violation is a bug and installs nothing."""
    rules = list(final.rules)
    problems = []
    for a in manifest.actions:
        if not a.is_read and _loosest(rules, a) == "auto":
            problems.append(f"write {a.name} could be sent without approval")
        if statuses[a.name] != "new" and (
            _STRICTNESS[_loosest(rules, a)] < _STRICTNESS[_loosest(list(base.rules), a)]
        ):
            problems.append(f"{a.name} would be decided more loosely than before")
    kept = [r for r in rules if r in base.rules]
    if kept != list(base.rules):
        problems.append("an existing rule was dropped or reordered")
    for r in appended:
        if r.decision == "auto" and any(statuses.get(n) != "new" for n in r.actions):
            problems.append(f"rule {r.name} would allow an action that is not new")
    if problems:  # pragma: no cover - guarded by construction
        raise CatalogRefused("internal error, nothing installed: " + "; ".join(problems))


def _rule_data(rule: Rule) -> dict[str, Any]:
    return rule.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _append_rules(text: str, final: list[Rule], appended: list[Rule], origin: str) -> str | None:
    """``text`` with ``appended`` added at the end of its rule list, keeping every comment;
    None when the file's layout does not allow it (the caller rewrites it instead)."""
    lines = text.splitlines()
    try:
        at = next(i for i, line in enumerate(lines) if re.match(r"^rules:\s*(#.*)?$", line))
    except StopIteration:
        return None
    indent = None
    for line in lines[at + 1 :]:
        m = re.match(r"^( *)- ", line)
        if m:
            indent = m.group(1)
            break
        if line.strip() and not line.lstrip().startswith("#") and not line.startswith(" "):
            return None  # another top-level key before any item
    if indent is None:
        return None
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    added = [f"{indent}# added by {origin} on {when}"]
    added += [f"{indent}- {json.dumps(_rule_data(r), ensure_ascii=True)}" for r in appended]
    out = text.rstrip("\n") + "\n" + "\n".join(added) + "\n"
    try:
        reread = policy_from_data(yaml.safe_load(out), "appended policy")
    except (yaml.YAMLError, ManifestError):
        return None
    return out if reread.rules == final else None


def install(manifest: Manifest, policy: PolicyPlan, paths: InstalledPaths) -> None:
    """Write the live port: policy first, manifest last (the manifest is what Port.load
    looks for, so a crash in between never leaves a manifest without its policy)."""
    data = manifest_data(manifest)
    manifest_from_data(data, str(paths.manifest))  # what is written must load back
    paths.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if policy.text is not None:
        policy_from_data(yaml.safe_load(policy.text), str(paths.policy))  # never a bad one
        if policy.backup and paths.policy.is_file():
            atomic_write(paths.policy_backup, paths.policy.read_bytes())
        atomic_write(paths.policy, policy.text.encode())
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    atomic_write(paths.manifest, text.encode())


def installed_manifest(paths: InstalledPaths) -> Manifest | None:
    if not paths.manifest.is_file():
        return None
    from harbor_confluence.pipeline.manifest import load_manifest

    return load_manifest(paths.manifest)


def packaged_manifest() -> Manifest:
    from harbor_confluence.paths import default_manifest_path
    from harbor_confluence.pipeline.manifest import load_manifest

    return load_manifest(default_manifest_path())


def live_manifest(paths: InstalledPaths) -> Manifest:
    """The live port's manifest: the installed one, else the packaged one."""
    current = installed_manifest(paths)
    return current if current is not None else packaged_manifest()


# -- import -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """A validated import, before it is applied; ``needs_confirmation`` for changes."""

    source: str
    sha256: str
    document: CatalogDocument
    manifest: Manifest
    kind: Literal["install", "unchanged", "upgrade", "downgrade"]
    current: Manifest | None  # the installed manifest (None: the packaged port is live)
    live: Manifest  # what the import replaces: the installed manifest, else the packaged one
    diff: ManifestDiff
    policy: PolicyPlan
    accept_proposals: bool = False
    notes: tuple[str, ...] = field(default=())
    # How the document was checked and where it came from (hub imports, see hub.py and
    # signing.py): recorded in the audit log and, once applied, in port/source.json.
    provenance: dict[str, Any] | None = None

    @property
    def needs_confirmation(self) -> bool:
        if self.kind in ("upgrade", "downgrade"):
            return True
        return self.kind == "install" and (not self.diff.empty or bool(self.policy.added_rules))

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "sha256": self.sha256,
            "port": self.manifest.port.name,
            "kind": self.kind,
            "from": self.current.manifest_version if self.current else None,
            "replaces": {
                "source": "installed" if self.current else "packaged",
                "port": self.live.port.name,
                "version": self.live.manifest_version,
            },
            "to": self.manifest.manifest_version,
            "accept_proposals": self.accept_proposals,
            "diff": self.diff.to_dict(),
            **self.policy.to_dict(),
            **({"provenance": self.provenance} if self.provenance is not None else {}),
        }

    def lines(self) -> list[str]:
        """The plan as the operator reads it: the action set, then the policy."""
        where = "installed" if self.current else "packaged"
        head = {
            "install": f"install over the {where} port",
            "upgrade": "upgrade of the live port",
            "downgrade": "downgrade (--force) of the live port",
            "unchanged": "no change to the live port",
        }[self.kind]
        return [
            f"{head} {self.live.port.name} {self.live.manifest_version} -> "
            f"{self.manifest.port.name} {self.manifest.manifest_version}:",
            *self.diff.lines(),
            *self.policy.lines(),
        ]


def _refuse_same_version(path: str | Path, new: Manifest, old: Manifest, what: str) -> None:
    if compare_versions(new.manifest_version, old.manifest_version) != 0:
        return
    if new.port.name != old.port.name or manifest_data(new) == manifest_data(old):
        return
    changes = "\n  ".join(diff_manifests(old, new).lines()[1:]) or "(metadata)"
    raise CatalogRefused(
        f"{path}: version {new.manifest_version} is {what} with different content; a changed "
        f"port needs a higher manifestVersion (bump it and import again). Differences:\n"
        f"  {changes}"
    )


def plan_import(
    path: str | Path,
    home: Path,
    *,
    force: bool = False,
    accept_proposals: bool = False,
    document: bytes | None = None,
    provenance: dict[str, Any] | None = None,
) -> ImportPlan:
    """Validate a hub document against the live port; raise if it must be refused.

    ``accept_proposals`` accepts the document's defaultPolicy values as far as they never
    loosen the live policy and never make a write automatic (see ``plan_policy``).
    ``document`` is the document's bytes when they were already read and checked (a hub
    import: ``path`` then only names where they came from); ``provenance`` says how.
    """
    if document is not None:
        doc, digest = load_catalog_bytes(document, str(path))
    else:
        doc, digest = load_catalog(path)
    new = _manifest_of(doc)
    paths = installed_paths(home)
    current = installed_manifest(paths)
    packaged = packaged_manifest()
    # The packaged port's version is taken, whatever is installed: another content under
    # that version is refused in every home.
    if new.port.name == packaged.port.name:
        _refuse_same_version(path, new, packaged, "the packaged port's version")
    kind: Literal["install", "unchanged", "upgrade", "downgrade"] = "install"
    if current is not None:
        _refuse_same_version(path, new, current, "already installed")
        order = compare_versions(new.manifest_version, current.manifest_version)
        if order == 0:
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
    live = current if current is not None else packaged
    origin = f"catalog import {new.manifest_version}"
    policy = plan_policy(new, paths, live=live, accept_proposals=accept_proposals, origin=origin)
    return ImportPlan(str(path), digest, doc, new, kind, current, live,
                      diff_manifests(live, new), policy, accept_proposals,
                      provenance=provenance)  # fmt: skip


def apply_import(plan: ImportPlan, home: Path, *, operator: str) -> dict[str, Any]:
    """Install a planned import (re-checked under the lock) and record it in the audit log."""
    paths = installed_paths(home)
    with port_lock(home):
        now = installed_manifest(paths)
        before = manifest_data(now) if now is not None else None
        planned = manifest_data(plan.current) if plan.current is not None else None
        if before != planned or baseline_digest(paths) != plan.policy.base_sha256:
            raise CatalogRefused(
                "the live port or its policy changed while this import was being confirmed; "
                "run it again"
            )
        if plan.kind != "unchanged":
            install(plan.manifest, plan.policy, paths)
        if plan.provenance is not None:
            write_source(paths, plan, operator)
    summary = plan.to_dict()
    diff = plan.diff
    record_audit(
        home, "catalog-import", operator=operator, file=plan.source, sha256=plan.sha256,
        port=plan.manifest.port.name, kind=plan.kind, from_version=summary["from"],
        replaces=summary["replaces"], to_version=plan.manifest.manifest_version,
        added=[a.name for a in diff.added], removed=[a.name for a in diff.removed],
        changed=[c.name for c in diff.changed], policy=summary["policy"],
        accept_proposals=plan.accept_proposals,
        policy_rules_added=summary["policy_rules_added"],
        policy_changes=[f"{c.action}: {c.after}; {c.note}" for c in plan.policy.changes],
        **({"provenance": plan.provenance} if plan.provenance is not None else {}),
    )  # fmt: skip
    return summary


# -- where the live port came from (catalog update asks the same hub) -------------------------

SOURCE_FILE = "source.json"


def write_source(paths: InstalledPaths, plan: ImportPlan, operator: str) -> None:
    """Record where the live port came from (``port/source.json``), for ``catalog update``."""
    if not paths.manifest.is_file():  # the import installed nothing (unchanged packaged port)
        return
    record = {
        **(plan.provenance or {}),
        "port": plan.manifest.port.name,
        "version": plan.manifest.manifest_version,
        "imported_by": operator,
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    atomic_write(paths.dir / SOURCE_FILE, text.encode())


def read_source(home: Path) -> dict[str, Any] | None:
    """``port/source.json``, or None (the live port is packaged, or predates the record)."""
    path = installed_paths(home).dir / SOURCE_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CatalogRefused(f"{path} is damaged ({exc}); import the port again") from None
    return data if isinstance(data, dict) else None


def record_audit(home: Path, event: str, **fields: Any) -> dict[str, Any]:
    """Append to the state directory's hash-chained audit log."""
    from harbor_confluence.review.audit import AuditLog

    return AuditLog.for_home(home).append(event, **fields)


def operator_identity(explicit: str | None = None) -> str:
    """Who is acting: ``--as``, else ``$HARBOR_OPERATOR``, else the OS user."""
    from harbor_confluence.review.queue import default_operator

    name = (explicit if explicit is not None else default_operator()).strip()
    if not _IDENTITY.match(name):
        raise CatalogRefused(
            f"identity {name!r} is not usable: 1-64 characters, letters, digits and ._@+-"
        )
    return name
