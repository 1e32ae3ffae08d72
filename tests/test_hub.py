"""Catalog import from a hub over real TLS (a test CA made here with trustme): signed and
pinned imports, every refusal with nothing installed, updates, and ``hub serve`` itself.

The hub is ``HubServer`` (what ``hub serve`` runs) on loopback HTTPS, serving the Harbor Hub
layout (``apps/hub/catalog/integrations/atlassian/confluence-cloud-api.json``); a second,
hostile server answers with redirects to another origin and oversized bodies.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from harbor_confluence.catalog.dock import export_document
from harbor_confluence.pipeline.executor import default_manifest_path
from harbor_confluence.pipeline.manifest import load_manifest
from harbor_confluence.review.audit import AuditLog
from tests.conftest import CliResult

trustme = pytest.importorskip("trustme", reason="the tests' CA needs trustme (the [dev] extra)")
pytest.importorskip("cryptography", reason="signatures need the [hub] extra")

from harbor_confluence.catalog.hub import HubError, HubServer, build_index, check_url  # noqa: E402

Cli = Callable[..., CliResult]
DOC_PATH = "apps/hub/catalog/integrations/atlassian/confluence-cloud-api.json"


# -- the test CA and the hub ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    out = Tls(d / "ca.pem", d / "server.pem", d / "server.key")
    ca.cert_pem.write_to_path(str(out.ca))
    cert.private_key_pem.write_to_path(str(out.key))
    for i, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(str(out.cert), append=i > 0)
    return out


def ca_context(tls: Tls) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls.ca))


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return export_document(load_manifest(default_manifest_path()))


def version_of(doc: dict[str, Any], version: str, *names: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["manifestVersion"] = version
    out["actions"] = [a for a in out["actions"] if a["name"] in names]
    return out


@dataclass
class Hub:
    root: Path
    server: HubServer
    tls: Tls
    requests: list[str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def doc_url(self) -> str:
        return f"{self.url}/{DOC_PATH}"

    @property
    def doc_file(self) -> Path:
        return self.root / DOC_PATH

    def publish(
        self, data: dict[str, Any], key: Path | None, cli: Cli, path: str = DOC_PATH
    ) -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2) + "\n")
        sig = target.with_name(target.name + ".sig")
        sig.unlink(missing_ok=True)
        if key is not None:
            signed = cli("catalog", "sign", str(target), "--key", str(key))
            assert signed.code == 0, signed.err
        return target


@pytest.fixture
def hub(tmp_path: Path, tls: Tls) -> Iterator[Hub]:
    root = tmp_path / "hub"
    root.mkdir()
    requests: list[str] = []
    with HubServer(root, "127.0.0.1", 0, tls=(tls.cert, tls.key), log=requests.append) as server:
        yield Hub(root, server, tls, requests)


@dataclass(frozen=True)
class Keys:
    atlassian: Path  # trusted for atlassian
    other: Path  # not trusted at all


@pytest.fixture
def keys(cli: Cli, home: Path, tmp_path: Path) -> Keys:
    made = []
    for name in ("atlassian", "other"):
        path = tmp_path / "keys" / f"{name}.key"
        path.parent.mkdir(exist_ok=True)
        r = cli("catalog", "keygen", "-o", str(path), "--publisher", name)
        assert r.code == 0, r.err
        made.append(path)
    trusted = cli("catalog", "trust", "add", f"{made[0]}.pub", "--publisher", "atlassian",
                  "--as", "alice")  # fmt: skip
    assert trusted.code == 0, trusted.err
    return Keys(*made)


def events(home: Path, event: str) -> list[dict[str, Any]]:
    return [r for r in AuditLog.for_home(home).records() if r["event"] == event]


def installed(home: Path) -> bytes | None:
    path = home / "port" / "manifest.json"
    return path.read_bytes() if path.is_file() else None


def hub_import(cli: Cli, hub: Hub, url: str, *extra: str) -> CliResult:
    return cli("catalog", "import", url, "--ca", str(hub.tls.ca), "--as", "alice", *extra)


# -- a signed import ------------------------------------------------------------------------------


def test_signed_import_from_the_hub(
    cli: Cli, home: Path, hub: Hub, keys: Keys, document: dict[str, Any]
) -> None:
    hub.publish(version_of(document, "7.0.0", "get-page", "search-pages"), keys.atlassian, cli)
    result = hub_import(cli, hub, hub.doc_url, "--yes", "--json")
    assert result.code == 0, result.out
    body = result.json()
    assert body["installed"] is True and body["to"] == "7.0.0" and body["file"] == hub.doc_url
    verification = body["provenance"]["verification"]
    assert verification["status"] == "signed" and verification["publisher"] == "atlassian"
    assert verification["sha256"] == hashlib.sha256(hub.doc_file.read_bytes()).hexdigest()
    assert json.loads(installed(home) or b"{}")["manifestVersion"] == "7.0.0"
    (record,) = events(home, "catalog-import")
    assert record["operator"] == "alice" and record["file"] == hub.doc_url
    assert record["provenance"]["verification"]["key_id"] == verification["key_id"]
    source = json.loads((home / "port" / "source.json").read_text())
    assert source["kind"] == "hub" and source["url"] == hub.doc_url and source["version"] == "7.0.0"
    status = cli("catalog", "status", "--json").json()
    assert status["origin"]["verification"]["status"] == "signed"
    assert f"imported from: {hub.doc_url} (signed, key " in cli("catalog", "status").out

    human = hub_import(cli, hub, hub.doc_url)  # the same document again: nothing to do
    assert human.code == 0 and "nothing to do" in human.out


def test_import_through_the_hub_index(
    cli: Cli, home: Path, hub: Hub, keys: Keys, document: dict[str, Any]
) -> None:
    hub.publish(version_of(document, "7.0.0", "get-page"), keys.atlassian, cli)
    other = version_of(document, "1.0.0", "get-page")
    other["port"]["name"] = other["port"]["name"] + "-mirror"
    hub.publish(other, keys.atlassian, cli, "apps/hub/catalog/integrations/atlassian/mirror.json")
    index = httpx.get(f"{hub.url}/index.json", verify=ca_context(hub.tls)).json()
    assert index["format"] == "harbor.hub.index/v1"
    assert {e["path"] for e in index["integrations"]} == {
        DOC_PATH, "apps/hub/catalog/integrations/atlassian/mirror.json"
    }  # fmt: skip
    listed = cli("hub", "list", f"{hub.url}/index.json", "--ca", str(hub.tls.ca), "--json")
    assert listed.code == 0 and len(listed.json()) == 2
    # the index has two entries; the live port's (confluence-cloud) is the one taken
    result = hub_import(cli, hub, f"{hub.url}/index.json", "--yes", "--json")
    assert result.code == 0, result.out
    assert result.json()["file"] == hub.doc_url
    assert result.json()["provenance"]["entry"] == "atlassian/confluence-cloud-api"


def test_pinned_by_digest_without_a_signature(
    cli: Cli, home: Path, hub: Hub, document: dict[str, Any]
) -> None:
    hub.publish(version_of(document, "7.0.0", "get-page"), None, cli)
    digest = hashlib.sha256(hub.doc_file.read_bytes()).hexdigest()
    wrong = hub_import(cli, hub, hub.doc_url, "--yes", "--sha256", "0" * 64)
    assert wrong.code == 2 and "not the pinned" in wrong.err
    assert installed(home) is None
    pinned = hub_import(cli, hub, hub.doc_url, "--yes", "--sha256", digest, "--json")
    assert pinned.code == 0, pinned.out
    assert pinned.json()["provenance"]["verification"]["status"] == "pinned"


def test_unsigned_needs_allow_unsigned_which_is_audited(
    cli: Cli, home: Path, hub: Hub, document: dict[str, Any]
) -> None:
    hub.publish(version_of(document, "7.0.0", "get-page"), None, cli)
    refused = hub_import(cli, hub, hub.doc_url, "--yes")
    assert (
        refused.code == 2 and "is not signed" in refused.err and "--allow-unsigned" in refused.err
    )
    assert installed(home) is None
    allowed = hub_import(cli, hub, hub.doc_url, "--yes", "--allow-unsigned")
    assert allowed.code == 0, allowed.err
    assert "NOT signed: imported with --allow-unsigned" in allowed.out
    (record,) = events(home, "catalog-import")
    assert record["operator"] == "alice"
    assert record["provenance"]["allow_unsigned"] is True
    assert record["provenance"]["verification"]["status"] == "unsigned-allowed"


# -- refusals: each with nothing installed --------------------------------------------------------


def _tampered(hub: Hub, keys: Keys, cli: Cli, doc: dict[str, Any]) -> str:
    path = hub.publish(doc, keys.atlassian, cli)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"Confluence")
    raw[at] = ord("c")  # one byte, still valid JSON and a valid document
    path.write_bytes(bytes(raw))
    return hub.doc_url


def _wrong_key(hub: Hub, keys: Keys, cli: Cli, doc: dict[str, Any]) -> str:
    hub.publish(doc, keys.other, cli)  # a key nobody trusts, claiming atlassian
    return hub.doc_url


def _forged_key_id(hub: Hub, keys: Keys, cli: Cli, doc: dict[str, Any]) -> str:
    """Signed with another key, but the .sig names the trusted key."""
    path = hub.publish(doc, keys.other, cli)
    sig_path = path.with_name(path.name + ".sig")
    sig = json.loads(sig_path.read_text())
    trusted = (keys.atlassian.parent / "atlassian.key.pub").read_text().split()[0]
    real = json.loads(cli("catalog", "trust", "list", "--json").out)[0]
    sig["publicKey"], sig["keyId"] = trusted, real["keyId"]
    sig_path.write_text(json.dumps(sig))
    return hub.doc_url


def _untrusted_publisher(hub: Hub, keys: Keys, cli: Cli, doc: dict[str, Any]) -> str:
    doc = copy.deepcopy(doc)
    doc["publisher"] = doc["port"]["publisher"] = {"slug": "acme", "name": "Acme"}
    hub.publish(doc, keys.other, cli)  # acme's own key: no key is trusted for acme
    return hub.doc_url


def _key_of_another_publisher(hub: Hub, keys: Keys, cli: Cli, doc: dict[str, Any]) -> str:
    doc = copy.deepcopy(doc)
    doc["publisher"] = doc["port"]["publisher"] = {"slug": "acme", "name": "Acme"}
    hub.publish(doc, keys.atlassian, cli)  # signed (as acme) with the key trusted for atlassian
    return hub.doc_url


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        (_tampered, "the document was changed after it was signed"),
        (_wrong_key, "is not trusted for publisher 'atlassian'"),
        (_forged_key_id, "the signature does not match the document"),
        (_untrusted_publisher, "no key is trusted for it"),
        (_key_of_another_publisher, "which you trust for publisher 'atlassian' only"),
    ],
    ids=["tampered-byte", "wrong-key", "forged-key-id", "untrusted-publisher", "publisher-key"],
)
def test_signature_refusals_install_nothing(
    cli: Cli,
    home: Path,
    hub: Hub,
    keys: Keys,
    document: dict[str, Any],
    prepare: Callable[..., str],
    expected: str,
) -> None:
    url = prepare(hub, keys, cli, version_of(document, "7.0.0", "get-page", "search-pages"))
    result = hub_import(cli, hub, url, "--yes")
    assert result.code == 2, (result.out, result.err)
    assert expected in result.err and "Nothing was installed" in result.err
    assert not (home / "port").exists()
    (refusal,) = events(home, "catalog-import-refused")
    assert refusal["file"] == url and any(expected in p for p in refusal["problems"])


def test_a_mismatched_signature_is_refused_even_with_allow_unsigned(
    cli: Cli, home: Path, hub: Hub, keys: Keys, document: dict[str, Any]
) -> None:
    url = _tampered(hub, keys, cli, version_of(document, "7.0.0", "get-page"))
    result = hub_import(cli, hub, url, "--yes", "--allow-unsigned")
    assert result.code == 2 and "changed after it was signed" in result.err
    url = _key_of_another_publisher(hub, keys, cli, version_of(document, "7.0.0", "get-page"))
    result = hub_import(cli, hub, url, "--yes", "--allow-unsigned")
    assert result.code == 2 and "for publisher 'atlassian' only" in result.err
    assert not (home / "port").exists()


def test_a_downgrade_is_refused(
    cli: Cli, home: Path, hub: Hub, keys: Keys, document: dict[str, Any]
) -> None:
    hub.publish(version_of(document, "7.0.0", "get-page", "search-pages"), keys.atlassian, cli)
    assert hub_import(cli, hub, hub.doc_url, "--yes").code == 0
    before = installed(home)
    hub.publish(version_of(document, "6.0.0", "get-page"), keys.atlassian, cli)
    result = hub_import(cli, hub, hub.doc_url, "--yes")
    assert result.code == 2
    assert "version 6.0.0 is lower than the installed 7.0.0; pass --force" in result.err
    assert installed(home) == before
    update = cli("catalog", "update", "--ca", str(hub.tls.ca), "--yes")
    assert update.code == 2 and "an update never downgrades" in update.err
    assert installed(home) == before
    assert len(events(home, "catalog-import-refused")) == 1
    assert len(events(home, "catalog-update-refused")) == 1


# -- a hostile hub: redirects elsewhere, oversized bodies -----------------------------------------


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    elsewhere = ""  # another origin (set per server)
    doc = b""  # a small valid document

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Transfer-Encoding" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/away.json":
            self._send(302, headers={"Location": f"{self.elsewhere}/{DOC_PATH}"})
        elif self.path == "/moved.json":
            self._send(301, headers={"Location": "/doc.json"})
        elif self.path == "/doc.json":
            self._send(200, self.doc, {"Content-Type": "application/json"})
        elif self.path == "/big.json":
            self._send(200, b" " * (3 * 1024 * 1024) + b"{}", {"Content-Type": "application/json"})
        elif self.path == "/big-chunked.json":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b" " * 65536
            try:
                for _ in range(64):  # 4 MiB, no Content-Length
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client stopped reading at its cap
        elif self.path == "/loop.json":
            self._send(302, headers={"Location": "/loop.json"})
        else:
            self._send(404)


@pytest.fixture
def hostile(tls: Tls, hub: Hub, document: dict[str, Any]) -> Iterator[str]:
    doc = json.dumps(version_of(document, "7.0.0", "get-page")).encode()
    handler = type("H", (_Hostile,), {"elsewhere": hub.url, "doc": doc})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls.cert), str(tls.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("path", "code", "expected"),
    [
        ("/away.json", 2, "the hub redirected to another origin"),
        ("/big.json", 2, "over the 2097152-byte limit"),
        ("/big-chunked.json", 2, "the body is over the 2097152-byte limit"),
        ("/loop.json", 2, "more than 3 redirects"),
    ],
    ids=["cross-origin-redirect", "oversized", "oversized-chunked", "redirect-loop"],
)
def test_hostile_hub_refusals_install_nothing(
    cli: Cli,
    home: Path,
    hub: Hub,
    keys: Keys,
    hostile: str,
    document: dict[str, Any],
    path: str,
    code: int,
    expected: str,
) -> None:
    # the other origin really holds a signed document: the redirect alone is refused
    hub.publish(version_of(document, "7.0.0", "get-page"), keys.atlassian, cli)
    asked = len(hub.requests)
    result = hub_import(cli, hub, f"{hostile}{path}", "--yes", "--allow-unsigned")
    assert result.code == code, (result.out, result.err)
    assert expected in result.err
    assert not (home / "port").exists()
    (refusal,) = events(home, "catalog-import-refused")
    assert any(expected in p for p in refusal["problems"])
    assert len(hub.requests) == asked  # the other origin was never asked


def test_same_origin_redirects_are_followed(cli: Cli, home: Path, hub: Hub, hostile: str) -> None:
    result = hub_import(cli, hub, f"{hostile}/moved.json", "--yes", "--allow-unsigned", "--json")
    assert result.code == 0, result.out
    assert result.json()["file"] == f"{hostile}/doc.json"


def test_plain_http_and_untrusted_tls_are_refused(
    cli: Cli, home: Path, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(HubError, match="https://"):
        check_url("http://hub.example/index.json")
    check_url("http://127.0.0.1:9/index.json")  # loopback may be plain HTTP
    with pytest.raises(HubError, match="credentials"):
        check_url("https://user:pw@hub.example/index.json")
    no_ca = cli("catalog", "import", f"{hub.url}/index.json", "--yes")
    assert no_ca.code == 1 and "CERTIFICATE_VERIFY_FAILED" in no_ca.err
    monkeypatch.setenv("HARBOR_HUB_CA", str(hub.tls.ca))  # the environment's CA is used
    listed = cli("hub", "list", f"{hub.url}/index.json")
    assert listed.code == 0
    assert not (home / "port").exists()


# -- catalog update -------------------------------------------------------------------------------


def test_update_shows_the_diff_and_applies_only_when_told(
    cli: Cli, home: Path, hub: Hub, keys: Keys, document: dict[str, Any]
) -> None:
    hub.publish(version_of(document, "7.0.0", "get-page", "search-pages"), keys.atlassian, cli)
    assert hub_import(cli, hub, f"{hub.url}/index.json", "--yes").code == 0
    ca = ("--ca", str(hub.tls.ca))
    same = cli("catalog", "update", *ca)
    assert same.code == 0 and "up to date" in same.out

    newer = version_of(document, "7.1.0", "get-page", "create-page")
    query = next(a for a in newer["actions"] if a["name"] == "get-page")["parameters"]["query"]
    dropped = sorted(query["properties"])[0]
    query["properties"].pop(dropped)
    hub.publish(newer, keys.atlassian, cli)
    before = installed(home)

    shown = cli("catalog", "update", *ca)
    assert shown.code == 0, shown.err
    for line in (
        "offers confluence-cloud 7.1.0",
        "provenance: signed by atlassian",
        "manifest 7.0.0 -> 7.1.0",
        "+ create-page  POST /wiki/api/v2/pages",
        "- search-pages  GET /wiki/api/v2/pages",
        "~ get-page",
        f"parameters.query: removed {dropped}",
        "+ create-page (new write): require_approval",
        "not applied: re-run with --yes",
    ):
        assert line in shown.out, line
    assert installed(home) == before
    assert json.loads(cli("catalog", "update", *ca, "--json").out)["applied"] is False

    applied = cli("catalog", "update", *ca, "--yes", "--json")
    assert applied.code == 0, applied.out
    assert applied.json()["applied"] is True and applied.json()["to"] == "7.1.0"
    assert cli("catalog", "status", "--json").json()["version"] == "7.1.0"
    rows = {r["name"]: r for r in cli("actions", "--json").json()}
    assert rows["create-page"]["decision"] == "require_approval"  # never weakened
    assert events(home, "catalog-import")[-1]["kind"] == "upgrade"

    # same version, other content: refused as any import is
    changed = copy.deepcopy(newer)
    changed["actions"][0]["description"] = "Changed without a version bump."
    hub.publish(changed, keys.atlassian, cli)
    refused = cli("catalog", "update", *ca, "--yes")
    assert refused.code == 2 and "already installed with different content" in refused.err
    assert cli("catalog", "status", "--json").json()["version"] == "7.1.0"


def test_update_needs_a_hub(cli: Cli, home: Path) -> None:
    result = cli("catalog", "update")
    assert result.code == 2 and "not imported from a hub" in result.err


# -- hub serve ------------------------------------------------------------------------------------


def test_hub_serves_only_hub_files_read_only(hub: Hub, keys: Keys, cli: Cli, document: Any) -> None:
    hub.publish(version_of(document, "7.0.0", "get-page"), keys.atlassian, cli)
    (hub.root / ".secret.json").write_text("{}")
    (hub.root / "notes.txt").write_text("not served")
    (hub.root / "apps" / "link.json").symlink_to("/etc/hostname")
    outside = hub.root.parent / "outside.json"
    outside.write_text("{}")
    with httpx.Client(verify=ca_context(hub.tls), base_url=hub.url) as c:
        assert c.get(f"/{DOC_PATH}").content == hub.doc_file.read_bytes()
        assert c.get(f"/{DOC_PATH}.sig").json()["format"] == "harbor.hub.signature/v1"
        head = c.head(f"/{DOC_PATH}")
        assert head.status_code == 200 and head.headers["x-content-type-options"] == "nosniff"
        bad = ["/.secret.json", "/notes.txt", "/apps/link.json", "/../outside.json"]
        bad += ["/%2e%2e/outside.json", "/apps/%2e%2e/%2e%2e/outside.json", "/apps//x.json"]
        for path in bad:
            assert c.get(path).status_code == 404, path
        for method in ("POST", "PUT", "DELETE"):
            assert c.request(method, f"/{DOC_PATH}").status_code == 405
        index = c.get("/").json()
    assert [e["path"] for e in index["integrations"]] == [DOC_PATH]
    assert index == {**build_index(hub.root), "generated": index["generated"]}


def test_plain_http_only_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(HubError, match="loopback only"):
        HubServer(tmp_path, "0.0.0.0", 0)


def test_hub_serve_command_over_tls(tmp_path: Path, tls: Tls, document: dict[str, Any]) -> None:
    """The real ``harbor-confluence hub serve`` process, with --tls-cert/--tls-key."""
    from tests.nodeutil import free_port

    root = tmp_path / "hub" / "apps" / "hub" / "catalog" / "integrations" / "atlassian"
    root.mkdir(parents=True)
    (root / "confluence-cloud-api.json").write_text(json.dumps(version_of(document, "7.0.0",
                                                                          "get-page")))  # fmt: skip
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "HARBOR_HUB_CA"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harbor_confluence.cli", "hub", "serve", str(tmp_path / "hub"),
         "--listen", f"127.0.0.1:{port}", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        index = None
        while time.monotonic() < deadline and index is None:
            try:
                index = httpx.get(f"https://127.0.0.1:{port}/index.json", verify=ca_context(tls))
            except httpx.HTTPError:
                time.sleep(0.1)
        assert index is not None and index.status_code == 200
        (entry,) = index.json()["integrations"]
        assert entry["path"] == DOC_PATH and entry["manifestVersion"] == "7.0.0"
        assert "signature" not in entry
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "serving" in err
    refused = subprocess.run(
        [sys.executable, "-m", "harbor_confluence.cli", "hub", "serve", str(tmp_path),
         "--listen", "0.0.0.0:0"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "--tls-cert and --tls-key" in refused.stderr
