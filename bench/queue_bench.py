"""Review-queue benchmark (a script, not a timed test).

Enqueues 10,000 held requests, lists pending ones page by page, and approves 1,000,
reporting per-operation latency.  Every operation goes through ``ReviewQueue`` with its
audit log, exactly as the runner uses it (SQLite WAL with ``synchronous=FULL`` and an
fsynced audit append), in a throwaway state directory.

    python bench/queue_bench.py [--tickets 10000] [--approve 1000] [--pages 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harbor_confluence.queue import ReviewQueue
from harbor_confluence.request import PreparedRequest, canonical_json


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--approve", type=int, default=1_000)
    parser.add_argument("--pages", type=int, default=200, help="list calls to time")
    parser.add_argument("--page-size", type=int, default=50)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="harbor-queue-bench-") as tmp:
        home = Path(tmp)
        queue = ReviewQueue.for_home(home)
        base = "https://acme.atlassian.net/wiki/api/v2/pages"

        def hold(i: int) -> str:
            body = canonical_json(
                {"spaceId": "65538", "title": f"Bench page {i}",
                 "body": {"representation": "storage", "value": f"<p>{i}</p>"}}
            )  # fmt: skip
            prepared = PreparedRequest("create-page", "POST", base, body, "application/json")
            ticket = queue.hold(
                prepared, port="confluence-cloud", manifest_version="1.0.0",
                rule="create-page-review", requester=f"agent-{i % 7}", ttl_seconds=86_400,
            )  # fmt: skip
            return ticket.id

        hold_ms: list[float] = []
        ids: list[str] = []
        for i in range(args.tickets):
            ms, ticket_id = timed(lambda i=i: hold(i))
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
        print(f"state dir {home} (SQLite WAL, synchronous=FULL; audit fsync per record)\n")
        print(report("enqueue (hold + audit)", hold_ms))
        print(report(f"list pending, first {args.page_size}", first_ms))
        print(report("list pending, page walk", walk_ms))
        print(report("approve (+ audit)", approve_ms))
        print(report("status", status_ms))
        print(f"{'list pending after approvals':<28} {after_pending:7.2f} ms")
        count = verified.count if verified else 0
        print(f"{'audit verify':<28} {verify_ms:7.2f} ms for {count} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
