"""4. Pagination: follow cursors through a space of 10,000 pages.

``search-pages`` on the ENG space of a simulator seeded with 10,000 extra pages, 100 per
request (the default policy denies ``limit`` above 100), consuming each item and keeping
none. Memory is measured with ``tracemalloc`` from just before the first request (the
client is warm) after 1,000 items and after 10,000, two ways:

- **retained**: with a garbage collection after every page, i.e. what the walk itself
  keeps alive. Target: flat, retained(10,000) <= 1.25 x retained(1,000).
- **peak as it runs** (the interpreter's default GC): httpx responses form a reference
  cycle with their stream, so each page's response is freed by the cyclic collector, not
  at once, and the peak drifts up with the page count even for bare httpx. Target: no
  more than 1.25 x what a bare httpx cursor loop peaks at over the same walk.

Walkers: ``Port.paginate`` (issue 5's helper) when the port has it, a plain cursor loop
over ``Port.call``, and a bare httpx cursor loop as the floor.
"""

from __future__ import annotations

import gc
import inspect
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bench.common import (
    API_TOKEN,
    EMAIL,
    Context,
    Row,
    Stats,
    fmt_bytes,
    fmt_time,
    make_port,
    skipped,
)
from bench.profiling import allocations
from bench.simproc import SimProcess

NUMBER = 4
TITLE = "Pagination"
PAGES = 10_000
SMALL = 1_000
LIMIT = 100
TARGET_GROWTH = 1.25
ENG_SPACE = "65538"
QUERY = {"space-id": [ENG_SPACE], "limit": LIMIT}

Walker = Callable[[Any, int], Iterator[Any]]


def loop_walker(port: Any, max_items: int) -> Iterator[Any]:
    """A cursor loop over Port.call that yields summary items and keeps nothing."""
    seen = 0
    query: dict[str, Any] = dict(QUERY)
    while True:
        result = port.call("search-pages", {"query": query})
        if not result.ok:
            raise RuntimeError(f"search-pages failed: {result.to_dict()}")
        for item in result.summary:
            yield item
            seen += 1
            if seen >= max_items:
                return
        if not result.next_cursor:
            return
        query = {**query, "cursor": result.next_cursor}


def helper_walker(port: Any, max_items: int) -> Iterator[Any]:
    """Port.paginate with caps that let the walk reach ``max_items``."""
    fn = port.paginate
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    if "max_items" in params:
        kwargs["max_items"] = max_items
    if "max_requests" in params:
        kwargs["max_requests"] = max_items // LIMIT + 2
    walk = fn("search-pages", {"query": dict(QUERY)}, **kwargs)
    seen = 0
    for item in walk:
        # A helper may yield items or whole Results; count items either way.
        summary = getattr(item, "summary", None)
        if isinstance(summary, list):
            yield from summary
            seen += len(summary)
        else:
            yield item
            seen += 1
        if seen >= max_items:
            return


def bare_walker(client: Any, max_items: int) -> Iterator[Any]:
    """The floor: bare httpx following ``_links.next`` cursors, items as parsed JSON."""
    seen = 0
    params: dict[str, Any] = {"space-id": ENG_SPACE, "limit": LIMIT}
    while True:
        data = client.get("/wiki/api/v2/pages", params=params).json()
        for item in data["results"]:
            yield item
            seen += 1
            if seen >= max_items:
                return
        nxt = data.get("_links", {}).get("next")
        if not nxt:
            return
        params = {**params, "cursor": parse_qs(urlsplit(nxt).query)["cursor"][0]}


def _consume(walker: Walker, target: Any, n: int, *, collect: bool = False) -> int:
    count = 0
    for _ in walker(target, n):
        count += 1
        if collect and count % LIMIT == 0:
            gc.collect()  # after each page: only what the walk keeps stays traced
    return count


def _peak(walker: Walker, target: Any, n: int, *, collect: bool = False) -> tuple[int, int]:
    """(peak bytes above the start, items) for one walk under tracemalloc."""
    gc.collect()
    gc.freeze()  # long-lived objects out of the way: per-page collections stay cheap
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        count = _consume(walker, target, n, collect=collect)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    return peak - base, count


def _measure(ctx: Context, walker: Walker, target: Any, pages: int, small: int) -> dict[str, Any]:
    _consume(walker, target, LIMIT * 2)  # warm-up: connection, compiled validators
    t0 = time.perf_counter()
    items = _consume(walker, target, pages)
    elapsed = time.perf_counter() - t0
    reps = ctx.settings.reps(2, 1)
    return {
        "items": items,
        "elapsed": elapsed,
        "peak_small": Stats.of([_peak(walker, target, small)[0] for _ in range(reps)]),
        "peak_big": Stats.of([_peak(walker, target, pages)[0] for _ in range(reps)]),
        "kept_small": Stats.of([_peak(walker, target, small, collect=True)[0]]),
        "kept_big": Stats.of([_peak(walker, target, pages, collect=True)[0]]),
    }


def run(ctx: Context) -> list[Row]:
    pages = ctx.settings.count(PAGES, 2_000)
    small = ctx.settings.count(SMALL, 200)
    rows: list[Row] = []
    with SimProcess(extra_pages=pages) as sim:
        port = make_port(sim.url)
        bare = httpx.Client(base_url=sim.url, auth=httpx.BasicAuth(EMAIL, API_TOKEN))
        walkers: dict[str, tuple[Walker, Any]] = {
            "bare httpx cursor loop": (bare_walker, bare),
            "cursor loop over Port.call": (loop_walker, port),
        }
        if hasattr(port, "paginate"):
            walkers["Port.paginate"] = (helper_walker, port)
        else:
            rows.append(
                skipped(
                    NUMBER,
                    "s4.helper",
                    "Port.paginate",
                    "Port.paginate does not exist yet (issue 5); rerun `python -m bench --only 4`",
                )
            )
        results: dict[str, dict[str, Any]] = {}
        for label, (walker, target) in walkers.items():
            try:
                before = sim.request_count()
                results[label] = _measure(ctx, walker, target, pages, small)
                results[label]["requests"] = sim.request_count() - before
            except Exception as exc:
                rows.append(
                    skipped(
                        NUMBER, f"s4.{label}", label, f"failed: {type(exc).__name__}: {exc}"[:300]
                    )
                )
        floor = results.get("bare httpx cursor loop")
        for label, r in results.items():
            rows.extend(_rows(ctx, label, r, floor, walkers[label], pages, small))
        port.close()
        bare.close()
    return rows


def _rows(
    ctx: Context,
    label: str,
    r: dict[str, Any],
    floor: dict[str, Any] | None,
    walker_target: tuple[Walker, Any],
    pages: int,
    small: int,
) -> list[Row]:
    key = {"bare httpx cursor loop": "bare", "cursor loop over Port.call": "loop"}.get(
        label, "helper"
    )
    items, elapsed = r["items"], r["elapsed"]
    kept_s, kept_b = r["kept_small"].median, r["kept_big"].median
    peak_s, peak_b = r["peak_small"].median, r["peak_big"].median
    kept_growth = kept_b / kept_s if kept_s else float("inf")
    rows = [
        Row(
            NUMBER,
            f"s4.{key}.time",
            f"{label}: {items:,} items",
            value=elapsed,
            unit="s",
            comparison=f"{items / elapsed:,.0f} items/s; walks of {pages:,} items cost "
            f"{fmt_time(elapsed / max(1, pages // LIMIT))} per page of {LIMIT}",
            details={"items": items},
        )
    ]
    if key == "bare":
        rows.append(
            Row(
                NUMBER,
                "s4.bare.peak",
                f"{label}: peak at {small:,} → {pages:,} items (default GC)",
                value=peak_b,
                unit="B",
                comparison=f"{fmt_bytes(peak_s)} → {fmt_bytes(peak_b)}; retained with a GC per "
                f"page: {fmt_bytes(kept_s)} → {fmt_bytes(kept_b)}",
                details={k: v.to_dict() for k, v in r.items() if isinstance(v, Stats)},
            )
        )
        return rows
    kept_met = kept_growth <= TARGET_GROWTH and items >= pages
    vs_floor = peak_b / floor["peak_big"].median if floor else None
    peak_met = vs_floor is not None and vs_floor <= TARGET_GROWTH
    profile = None
    if not (kept_met and peak_met):
        walker, target = walker_target
        profile = allocations(
            lambda snap: _walk_and_snap(walker, target, pages, snap),
            ctx.results_dir / f"profile-s4-{key}.txt",
            f"Scenario 4: memory live at 95% of a {pages:,}-item walk with {label}",
        )
    rows += [
        Row(
            NUMBER,
            f"s4.{key}.kept",
            f"{label}: retained at {small:,} → {pages:,} items (GC after each page)",
            status="met" if kept_met else "missed",
            value=kept_b,
            unit="B",
            ratio=kept_growth,
            comparison=f"{fmt_bytes(kept_s)} → {fmt_bytes(kept_b)} ({kept_growth:.2f}x)",
            target=f"flat (≤ {TARGET_GROWTH}x)",
            verdict=(
                f"met: {kept_growth:.2f}x for 10x the pages"
                if kept_met
                else f"missed: grows {kept_growth:.2f}x for 10x the pages"
            ),
            profile=None if kept_met else profile,
            details={"small": r["kept_small"].to_dict(), "big": r["kept_big"].to_dict()},
        ),
        Row(
            NUMBER,
            f"s4.{key}.peak",
            f"{label}: peak at {small:,} → {pages:,} items (default GC)",
            status=("met" if peak_met else "missed") if floor else "info",
            value=peak_b,
            unit="B",
            spread=(r["peak_big"].p10, r["peak_big"].p90),
            ratio=vs_floor,
            comparison=f"{fmt_bytes(peak_s)} → {fmt_bytes(peak_b)}"
            + (
                f"; {vs_floor:.2f}x bare httpx's {fmt_bytes(floor['peak_big'].median)}"
                if floor
                else ""
            ),
            target=f"≤ {TARGET_GROWTH}x bare httpx" if floor else "",
            verdict=(
                ("met" if peak_met else "missed") + f": {vs_floor:.2f}x the bare httpx loop"
                if vs_floor is not None
                else ""
            ),
            profile=None if peak_met else profile,
            details={"small": r["peak_small"].to_dict(), "big": r["peak_big"].to_dict()},
        ),
    ]
    return rows


def _walk_and_snap(walker: Walker, target: Any, n: int, snap: Callable[[], None]) -> None:
    """Walk ``n`` items and snapshot memory at 95%, while the walk is still live."""
    mark = int(n * 0.95)
    for i, _ in enumerate(walker(target, n)):
        if i == mark:
            gc.collect()  # show what is kept, not garbage waiting for the collector
            snap()
