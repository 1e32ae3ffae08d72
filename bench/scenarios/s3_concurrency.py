"""3. Concurrency: 1,000 get-page calls, 32 in flight, async runner vs bare async httpx.

32 workers share one counter and call until 1,000 calls are done, through ``Port.acall``
or through a bare ``httpx.AsyncClient`` with the same connection limits (64), against
the simulator in another process. Throughput = calls / wall time; the client's CPU
time per call (``time.process_time``) shows what the runner costs when the server is
not the bottleneck.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from bench.common import (
    API_TOKEN,
    EMAIL,
    PAGE_ID,
    Context,
    Row,
    Stats,
    fmt_time,
    headroom,
    make_port,
    make_unaudited_port,
    paired_ratios,
    straddles,
)
from bench.profiling import profile_async
from bench.simproc import SimProcess

NUMBER = 3
TITLE = "Concurrency"
TARGET_RATIO = 0.95  # issue 14: async throughput / bare httpx.AsyncClient at 32 in flight
CALLS = 1000
CONCURRENCY = 32
INPUT = {"path": {"id": PAGE_ID}}
DIAG = "runner, audit append stubbed (diagnostic)"

Call = Callable[[], Awaitable[None]]


async def batch(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) for ``calls`` calls, ``concurrency`` at a time."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, time.process_time() - cpu0


async def _scenario(ctx: Context, sim: SimProcess) -> tuple[dict[str, list[float]], ...]:
    port = make_port(sim.url)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    bare = httpx.AsyncClient(
        base_url=sim.url, auth=httpx.BasicAuth(EMAIL, API_TOKEN), limits=limits
    )
    accept = {"Accept": "application/json"}

    async def runner_call() -> None:
        result = await port.acall("get-page", INPUT)
        assert result.ok, result.to_dict()

    async def bare_call() -> None:
        data = (await bare.get(f"/wiki/api/v2/pages/{PAGE_ID}", headers=accept)).json()
        assert data["id"] == PAGE_ID

    variants = {"runner": runner_call, "bare": bare_call}
    unaudited = make_unaudited_port(sim.url)
    if unaudited is not None:

        async def unaudited_call() -> None:
            assert (await unaudited.acall("get-page", INPUT)).ok

        variants[DIAG] = unaudited_call
    calls = ctx.settings.count(CALLS, 200)
    for call in variants.values():  # warm-up: connections, compiled validators
        await batch(call, calls // 10, CONCURRENCY)
    wall: dict[str, list[float]] = {n: [] for n in variants}
    cpu: dict[str, list[float]] = {n: [] for n in variants}
    names = list(variants)
    for rep in range(ctx.settings.reps(5, 2)):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            if name == DIAG and rep >= ctx.settings.reps(3, 2):
                continue  # the diagnostic needs fewer repetitions than the target
            w, c = await batch(variants[name], calls, CONCURRENCY)
            wall[name].append(calls / w)
            cpu[name].append(c / calls)
    await port.aclose()
    await bare.aclose()
    if unaudited is not None:
        await unaudited.aclose()
    return wall, cpu


def run(ctx: Context) -> list[Row]:
    with SimProcess() as sim:
        wall, cpu = asyncio.run(_scenario(ctx, sim))
        runner, bare = Stats.of(wall["runner"]), Stats.of(wall["bare"])
        ratio = Stats.of(paired_ratios(wall["runner"], wall["bare"]))
        cpu_r, cpu_b = Stats.of(cpu["runner"]), Stats.of(cpu["bare"])
        met = ratio.median >= TARGET_RATIO
        profile = None
        if not met:
            port = make_port(sim.url)

            async def profiled() -> None:
                async def call() -> None:
                    await port.acall("get-page", INPUT)

                await batch(call, ctx.settings.count(CALLS, 200), CONCURRENCY)
                await port.aclose()

            profile = profile_async(
                profiled,
                ctx.results_dir / "profile-s3-concurrency.txt",
                "Scenario 3: 1,000 Port.acall('get-page') at concurrency 32",
            )
    calls = ctx.settings.count(CALLS, 200)
    rows = [
        Row(
            NUMBER,
            "s3.bare",
            f"bare httpx.AsyncClient, {calls:,} get-page at {CONCURRENCY}",
            value=bare.median,
            unit="calls/s",
            spread=(bare.p10, bare.p90),
            details={"stats": bare.to_dict()},
        ),
        Row(
            NUMBER,
            "s3.runner",
            f"runner Port.acall, {calls:,} get-page at {CONCURRENCY}",
            value=runner.median,
            unit="calls/s",
            spread=(runner.p10, runner.p90),
            details={"stats": runner.to_dict()},
        ),
        Row(
            NUMBER,
            "s3.ratio",
            "throughput runner / bare",
            status="met" if met else "missed",
            value=ratio.median,
            unit="x",
            spread=(ratio.p10, ratio.p90),
            ratio=ratio.median,
            comparison=f"{runner.median:,.0f} vs {bare.median:,.0f} calls/s",
            target=f"≥ {TARGET_RATIO}",
            verdict=(
                f"met, {headroom(ratio.median, TARGET_RATIO, lower_is_better=False)}"
                if met
                else f"missed by {TARGET_RATIO - ratio.median:.3f}"
            )
            + straddles(ratio, TARGET_RATIO),
            profile=profile,
            details={"stats": ratio.to_dict()},
        ),
        Row(
            NUMBER,
            "s3.cpu",
            "client CPU per call, runner vs bare",
            value=cpu_r.median,
            unit="s/call",
            spread=(cpu_r.p10, cpu_r.p90),
            ratio=cpu_r.median / cpu_b.median,
            comparison=f"{fmt_time(cpu_r.median)} vs {fmt_time(cpu_b.median)} "
            f"({cpu_r.median / cpu_b.median:.2f}x)",
            details={"runner": cpu_r.to_dict(), "bare": cpu_b.to_dict()},
        ),
    ]
    if DIAG in wall:
        d = Stats.of(paired_ratios(wall[DIAG], wall["bare"][: len(wall[DIAG])]))
        rows.append(
            Row(
                NUMBER,
                "s3.no-audit",
                "throughput without the audit append / bare (diagnostic, not shipped)",
                value=d.median,
                unit="x",
                spread=(d.p10, d.p90),
                comparison=f"{Stats.of(wall[DIAG]).median:,.0f} calls/s; "
                + ("would meet" if d.median >= TARGET_RATIO else "would still miss")
                + f" the {TARGET_RATIO} target",
                details={"stats": d.to_dict()},
            )
        )
    return rows
