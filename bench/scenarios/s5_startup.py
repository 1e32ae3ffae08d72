"""5. Start-up: what an agent waits for when it spawns the tool.

Each command is a fresh process (one untimed warm-up run first, so bytecode caches are
written and the comparison is not about compiling): ``harbor-confluence actions --json``,
``python -c pass`` (the interpreter's floor), ``python -c 'from atlassian import
Confluence'``, and the time from spawning an MCP server to its answer to ``tools/list``
(initialize + tools/list through the SDK client) for mcp-atlassian and, when the command
exists, ``harbor-confluence mcp``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    Context,
    Row,
    Stats,
    bench_env,
    fmt_time,
    headroom,
    skipped,
    state_home,
)
from bench.mcpclient import harbor_mcp_spec, mcp_atlassian_spec, open_session
from bench.profiling import profile_command
from bench.simproc import SimProcess

NUMBER = 5
TITLE = "Start-up"
TARGET_CLI = 0.3
TARGET_TOOLS_LIST = 0.5


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("harbor-confluence")
    if script.exists():
        return [str(script)]
    found = shutil.which("harbor-confluence")
    return [found] if found else [sys.executable, "-m", "harbor_confluence.cli"]


def _time_command(argv: list[str], env: dict[str, str], reps: int, budget: float) -> list[float]:
    """``reps`` timed runs after one warm-up, fewer (at least 3) when one run is slow."""
    out: list[float] = []
    for i in range(reps + 1):
        if len(out) >= 3 and sum(out) > budget:
            break
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, env=env, check=False, timeout=60)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")[-300:]
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err}")
        if i:  # the first run is the warm-up
            out.append(elapsed)
    return out


def _has_mcp_command(cli: list[str], env: dict[str, str]) -> bool:
    proc = subprocess.run([*cli, "mcp", "--help"], capture_output=True, env=env, check=False)
    return proc.returncode == 0


async def _spawn_times(spec_factory: object, reps: int) -> tuple[list[float], int]:
    out: list[float] = []
    tools = 0
    for i in range(reps + 1):
        if len(out) >= 3 and sum(out) > 25:
            break
        async with open_session(spec_factory()) as session:  # type: ignore[operator]
            if i:
                out.append(session.spawn_to_tools_list)
            tools = len(session.tools)
    return out, tools


def run(ctx: Context) -> list[Row]:
    reps = ctx.settings.reps(9, 3)
    spawn_reps = ctx.settings.reps(5, 2)
    home = state_home()
    env = bench_env(HARBOR_CONFLUENCE_HOME=str(home))
    cli = _cli()
    py = sys.executable
    times: dict[str, list[float]] = {}
    notes: dict[str, str] = {}
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "harbor-confluence actions --json": [*cli, "actions", "--json"],
        "python -c 'from atlassian import Confluence'": [
            py,
            "-c",
            "from atlassian import Confluence",
        ],
    }
    for label, argv in commands.items():
        try:
            times[label] = _time_command(argv, env, reps, ctx.settings.budget(20.0, 5.0))
        except Exception as exc:
            notes[label] = str(exc)[:300]
    with SimProcess() as sim:
        if ctx.mcp_atlassian is not None:
            command = ctx.mcp_atlassian
            try:
                times["mcp-atlassian spawn → tools/list"], n = asyncio.run(
                    _spawn_times(lambda: mcp_atlassian_spec(command, sim.base_url), spawn_reps)
                )
                ctx.extra["mcp_atlassian_tools"] = n
            except Exception as exc:
                notes["mcp-atlassian spawn → tools/list"] = f"{type(exc).__name__}: {exc}"[:300]
        else:
            notes["mcp-atlassian spawn → tools/list"] = (
                "mcp-atlassian is not installed: run `bash bench/run.sh` (bench/.peers-venv)"
            )
        if _has_mcp_command(cli, env):
            try:
                times["harbor-confluence mcp spawn → tools/list"], _ = asyncio.run(
                    _spawn_times(lambda: harbor_mcp_spec(cli[0], sim.url, home), spawn_reps)
                )
            except Exception as exc:
                notes["harbor-confluence mcp spawn → tools/list"] = f"{type(exc).__name__}: {exc}"[
                    :300
                ]
        else:
            notes["harbor-confluence mcp spawn → tools/list"] = (
                "`harbor-confluence mcp` does not exist yet (issue 6); "
                "rerun `python -m bench --only 5`"
            )

    stats = {k: Stats.of(v) for k, v in times.items()}
    rows: list[Row] = []
    floor = stats.get("python -c pass")
    for label in [
        *commands,
        "mcp-atlassian spawn → tools/list",
        "harbor-confluence mcp spawn → tools/list",
    ]:
        if label not in stats:
            rows.append(skipped(NUMBER, f"s5.{label}", label, notes.get(label, "not measured")))
            continue
        st = stats[label]
        rows.append(
            Row(
                NUMBER,
                f"s5.{label}",
                label,
                value=st.median,
                unit="s",
                spread=(st.p10, st.p90),
                details={"stats": st.to_dict()},
                comparison=(
                    f"{st.median / floor.median:.1f}x python -c pass"
                    if floor and label != "python -c pass"
                    else ""
                ),
            )
        )

    cli_label = "harbor-confluence actions --json"
    if cli_label in stats:
        st = stats[cli_label]
        met = st.median < TARGET_CLI
        profile = profile_command(
            ["-m", "harbor_confluence.cli", "actions", "--json"],
            ctx.results_dir / "profile-s5-cli-startup.txt",
            "Scenario 5: harbor-confluence actions --json, cold start",
            env,
        )
        apa = stats.get("python -c 'from atlassian import Confluence'")
        extra = f"; {st.median / apa.median:.2f}x the atlassian import" if apa else ""
        rows.append(
            Row(
                NUMBER,
                "s5.cli.target",
                "CLI cold start (actions --json)",
                status="met" if met else "missed",
                value=st.median,
                unit="s",
                spread=(st.p10, st.p90),
                target=f"< {TARGET_CLI} s",
                comparison=f"{fmt_time(st.median - floor.median)} above python -c pass" + extra
                if floor
                else "",
                verdict=(
                    f"met, {headroom(st.median, TARGET_CLI)}"
                    if met
                    else f"missed by {fmt_time(st.median - TARGET_CLI)}"
                ),
                profile=profile,
            )
        )
    harbor_label = "harbor-confluence mcp spawn → tools/list"
    peer_label = "mcp-atlassian spawn → tools/list"
    if harbor_label in stats:
        st = stats[harbor_label]
        met = st.median < TARGET_TOOLS_LIST
        peer = stats.get(peer_label)
        profile = None
        if not met:
            spec = harbor_mcp_spec(cli[0], "http://127.0.0.1:9", home)
            profile = profile_command(
                ["-m", "harbor_confluence.cli", "mcp"],
                ctx.results_dir / "profile-s5-mcp-startup.txt",
                "Scenario 5: harbor-confluence mcp, cold start to EOF on stdin",
                {**env, **spec.env},
            )
        rows.append(
            Row(
                NUMBER,
                "s5.mcp.target",
                "MCP spawn → tools/list answered",
                status="met" if met else "missed",
                value=st.median,
                unit="s",
                spread=(st.p10, st.p90),
                target=f"< {TARGET_TOOLS_LIST} s",
                comparison=(
                    f"{peer.median / st.median:.1f}x faster than mcp-atlassian "
                    f"({fmt_time(peer.median)})"
                    if peer
                    else ""
                ),
                verdict=(
                    f"met, {headroom(st.median, TARGET_TOOLS_LIST)}"
                    if met
                    else f"missed by {fmt_time(st.median - TARGET_TOOLS_LIST)}"
                ),
                profile=profile,
            )
        )
    elif peer_label in stats:
        rows.append(
            skipped(NUMBER, "s5.mcp.target", "MCP spawn → tools/list answered", notes[harbor_label])
        )
    return rows
