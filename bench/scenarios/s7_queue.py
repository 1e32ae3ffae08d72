"""7. The review queue at 10,000 tickets: enqueue, list pending, approve.

The queue's own benchmark script, ``bench/queue_bench.py``, belongs to the queue issue
(issue 4). When it exists this scenario runs it in a child process, keeps its output in
``bench/results/queue.txt`` and turns its per-operation lines into rows; until then it
leaves a marked placeholder row. Issue 4's expectation: listing and approving stay in
milliseconds at that size (read here as a median under 10 ms).
"""

from __future__ import annotations

import re
import subprocess
import sys

from bench.common import BENCH, ROOT, Context, Row, bench_env, headroom, skipped, state_home

NUMBER = 7
TITLE = "Review queue at 10,000 tickets"
SCRIPT = BENCH / "queue_bench.py"
MILLISECONDS = 10.0
# "approve (+ audit)   n=  1000  median    1.28 ms  p95    1.63 ms  max    6.59 ms  total ..."
_STATS = re.compile(
    r"^(?P<name>.+?)\s+n=\s*(?P<n>\d+)\s+median\s+(?P<median>[\d.]+) ms\s+"
    r"p95\s+(?P<p95>[\d.]+) ms\s+max\s+(?P<max>[\d.]+) ms"
)
# "list pending after approvals    1.46 ms" / "audit verify   213.27 ms for 11000 records"
_SINGLE = re.compile(r"^(?P<name>[a-z][^\d]*?)\s+(?P<ms>[\d.]+) ms(?P<rest>.*)$")


def run(ctx: Context) -> list[Row]:
    if not SCRIPT.exists():
        return [
            skipped(
                NUMBER,
                "s7.placeholder",
                "PLACEHOLDER: enqueue 10,000 / list pending / approve",
                "bench/queue_bench.py does not exist yet (issue 4); "
                "rerun `python -m bench --only 7`",
            )
        ]
    argv = [sys.executable, str(SCRIPT)]
    if ctx.settings.quick and "--tickets" in SCRIPT.read_text():
        argv += ["--tickets", "1000", "--approve", "100", "--pages", "50"]
    env = bench_env(HARBOR_CONFLUENCE_HOME=str(state_home()))
    proc = subprocess.run(
        argv, capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=600
    )
    out_path = ctx.results_dir / "queue.txt"
    shown = " ".join("bench/queue_bench.py" if a == str(SCRIPT) else a for a in argv[1:])
    out_path.write_text(f"$ python {shown}\n\n{proc.stdout}\n{proc.stderr}".rstrip() + "\n")
    rel = str(out_path.relative_to(ROOT))
    if proc.returncode != 0:
        return [
            skipped(NUMBER, "s7.failed", "bench/queue_bench.py",
                    f"exited {proc.returncode}; output in {rel}")
        ]  # fmt: skip
    rows = _rows(proc.stdout)
    if rows:
        rows[-1].comparison = (rows[-1].comparison + f"; full output: {rel}").lstrip("; ")
        return rows
    return [Row(NUMBER, "s7.output", "bench/queue_bench.py", comparison=f"output in {rel}")]


def _rows(stdout: str) -> list[Row]:
    rows: list[Row] = []
    for line in stdout.splitlines():
        line = line.strip()
        m = _STATS.match(line)
        if m:
            name, median = m["name"].strip(), float(m["median"]) / 1000
            judged = name.startswith(("list pending", "approve"))
            met = median * 1000 < MILLISECONDS
            rows.append(
                Row(
                    NUMBER,
                    f"s7.{name}",
                    f"queue: {name}",
                    status=("met" if met else "missed") if judged else "info",
                    value=median,
                    unit="s",
                    comparison=f"n={int(m['n']):,}, p95 {m['p95']} ms, max {m['max']} ms",
                    target="in milliseconds (issue 4)" if judged else "",
                    verdict=(f"met, median {m['median']} ms "
                             f"({headroom(median * 1000, MILLISECONDS)} to 10 ms)" if met
                             else f"missed: median {m['median']} ms") if judged else "",
                )
            )  # fmt: skip
            continue
        m = _SINGLE.match(line)
        if m and not line.startswith(("review queue", "state dir")):
            rows.append(
                Row(
                    NUMBER,
                    f"s7.{m['name'].strip()}",
                    f"queue: {m['name'].strip()}",
                    value=float(m["ms"]) / 1000,
                    unit="s",
                    comparison=m["rest"].strip(),
                )
            )
    return rows
