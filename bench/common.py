"""Shared pieces of the harness: result rows, statistics, the machine, port construction."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"

# Credentials of the loopback simulator the benchmark starts (made-up, loopback only).
EMAIL = "bench@example.com"
API_TOKEN = "bench-api-token"  # a loopback simulator's demo value

# The page every get-page scenario reads: the ENG space home, a typical seed page.
PAGE_ID = "98305"

Status = Literal["met", "missed", "info", "skipped"]


@dataclass
class Stats:
    """Median and spread of a set of repetitions (seconds, bytes or ratios)."""

    median: float
    p10: float
    p90: float
    q1: float
    q3: float
    n: int
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        data = sorted(float(s) for s in samples)
        if not data:
            raise ValueError("no samples")
        if len(data) == 1:
            v = data[0]
            return cls(v, v, v, v, v, 1, data)
        deciles = statistics.quantiles(data, n=10, method="inclusive")
        quartiles = statistics.quantiles(data, n=4, method="inclusive")
        return cls(
            statistics.median(data),
            deciles[0],
            deciles[-1],
            quartiles[0],
            quartiles[2],
            len(data),
            data,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Row:
    """One line of the results table."""

    scenario: int
    key: str
    label: str
    status: Status = "info"
    value: float | None = None  # the median, in ``unit``
    unit: str = ""
    spread: tuple[float, float] | None = None  # p10..p90, in ``unit``
    comparison: str = ""  # the same-run ratio or difference, as text
    ratio: float | None = None
    target: str = ""
    verdict: str = ""  # e.g. "met, 40% headroom" or the skip reason
    profile: str | None = None  # path under bench/results/ that explains a miss
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.spread is not None:
            out["spread"] = list(self.spread)
        return out


def skipped(scenario: int, key: str, label: str, reason: str) -> Row:
    return Row(scenario, key, label, status="skipped", verdict=reason)


@dataclass
class Settings:
    """How hard to measure; ``--quick`` shrinks everything for a smoke run."""

    quick: bool = False

    def reps(self, full: int, quick: int = 3) -> int:
        return quick if self.quick else full

    def count(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def budget(self, full: float, quick: float) -> float:
        return quick if self.quick else full


@dataclass
class Context:
    settings: Settings
    results_dir: Path
    peers_python: Path | None  # python of the venv that holds mcp-atlassian
    mcp_atlassian: Path | None  # its console script
    log: Callable[[str], None]
    extra: dict[str, Any] = field(default_factory=dict)


# -- statistics helpers ----------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.2f} s"


def fmt_bytes(n: float) -> str:
    return f"{n:,.0f} B"


def headroom(value: float, limit: float, *, lower_is_better: bool = True) -> str:
    """How far a met target is from its limit, in percent of the limit."""
    if limit == 0:
        return ""
    pct = (limit - value) / limit * 100 if lower_is_better else (value - limit) / limit * 100
    return f"{pct:.0f}% headroom"


def calibrate(fn: Callable[[int], None], budget: float, lo: int, hi: int) -> int:
    """How many calls of ``fn`` fill about ``budget`` seconds (after a warm-up batch)."""
    probe = max(1, lo // 2)
    fn(probe)  # warm-up: connections, compiled validators, caches
    t0 = time.perf_counter()
    fn(probe)
    per_call = max((time.perf_counter() - t0) / probe, 1e-7)
    return max(lo, min(hi, int(budget / per_call)))


def straddles(stats: Stats, limit: float) -> str:
    """A note when the p10-p90 spread lies on both sides of a target: a verdict that the
    next run could flip, and should be read as such."""
    if stats.p10 < limit < stats.p90:
        return f"; within noise: p10-p90 {stats.p10:.3g}-{stats.p90:.3g} straddles the target"
    return ""


def interleaved(
    variants: dict[str, Callable[[int], None]],
    *,
    reps: int,
    budget: float,
    lo: int = 20,
    hi: int = 2000,
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per-call seconds for each variant; repetitions rotate the order (A B C, B C A, ...).

    Each repetition runs a variant for about ``budget`` seconds (the call count is
    calibrated once per variant, between ``lo`` and ``hi``) and records the mean per
    call. Interleaving spreads machine noise over all variants alike, so the ratios taken
    from one run compare like with like.
    """
    names = list(variants)
    calls = {n: calibrate(variants[n], budget, lo, hi) for n in names}
    out: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            n = calls[name]
            t0 = time.perf_counter()
            variants[name](n)
            out[name].append((time.perf_counter() - t0) / n)
    return out, calls


def for_seconds(fn: Callable[[], None], seconds: float, at_least: int = 10) -> int:
    """Call ``fn`` repeatedly for about ``seconds`` (a profiling window); returns the count."""
    n = 0
    end = time.perf_counter() + seconds
    while n < at_least or time.perf_counter() < end:
        fn()
        n += 1
    return n


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def paired_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


# -- the machine -----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total() -> str | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "memory": _mem_total(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "packages": {
            name: _version(name)
            for name in (
                "harbor-confluence",
                "httpx",
                "jsonschema",
                "atlassian-python-api",
                "requests",
                "mcp",
                "pyinstrument",
            )
        },
    }
    return info


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info['cpu_model']}, {info['cpu_count']} CPUs ({info['cpus_usable']} usable), "
        f"{info.get('memory') or '? GiB'}, {info['implementation']} {info['python']}, "
        f"{info['platform']}"
    )


# -- building ports ----------------------------------------------------------------------------


def state_home() -> Path:
    """A throwaway state directory (queue, config) for the ports the benchmark builds."""
    return Path(tempfile.mkdtemp(prefix="harbor-bench-home-"))


def make_port(base_url: str, **kwargs: Any) -> Any:
    """A Port on the packaged manifest and default policy with Basic auth for the simulator."""
    from harbor_confluence.pipeline.executor import Port
    from harbor_confluence.secrets.credentials import Credential

    credential = Credential.basic(EMAIL, API_TOKEN, "bench")
    return Port.load(
        home=state_home(), base_url=base_url, credential=credential, requester="bench", **kwargs
    )


class _NullAudit:
    """Stands in for the audit log in *diagnostic* variants only: appends nothing."""

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        return {}

    def flush(self) -> None:
        """Nothing is queued."""


def make_unaudited_port(base_url: str, **kwargs: Any) -> Any | None:
    """A diagnostic port whose audit append does nothing, to show what the rest costs.

    Not the shipped behaviour (every auto-sent call is audited and fsynced); None when
    the executor no longer keeps its audit log where this expects it.
    """
    port = make_port(base_url, **kwargs)
    if not hasattr(port, "_audit") or not hasattr(type(port), "audit"):
        port.close()
        return None
    port._audit = _NullAudit()
    return port


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: ours, without any real Confluence settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFLUENCE_", "JIRA_"))}
    # Start-up is measured as users see it: with bytecode caches (this sandbox sets
    # PYTHONDONTWRITEBYTECODE, which would recompile every module on every start).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def python() -> str:
    return sys.executable
