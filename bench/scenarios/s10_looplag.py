"""10. Event-loop stalls: a loop-lag probe during 1,000 concurrent ``Port.acall``s.

An agent framework or MCP server runs many calls on one event loop; every stretch of
synchronous work inside ``acall`` (validation, request building, policy, a queue write,
an audit append, JSON parsing) delays every other coroutine on that loop. Here 1,000
``Port.acall``s start at once (one ``asyncio.gather``, the port's own async client limits)
against the simulator in another process: mostly ``get-page`` reads, with held writes
(``create-page`` and ``update-page``: the default policy holds them, so each is a SQLite
queue write and an audit append; ``update-page`` also reads the page first) and denied
calls (``delete-page`` with ``purge=true``, denied by the packaged policy's
``purge-denied`` rule: an audit append, then ``PolicyDenied``). Meanwhile a probe task
sleeps 1 ms in a loop and records how late each wake-up is. The longest stall is the
largest lateness; the same probe runs during 1,000 bare ``httpx.AsyncClient`` gets.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    straddles,
)
from bench.profiling import _header, _rel
from bench.simproc import SimProcess

NUMBER = 10
TITLE = "Event-loop stalls (loop-lag probe)"
TARGET_MAX = 5e-3  # issue 14: the longest stall during 1,000 concurrent acalls
CALLS = 1000
PROBE_INTERVAL = 1e-3
HELD_EVERY = 100  # call i with i % 100 == 50 is a held write (create/update alternately)
DENIED_EVERY = 200  # call i with i % 200 == 99 is a denied delete-page purge
SPACE_ID = "65538"  # the simulator's ENG space, home of PAGE_ID
READ = {"path": {"id": PAGE_ID}}
DENIED = {"path": {"id": PAGE_ID}, "query": {"purge": True}}
BARE = "bare httpx.AsyncClient"
RUNNER = "runner Port.acall"
GATED = "bare httpx behind asyncio.Semaphore(64) (diagnostic)"

Call = Callable[[int], Awaitable[str]]


def kind_of(i: int) -> str:
    """Which call the i-th of the batch is: ``read``, ``held`` or ``denied``."""
    if i % HELD_EVERY == HELD_EVERY // 2:
        return "held"
    if i % DENIED_EVERY == DENIED_EVERY // 2 - 1:
        return "denied"
    return "read"


def mix(calls: int) -> collections.Counter[str]:
    return collections.Counter(kind_of(i) for i in range(calls))


def _held_input(i: int, tag: str) -> tuple[str, dict[str, Any]]:
    if (i // HELD_EVERY) % 2 == 0:
        return "create-page", {
            "body": {
                "spaceId": SPACE_ID,
                "title": f"Loop-lag probe {tag}-{i}",
                "body": {"representation": "storage", "value": f"<p>probe {tag} {i}</p>"},
            }
        }
    return "update-page", {
        "path": {"id": PAGE_ID},
        "body": {"body": {"representation": "storage", "value": f"<p>edit {tag} {i}</p>"}},
    }


class Probe:
    """Sleeps ``PROBE_INTERVAL`` in a loop; each wake-up's lateness is one sample."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.starts: list[float] = []
        self.last_tick = time.perf_counter()
        self.running = True

    async def run(self) -> None:
        clock, sleep, lags, starts = time.perf_counter, asyncio.sleep, self.lags, self.starts
        while self.running:
            t0 = clock()
            await sleep(PROBE_INTERVAL)
            self.last_tick = now = clock()
            lags.append(now - t0 - PROBE_INTERVAL)
            starts.append(t0)

    def stop(self) -> None:
        self.running = False


def p99(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


@dataclass
class Batch:
    """One probed batch: the probe's view and what the calls returned."""

    stall: float  # the longest wake-up lateness: the target's measure
    lag_p99: float
    start_burst: float  # gather → every call's first step run (one loop iteration)
    stall_after_start: float  # the longest lateness of a sleep begun after that burst
    wall: float
    outcomes: collections.Counter[str]
    gc_longest: float = 0.0  # the longest pause of CPython's cyclic GC during the batch
    gc_full: int = 0  # full (generation 2) collections during the batch
    stall_net_gc: float = 0.0  # the longest lateness less the GC pauses inside it


class GcPauses:
    """Records every pause of CPython's cyclic garbage collector (``gc.callbacks``): a
    full collection walks every object in the process, whoever allocated it, and stalls
    the loop for as long as it runs."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, int]] = []
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.spans.append((self._start, time.perf_counter(), int(info["generation"])))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def within(self, start: float, end: float) -> float:
        """Seconds of GC pause between ``start`` and ``end``."""
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b, _ in self.spans)


async def probed(call: Call, calls: int, probe: Probe | None = None) -> Batch:
    """Run ``calls`` calls at once (one ``asyncio.gather``) under the loop-lag probe.

    Every call's first step (up to its first real suspension) runs in the loop iteration
    after the gather, one after another: the probe's first wake-up waits behind all of
    them. ``start_burst`` is that iteration; ``stall_after_start`` leaves it out.
    """
    probe = probe or Probe()
    task = asyncio.create_task(probe.run())
    await asyncio.sleep(0)  # the probe is asleep before the batch starts
    loop = asyncio.get_running_loop()
    burst_end: list[float] = []
    with GcPauses() as pauses:
        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(call(i)) for i in range(calls)]
        loop.call_soon(lambda: burst_end.append(time.perf_counter()))  # after every first step
        outcomes = await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        probe.stop()
        await task
    after = [lag for lag, at in zip(probe.lags, probe.starts, strict=True) if at >= burst_end[0]]
    net = [
        lag - pauses.within(at + PROBE_INTERVAL, at + PROBE_INTERVAL + lag)
        for lag, at in zip(probe.lags, probe.starts, strict=True)
    ]
    return Batch(
        stall=max(probe.lags),
        lag_p99=p99(probe.lags),
        start_burst=burst_end[0] - t0,
        stall_after_start=max(after, default=0.0),
        wall=wall,
        outcomes=collections.Counter(outcomes),
        gc_longest=max((b - a for a, b, _ in pauses.spans), default=0.0),
        gc_full=sum(1 for *_, generation in pauses.spans if generation == 2),
        stall_net_gc=max(net, default=0.0),
    )


def _task_of(callback: Any) -> asyncio.Task[Any] | None:
    task = getattr(callback, "__self__", None)
    return task if isinstance(task, asyncio.Task) else None


def _at(task: asyncio.Task[Any] | None) -> str:
    """The coroutine chain of a task down to its innermost await, with that frame's line."""
    if task is None:
        return "?"
    if task.done():
        return "(task finished)"
    coro: Any = task.get_coro()
    names = [getattr(coro, "__qualname__", "?")]
    frame = getattr(coro, "cr_frame", None)
    while getattr(coro, "cr_await", None) is not None:
        coro = coro.cr_await
        names.append(getattr(coro, "__qualname__", type(coro).__name__))
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or frame
    at = f" @ {Path(frame.f_code.co_filename).name}:{frame.f_lineno}" if frame else ""
    return " > ".join(names[:8]) + at


class CallbackTimer:
    """Times every callback the loop runs (each task step is one) by wrapping
    ``asyncio.Handle._run`` for the duration: the longest single stretch of code that
    held the loop, and which coroutine it was. Not used for the target (it adds about a
    microsecond per callback)."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self.longest: list[tuple[float, str]] = []
        self._floor = 0.0

    def __enter__(self) -> CallbackTimer:
        self._original = original = asyncio.events.Handle._run
        clock, timer = time.perf_counter, self

        def timed(handle: asyncio.Handle) -> None:
            task = _task_of(getattr(handle, "_callback", None))
            resumed = _at(task) if task is not None else ""
            t0 = clock()
            original(handle)
            spent = clock() - t0
            if spent > timer._floor:
                where = (
                    f"resumed at {resumed}; then at {_at(task)}"
                    if task is not None
                    else getattr(handle, "_callback", "?").__class__.__qualname__
                )
                timer._record(spent, where)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign, assignment]
        return self

    def _record(self, spent: float, where: str) -> None:
        self.longest.append((spent, where[:600]))
        self.longest.sort(key=lambda item: -item[0])
        del self.longest[self.keep :]
        if len(self.longest) == self.keep:
            self._floor = self.longest[-1][0]

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]


class Watchdog:
    """A thread that samples the loop thread's stack while the probe is overdue: which
    code held the loop during a stall (each sample is about a millisecond of it)."""

    def __init__(self, probe: Probe, overdue: float = 2e-3) -> None:
        self._probe = probe
        self._overdue = overdue
        self._thread_id = threading.get_ident()
        self._stop = threading.Event()
        self.samples: collections.Counter[tuple[str, ...]] = collections.Counter()
        self._worker = threading.Thread(target=self._run, name="looplag-watchdog", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(5e-4):
            if not self._probe.running:
                continue
            late = time.perf_counter() - self._probe.last_tick - PROBE_INTERVAL
            frame = sys._current_frames().get(self._thread_id)
            if late > self._overdue and frame is not None:
                stack = traceback.extract_stack(frame)[-14:]
                self.samples[
                    tuple(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack)
                ] += 1

    def __enter__(self) -> Watchdog:
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(5e-4)  # let the sampler in while the loop thread runs
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._worker.join()
        sys.setswitchinterval(self._switch)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _line(label: str, b: Batch) -> str:
    return (
        f"{label}: longest stall {fmt_time(b.stall)} (start burst {fmt_time(b.start_burst)}, "
        f"longest after it {fmt_time(b.stall_after_start)}), p99 {fmt_time(b.lag_p99)}, "
        f"wall {fmt_time(b.wall)}; GC: longest {fmt_time(b.gc_longest)}, {b.gc_full} full, "
        f"stall less GC {fmt_time(b.stall_net_gc)}"
    )


async def _diagnose(call: Call, calls: int, path: Path, timed: list[tuple[float, str]]) -> str:
    """On a miss, what held the loop: the longest callbacks (from the timed batches), the
    loop thread's stacks sampled while the probe was overdue, and asyncio's debug mode
    naming every callback over 5 ms (``slow_callback_duration``)."""
    parts = [
        _header("Scenario 10: loop-lag probe during 1,000 concurrent Port.acall"),
        "## the longest single callbacks (task steps) of the runner batches\n\n",
        *(f"{fmt_time(spent):>10}  {where}\n" for spent, where in timed),
    ]
    probe = Probe()
    with Watchdog(probe) as dog:
        batch = await probed(call, calls, probe)
    total = sum(dog.samples.values())
    parts.append(
        "\n## stacks of the loop thread while the probe was overdue (> 2 ms)\n\n"
        + _line("sampled batch", batch)
        + f"; {total} samples (about 0.5-1 ms each)\n\n"
    )
    for stack, count in dog.samples.most_common(15):
        parts.append(f"{count} samples ({count / max(total, 1):.0%}):\n")
        parts.extend(f"    {line}\n" for line in stack)
        parts.append("\n")
    loop = asyncio.get_running_loop()
    handler = _Capture()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.WARNING)
    logger.propagate = False  # into the profile, not onto the console
    loop.slow_callback_duration = TARGET_MAX
    loop.set_debug(True)
    try:
        batch = await probed(call, calls)
    finally:
        loop.set_debug(False)
        await asyncio.sleep(0)  # this step is still timed: its warning lands in the handler
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    parts.append(
        f"## asyncio debug mode, slow_callback_duration = {fmt_time(TARGET_MAX)}\n\n"
        + _line("debug batch (debug mode slows everything)", batch)
        + f"; {len(handler.lines)} slow callbacks\n\n"
    )
    parts.extend(f"- {line[:800]}\n" for line in handler.lines[:200])
    path.write_text("".join(parts))
    return _rel(path)


async def _scenario(ctx: Context, sim: SimProcess) -> dict[str, Any]:
    port = make_port(sim.url)
    bare = httpx.AsyncClient(
        base_url=sim.url,
        auth=httpx.BasicAuth(EMAIL, API_TOKEN),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        timeout=httpx.Timeout(30.0, connect=10.0),  # the port's: 1,000 queue for 64 sockets
    )
    from harbor_confluence.errors import HarborError, PolicyDenied

    rep_tag = ["warm"]

    async def runner_call(i: int) -> str:
        kind = kind_of(i)
        try:
            if kind == "read":
                result = await port.acall("get-page", READ)
                return "read" if result.ok else f"read failed: {(result.error or {}).get('type')}"
            if kind == "held":
                name, data = _held_input(i, rep_tag[0])
                result = await port.acall(name, data)
                return "held" if result.outcome == "held" else f"{name}: {result.outcome}"
            await port.acall("delete-page", DENIED)
        except PolicyDenied:
            return "denied" if kind == "denied" else f"{kind} denied"
        except HarborError as exc:
            return f"{kind} failed: {type(exc).__name__}"
        return "delete-page purge was not denied"

    accept = {"Accept": "application/json"}

    async def bare_call(i: int) -> str:
        try:
            response = await bare.get(f"/wiki/api/v2/pages/{PAGE_ID}", headers=accept)
        except httpx.HTTPError as exc:
            return f"read failed: {type(exc).__name__}"
        return "read" if response.json().get("id") == PAGE_ID else "read failed"

    slots = asyncio.Semaphore(64)

    async def gated_call(i: int) -> str:
        """Admission control in front of the pool: httpcore scans every queued request
        against every connection on each request and each release, so 1,000 requests
        queued inside it cost O(queued x connections) per event; here at most 64 wait."""
        async with slots:
            return await bare_call(i)

    variants: dict[str, Call] = {RUNNER: runner_call, BARE: bare_call, GATED: gated_call}
    reads = collections.Counter(read=CALLS)
    expected = {RUNNER: mix(CALLS), BARE: reads, GATED: reads}

    async def batch(name: str) -> Batch:
        """A probed batch; calls that did not end as planned (a connect timeout on a
        crowded machine) are counted in ``off_plan``, not raised."""
        got = await probed(variants[name], CALLS)
        off = got.outcomes - expected[name]
        if off:
            ctx.log(f"      {name}: {sum(off.values())} calls off plan: {dict(off)}")
            out["off_plan"][name].update(off)
        return got

    for call in variants.values():  # warm-up: connections, compiled actions, the queue
        await probed(call, 200)
    out: dict[str, Any] = {n: [] for n in variants}
    out["off_plan"] = {n: collections.Counter() for n in variants}
    names = list(variants)
    for rep in range(ctx.settings.reps(9, 3)):
        rep_tag[0] = f"r{rep}"
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            out[name].append(await batch(name))
            ctx.log(f"      {_line(name, out[name][-1])}")
    timed: dict[str, list[tuple[float, str]]] = {}
    for name in (RUNNER, BARE):  # separate batches: the callback timer is not free
        rep_tag[0] = f"t-{name[:6]}"
        with CallbackTimer() as timer:
            await batch(name)
        timed[name] = timer.longest
    out["timed"] = timed
    if statistics.median(b.stall for b in out[RUNNER]) > TARGET_MAX:
        rep_tag[0] = "diag"
        out["profile"] = await _diagnose(
            runner_call, CALLS, ctx.results_dir / "profile-s10-looplag.txt", timed[RUNNER]
        )
    await port.aclose()
    await bare.aclose()
    return out


def run(ctx: Context) -> list[Row]:
    with SimProcess() as sim:
        out = asyncio.run(_scenario(ctx, sim))
    runner: list[Batch] = out[RUNNER]
    bare: list[Batch] = out[BARE]
    counts = mix(CALLS)

    def stats(batches: list[Batch], field: str) -> Stats:
        return Stats.of([getattr(b, field) for b in batches])

    r_max, b_max = stats(runner, "stall"), stats(bare, "stall")
    r_p99, b_p99 = stats(runner, "lag_p99"), stats(bare, "lag_p99")
    r_after, b_after = stats(runner, "stall_after_start"), stats(bare, "stall_after_start")
    r_burst, b_burst = stats(runner, "start_burst"), stats(bare, "start_burst")
    r_wall, b_wall = stats(runner, "wall"), stats(bare, "wall")
    met = r_max.median <= TARGET_MAX
    what = f"{counts['read']:,} get-page, {counts['held']} held writes, {counts['denied']} denied"
    r_top, b_top = out["timed"][RUNNER], out["timed"][BARE]
    off_plan = {name: dict(off) for name, off in out["off_plan"].items()}
    rows = [
        Row(
            NUMBER,
            "s10.bare",
            f"longest loop stall, {CALLS:,} concurrent bare httpx.AsyncClient get-page",
            value=b_max.median,
            unit="s",
            spread=(b_max.p10, b_max.p90),
            comparison=f"p99 lag {fmt_time(b_p99.median)}; start burst "
            f"{fmt_time(b_burst.median)}; batch wall {fmt_time(b_wall.median)}",
            details={
                "max": b_max.to_dict(),
                "p99": b_p99.to_dict(),
                "wall": b_wall.to_dict(),
                "start_burst": b_burst.to_dict(),
            },
        ),
        Row(
            NUMBER,
            "s10.runner",
            f"longest loop stall, {CALLS:,} concurrent Port.acall ({what})",
            status="met" if met else "missed",
            value=r_max.median,
            unit="s",
            spread=(r_max.p10, r_max.p90),
            ratio=r_max.median / b_max.median,
            comparison=f"{r_max.median / b_max.median:.2f}x bare httpx's "
            f"{fmt_time(b_max.median)}; median of {r_max.n} repetitions' max",
            target=f"≤ {fmt_time(TARGET_MAX)}",
            verdict=(
                f"met, {headroom(r_max.median, TARGET_MAX)}"
                if met
                else f"missed by {fmt_time(r_max.median - TARGET_MAX)}"
            )
            + straddles(r_max, TARGET_MAX)
            + "".join(
                f"; {name}: {sum(off.values())} calls off plan {dict(off)}"
                for name, off in off_plan.items()
                if off
            ),
            profile=out.get("profile"),
            details={"max": r_max.to_dict(), "mix": dict(counts), "off_plan": off_plan},
        ),
        Row(
            NUMBER,
            "s10.p99",
            "probe wake-up lag p99, runner batch",
            value=r_p99.median,
            unit="s",
            spread=(r_p99.p10, r_p99.p90),
            comparison=f"bare httpx: {fmt_time(b_p99.median)}; batch wall "
            f"{fmt_time(r_wall.median)} vs {fmt_time(b_wall.median)}",
            details={"p99": r_p99.to_dict(), "wall": r_wall.to_dict()},
        ),
        Row(
            NUMBER,
            "s10.start-burst",
            "start burst: every call's first step, one loop iteration (runner)",
            value=r_burst.median,
            unit="s",
            spread=(r_burst.p10, r_burst.p90),
            comparison=f"bare httpx: {fmt_time(b_burst.median)}; "
            f"{fmt_time(r_burst.median / CALLS)} vs {fmt_time(b_burst.median / CALLS)} per call",
            details={"runner": r_burst.to_dict(), "bare": b_burst.to_dict()},
        ),
        Row(
            NUMBER,
            "s10.after-start",
            "longest loop stall after the start burst, runner (diagnostic)",
            value=r_after.median,
            unit="s",
            spread=(r_after.p10, r_after.p90),
            comparison=f"bare httpx: {fmt_time(b_after.median)}",
            details={"runner": r_after.to_dict(), "bare": b_after.to_dict()},
        ),
    ]
    r_net, b_net = stats(runner, "stall_net_gc"), stats(bare, "stall_net_gc")
    r_gc = stats(runner, "gc_longest")
    full = sum(b.gc_full for b in runner)
    rows.append(
        Row(
            NUMBER,
            "s10.net-gc",
            "longest loop stall less CPython's GC pauses, runner (diagnostic)",
            value=r_net.median,
            unit="s",
            spread=(r_net.p10, r_net.p90),
            comparison=f"bare httpx: {fmt_time(b_net.median)}; the longest GC pause in a "
            f"runner batch: {fmt_time(r_gc.median)} (median; {full} full collections in "
            f"{len(runner)} batches)"
            + ("; within the target without them" if r_net.median <= TARGET_MAX else ""),
            details={"runner": r_net.to_dict(), "bare": b_net.to_dict(), "gc": r_gc.to_dict()},
        )
    )
    g_max, g_after = stats(out[GATED], "stall"), stats(out[GATED], "stall_after_start")
    rows.append(
        Row(
            NUMBER,
            "s10.gated",
            f"longest loop stall, {CALLS:,} bare gets behind a 64-slot semaphore (diagnostic)",
            value=g_max.median,
            unit="s",
            spread=(g_max.p10, g_max.p90),
            comparison=f"{g_max.median / b_max.median:.2f}x ungated bare httpx; after the "
            f"start burst {fmt_time(g_after.median)}; what admission control in front of "
            "httpx's pool leaves "
            + ("(would meet" if g_max.median <= TARGET_MAX else "(would still miss")
            + f" {fmt_time(TARGET_MAX)})",
            details={"max": g_max.to_dict(), "after_start": g_after.to_dict()},
        )
    )
    if r_top and b_top:
        rows.append(
            Row(
                NUMBER,
                "s10.callback",
                "longest single callback (one task step), runner (diagnostic)",
                value=r_top[0][0],
                unit="s",
                comparison=f"{r_top[0][1]}; bare httpx's longest: {fmt_time(b_top[0][0])}",
                details={"runner": r_top, "bare": b_top},
            )
        )
    return rows
