"""1. Per-call overhead of the runner itself, with no socket.

``get-page`` through ``Port.call`` against an in-process ``httpx.MockTransport`` that
answers with the simulator's real bytes for that page, versus a bare ``httpx.Client``
request (``client.get(url).json()``) through the same transport. The difference is
what the runner adds: validation, URL building, policy, credential binding, summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
    skipped,
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
    phases, unavailable = _phases(port, body, content_type, ctx)

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
    reasons = "; ".join(f"{k}: {v}" for k, v in unavailable.items())
    if not phases:
        rows.append(
            skipped(
                NUMBER,
                "s1.phases",
                "stages timed alone (median per call)",
                f"stage timing unavailable: {reasons}",
            )
        )
    else:
        text = ", ".join(f"{k} {fmt_time(v)}" for k, v in phases.items())
        text += " (summary includes the JSON parse bare httpx also does)"
        if unavailable:
            text += f"; stage timing unavailable: {reasons}"
        rows.append(
            Row(
                NUMBER,
                "s1.phases",
                "stages timed alone (median per call)",
                comparison=text,
                details={"phases": phases, "unavailable": unavailable},
            )
        )
    port.close()
    bare.close()
    if unaudited is not None:
        unaudited.close()
    return rows


Stage = Callable[[], object]


def _stage_hooks(
    port: Any, body: bytes, content_type: str
) -> tuple[dict[str, Stage], dict[str, str]]:
    """Each pipeline stage as a no-argument callable, and why any stage has none.

    The hooks reach into ``Port`` internals, which are not a stable API: each stage is
    looked up on its own and tried once, so a moved internal costs that stage's timing
    (reported with the reason), never the scenario.
    """

    def compiled() -> Any:
        return port._compiled_for("get-page")

    def clean() -> Any:
        return compiled().validator.validate(INPUT)

    def prepared() -> Any:
        return compiled().builder.build(port.target(), clean())

    def validate() -> Stage:
        validator = compiled().validator
        return lambda: validator.validate(INPUT)

    def build() -> Stage:
        builder, target, ready = compiled().builder, port.target(), clean()
        return lambda: builder.build(target, ready)

    def policy() -> Stage:
        action, ready, body_ = compiled().action, clean(), prepared().body
        return lambda: port.policy.decide(action, ready, body_)

    def auth_bind() -> Stage:
        return lambda: port._auth()

    def summary() -> Stage:
        request = httpx.Request("GET", prepared().url)
        response = httpx.Response(
            200, headers=[("Content-Type", content_type)], content=body, request=request
        )
        summarizer = compiled().summarizer
        return lambda: summarizer.result(response)

    def audit_append() -> Stage:
        fingerprint, audit = prepared().fingerprint, port.audit
        return lambda: audit.append(
            "auto-sent", action="get-page", rule="reads-auto", fingerprint=fingerprint,
            method="GET", status=200, ok=True, requester="bench",
        )  # fmt: skip

    builders: dict[str, Callable[[], Stage]] = {
        "validate": validate,
        "build": build,
        "policy": policy,
        "auth bind": auth_bind,
        "summary": summary,
        "audit append": audit_append,
    }
    hooks: dict[str, Stage] = {}
    missing: dict[str, str] = {}
    for name, make in builders.items():
        try:
            hook = make()
            hook()  # one call proves the hook still fits the internals
        except Exception as exc:  # the internals are not a stable API
            missing[name] = f"{type(exc).__name__}: {exc}"[:200]
        else:
            hooks[name] = hook
    return hooks, missing


def _phases(
    port: Any, body: bytes, content_type: str, ctx: Context
) -> tuple[dict[str, float], dict[str, str]]:
    """Median seconds per call of each stage timed alone, and the stages that could not be."""
    hooks, missing = _stage_hooks(port, body, content_type)
    for name, reason in missing.items():
        ctx.log(f"  (stage timing unavailable for {name}: {reason})")
    out: dict[str, float] = {}
    for name, fn in hooks.items():

        def repeat(k: int, fn: Stage = fn) -> None:
            for _ in range(k):
                fn()

        n = calibrate(repeat, ctx.settings.budget(0.1, 0.03), 5, 5000)
        samples = []
        for _ in range(ctx.settings.reps(7, 3)):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - t0) / n)
        out[name] = Stats.of(samples).median
    return out, missing
