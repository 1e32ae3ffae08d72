"""Publisher signatures on hub documents (Ed25519) and the operator's trusted keys.

A hub is a supply chain: the operator must know who published a document and that it is
the one they meant to take.  Publishers sign; operators trust a publisher's key; an
import checks both before anything is planned, let alone installed.

The signature format (``harbor.hub.signature/v1``) is a small JSON file next to the
document, ``<document>.sig``::

    {"format": "harbor.hub.signature/v1", "algorithm": "ed25519",
     "publisher": "atlassian", "keyId": "<16 hex>", "publicKey": "ed25519:<base64>",
     "sha256": "<hex SHA-256 of the document bytes>", "signature": "<base64, 64 bytes>"}

The signature is Ed25519 over the **exact bytes of the document file**, prefixed with a
context line and the publisher slug::

    b"harbor.hub.signature/v1\\n" + publisher.encode("ascii") + b"\\n" + document_bytes

Why the exact bytes and not canonical JSON: what is verified is then exactly what is
parsed and installed, with no canonicaliser (number formats, Unicode escapes, duplicate
keys) that the signer and the importer could disagree on; and a ``--sha256`` pin names the
same object.  The cost is that a re-formatted document needs a new signature, which is
what a publisher wants anyway.  The prefix keeps these signatures from being valid for any
other use of the same key, and binds the publisher slug, so the ``publisher`` field cannot
be swapped.  ``keyId`` is the first 16 hex digits of the SHA-256 of the raw 32-byte public
key; ``publicKey`` is informative (a verifier only ever uses the key the operator
trusted; it lets an error say whether an untrusted signature is at least intact).

Keys come from ``cryptography`` (the ``[hub]`` extra); nothing here implements crypto.
Private keys are PKCS#8 PEM files, created 0600 and refused when readable by others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harbor_confluence.config import atomic_write
from harbor_confluence.errors import EXIT_ERROR, EXIT_INVALID, HarborError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "ALGORITHM",
    "SIG_FORMAT",
    "SIG_SUFFIX",
    "TRUST_FILE",
    "Provenance",
    "PublicKey",
    "Signature",
    "SignatureRefused",
    "SigningUnavailable",
    "TrustStore",
    "TrustedKey",
    "check_document",
    "generate_keypair",
    "load_private_key",
    "parse_signature",
    "sign_document",
    "signed_message",
    "write_keypair",
]

SIG_FORMAT = "harbor.hub.signature/v1"
SIG_SUFFIX = ".sig"
ALGORITHM = "ed25519"
TRUST_FILE = "trusted-keys.json"
MAX_SIGNATURE_BYTES = 16 * 1024
_CONTEXT = SIG_FORMAT.encode("ascii") + b"\n"
_SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")  # manifest.Name: a publisher slug
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_KEY_PREFIX = "ed25519:"


class SignatureRefused(HarborError):
    """A document's signature, pin or publisher does not check out; nothing installed."""

    code = "signature_refused"
    exit_code = EXIT_INVALID


class SigningUnavailable(HarborError):
    """Ed25519 needs the ``cryptography`` package (the ``[hub]`` extra)."""

    code = "signing_unavailable"
    exit_code = EXIT_ERROR


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SigningUnavailable(
            "publisher signatures (Ed25519) need the cryptography package: "
            "pip install 'harbor-confluence[hub]' (a --sha256 pin needs nothing more)"
        ) from None
    return ed25519


# -- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A raw 32-byte Ed25519 public key; ``text`` is how people pass it around."""

    raw: bytes

    @property
    def text(self) -> str:
        return _KEY_PREFIX + base64.b64encode(self.raw).decode("ascii")

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """``ed25519:<base64>`` (what ``catalog keygen`` writes to ``KEY.pub``), or the
        same base64 without the prefix."""
        value = text.strip()
        if value.startswith(_KEY_PREFIX):
            value = value[len(_KEY_PREFIX) :]
        elif ":" in value:
            algorithm = value.split(":", 1)[0]
            raise SignatureRefused(f"unsupported key type {algorithm!r}: only ed25519 keys")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureRefused(
                "not an Ed25519 public key: expected ed25519:<base64 of 32 bytes> "
                "(the .pub file catalog keygen wrote)"
            ) from None
        if len(raw) != 32:
            raise SignatureRefused(
                f"not an Ed25519 public key: {len(raw)} bytes, an Ed25519 key has 32"
            )
        return cls(raw)

    def _crypto(self) -> Ed25519PublicKey:
        key: Ed25519PublicKey = _ed25519().Ed25519PublicKey.from_public_bytes(self.raw)
        return key

    def verifies(self, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._crypto().verify(signature, message)
        except InvalidSignature:
            return False
        return True


def generate_keypair() -> tuple[bytes, PublicKey]:
    """A new Ed25519 key: the private key as PKCS#8 PEM, and its public key."""
    from cryptography.hazmat.primitives import serialization

    private: Ed25519PrivateKey = _ed25519().Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return pem, PublicKey(raw)


def write_keypair(path: str | Path, *, publisher: str | None = None) -> tuple[Path, PublicKey]:
    """Write a new private key to ``path`` (created 0600, never over an existing file) and
    its public key to ``path.pub``; returns the .pub path and the key."""
    target = Path(path)
    pub = target.with_name(target.name + ".pub")
    for p in (target, pub):
        if p.exists():
            raise SignatureRefused(f"{p} exists; keygen never overwrites a key (choose a new -o)")
    pem, key = generate_keypair()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    comment = f" {publisher}" if publisher else ""
    pub.write_text(f"{key.text}{comment}\n", encoding="ascii")
    return pub, key


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """A PKCS#8 PEM Ed25519 private key; refused when the file is open to others (as ssh
    refuses a private key that others can read)."""
    from cryptography.hazmat.primitives import serialization

    p = Path(path)
    try:
        st = p.stat()
        pem = p.read_bytes()
    except OSError as exc:
        raise SignatureRefused(f"cannot read the private key {p}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SignatureRefused(
            f"the private key {p} is open to others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"chmod 600 {p}"
        )
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureRefused(f"{p} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, _ed25519().Ed25519PrivateKey):
        raise SignatureRefused(f"{p} is not an Ed25519 key (catalog keygen makes one)")
    private: Ed25519PrivateKey = key
    return private


def read_public_key(value: str) -> PublicKey:
    """A key given on the command line: ``ed25519:...`` or the path of a ``.pub`` file."""
    text = value.strip()
    if not text.startswith(_KEY_PREFIX) and Path(text).is_file():
        try:
            text = Path(text).read_text("ascii").split()[0]
        except (OSError, UnicodeDecodeError, IndexError):
            raise SignatureRefused(f"{value} is not a public key file") from None
    return PublicKey.parse(text)


# -- signatures ------------------------------------------------------------------------------


def signed_message(publisher: str, document: bytes) -> bytes:
    """What the Ed25519 signature covers (see the module docstring)."""
    return _CONTEXT + publisher.encode("ascii") + b"\n" + document


@dataclass(frozen=True, slots=True)
class Signature:
    publisher: str
    key_id: str
    public_key: PublicKey
    sha256: str
    signature: bytes

    def to_dict(self) -> dict[str, str]:
        return {
            "format": SIG_FORMAT,
            "algorithm": ALGORITHM,
            "publisher": self.publisher,
            "keyId": self.key_id,
            "publicKey": self.public_key.text,
            "sha256": self.sha256,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode("ascii")


def sign_document(document: bytes, key_path: str | Path, publisher: str) -> Signature:
    """Sign ``document`` (the file's exact bytes) as ``publisher`` with a private key file."""
    if not _SLUG.match(publisher):
        raise SignatureRefused(f"{publisher!r} is not a publisher slug")
    from cryptography.hazmat.primitives import serialization

    private = load_private_key(key_path)
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    key = PublicKey(raw)
    signature = private.sign(signed_message(publisher, document))
    return Signature(publisher, key.key_id, key, hashlib.sha256(document).hexdigest(), signature)


def parse_signature(raw: bytes, source: str) -> Signature:
    """A ``.sig`` file, checked for shape only (``check_document`` verifies it)."""
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise SignatureRefused(f"{source}: a signature file is larger than {MAX_SIGNATURE_BYTES}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignatureRefused(f"{source}: not a signature file (invalid JSON: {exc})") from None
    if not isinstance(data, dict):
        raise SignatureRefused(f"{source}: not a signature file (a JSON object is expected)")
    problems = []
    if data.get("format") != SIG_FORMAT:
        problems.append(f"format must be {SIG_FORMAT!r}")
    if data.get("algorithm") != ALGORITHM:
        problems.append(f"algorithm must be {ALGORITHM!r}")
    fields = {k: data.get(k) for k in ("publisher", "keyId", "publicKey", "sha256", "signature")}
    for name, value in fields.items():
        if not isinstance(value, str):
            problems.append(f"{name} is required (a string)")
    unknown = sorted(set(data) - {"format", "algorithm", *fields})
    if unknown:
        problems.append(f"unknown fields: {', '.join(unknown)}")
    if problems:
        raise SignatureRefused(f"{source}: not a {SIG_FORMAT} signature: " + "; ".join(problems))
    publisher, key_id = str(fields["publisher"]), str(fields["keyId"])
    if not _SLUG.match(publisher):
        raise SignatureRefused(f"{source}: publisher {publisher!r} is not a publisher slug")
    if not _KEY_ID.match(key_id):
        raise SignatureRefused(f"{source}: keyId must be 16 lower-case hex digits")
    if not _HEX64.match(str(fields["sha256"])):
        raise SignatureRefused(f"{source}: sha256 must be 64 lower-case hex digits")
    key = PublicKey.parse(str(fields["publicKey"]))
    if key.key_id != key_id:
        raise SignatureRefused(f"{source}: keyId {key_id} is not the id of its publicKey")
    try:
        signature = base64.b64decode(str(fields["signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused(f"{source}: signature is not base64") from None
    if len(signature) != 64:
        raise SignatureRefused(f"{source}: an Ed25519 signature has 64 bytes, not {len(signature)}")
    return Signature(publisher, key_id, key, str(fields["sha256"]), signature)


# -- the operator's trusted keys ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedKey:
    publisher: str
    key: PublicKey
    added_at: str
    added_by: str
    comment: str = ""

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def to_dict(self) -> dict[str, str]:
        return {
            "publisher": self.publisher,
            "keyId": self.key_id,
            "publicKey": self.key.text,
            "addedAt": self.added_at,
            "addedBy": self.added_by,
            "comment": self.comment,
        }


class TrustStore:
    """``<state dir>/trusted-keys.json`` (0600): which key may sign for which publisher.

    A key is trusted for exactly one publisher slug; a publisher may have several keys
    (rotation).  Changes are the operator's (``catalog trust add/remove``) and audited.
    """

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / TRUST_FILE

    def keys(self) -> list[TrustedKey]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SignatureRefused(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(raw)
            return [
                TrustedKey(
                    str(k["publisher"]),
                    PublicKey.parse(str(k["publicKey"])),
                    str(k.get("addedAt", "")),
                    str(k.get("addedBy", "")),
                    str(k.get("comment", "")),
                )
                for k in data["keys"]
            ]
        except (ValueError, KeyError, TypeError, SignatureRefused) as exc:
            raise SignatureRefused(f"{self.path} is damaged ({exc}); fix or remove it") from None

    def __iter__(self) -> Iterator[TrustedKey]:
        return iter(self.keys())

    def _save(self, keys: list[TrustedKey]) -> None:
        text = json.dumps({"version": 1, "keys": [k.to_dict() for k in keys]}, indent=2)
        atomic_write(self.path, text.encode() + b"\n")

    def find(self, key_id: str) -> TrustedKey | None:
        return next((k for k in self.keys() if k.key_id == key_id), None)

    def for_publisher(self, publisher: str) -> list[TrustedKey]:
        return [k for k in self.keys() if k.publisher == publisher]

    def add(self, key: PublicKey, publisher: str, *, by: str, comment: str = "") -> TrustedKey:
        if not _SLUG.match(publisher):
            raise SignatureRefused(
                f"{publisher!r} is not a publisher slug (lower-case words joined by '-')"
            )
        keys = self.keys()
        for k in keys:
            if k.key_id == key.key_id:
                if k.publisher == publisher:
                    return k
                raise SignatureRefused(
                    f"key {key.key_id} is already trusted for publisher {k.publisher}; a key "
                    "signs for one publisher only (remove it first)"
                )
        now = datetime.now(UTC).isoformat(timespec="seconds")
        added = TrustedKey(publisher, key, now, by, comment[:200])
        self._save([*keys, added])
        return added

    def remove(self, which: str) -> TrustedKey:
        """Remove by key id, or by the key itself (``ed25519:...`` or a .pub file)."""
        keys = self.keys()
        key_id = which.strip() if _KEY_ID.match(which.strip()) else read_public_key(which).key_id
        kept = [k for k in keys if k.key_id != key_id]
        if len(kept) == len(keys):
            raise SignatureRefused(f"no trusted key {key_id}; see catalog trust list")
        self._save(kept)
        return next(k for k in keys if k.key_id == key_id)


# -- the decision --------------------------------------------------------------------------------

Status = Literal["signed", "pinned", "unsigned-allowed", "untrusted-allowed", "unverified-local"]


@dataclass(frozen=True, slots=True)
class Provenance:
    """How a document was checked before it was planned; recorded with the import."""

    status: Status
    sha256: str
    publisher: str
    key_id: str | None = None
    pinned: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "sha256": self.sha256,
                               "publisher": self.publisher, "pinned": self.pinned}  # fmt: skip
        if self.key_id:
            out["key_id"] = self.key_id
        if self.note:
            out["note"] = self.note
        return out

    def line(self) -> str:
        what = {
            "signed": f"signed by {self.publisher} (trusted key {self.key_id})",
            "pinned": "pinned by --sha256",
            "unsigned-allowed": "NOT signed: imported with --allow-unsigned",
            "untrusted-allowed": f"signed by an untrusted key {self.key_id}: imported with "
            "--allow-unsigned",
            "unverified-local": "a local file without a signature (not verified)",
        }[self.status]
        if self.pinned and self.status != "pinned":
            what += ", and pinned by --sha256"
        return f"provenance: {what}; sha256 {self.sha256}"


def check_document(
    document: bytes,
    signature: bytes | None,
    trust: TrustStore,
    *,
    source: str,
    publisher_of: Any,
    pin: str | None = None,
    allow_unsigned: bool = False,
    require: bool = True,
) -> Provenance:
    """Decide whether ``document`` may be planned for import; raise ``SignatureRefused``.

    ``publisher_of(document) -> slug`` parses the document (it is called after the bytes
    are checked, so a tampered file is reported as tampered).  Rules, in order:

    - ``pin`` (``--sha256``) must equal the document's SHA-256;
    - a signature that is present must verify over these exact bytes with the key the
      operator trusts for its key id, and that key's publisher, the signature's and the
      document's must be one and the same slug; a mismatch is refused whatever the flags;
    - without a trusted signature or a pin, the document is refused unless
      ``allow_unsigned`` (the operator's explicit, audited choice) or, for a local file
      (``require=False``), it is recorded as unverified.
    """
    digest = hashlib.sha256(document).hexdigest()
    pinned = False
    if pin is not None:
        want = pin.strip().lower().removeprefix("sha256:")
        if not _HEX64.match(want):
            raise SignatureRefused("--sha256 takes the 64 hex digits of the document's SHA-256")
        if want != digest:
            raise SignatureRefused(
                f"{source}: the document's SHA-256 is {digest}, not the pinned {want}; it is "
                "not the document you meant to take. Nothing was installed."
            )
        pinned = True
    sig = parse_signature(signature, f"{source}{SIG_SUFFIX}") if signature is not None else None
    trusted: TrustedKey | None = None
    intact_untrusted = False
    if sig is not None:
        if sig.sha256 != digest:
            raise SignatureRefused(
                f"{source}: the signature is for a document with SHA-256 {sig.sha256}, but this "
                f"one's is {digest}: the document was changed after it was signed (tampered, "
                "or re-encoded). Nothing was installed."
            )
        trusted = trust.find(sig.key_id)
        message = signed_message(sig.publisher, document)
        if trusted is not None:
            if trusted.key.raw != sig.public_key.raw:  # pragma: no cover - same id, other key
                raise SignatureRefused(f"{source}: key id {sig.key_id} names another key")
            if not trusted.key.verifies(sig.signature, message):
                raise SignatureRefused(
                    f"{source}: the signature does not match the document for key "
                    f"{sig.key_id} ({trusted.publisher}): the document or its signature was "
                    "changed, or it was signed with another key. Nothing was installed."
                )
            if sig.publisher != trusted.publisher:
                raise SignatureRefused(
                    f"{source}: signed as publisher {sig.publisher!r} with key {sig.key_id}, "
                    f"which you trust for publisher {trusted.publisher!r} only. Nothing was "
                    "installed."
                )
        else:
            intact_untrusted = sig.public_key.verifies(sig.signature, message)
            if not intact_untrusted:
                raise SignatureRefused(
                    f"{source}: the signature does not match the document (key {sig.key_id}): "
                    "the document or its signature was changed. Nothing was installed."
                )
    publisher = str(publisher_of(document))
    if sig is not None and sig.publisher != publisher:
        raise SignatureRefused(
            f"{source}: the document names publisher {publisher!r} but was signed as "
            f"{sig.publisher!r} (key {sig.key_id}). Nothing was installed."
        )
    if trusted is not None:
        return Provenance("signed", digest, publisher, sig.key_id if sig else None, pinned)
    if pinned:
        note = f"signature by untrusted key {sig.key_id}" if sig is not None else ""
        return Provenance("pinned", digest, publisher, sig.key_id if sig else None, True, note)
    if sig is not None:
        known = ", ".join(k.key_id for k in trust.for_publisher(publisher))
        why = f"its key {sig.key_id} is not trusted for publisher {publisher!r}" + (
            f" (trusted for it: {known})" if known else " (no key is trusted for it)"
        )
        if allow_unsigned:
            return Provenance("untrusted-allowed", digest, publisher, sig.key_id, note=why)
        raise SignatureRefused(
            f"{source}: signed, but {why}. Trust the publisher's key with "
            f"'harbor-confluence catalog trust add KEY --publisher {publisher}' after checking "
            "it with them, pin the document with --sha256, or pass --allow-unsigned (audited). "
            "Nothing was installed."
        )
    if not require:
        return Provenance("unverified-local", digest, publisher)
    if allow_unsigned:
        return Provenance("unsigned-allowed", digest, publisher, note="no signature")
    raise SignatureRefused(
        f"{source}: the document is not signed (no {SIG_SUFFIX} beside it). Import it pinned "
        "(--sha256 DIGEST, from the publisher) or, knowingly, with --allow-unsigned "
        "(audited). Nothing was installed."
    )
