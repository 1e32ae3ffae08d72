"""The simulator in its own process, so that the client under test owns this one.

Started by :class:`bench.simproc.SimProcess`. Prints one JSON line (``url``, ``base_url``)
once it listens on loopback, then answers line commands on stdin: ``count`` (requests
received so far), ``clear`` (drop recorded exchanges), ``last`` (the last exchange's
method, target and status). It stops when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import ThreadingHTTPServer

from harbor_confluence.sim import Simulator

# socketserver's listen backlog is 5: 64 connections opened at once (scenario 10's 1,000
# concurrent calls over the clients' 64-socket pools) overflow it, and the dropped SYNs
# come back as 1 s+ connect retries or ConnectTimeouts that measure the backlog, not the
# client. A real Confluence accepts them; so does the simulator process the bench starts.
ThreadingHTTPServer.request_queue_size = 256


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--email", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--extra-pages", type=int, default=0)
    args = parser.parse_args(argv)
    with Simulator(email=args.email, api_token=args.token, extra_pages=args.extra_pages) as sim:
        print(json.dumps({"url": sim.url, "base_url": sim.base_url}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "count":
                answer: object = sim.request_count
            elif command == "clear":
                sim.clear()
                answer = "ok"
            elif command == "exchanges":
                answer = [
                    {
                        "method": e.method,
                        "path": e.path,
                        "query": e.query,
                        "status": e.status,
                        "bytes": len(e.response_body),
                    }
                    for e in sim.exchanges
                ]
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
