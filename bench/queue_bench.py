"""Review-queue benchmark (a script, not a timed test).

Enqueues 10,000 held requests, lists pending ones page by page, and approves 1,000,
reporting per-operation latency.  Every operation goes through ``ReviewQueue`` with its
audit log, exactly as the runner uses it (SQLite WAL with ``synchronous=FULL`` and an
fsynced audit append), in a throwaway state directory.

    python bench/queue_bench.py [--tickets 10000] [--approve 1000] [--pages 200]

``--postgres URL`` runs the same operations against a shared PostgreSQL database (the
queue and the audit chain in tables; ``--postgres auto`` starts a throwaway server with
fsync on, from ``tests/pgserver.py``), then measures approvals per second with 1 node
and with 3 nodes (separate processes, each with its own connection pool and
``--threads`` operators, approving their own share of held tickets at once):

    python bench/queue_bench.py --postgres auto [--throughput 3000] [--nodes 1,3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harbor_confluence.pipeline.request import PreparedRequest, canonical_json
from harbor_confluence.review.queue import ReviewQueue


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return (time.perf_counter() - start) * 1000.0, value


def report(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"{name:<28} n={len(samples):>6}  median {statistics.median(ordered):7.2f} ms  "
        f"p95 {p95:7.2f} ms  max {ordered[-1]:8.2f} ms  total {sum(ordered) / 1000:7.2f} s"
    )


def hold(queue: ReviewQueue, i: int) -> str:
    body = canonical_json(
        {"spaceId": "65538", "title": f"Bench page {i}",
         "body": {"representation": "storage", "value": f"<p>{i}</p>"}}
    )  # fmt: skip
    prepared = PreparedRequest("create-page", "POST", BASE, body, "application/json")
    ticket = queue.hold(
        prepared, port="confluence-cloud", manifest_version="1.0.0",
        rule="create-page-review", requester=f"agent-{i % 7}", ttl_seconds=86_400,
    )  # fmt: skip
    return ticket.id


BASE = "https://acme.atlassian.net/wiki/api/v2/pages"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--approve", type=int, default=1_000)
    parser.add_argument("--pages", type=int, default=200, help="list calls to time")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument(
        "--postgres", metavar="URL", help="a PostgreSQL URL, or 'auto' for a throwaway server"
    )
    parser.add_argument("--throughput", type=int, default=3_000, help="tickets per nodes run")
    parser.add_argument("--nodes", default="1,3", help="node counts for approvals per second")
    parser.add_argument("--threads", type=int, default=4, help="operators per node")
    parser.add_argument(
        "--worker", nargs=3, metavar=("HOME", "IDS", "GATE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        return worker(*args.worker, threads=args.threads)
    if args.postgres:
        return with_postgres(args)
    return run(args, "SQLite WAL, synchronous=FULL; audit fsync per record")


def run(args: argparse.Namespace, what: str) -> int:
    with tempfile.TemporaryDirectory(prefix="harbor-queue-bench-") as tmp:
        home = Path(tmp)
        queue = ReviewQueue.for_home(home)

        hold_ms: list[float] = []
        ids: list[str] = []
        for i in range(args.tickets):
            ms, ticket_id = timed(lambda i=i: hold(queue, i))
            hold_ms.append(ms)
            ids.append(ticket_id)

        # Listing: the first page repeatedly (what an operator sees), then walking pages.
        first_ms = [
            timed(lambda: queue.list(state="pending", limit=args.page_size))[0]
            for _ in range(args.pages)
        ]
        walk_ms: list[float] = []
        after: str | None = None
        for _ in range(args.pages):
            ms, page = timed(
                lambda a=after: queue.list(state="pending", limit=args.page_size, after=a)
            )
            walk_ms.append(ms)
            after = page[-1].id if page else None

        approve_ms = [
            timed(lambda t=ticket_id: queue.approve(t, "bench-operator"))[0]
            for ticket_id in ids[: args.approve]
        ]
        sample = ids[:: max(1, len(ids) // 1000)]
        status_ms = [timed(lambda t=t: queue.status(t))[0] for t in sample]
        after_pending = timed(lambda: queue.list(state="pending", limit=args.page_size))[0]
        verify_ms, verified = timed(lambda: queue.audit.verify() if queue.audit else None)

        print(f"review queue benchmark: {args.tickets} tickets, {args.approve} approvals")
        print(f"state dir {home} ({what})\n")
        print(report("enqueue (hold + audit)", hold_ms))
        print(report(f"list pending, first {args.page_size}", first_ms))
        print(report("list pending, page walk", walk_ms))
        print(report("approve (+ audit)", approve_ms))
        print(report("status", status_ms))
        print(f"{'list pending after approvals':<28} {after_pending:7.2f} ms")
        count = verified.count if verified else 0
        print(f"{'audit verify':<28} {verify_ms:7.2f} ms for {count} records")
        if args.postgres:
            print()
            for nodes in (int(n) for n in args.nodes.split(",") if n.strip()):
                throughput(home, nodes, args.throughput, args.threads)
    return 0


# -- PostgreSQL -------------------------------------------------------------------------------


def with_postgres(args: argparse.Namespace) -> int:
    """Run the benchmark against a shared database (a throwaway server for ``auto``)."""
    from harbor_confluence.postgres import redact_url

    server = None
    url = args.postgres
    if url == "auto":
        from tests.pgserver import PgServer, unavailable_reason

        reason = unavailable_reason()
        if reason is not None:
            print(f"cannot start PostgreSQL: {reason}", file=sys.stderr)
            return 1
        server = PgServer(fsync=True)
        server.init()
        server.start()
        server.wait_ready()
        url = server.create_database("bench")
    os.environ["HARBOR_DATABASE_URL"] = url
    try:
        return run(args, f"PostgreSQL {redact_url(url)}; queue and audit chain in tables")
    finally:
        if server is not None:
            server.destroy()


def throughput(home: Path, nodes: int, tickets: int, threads: int) -> None:
    """Approvals per second: ``nodes`` processes approving their own shares at once."""
    queue = ReviewQueue.for_home(home)
    ids = [hold(queue, 1_000_000 + nodes * tickets + i) for i in range(tickets)]
    with tempfile.TemporaryDirectory(prefix="harbor-queue-gate-") as gate:
        procs = []
        for n in range(nodes):
            share = Path(gate, f"ids-{n}.json")
            share.write_text(json.dumps(ids[n::nodes]))
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--threads", str(threads),
                     "--worker", str(home), str(share), gate],
                    stdout=subprocess.PIPE, text=True,
                )
            )  # fmt: skip
        while len(list(Path(gate).glob("*.ready"))) < nodes:
            time.sleep(0.05)
        Path(gate, "go").touch()
        spans = [json.loads(p.communicate(timeout=3600)[0]) for p in procs]
    start = min(s["start"] for s in spans)
    end = max(s["end"] for s in spans)
    done = sum(s["approved"] for s in spans)
    print(
        f"approvals per second, {nodes} node(s) x {threads} operators: "
        f"{done / (end - start):8.1f} /s ({done} approvals in {end - start:.2f} s)"
    )


def worker(home: str, ids_file: str, gate: str, *, threads: int) -> int:
    """One node: its own process and connection pool, ``threads`` operators at once."""
    queue = ReviewQueue.for_home(Path(home))
    queue.list(limit=1)  # connect and check the key before the clock starts
    ids: list[str] = json.loads(Path(ids_file).read_text())
    Path(gate, f"{os.getpid()}.ready").touch()
    while not Path(gate, "go").exists():
        time.sleep(0.001)
    start = time.time()

    def approve(chunk: list[str]) -> int:
        for ticket_id in chunk:
            queue.approve(ticket_id, f"bench-operator-{os.getpid()}")
        return len(chunk)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = sum(pool.map(approve, [ids[i::threads] for i in range(threads)]))
    print(json.dumps({"start": start, "end": time.time(), "approved": done}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
