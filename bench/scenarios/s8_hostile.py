"""8. Hostile responses: peak RSS while a 1 GB answer is refused.

A ``get-page`` answered with 1 GiB: a plain body with its Content-Length, the same body
chunked (no length to go by: the runner must count as it reads), and a gzip bomb (about
1 MB on the wire that inflates to 1 GiB). The runner, at its default cap (8 MiB after
decompression), refuses each with ``too_large``. For contrast, bare httpx's
``response.content`` on the same shapes of answer at 64 MiB (at 1 GiB it would need more
than 1 GiB of memory): it holds the whole body, so its peak grows with the answer.

The hostile server is ``tests/faults.py``'s, in this process. Each measurement runs in a
clean child process: Linux carries a process's peak RSS over fork and exec, so a child
of this harness would start with the harness's own size as its ``ru_maxrss``; a small
launcher in between gives the measured process a clean one. The child warms up (imports,
connection, one small answer), notes its RSS, makes the one hostile call and reports
``resource.getrusage(RUSAGE_SELF).ru_maxrss``. Target: peak RSS under 100 MB (the whole
child, interpreter and imports included) while the 1 GB answer is refused.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench.common import ROOT, Context, Row, bench_env, headroom, skipped

NUMBER = 8
TITLE = "Hostile responses: peak RSS"
TARGET_MIB = 100e6 / 2**20  # 100 MB
SMALL = 64  # MiB: what bare httpx is given instead of 1 GiB
PAGE = {"id": "98305", "title": "Runbook", "spaceId": "65538", "status": "current"}

CHILD = r"""
import json, resource, sys, tempfile

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

mode, url = sys.argv[1], sys.argv[2]
if mode == "runner":
    from harbor_confluence.secrets.credentials import Credential
    from harbor_confluence.pipeline.executor import Port
    port = Port.load(home=tempfile.mkdtemp(), base_url=url,
                     credential=Credential.basic("bench@example.com", "token", "bench"))
    def call():
        result = port.call("get-page", {"path": {"id": "98305"}})
        return result.to_dict().get("error") or {"ok": result.ok}
else:
    import httpx
    client = httpx.Client(timeout=60)
    def call():
        response = client.get(url + "/wiki/api/v2/pages/98305")
        return {"status": response.status_code, "bytes": len(response.content)}
call()  # warm: imports, connection, compiled action
rss_before = rss_kib()
peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome = call()
peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rss_before_kib": rss_before, "peak_before_kib": peak_before,
                  "peak_after_kib": peak_after, "outcome": outcome}))
"""
LAUNCHER = (
    "import subprocess, sys; "
    "sys.exit(subprocess.run([sys.executable, '-c', *sys.argv[1:]]).returncode)"
)


def _measure(server: Any, answer: Any, mode: str) -> dict[str, Any]:
    from tests import faults

    server.script(faults.ok(PAGE), answer)
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, CHILD, mode, server.url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=bench_env(),
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {proc.stderr.strip()[-500:]}")
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def run(ctx: Context) -> list[Row]:
    if not sys.platform.startswith("linux"):
        return [skipped(NUMBER, "s8.platform", TITLE, "needs Linux (/proc, ru_maxrss in KiB)")]
    try:
        from tests import faults
    except ImportError as exc:  # pragma: no cover - run from a checkout
        return [skipped(NUMBER, "s8.faults", TITLE, f"tests/faults.py not importable: {exc}")]

    gib, small = faults.GIB, SMALL * faults.MIB
    variants: list[tuple[str, str, str, Callable[[], Any], bool]] = [
        ("runner-1g-length", "runner: 1 GiB body with Content-Length", "runner",
         lambda: faults.huge(gib), True),
        ("runner-1g-chunked", "runner: 1 GiB chunked body", "runner",
         lambda: faults.huge(gib, chunked=True), True),
        ("runner-1g-gzip-bomb", "runner: gzip bomb (1 MB -> 1 GiB)", "runner",
         lambda: faults.gzip_bomb(gib), True),
        ("httpx-64m-chunked", f"bare httpx .content: {SMALL} MiB chunked body", "httpx",
         lambda: faults.huge(small, chunked=True), False),
        ("httpx-64m-gzip-bomb", f"bare httpx .content: gzip bomb (-> {SMALL} MiB)", "httpx",
         lambda: faults.gzip_bomb(small), False),
    ]  # fmt: skip
    reps = ctx.settings.reps(3, 1)
    rows: list[Row] = []
    with faults.FaultServer() as server:
        for key, label, mode, make, judged in variants:
            reports = [_measure(server, make(), mode) for _ in range(reps)]
            peak = statistics.median(r["peak_after_kib"] for r in reports) / 1024
            growth = statistics.median(
                (r["peak_after_kib"] - r["rss_before_kib"]) / 1024 for r in reports
            )
            outcome = reports[-1]["outcome"]
            ctx.log(f"    {key}: peak {peak:.1f} MiB, +{growth:.1f} MiB during the call, {outcome}")
            comparison = f"+{growth:.1f} MiB during the call; answer: {json.dumps(outcome)[:120]}"
            if not judged:
                rows.append(
                    Row(NUMBER, f"s8.{key}", label, value=peak, unit="MiB",
                        comparison=comparison + "; grows with the body (1 GiB would need > 1 GiB)",
                        details={"reports": reports})
                )  # fmt: skip
                continue
            refused = outcome.get("type") == "too_large"
            met = refused and peak < TARGET_MIB
            verdict = (
                f"met, peak {peak:.1f} MiB ({headroom(peak, TARGET_MIB)} to 100 MB)"
                if met
                else f"missed: peak {peak:.1f} MiB, answer {outcome}"
            )
            rows.append(
                Row(NUMBER, f"s8.{key}", label, status="met" if met else "missed", value=peak,
                    unit="MiB", comparison=comparison,
                    target="peak RSS < 100 MB while a 1 GB hostile answer is refused",
                    verdict=verdict, details={"reports": reports})
            )  # fmt: skip
    return rows
