"""``hub``: serve hub documents read-only (``hub serve DIR``), print a directory's index,
and list what a hub offers.  Importing is ``catalog import URL``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._common import EXIT_INVALID, EXIT_OK, add_command, emit, fail

DEFAULT_LISTEN = "127.0.0.1:8600"


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise fail(EXIT_INVALID, "invalid_option", f"--listen takes HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def cmd_serve(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.hub import HubServer

    if bool(args.tls_cert) != bool(args.tls_key):
        raise fail(EXIT_INVALID, "invalid_option", "--tls-cert and --tls-key go together")
    host, port = _listen(args.listen)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None

    def log(line: str) -> None:
        if not args.quiet:
            sys.stderr.write(line + "\n")

    server = HubServer(args.dir, host, port, tls=tls, log=log)
    entries = json.loads(server.index.get())["integrations"]
    sys.stderr.write(
        f"hub: serving {server.root} at {server.url}/ ({len(entries)} integration(s) in "
        f"{server.url}/index.json); read-only, Ctrl-C to stop\n"
    )
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return EXIT_OK


def cmd_index(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.hub import build_index

    if not Path(args.dir).is_dir():
        raise fail(EXIT_INVALID, "invalid_option", f"{args.dir} is not a directory")
    text = json.dumps(build_index(args.dir), indent=2) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from harbor_confluence.catalog.hub import MAX_INDEX_BYTES, HubClient, HubError, parse_index

    with HubClient(ca=args.ca, max_bytes=MAX_INDEX_BYTES) as client:
        got = client.get(args.url)
    try:
        data = json.loads(got.body)
    except ValueError:
        raise HubError(f"{args.url}: not a hub index (not JSON)") from None
    entries = parse_index(data, args.url)
    rows = [e.to_dict() for e in entries]
    lines = [
        f"{e.name:<40} {e.port} {e.manifest_version}  "
        + (f"signed (key {e.key_id})" if e.signature else "unsigned")
        for e in entries
    ]
    emit(args, rows, "\n".join(lines) or "the index lists no integrations")
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(
        sub, common, "hub", cmd_list,
        "hub documents: serve a directory read-only (hub serve DIR), its index, a hub's list",
    )  # fmt: skip
    hsub = p.add_subparsers(dest="hub_cmd", required=True)
    s = hsub.add_parser(
        "serve",
        parents=[common],
        help="serve DIR's hub documents, their .sig files and a generated index.json",
    )
    s.epilog = (
        "Read-only: GET/HEAD of .json, .sig and .pub files under DIR (no hidden files, no "
        "symlinks out of it) and /index.json, generated from DIR. Plain HTTP only on "
        "loopback; any other address needs --tls-cert and --tls-key."
    )
    s.add_argument("dir")
    s.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"address to listen on (default {DEFAULT_LISTEN})")  # fmt: skip
    s.add_argument("--tls-cert", metavar="FILE", help="certificate chain (PEM) for HTTPS")
    s.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    s.add_argument("--quiet", action="store_true", help="no request log on stderr")
    s.set_defaults(func=cmd_serve)
    i = hsub.add_parser("index", parents=[common], help="print the index hub serve makes of DIR")
    i.add_argument("dir")
    i.add_argument("-o", "--output", help="file to write (default: stdout)")
    i.set_defaults(func=cmd_index)
    ls = hsub.add_parser("list", parents=[common], help="what a hub index URL offers")
    ls.add_argument("url", help="https://HUB/index.json")
    ls.add_argument("--ca", metavar="FILE", help="CA bundle for a hub with a private CA")
    ls.set_defaults(func=cmd_list)
