"""Profiles that explain a result: pyinstrument call trees, import times, allocations.

Each helper writes a text file under ``bench/results/`` and returns its path relative to
the repository, or None (with the reason in the file) when the tool is missing.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import ROOT


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _header(title: str) -> str:
    return f"# {title}\n# {sys.executable} (Python {sys.version.split()[0]})\n\n"


def profile_sync(fn: Callable[[], object], path: Path, title: str) -> str | None:
    """Run ``fn`` under pyinstrument (0.1 ms sampling) and save the call tree as text."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        path.write_text(
            _header(title) + "pyinstrument is not installed (pip install -e .[bench])\n"
        )
        return None
    profiler = Profiler(interval=0.0001, async_mode="disabled", use_timing_thread=True)
    profiler.start()
    try:
        fn()
    finally:
        profiler.stop()
    path.write_text(_header(title) + profiler.output_text(unicode=True, color=False))
    return _rel(path)


def profile_async(fn: Callable[[], Awaitable[None]], path: Path, title: str) -> str | None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        path.write_text(
            _header(title) + "pyinstrument is not installed (pip install -e .[bench])\n"
        )
        return None
    profiler = Profiler(interval=0.0001, async_mode="enabled", use_timing_thread=True)

    async def wrapped() -> None:
        profiler.start()
        try:
            await fn()
        finally:
            profiler.stop()

    asyncio.run(wrapped())
    path.write_text(_header(title) + profiler.output_text(unicode=True, color=False))
    return _rel(path)


def profile_command(argv: list[str], path: Path, title: str, env: dict[str, str]) -> str | None:
    """A cold start under pyinstrument plus ``-X importtime``'s slowest imports."""
    parts = [_header(title)]
    out = path.with_suffix(".pyinstrument.tmp")
    pyi = subprocess.run(
        [sys.executable, "-m", "pyinstrument", "--renderer", "text", "--unicode",
         "--interval", "0.0002", "--use-timing-thread", "--outfile", str(out), *argv],
        capture_output=True, text=True, env=env, check=False, timeout=180,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    report = out.read_text() if out.exists() else ""
    out.unlink(missing_ok=True)
    parts.append(
        "## pyinstrument (one cold start)\n\n"
        + (report or f"(exit {pyi.returncode}, no report)\n{pyi.stderr[-500:]}\n")
    )
    if argv[:1] == ["-m"] or argv[:1] == ["-c"]:
        imp = subprocess.run(
            [sys.executable, "-X", "importtime", *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        rows = []
        for line in imp.stderr.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            self_us, cumulative, name = _split(line)
            rows.append((int(cumulative), int(self_us), name))
        rows.sort(reverse=True)
        total = sum(r[1] for r in rows)
        lines = [f"total self time of all imports: {total / 1000:.1f} ms", ""]
        lines += [
            f"{c / 1000:8.1f} ms cumulative {s / 1000:7.1f} ms self  {n}" for c, s, n in rows[:40]
        ]
        parts.append("\n## -X importtime (40 largest cumulative)\n\n" + "\n".join(lines) + "\n")
    path.write_text("".join(parts))
    return _rel(path)


def _split(line: str) -> tuple[str, str, str]:
    """``import time: self | cumulative | name`` -> (self, cumulative, name)."""
    self_us, cumulative, name = line.removeprefix("import time:").split("|", 2)
    return self_us.strip(), cumulative.strip(), name.rstrip()


def allocations(
    fn: Callable[[Callable[[], None]], None], path: Path, title: str, top: int = 25
) -> str:
    """Run ``fn(snap)`` under tracemalloc; ``snap()`` records what is live at that moment.

    The caller calls ``snap()`` where memory is expected to be highest (for a walk: near
    its end, while it is still running); the lines holding the most memory then are saved.
    """
    snapshots: list[tracemalloc.Snapshot] = []
    tracemalloc.start(10)
    try:
        fn(lambda: snapshots.append(tracemalloc.take_snapshot()))
        peak = tracemalloc.get_traced_memory()[1]
        if not snapshots:
            snapshots.append(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    snapshot = snapshots[-1].filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    lines = [_header(title), f"peak traced: {peak:,} B\n\n## live at the snapshot, by line\n\n"]
    for stat in snapshot.statistics("lineno")[:top]:
        lines.append(f"{stat.size:>12,} B {stat.count:>8,} blocks  {stat.traceback}\n")
    lines.append("\n## live at the snapshot, by call site (10 frames)\n\n")
    for stat in snapshot.statistics("traceback")[:5]:
        lines.append(f"{stat.size:,} B in {stat.count:,} blocks\n")
        lines.extend(f"    {frame}\n" for frame in stat.traceback.format())
    path.write_text("".join(lines))
    return _rel(path)
