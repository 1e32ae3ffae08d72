"""Exactly once under concurrency: operators racing in threads and in separate processes
send one request, and a process killed mid-request leaves the ticket ``unknown``.

The simulator counts what actually arrived on the wire.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harbor_confluence.review.queue import QueueRefused, ReviewQueue
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL, run_subprocess
from tests.test_queue import hold, make_port, posts, write_policy


def spawn(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CONFLUENCE_")}
    full.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "harbor_confluence.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
    )


def race(n: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(n)
    out: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except QueueRefused as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


@pytest.mark.parametrize("approvers", [1, 2])
def test_concurrent_approvals_in_threads_send_once(
    sim: Simulator, home: Path, tmp_path: Path, approvers: int
) -> None:
    policy = write_policy(tmp_path / "p.yaml", approvers=approvers)
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
    ports = [make_port(sim, home, policy) for _ in range(8)]
    try:
        results = race(8, lambda i: ports[i].approve(ticket_id, operator=f"op{i}"))
    finally:
        for p in ports:
            p.close()
    states = [r.state for r in results if not isinstance(r, QueueRefused)]  # type: ignore[attr-defined]
    refused = [r for r in results if isinstance(r, QueueRefused)]
    assert states.count("succeeded") == 1
    assert states.count("pending") == approvers - 1
    assert len(refused) == 8 - approvers
    assert posts(sim) == 1 and sim.request_count == 1


def test_concurrent_execution_in_threads_sends_once(
    sim: Simulator, home: Path, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "p.yaml")
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        port.approve(ticket_id, operator="alice", run=False)
    ports = [make_port(sim, home, policy) for _ in range(8)]
    try:
        results = race(8, lambda i: ports[i].execute(ticket_id, operator=f"op{i}"))
    finally:
        for p in ports:
            p.close()
    done = [r for r in results if not isinstance(r, QueueRefused)]
    codes = {r.code for r in results if isinstance(r, QueueRefused)}
    assert len(done) == 1 and codes <= {"already_running", "already_executed"}
    assert posts(sim) == 1


# A worker process: imports everything first, says it is ready, waits for "go", then
# approves (or runs) the ticket, so the processes really meet at the critical section.
_WORKER = """
import json, os, sys, time
from pathlib import Path
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.review.queue import QueueRefused
home, policy, ticket, op, mode, gate = sys.argv[1:7]
port = Port.load(None, policy, home=home, base_url=os.environ["SIM_URL"],
                 credential=Credential.basic(os.environ["SIM_EMAIL"], os.environ["SIM_TOKEN"], "t"))
port.queue  # open the database before the race
Path(gate, op + ".ready").touch()
while not Path(gate, "go").exists():
    time.sleep(0.001)
try:
    run = port.approve if mode == "approve" else port.execute
    t = run(ticket, operator=op)
    print(json.dumps({"state": t.state}))
except QueueRefused as exc:
    print(json.dumps({"refused": exc.code}))
"""


def race_processes(
    sim: Simulator, home: Path, policy: Path, ticket_id: str, mode: str, n: int, gate: Path
) -> list[dict[str, str]]:
    gate.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFLUENCE_")}
    env.update(SIM_URL=sim.url, SIM_EMAIL=EMAIL, SIM_TOKEN=API_TOKEN)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(home), str(policy), ticket_id, f"op{i}", mode,
             str(gate)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        for i in range(n)
    ]  # fmt: skip
    deadline = time.monotonic() + 240
    while len(list(gate.glob("*.ready"))) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(gate.glob("*.ready"))) == n, "workers did not start"
    (gate / "go").touch()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, outs
    return [json.loads(out) for out in outs]


@pytest.mark.timeout(400)
def test_concurrent_approvals_in_processes_send_once(
    sim: Simulator, home: Path, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "p.yaml")
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
    results = race_processes(sim, home, policy, ticket_id, "approve", 4, tmp_path / "gate")
    assert [r.get("state") for r in results].count("succeeded") == 1, results
    assert sorted(r["refused"] for r in results if "refused" in r) == ["not_pending"] * 3
    assert posts(sim) == 1 and sim.request_count == 1


@pytest.mark.timeout(400)
def test_concurrent_runs_in_processes_send_once(sim: Simulator, home: Path, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "p.yaml")
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        port.approve(ticket_id, operator="alice", run=False)
    results = race_processes(sim, home, policy, ticket_id, "run", 4, tmp_path / "gate")
    assert [r.get("state") for r in results].count("succeeded") == 1, results
    assert {r["refused"] for r in results if "refused" in r} <= {
        "already_running",
        "already_executed",
    }
    assert posts(sim) == 1


@pytest.mark.timeout(400)
def test_concurrent_cli_approvals_send_once(
    sim: Simulator, home: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """The real command line, several operators at once."""
    policy = write_policy(tmp_path / "p.yaml")
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
    procs = [
        spawn("queue", "approve", ticket_id, "--as", f"op{i}", "--policy", str(policy),
              "--json", env=cli_env)
        for i in range(3)
    ]  # fmt: skip
    outs = [(p.communicate(timeout=300)[0], p.returncode) for p in procs]
    assert sorted(code for _, code in outs) == [0, 3, 3], outs
    winner = next(json.loads(out) for out, code in outs if code == 0)
    assert winner["state"] == "succeeded"
    assert posts(sim) == 1 and sim.request_count == 1


@pytest.mark.timeout(400)
def test_process_killed_while_executing_leaves_unknown(
    sim: Simulator, home: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    policy = write_policy(tmp_path / "p.yaml")
    with make_port(sim, home, policy) as port:
        ticket_id = hold(port)
        port.approve(ticket_id, operator="alice", run=False)
    sim.delay_next(1, 300)
    proc = spawn("queue", "run", ticket_id, "--as", "alice", env=cli_env)
    deadline = time.monotonic() + 240
    while sim.request_count < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.request_count == 1  # the request is on the wire, held by the simulator
    queue = ReviewQueue.for_home(home)
    assert queue.require(ticket_id).state == "executing"
    with make_port(sim, home, policy) as port, pytest.raises(QueueRefused) as busy:
        port.execute(ticket_id, operator="bob")  # the owner is alive: it is running
    assert busy.value.code == "already_running"

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    status = run_subprocess("queue", "status", ticket_id, "--json", env=cli_env)
    assert json.loads(status.out)["state"] == "unknown"
    assert status.code == 4  # still waiting for a person
    again = run_subprocess("queue", "run", ticket_id, "--json", env=cli_env)
    assert again.code == 3 and json.loads(again.out)["error"]["code"] == "outcome_unknown"
    assert sim.request_count == 1  # never retried
    resolved = run_subprocess("queue", "resolve", ticket_id, "--outcome", "succeeded",
                              "--as", "alice", "--reason", "page exists", env=cli_env)  # fmt: skip
    assert resolved.code == 0, resolved.err
    assert queue.require(ticket_id).state == "succeeded"
    assert queue.audit is not None
    events = [r["event"] for r in queue.audit.records()]
    assert "unknown" in events and events[-1] == "resolved"
