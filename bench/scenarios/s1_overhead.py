"""1. Per-call overhead of the runner itself, with no socket.

``get-page`` through ``Port.call`` against an in-process ``httpx.MockTransport`` that
answers with the simulator's real bytes for that page, versus a bare ``httpx.Client``
request (``client.get(url).json()``) through the same transport. The difference is
what the runner adds: validation, URL building, policy, credential binding, summary.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from bench.common import (
    API_TOKEN,
    EMAIL,
    PAGE_ID,
    Context,
    Row,
    Stats,
    calibrate,
    fmt_time,
    for_seconds,
    headroom,
    interleaved,
    make_port,
    make_unaudited_port,
    paired_differences,
    straddles,
)
from bench.profiling import profile_sync
from bench.simproc import SimProcess

NUMBER = 1
TITLE = "Per-call overhead (no socket)"
TARGET_ADDED = 60e-6
ORIGIN = "https://bench.atlassian.net"
INPUT = {"path": {"id": PAGE_ID}, "query": {"body-format": "storage"}}


def canned_page(ctx: Context) -> tuple[bytes, str]:
    """The simulator's answer to the exact request the runner builds, captured once."""
    shared = ctx.extra.get("sim")
    if isinstance(shared, SimProcess):
        url = shared.url
        sim = None
    else:
        sim = SimProcess().start()
        url = sim.url
    try:
        with httpx.Client(auth=(EMAIL, API_TOKEN)) as client:
            r = client.get(f"{url}/wiki/api/v2/pages/{PAGE_ID}", params={"body-format": "storage"})
            r.raise_for_status()
            return r.content, r.headers["content-type"]
    finally:
        if sim is not None:
            sim.stop()


def run(ctx: Context) -> list[Row]:
    body, content_type = canned_page(ctx)
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=body)

    transport = httpx.MockTransport(handler)
    port = make_port(ORIGIN, transport=transport)
    url = port.prepare("get-page", INPUT)[0].url
    bare = httpx.Client(transport=transport, auth=httpx.BasicAuth(EMAIL, API_TOKEN))
    unaudited = make_unaudited_port(ORIGIN, transport=transport)

    def calls_of(p: Any) -> Any:
        def run_calls(n: int) -> None:
            call = p.call
            for _ in range(n):
                result = call("get-page", INPUT)
            assert result.ok, result.to_dict()

        return run_calls

    def bare_calls(n: int) -> None:
        get = bare.get
        accept = {"Accept": "application/json"}
        for _ in range(n):
            data = get(url, headers=accept).json()
        assert data["id"] == PAGE_ID

    variants = {"runner": calls_of(port), "bare": bare_calls}
    if unaudited is not None:
        variants["runner, audit append stubbed (diagnostic)"] = calls_of(unaudited)
    reps = ctx.settings.reps(21, 5)
    samples, calls = interleaved(variants, reps=reps, budget=ctx.settings.budget(0.15, 0.05))
    runner, bare_s = Stats.of(samples["runner"]), Stats.of(samples["bare"])
    added = Stats.of(paired_differences(samples["runner"], samples["bare"]))
    met = added.median <= TARGET_ADDED

    profile = profile_sync(
        lambda: for_seconds(lambda: calls_of(port)(1), ctx.settings.budget(4.0, 1.0)),
        ctx.results_dir / "profile-s1-overhead.txt",
        "Scenario 1: Port.call('get-page') against httpx.MockTransport",
    )
    phases = _phases(port, body, content_type, ctx)

    rows = [
        Row(
            NUMBER,
            "s1.bare",
            "bare httpx get + .json(), MockTransport",
            value=bare_s.median,
            unit="s/call",
            spread=(bare_s.p10, bare_s.p90),
            details={"stats": bare_s.to_dict(), "calls_per_rep": calls["bare"]},
        ),
        Row(
            NUMBER,
            "s1.runner",
            "runner get-page (Port.call), MockTransport",
            value=runner.median,
            unit="s/call",
            spread=(runner.p10, runner.p90),
            comparison=f"{runner.median / bare_s.median:.2f}x bare",
            ratio=runner.median / bare_s.median,
            details={"stats": runner.to_dict(), "calls_per_rep": calls["runner"]},
        ),
        Row(
            NUMBER,
            "s1.added",
            "added per call by the runner",
            status="met" if met else "missed",
            value=added.median,
            unit="s/call",
            spread=(added.p10, added.p90),
            comparison=f"runner - bare, paired per repetition ({reps} reps)",
            target=f"≤ {fmt_time(TARGET_ADDED)}",
            verdict=(
                f"met, {headroom(added.median, TARGET_ADDED)} "
                f"({fmt_time(TARGET_ADDED - added.median)} under)"
                if met
                else f"missed by {fmt_time(added.median - TARGET_ADDED)}"
            )
            + straddles(added, TARGET_ADDED),
            profile=profile,
            details={"stats": added.to_dict(), "phases": phases},
        ),
    ]
    diag = "runner, audit append stubbed (diagnostic)"
    if diag in samples:
        d = Stats.of(paired_differences(samples[diag], samples["bare"]))
        would = "would meet" if d.median <= TARGET_ADDED else "would still miss"
        rows.append(
            Row(
                NUMBER,
                "s1.added.no-audit",
                "added per call without the audit append (diagnostic, not shipped)",
                value=d.median,
                unit="s/call",
                spread=(d.p10, d.p90),
                comparison=f"the rest of the pipeline {would} the {fmt_time(TARGET_ADDED)} target"
                f"; the audit append costs {fmt_time(added.median - d.median)} per call",
                details={"stats": d.to_dict()},
            )
        )
    if phases:
        text = ", ".join(f"{k} {fmt_time(v)}" for k, v in phases.items())
        rows.append(
            Row(
                NUMBER,
                "s1.phases",
                "stages timed alone (median per call)",
                comparison=text + " (summary includes the JSON parse bare httpx also does)",
                details={"phases": phases},
            )
        )
    port.close()
    bare.close()
    if unaudited is not None:
        unaudited.close()
    return rows


def _phases(port: Any, body: bytes, content_type: str, ctx: Context) -> dict[str, float]:
    """Time each pipeline stage alone; empty when the internals have moved on."""
    try:
        compiled = port._compiled_for("get-page")
        target = port.target()
        clean = compiled.validator.validate(INPUT)
        prepared = compiled.builder.build(target, clean)
        action = compiled.action
        request = httpx.Request("GET", prepared.url)
        response = httpx.Response(
            200, headers=[("Content-Type", content_type)], content=body, request=request
        )
        stages: dict[str, Any] = {
            "validate": lambda: compiled.validator.validate(INPUT),
            "build": lambda: compiled.builder.build(target, clean),
            "policy": lambda: port.policy.decide(action, clean, prepared.body),
            "auth bind": lambda: port._auth(),
            "summary": lambda: compiled.summarizer.result(response),
            "audit append": lambda: port.audit.append(
                "auto-sent",
                action="get-page",
                rule="reads-auto",
                fingerprint=prepared.fingerprint,
                method="GET",
                status=200,
                ok=True,
                requester="bench",
            ),
        }
    except Exception as exc:  # the internals are not a stable API
        ctx.log(f"  (phase breakdown unavailable: {type(exc).__name__}: {exc})")
        return {}
    out: dict[str, float] = {}
    for name, fn in stages.items():
        n = calibrate(
            lambda k, fn=fn: [fn() for _ in range(k)], ctx.settings.budget(0.1, 0.03), 5, 5000
        )
        samples = []
        for _ in range(ctx.settings.reps(7, 3)):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - t0) / n)
        out[name] = Stats.of(samples).median
    return out
