"""Hubs: fetching hub documents over HTTPS, the hub index, and a small read-only hub.

A hub serves Dock/Hub documents as static files, each with its publisher's signature
beside it (``<document>.sig``, see ``signing.py``), and an index that lists them::

    https://HUB/index.json
    https://HUB/apps/hub/catalog/integrations/atlassian/confluence-cloud-api.json
    https://HUB/apps/hub/catalog/integrations/atlassian/confluence-cloud-api.json.sig

(the paths of Harbor Hub's repository, when the hub serves that repository's root).

Fetching is deliberately narrow: ``https://`` only (plain ``http://`` to a loopback
address, for a hub on the same host), TLS verified against the system's CAs or the
operator's own (``--ca FILE`` / ``$HARBOR_HUB_CA``), a size cap on every body (counted as
it streams, whatever ``Content-Length`` says), one deadline for the whole fetch, and
redirects followed by hand: at most three, and only within the origin asked for (a hub
cannot send the importer to another host).  Nothing fetched is trusted for being
fetched: the document is checked by its signature or the operator's ``--sha256`` pin.

``HubServer`` is the other side: GET/HEAD of regular ``.json``/``.sig``/``.pub`` files
under one directory, the index generated from that directory, TLS when given a
certificate and key (plain HTTP only on loopback).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import posixpath
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from harbor_confluence.errors import EXIT_ERROR, EXIT_INVALID, HarborError
from harbor_confluence.pipeline.documents import MAX_DOCUMENT_BYTES

__all__ = [
    "HUB_CA_ENV",
    "INDEX_FORMAT",
    "INDEX_NAME",
    "Fetched",
    "HubClient",
    "HubError",
    "HubServer",
    "HubUnavailable",
    "IndexEntry",
    "Obtained",
    "build_index",
    "is_loopback",
    "obtain",
    "origin_of",
    "parse_index",
]

HUB_CA_ENV = "HARBOR_HUB_CA"
INDEX_FORMAT = "harbor.hub.index/v1"
INDEX_NAME = "index.json"
MAX_INDEX_BYTES = 1024 * 1024
MAX_SIG_BYTES = 16 * 1024
MAX_REDIRECTS = 3
DEFAULT_TIMEOUT = 30.0
_SERVED = (".json", ".sig", ".pub")
_INDEX_FILES_CAP = 2000


class HubError(HarborError):
    """A hub fetch was refused (scheme, redirect, size, index); nothing installed."""

    code = "hub_refused"
    exit_code = EXIT_INVALID


class HubUnavailable(HubError):
    """The hub could not be reached, timed out or answered with an error."""

    code = "hub_unavailable"
    exit_code = EXIT_ERROR


def is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise HubError(f"{url}: not a valid port") from None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def _show(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https":
        pass
    elif parts.scheme == "http":
        if not is_loopback(parts.hostname):
            raise HubError(
                f"{url}: a hub is reached over https:// (plain http:// only on loopback)"
            )
    else:
        raise HubError(f"{url}: a hub URL is https://HOST/... ")
    if not parts.hostname:
        raise HubError(f"{url}: no host")
    if parts.username or parts.password:
        raise HubError(f"{url}: credentials in a hub URL are refused")
    if parts.fragment:
        raise HubError(f"{url}: a hub URL has no #fragment")


# -- fetching ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # where the body came from (after same-origin redirects)
    body: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class HubClient:
    """GETs from a hub with the limits in the module docstring."""

    def __init__(
        self,
        *,
        ca: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = MAX_DOCUMENT_BYTES,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        import httpx

        ca = ca or os.environ.get(HUB_CA_ENV) or None
        verify: ssl.SSLContext | bool = True
        if ca is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca))
            except (OSError, ssl.SSLError) as exc:
                raise HubError(f"cannot use {ca} as the hub's CA: {exc}") from None
        self.ca = str(ca) if ca else None
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._client = httpx.Client(
            verify=verify,
            follow_redirects=False,
            timeout=httpx.Timeout(min(timeout, 15.0), connect=min(timeout, 10.0)),
            headers={
                "Accept": "application/json",
                "Accept-Encoding": "identity",
                "User-Agent": "harbor-confluence-hub-client",
            },
        )

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(self, url: str, *, max_bytes: int | None = None) -> Fetched:
        """The body at ``url``.  A 404 raises ``HubUnavailable`` with code ``not_found``
        (a missing signature is not an error for the caller); every other failure, a
        redirect off the origin and a body over the cap raise too."""
        import httpx

        check_url(url)
        cap = self.max_bytes if max_bytes is None else max_bytes
        start = origin_of(url)
        deadline = time.monotonic() + self.timeout
        current = url
        for _hop in range(self.max_redirects + 1):
            try:
                with self._client.stream("GET", current) as response:
                    if response.is_redirect:
                        target = urljoin(current, response.headers.get("location", ""))
                        if origin_of(target) != start:
                            raise HubError(
                                f"{url}: the hub redirected to another origin "
                                f"({_show(origin_of(target))}, asked {_show(start)}); "
                                "redirects are followed only within the hub's origin"
                            )
                        check_url(target)
                        current = target
                        continue
                    if response.status_code == 404:
                        err = HubUnavailable(f"{current}: not found on the hub (HTTP 404)")
                        err.code = "not_found"
                        raise err
                    if not response.is_success:
                        raise HubUnavailable(
                            f"{current}: the hub answered HTTP {response.status_code}"
                        )
                    encoding = response.headers.get("content-encoding", "identity").lower()
                    if encoding not in ("", "identity"):
                        raise HubError(
                            f"{current}: the hub sent a {encoding}-encoded body; hub documents "
                            "are served as they are signed (no content encoding)"
                        )
                    declared = response.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > cap:
                        raise HubError(
                            f"{current}: {int(declared)} bytes is over the {cap}-byte limit for "
                            "a hub document; refused before reading it"
                        )
                    chunks: list[bytes] = []
                    size = 0
                    for chunk in response.iter_raw():
                        size += len(chunk)
                        if size > cap:
                            raise HubError(
                                f"{current}: the body is over the {cap}-byte limit for a hub "
                                "document; refused"
                            )
                        if time.monotonic() > deadline:
                            raise HubUnavailable(
                                f"{current}: the hub took longer than {self.timeout:g}s"
                            )
                        chunks.append(chunk)
                    return Fetched(current, b"".join(chunks))
            except httpx.TimeoutException:
                raise HubUnavailable(
                    f"{current}: the hub did not answer in time ({self.timeout:g}s)"
                ) from None
            except httpx.HTTPError as exc:
                detail = str(exc) or type(exc).__name__
                raise HubUnavailable(f"{current}: cannot reach the hub: {detail}") from None
        raise HubError(f"{url}: more than {self.max_redirects} redirects")


# -- the index -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexEntry:
    publisher: str
    port: str
    manifest_version: str
    path: str
    sha256: str | None = None
    signature: str | None = None
    key_id: str | None = None
    label: str = ""
    bytes: int | None = None

    @property
    def name(self) -> str:
        """``publisher/file-stem``, e.g. ``atlassian/confluence-cloud-api``."""
        stem = posixpath.basename(self.path)
        return f"{self.publisher}/{stem.removesuffix('.json')}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "publisher": self.publisher,
            "port": self.port,
            "label": self.label,
            "manifestVersion": self.manifest_version,
            "path": self.path,
        }
        for key, value in (("sha256", self.sha256), ("bytes", self.bytes),
                           ("signature", self.signature), ("keyId", self.key_id)):  # fmt: skip
            if value is not None:
                out[key] = value
        return out


def _relative(path: Any, where: str) -> str:
    if not isinstance(path, str) or not path:
        raise HubError(f"{where}: a path is required")
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith("/") or "\\" in path:
        raise HubError(f"{where}: {path!r} must be a path relative to the index")
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        raise HubError(f"{where}: {path!r} has an empty, '.' or '..' segment")
    return path


def parse_index(data: Any, source: str) -> list[IndexEntry]:
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        raise HubError(f"{source}: not a hub index (format {INDEX_FORMAT!r})")
    rows = data.get("integrations")
    if not isinstance(rows, list):
        raise HubError(f"{source}: 'integrations' must be a list")
    out = []
    for i, row in enumerate(rows):
        where = f"{source}: integrations[{i}]"
        if not isinstance(row, dict):
            raise HubError(f"{where}: must be an object")
        for key in ("publisher", "port", "manifestVersion"):
            if not isinstance(row.get(key), str):
                raise HubError(f"{where}: {key} is required")
        sig = row.get("signature")
        out.append(
            IndexEntry(
                publisher=row["publisher"],
                port=row["port"],
                manifest_version=row["manifestVersion"],
                path=_relative(row.get("path"), where),
                sha256=row["sha256"] if isinstance(row.get("sha256"), str) else None,
                signature=_relative(sig, where) if sig is not None else None,
                key_id=row["keyId"] if isinstance(row.get("keyId"), str) else None,
                label=str(row.get("label") or ""),
                bytes=row["bytes"] if isinstance(row.get("bytes"), int) else None,
            )
        )
    return out


def _choose(entries: list[IndexEntry], want: str | None, port: str | None, source: str) -> Any:
    listed = ", ".join(f"{e.name} ({e.port} {e.manifest_version})" for e in entries) or "none"
    if want:
        found = [e for e in entries if want in (e.name, e.port, e.path)]
        if len(found) != 1:
            raise HubError(
                f"{source}: {want!r} matches {len(found)} entries; the index lists: {listed}"
            )
        return found[0]
    if port:
        found = [e for e in entries if e.port == port]
        if len(found) == 1:
            return found[0]
        if found:
            raise HubError(
                f"{source}: several entries for port {port}; choose one with --entry: {listed}"
            )
    if len(entries) == 1:
        return entries[0]
    raise HubError(
        f"{source}: the index lists {len(entries)} integrations and none is the live port "
        f"{port or '?'}; choose one with --entry NAME: {listed}"
    )


# -- obtaining a document for import ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Obtained:
    """A document's bytes and signature, and where they came from."""

    source: str  # what the operator named: a file, a document URL or an index URL
    document_url: str | None
    index_url: str | None
    entry: str | None
    body: bytes
    signature: bytes | None
    signature_from: str | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def label(self) -> str:
        return self.document_url or self.source

    def origin(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "hub" if self.document_url else "file"}
        if self.document_url:
            out["url"] = self.document_url
        else:
            out["file"] = self.source
        if self.index_url:
            out["index"] = self.index_url
        if self.entry:
            out["entry"] = self.entry
        return out


def _signature_of(client: HubClient, url: str) -> tuple[bytes | None, str]:
    try:
        return client.get(url, max_bytes=MAX_SIG_BYTES).body, url
    except HubUnavailable as exc:
        if exc.code == "not_found":
            return None, url
        raise


def obtain(
    source: str,
    *,
    ca: str | None = None,
    entry: str | None = None,
    port: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Obtained:
    """The document named by ``source`` and its signature, if it has one.

    ``source`` is a local ``.json`` file (its signature: ``FILE.sig`` beside it), a
    document URL (``URL.sig``), or a hub index URL (the entry ``entry`` names, else the
    one for ``port``, else its only entry).
    """
    if not is_url(source):
        return _obtain_file(source, max_bytes)
    with HubClient(ca=ca, timeout=timeout, max_bytes=max_bytes) as client:
        first = client.get(source)
        index_url: str | None = None
        chosen: IndexEntry | None = None
        doc = first
        data = _maybe_json(first.body)
        if isinstance(data, dict) and data.get("format") == INDEX_FORMAT:
            if len(first.body) > MAX_INDEX_BYTES:
                raise HubError(f"{source}: an index over {MAX_INDEX_BYTES} bytes is refused")
            index_url = first.url
            chosen = _choose(parse_index(data, source), entry, port, source)
            doc_url = urljoin(index_url, chosen.path)
            if origin_of(doc_url) != origin_of(index_url):  # pragma: no cover - paths only
                raise HubError(f"{source}: {chosen.path} leaves the index's origin")
            doc = client.get(doc_url)
            if chosen.sha256 and chosen.sha256 != doc.sha256:
                raise HubError(
                    f"{doc_url}: the document's SHA-256 {doc.sha256} is not the index's "
                    f"{chosen.sha256}; the hub is inconsistent. Nothing was installed."
                )
            sig_url = urljoin(index_url, chosen.signature) if chosen.signature else None
        elif entry:
            raise HubError(f"{source}: --entry needs a hub index URL, not a document")
        else:
            sig_url = None
        sig_url = sig_url or doc.url + ".sig"
        signature, sig_from = _signature_of(client, sig_url)
    return Obtained(source, doc.url, index_url, chosen.name if chosen else None, doc.body,
                    signature, sig_from if signature is not None else None)  # fmt: skip


def _maybe_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _obtain_file(source: str, max_bytes: int) -> Obtained:
    from harbor_confluence.errors import ManifestError

    p = Path(source)
    if p.suffix.lower() != ".json":
        raise ManifestError(source, ["a hub document is a JSON file (name ending in .json)"])
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise ManifestError(source, [f"document is larger than {max_bytes} bytes"])
        body = p.read_bytes()
    except OSError as exc:
        raise ManifestError(source, [f"cannot read: {exc.strerror}"]) from None
    sig_path = p.with_name(p.name + ".sig")
    signature: bytes | None = None
    if sig_path.is_file():
        try:
            signature = sig_path.read_bytes()[: MAX_SIG_BYTES + 1]
        except OSError as exc:
            raise ManifestError(str(sig_path), [f"cannot read: {exc.strerror}"]) from None
    return Obtained(source, None, None, None, body, signature,
                    str(sig_path) if signature is not None else None)  # fmt: skip


# -- serving ------------------------------------------------------------------------------


def _hub_files(root: Path) -> Iterator[Path]:
    """Regular, non-hidden files under ``root`` (no symlinks followed out of it)."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            count += 1
            if count > _INDEX_FILES_CAP:
                return
            yield path


def _index_stamp(root: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in _hub_files(root):
        if path.suffix in (".json", ".sig"):
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


def build_index(root: str | Path) -> dict[str, Any]:
    """The index of the hub documents under ``root``: each valid hub document (its publisher,
    port, version, digest and size, and its signature's path and key id when one sits
    beside it).  Files that are not hub documents are left out, so a hub may hold others."""
    from .dock import catalog_from_data

    base = Path(root).resolve()
    entries = []
    for path in _hub_files(base):
        if path.suffix != ".json" or path.name == INDEX_NAME:
            continue
        try:
            raw = path.read_bytes()
            if len(raw) > MAX_DOCUMENT_BYTES:
                continue
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != "harbor.hub.integration/v1":
                continue
            doc = catalog_from_data(data, str(path))
        except (OSError, ValueError, HarborError):
            continue
        rel = path.relative_to(base).as_posix()
        row: dict[str, Any] = {
            "publisher": doc.publisher.slug,
            "port": doc.port.name,
            "label": doc.port.label,
            "manifestVersion": doc.manifest_version,
            "path": rel,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "bytes": len(raw),
        }
        sig = path.with_name(path.name + ".sig")
        if sig.is_file() and not sig.is_symlink():
            row["signature"] = f"{rel}.sig"
            try:
                key_id = json.loads(sig.read_bytes()[:MAX_SIG_BYTES]).get("keyId")
            except (OSError, ValueError, AttributeError):
                key_id = None
            if isinstance(key_id, str):
                row["keyId"] = key_id
        entries.append(row)
    return {
        "format": INDEX_FORMAT,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "integrations": entries,
    }


@dataclass
class _IndexCache:
    root: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    stamp: tuple[tuple[str, int, int], ...] | None = None
    body: bytes = b""

    def get(self) -> bytes:
        with self.lock:
            stamp = _index_stamp(self.root)
            if stamp != self.stamp:
                self.body = (json.dumps(build_index(self.root), indent=2) + "\n").encode()
                self.stamp = stamp
            return self.body


class _Handler(BaseHTTPRequestHandler):
    server_version = "harbor-hub"
    sys_version = ""
    timeout = 15  # a slow client cannot hold a thread for long
    protocol_version = "HTTP/1.1"

    hub: HubServer  # set on the subclass each server makes

    def handle(self) -> None:
        # The TLS handshake happens here, in this connection's thread and under its
        # timeout, not in the accepting thread: a client that stalls it holds up no one.
        try:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            super().handle()
        except (OSError, ssl.SSLError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.hub.log is not None:
            self.hub.log(f"{self.address_string()} {format % args}")

    def _send(self, status: int, body: bytes, ctype: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-cache")
        if status == 200:
            self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str, head: bool) -> None:
        body = (json.dumps({"error": message}) + "\n").encode()
        self._send(status, body, "application/json", head)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _refuse_method(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

    def _serve(self, head: bool) -> None:
        raw_path = self.path.split("?", 1)[0].split("#", 1)[0]
        path = unquote(raw_path)
        if path in ("/", "/" + INDEX_NAME):
            self._send(200, self.hub.index.get(), "application/json", head)
            return
        segments = path.lstrip("/").split("/")
        if (
            not path.startswith("/")
            or "\x00" in path
            or "\\" in path
            or any(s in ("", ".", "..") or s.startswith(".") for s in segments)
            or not path.endswith(_SERVED)
        ):
            self._error(HTTPStatus.NOT_FOUND, "not found", head)
            return
        target = self.hub.root.joinpath(*segments)
        try:
            resolved = target.resolve(strict=True)
        except (OSError, RuntimeError):
            self._error(HTTPStatus.NOT_FOUND, "not found", head)
            return
        if not resolved.is_relative_to(self.hub.root) or not resolved.is_file():
            self._error(HTTPStatus.NOT_FOUND, "not found", head)
            return
        try:
            body = resolved.read_bytes()
        except OSError:
            self._error(HTTPStatus.NOT_FOUND, "not found", head)
            return
        ctype = "text/plain; charset=us-ascii" if path.endswith(".pub") else "application/json"
        self._send(200, body, ctype, head)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[_Handler], family: int) -> None:
        self.address_family = family
        super().__init__(address, handler)


class HubServer:
    """A read-only hub over ``root``: static documents, signatures and the generated index.

    ``tls`` is ``(certfile, keyfile)``; without it only a loopback address may be used.
    ``port`` 0 picks a free port (``url`` says which).
    """

    def __init__(
        self,
        root: str | Path,
        host: str = "127.0.0.1",
        port: int = 8600,
        *,
        tls: tuple[str | Path, str | Path] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise HubError(f"{root} is not a directory")
        if tls is None and not is_loopback(host):
            raise HubError(
                f"plain HTTP is served on loopback only; {host} needs --tls-cert and --tls-key"
            )
        self.host = host
        self.tls = tls is not None
        self.log = log
        self.index = _IndexCache(self.root)
        handler = type("HubHandler", (_Handler,), {"hub": self})
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        self._server = _Server((host.strip("[]"), port), handler, family)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(str(tls[0]), str(tls[1]))
            except (OSError, ssl.SSLError) as exc:
                self._server.server_close()
                raise HubError(f"cannot load the TLS certificate/key: {exc}") from None
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host.strip('[]')}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> HubServer:
        """Serve in a background thread (tests, embedding); ``close`` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, name="hub", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
