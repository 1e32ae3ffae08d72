"""Publisher keys and signatures (Ed25519 from ``cryptography``) and the operators' trusted
keys: the format, what it binds, and the CLI (keygen, sign, trust add/list/remove, verify)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.catalog.dock import export_document
from harbor_confluence.pipeline.executor import default_manifest_path
from harbor_confluence.pipeline.manifest import load_manifest
from harbor_confluence.review.audit import AuditLog
from tests.conftest import CliResult

pytest.importorskip("cryptography", reason="signatures need the [hub] extra")

from harbor_confluence.catalog.signing import (
    SIG_FORMAT,
    PublicKey,
    SignatureRefused,
    TrustStore,
    check_document,
    load_private_key,
    parse_signature,
    sign_document,
    signed_message,
    write_keypair,
)

Cli = Callable[..., CliResult]


@pytest.fixture(scope="module")
def doc_bytes() -> bytes:
    doc = export_document(load_manifest(default_manifest_path()))
    doc["manifestVersion"] = "9.0.0"
    doc["actions"] = doc["actions"][:2]
    return (json.dumps(doc, indent=2) + "\n").encode()


def publisher_of(raw: bytes) -> str:
    return str(json.loads(raw)["publisher"]["slug"])


def check(raw: bytes, sig: bytes | None, trust: TrustStore, **kw: Any) -> Any:
    return check_document(raw, sig, trust, source="doc.json", publisher_of=publisher_of, **kw)


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    pub_path, key = write_keypair(tmp_path / "k", publisher="atlassian")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert pub_path.read_text().split() == [key.text, "atlassian"]
    assert key.text.startswith("ed25519:") and len(base64.b64decode(key.text[8:])) == 32
    assert key.key_id == hashlib.sha256(key.raw).hexdigest()[:16]
    with pytest.raises(SignatureRefused, match="never overwrites"):
        write_keypair(tmp_path / "k")
    (tmp_path / "k").chmod(0o644)
    with pytest.raises(SignatureRefused, match="open to others"):
        load_private_key(tmp_path / "k")


def test_signature_format_and_what_it_covers(tmp_path: Path, doc_bytes: bytes) -> None:
    _, key = write_keypair(tmp_path / "k")
    sig = sign_document(doc_bytes, tmp_path / "k", "atlassian")
    data = json.loads(sig.to_bytes())
    assert set(data) == {"format", "algorithm", "publisher", "keyId", "publicKey", "sha256",
                         "signature"}  # fmt: skip
    assert data["format"] == SIG_FORMAT and data["algorithm"] == "ed25519"
    assert data["keyId"] == key.key_id and data["publicKey"] == key.text
    assert data["sha256"] == hashlib.sha256(doc_bytes).hexdigest()
    raw_sig = base64.b64decode(data["signature"])
    # over the exact bytes, prefixed with the format line and the publisher slug
    message = b"harbor.hub.signature/v1\natlassian\n" + doc_bytes
    assert signed_message("atlassian", doc_bytes) == message
    assert key.verifies(raw_sig, message)
    assert not key.verifies(raw_sig, doc_bytes)  # not the bare document
    assert not key.verifies(raw_sig, signed_message("acme", doc_bytes))  # publisher is bound
    reformatted = json.dumps(json.loads(doc_bytes)).encode()  # same JSON, other bytes
    assert not key.verifies(raw_sig, signed_message("atlassian", reformatted))
    assert parse_signature(sig.to_bytes(), "x.sig") == sig


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.update(format="other/v1"), "format must be"),
        (lambda d: d.update(algorithm="rsa"), "algorithm must be"),
        (lambda d: d.pop("keyId"), "keyId is required"),
        (lambda d: d.update(keyId="0" * 16), "is not the id of its publicKey"),
        (lambda d: d.update(signature="not base64!"), "signature is not base64"),
        (lambda d: d.update(extra=1), "unknown fields: extra"),
        (lambda d: d.update(publisher="Not A Slug"), "is not a publisher slug"),
    ],
    ids=["format", "algorithm", "no-key-id", "key-id", "base64", "unknown", "slug"],
)
def test_malformed_signature_files(
    tmp_path: Path, doc_bytes: bytes, edit: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    write_keypair(tmp_path / "k")
    data = sign_document(doc_bytes, tmp_path / "k", "atlassian").to_dict()
    bad: dict[str, Any] = copy.deepcopy(data)
    edit(bad)
    with pytest.raises(SignatureRefused, match=expected):
        parse_signature(json.dumps(bad).encode(), "x.sig")


def test_the_decision(tmp_path: Path, doc_bytes: bytes) -> None:
    trust = TrustStore(tmp_path)
    _, key = write_keypair(tmp_path / "k")
    _, other = write_keypair(tmp_path / "o")
    sig = sign_document(doc_bytes, tmp_path / "k", "atlassian").to_bytes()
    digest = hashlib.sha256(doc_bytes).hexdigest()

    # nothing trusted yet: refused, unless allowed (recorded) or pinned
    with pytest.raises(SignatureRefused, match="no key is trusted for it"):
        check(doc_bytes, sig, trust)
    assert check(doc_bytes, sig, trust, allow_unsigned=True).status == "untrusted-allowed"
    assert check(doc_bytes, sig, trust, pin=digest).status == "pinned"
    with pytest.raises(SignatureRefused, match="is not signed"):
        check(doc_bytes, None, trust)
    assert check(doc_bytes, None, trust, require=False).status == "unverified-local"

    trust.add(key, "atlassian", by="alice")
    got = check(doc_bytes, sig, trust, pin=f"sha256:{digest.upper()}")
    assert (got.status, got.key_id, got.pinned) == ("signed", key.key_id, True)
    with pytest.raises(SignatureRefused, match="not the pinned"):
        check(doc_bytes, sig, trust, pin="a" * 64)
    with pytest.raises(SignatureRefused, match="changed after it was signed"):
        check(doc_bytes.replace(b"Confluence", b"Konfluence", 1), sig, trust)
    # a signature file edited to claim another digest still fails the signature itself
    forged = json.loads(sig)
    forged["sha256"] = hashlib.sha256(doc_bytes + b" ").hexdigest()
    with pytest.raises(SignatureRefused, match="signature does not match the document"):
        check(doc_bytes + b" ", json.dumps(forged).encode(), trust)
    # another key claiming the trusted key's id: the signature does not verify
    by_other = json.loads(sign_document(doc_bytes, tmp_path / "o", "atlassian").to_bytes())
    by_other["keyId"], by_other["publicKey"] = key.key_id, key.text
    with pytest.raises(SignatureRefused, match="signature does not match"):
        check(doc_bytes, json.dumps(by_other).encode(), trust, allow_unsigned=True)
    # a trusted key signing for another publisher
    acme = sign_document(doc_bytes, tmp_path / "k", "acme").to_bytes()
    with pytest.raises(SignatureRefused, match="trust for publisher 'atlassian' only"):
        check(doc_bytes, acme, trust, allow_unsigned=True)
    # the document names another publisher than the signature
    trust.add(other, "acme", by="alice")
    acme_by_other = sign_document(doc_bytes, tmp_path / "o", "acme").to_bytes()
    with pytest.raises(SignatureRefused, match="names publisher 'atlassian' but was signed"):
        check(doc_bytes, acme_by_other, trust, allow_unsigned=True)


def test_trust_store_binds_a_key_to_one_publisher(tmp_path: Path) -> None:
    trust = TrustStore(tmp_path)
    _, key = write_keypair(tmp_path / "k")
    trust.add(key, "atlassian", by="alice", comment="checked with Atlassian")
    assert trust.add(key, "atlassian", by="bob").added_by == "alice"  # already there
    with pytest.raises(SignatureRefused, match="already trusted for publisher atlassian"):
        trust.add(key, "acme", by="alice")
    with pytest.raises(SignatureRefused, match="not a publisher slug"):
        trust.add(key, "Acme Corp", by="alice")
    assert stat.S_IMODE(trust.path.stat().st_mode) == 0o600
    assert [k.publisher for k in trust] == ["atlassian"]
    assert trust.remove(key.key_id).key_id == key.key_id
    assert trust.keys() == []
    with pytest.raises(SignatureRefused, match="no trusted key"):
        trust.remove(key.text)


def test_public_key_parsing() -> None:
    raw = bytes(range(32))
    text = "ed25519:" + base64.b64encode(raw).decode()
    assert PublicKey.parse(text).raw == raw
    assert PublicKey.parse(text[8:]).raw == raw
    with pytest.raises(SignatureRefused, match="only ed25519"):
        PublicKey.parse("rsa:AAAA")
    with pytest.raises(SignatureRefused, match="32"):
        PublicKey.parse("ed25519:" + base64.b64encode(b"short").decode())


def test_cli_keygen_sign_verify_trust(
    cli: Cli, home: Path, tmp_path: Path, doc_bytes: bytes
) -> None:
    key = tmp_path / "publisher.key"
    made = cli("catalog", "keygen", "-o", str(key), "--publisher", "atlassian", "--json")
    assert made.code == 0, made.err
    public = made.json()["public_key"]
    doc = tmp_path / "confluence-cloud-api.json"
    doc.write_bytes(doc_bytes)
    signed = cli("catalog", "sign", str(doc), "--key", str(key), "--json")
    assert signed.code == 0, signed.err
    assert (
        signed.json()["signature_file"] == f"{doc}.sig"
        and signed.json()["publisher"] == "atlassian"
    )

    untrusted = cli("catalog", "verify", str(doc))
    assert untrusted.code == 2 and "not trusted for publisher 'atlassian'" in untrusted.err
    assert cli("catalog", "trust", "add", public, "--publisher", "atlassian", "--as", "alice",
               "--comment", "fingerprint read out on a call").code == 0  # fmt: skip
    listed = cli("catalog", "trust", "--json").json()
    assert [(k["publisher"], k["publicKey"], k["addedBy"]) for k in listed] == [
        ("atlassian", public, "alice")
    ]
    verified = cli("catalog", "verify", str(doc), "--json")
    assert verified.code == 0 and verified.json()["verification"]["status"] == "signed"

    # a local file with a signature beside it is checked: a changed byte is refused
    doc.write_bytes(doc_bytes.replace(b"9.0.0", b"9.0.1"))
    refused = cli("catalog", "import", str(doc), "--yes")
    assert refused.code == 2 and "changed after it was signed" in refused.err
    assert not (home / "port").exists()

    bad_doc = tmp_path / "bad.json"
    bad_doc.write_text('{"format": "harbor.hub.integration/v1"}')
    assert cli("catalog", "sign", str(bad_doc), "--key", str(key)).code == 2  # never sign junk
    assert not (tmp_path / "bad.json.sig").exists()

    removed = cli("catalog", "trust", "remove", public, "--as", "alice")
    assert removed.code == 0 and cli("catalog", "trust", "list", "--json").json() == []
    audit = [r["event"] for r in AuditLog.for_home(home).records()]
    assert audit.count("trust-key-added") == 1 and audit.count("trust-key-removed") == 1
