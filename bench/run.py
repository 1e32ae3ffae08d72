"""The benchmark harness: ``python -m bench [--only 1,2] [--quick] [--update-readme]``.

Runs the scenarios in ``bench/scenarios/`` in order, each against its own loopback
simulator process, and writes ``bench/results/latest.json`` and ``latest.md``. A
scenario whose prerequisites are missing (a peer not installed, a part of the project
not built yet) reports skipped rows with the reason instead of failing the run; once
the part exists, ``--only N`` reruns just that scenario and merges it into the results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py` works like `python -m bench`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench.common import BENCH, RESULTS, Context, Settings, machine, skipped

SCENARIOS = (
    "s1_overhead",
    "s2_roundtrip",
    "s3_concurrency",
    "s4_pagination",
    "s5_startup",
    "s6_context",
    "s7_queue",
    "s8_hostile",
    "s9_editing",
    "s10_looplag",
)


def _scenarios() -> dict[int, ModuleType]:
    out = {}
    for name in SCENARIOS:
        module = importlib.import_module(f"bench.scenarios.{name}")
        out[int(module.NUMBER)] = module
    return out


def _peers() -> tuple[Path | None, Path | None]:
    """mcp-atlassian's console script and python, from its own venv (see bench/run.sh)."""
    explicit = os.environ.get("HARBOR_BENCH_MCP_ATLASSIAN")
    if explicit:
        script = Path(explicit)
        return (script.with_name("python"), script) if script.exists() else (None, None)
    venv = Path(os.environ.get("HARBOR_BENCH_PEERS_VENV", BENCH / ".peers-venv"))
    script = venv / "bin" / "mcp-atlassian"
    return (venv / "bin" / "python", script) if script.exists() else (None, None)


def _numbers(text: str | None, known: dict[int, ModuleType]) -> list[int]:
    if not text:
        return sorted(known)
    out = []
    for part in text.split(","):
        n = int(part.strip())
        if n not in known:
            raise SystemExit(f"unknown scenario {n}; known: {', '.join(map(str, sorted(known)))}")
        out.append(n)
    return sorted(set(out))


def main(argv: list[str] | None = None) -> int:
    known = _scenarios()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated scenario numbers (default: all)")
    parser.add_argument("--skip", help="comma-separated scenario numbers to leave out")
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run")
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="rewrite the table between the bench markers in README.md",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="do not merge with earlier results of other scenarios"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="output directory")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--render",
        action="store_true",
        help="rewrite latest.md (and with --update-readme the README) from latest.json; "
        "run nothing",
    )
    args = parser.parse_args(argv)
    if args.render:
        saved = report.load(args.results)
        if saved is None:
            raise SystemExit(f"no results in {args.results}; run the benchmark first")
        report.write(saved, args.results)
        if args.update_readme and not report.update_readme(saved):
            print(f"README.md has no {report.START} ... {report.END} markers", file=sys.stderr)
            return 1
        return 0

    if args.list:
        for n, module in sorted(known.items()):
            print(f"{n}. {module.TITLE}")
        return 0
    numbers = _numbers(args.only, known)
    if args.skip:
        numbers = [n for n in numbers if n not in set(_numbers(args.skip, known))]

    if args.quick and args.results == RESULTS:
        args.results = RESULTS / "quick"  # a smoke run never replaces the real results
    args.results.mkdir(parents=True, exist_ok=True)
    # This VM's clock is slow to read; the profiles use pyinstrument's timing thread.
    os.environ.setdefault("PYINSTRUMENT_IGNORE_OVERHEAD_WARNING", "1")
    peers_python, mcp_atlassian = _peers()
    ctx = Context(
        settings=Settings(quick=args.quick),
        results_dir=args.results,
        peers_python=peers_python,
        mcp_atlassian=mcp_atlassian,
        log=lambda line: print(line, flush=True),
    )
    info = machine()
    print(f"machine: {report.machine_line(info)}", flush=True)
    if mcp_atlassian is None:
        print("note: mcp-atlassian not found (bash bench/run.sh installs it)", flush=True)

    previous = None if args.fresh else report.load(args.results)
    data: dict[str, Any] = {
        "generated_at": _now(),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "machine": info,
        "scenarios": {},
    }
    if previous is not None and not args.quick:
        for key, value in previous["scenarios"].items():
            if int(key) not in numbers and not value.get("quick"):
                data["scenarios"][key] = value

    started = time.perf_counter()
    for n in numbers:
        module = known[n]
        print(f"[{n}] {module.TITLE} ...", flush=True)
        for stale in [*args.results.glob(f"profile-s{n}-*"), args.results / f"error-s{n}.txt"]:
            stale.unlink(missing_ok=True)  # profiles of an earlier run must not be cited
        t0 = time.perf_counter()
        ran_at = _now()
        try:
            rows = module.run(ctx)
        except Exception as exc:
            trace = args.results / f"error-s{n}.txt"
            trace.write_text(traceback.format_exc())
            rows = [
                skipped(
                    n,
                    f"s{n}.error",
                    module.TITLE,
                    f"crashed: {type(exc).__name__}: {exc}"[:300] + f" ({trace.name})",
                )
            ]
        seconds = time.perf_counter() - t0
        data["scenarios"][str(n)] = {
            "title": module.TITLE,
            "ran_at": ran_at,
            "seconds": round(seconds, 1),
            "quick": args.quick,
            "rows": [r.to_dict() for r in rows],
        }
        for r in rows:
            value = report.fmt_value(r.value, r.unit)
            status = r.status.upper() if r.status in ("missed", "skipped") else r.status
            print(
                f"    {status:8} {r.label}: {value} {r.comparison} {r.verdict}".rstrip(), flush=True
            )
        print(f"    ({seconds:.1f} s)", flush=True)
    print(f"total {time.perf_counter() - started:.1f} s", flush=True)
    if hasattr(os, "getloadavg"):
        info["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]

    json_path, md_path = report.write(data, args.results)
    print(f"wrote {json_path} and {md_path}")
    if args.update_readme:
        if args.quick:
            print("not updating README.md from a --quick run")
        elif report.update_readme(data):
            print("updated the Performance table in README.md")
        else:
            print(f"README.md has no {report.START} ... {report.END} markers", file=sys.stderr)
            return 1
    return 0


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


if __name__ == "__main__":
    raise SystemExit(main())
