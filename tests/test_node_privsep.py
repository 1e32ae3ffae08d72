"""The node as its own OS user, the agent as another: the agent reaches Confluence only
through the node and cannot read the credential, the queue, the key or the audit log.

Needs root and two system users, and an interpreter both may run (the test's own may sit
under /root).  ``.ci/run`` provides them:

    HARBOR_PRIVSEP_PYTHON=/opt/.../bin/python HARBOR_PRIVSEP_NODE_USER=harbor-node
    HARBOR_PRIVSEP_AGENT_USER=harbor-agent

Elsewhere the test skips, unless ``HARBOR_REQUIRE_PRIVSEP=1`` makes the skip a failure.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL
from tests.nodeutil import Node, held_ticket, writes

PYTHON = os.environ.get("HARBOR_PRIVSEP_PYTHON", "")
NODE_USER = os.environ.get("HARBOR_PRIVSEP_NODE_USER", "")
AGENT_USER = os.environ.get("HARBOR_PRIVSEP_AGENT_USER", "")
RUNUSER = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") or "runuser"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (CI runs it as root)"
    if not (PYTHON and NODE_USER and AGENT_USER):
        return "HARBOR_PRIVSEP_PYTHON / _NODE_USER / _AGENT_USER are not set (.ci/run sets them)"
    for user in (NODE_USER, AGENT_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"no user {user}"
    return None


@pytest.fixture(scope="module")
def privsep() -> None:
    why = _why_not()
    if why is not None:
        if os.environ.get("HARBOR_REQUIRE_PRIVSEP"):
            pytest.fail(f"HARBOR_REQUIRE_PRIVSEP is set but {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def sim(privsep: None, contract: Any) -> Iterator[Simulator]:
    with Simulator(email=EMAIL, api_token=API_TOKEN) as s:
        yield s
        exchanges = list(s.exchanges)
    if contract is not None:
        for exchange in exchanges:
            contract.check_exchange(exchange)


@pytest.fixture(scope="module")
def node(sim: Simulator) -> Iterator[Node]:
    base = Path(tempfile.mkdtemp(prefix="harbor-privsep-", dir="/tmp"))
    base.chmod(0o755)
    home = base / "home"
    home.mkdir(mode=0o700)
    entry = pwd.getpwnam(NODE_USER)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    n = Node(home, sim.url, python=PYTHON, wrap=(RUNUSER, "-u", NODE_USER, "--"), cwd="/")
    n.setup(EMAIL, API_TOKEN, [("codex", "agent"), ("alice", "operator")])
    n.start()
    yield n
    n.stop()
    shutil.rmtree(base, ignore_errors=True)


AGENT = (RUNUSER, "-u", AGENT_USER, "--")


def _as_agent(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENT, *argv],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        cwd="/",
        timeout=60,
        check=False,
    )


def test_agent_user_works_through_the_node_only(node: Node, sim: Simulator) -> None:
    r = node.client("codex/agent", "run", "get-page", "--input", '{"path":{"id":"98305"}}',
                    wrap=AGENT)  # fmt: skip
    assert r.code == 0, r.err
    before = len(writes(sim))
    create = {"body": {"spaceId": "65538", "title": "privsep", "status": "current",
                       "body": {"representation": "storage", "value": "<p>x</p>"}}}  # fmt: skip
    ticket = held_ticket(node.client("codex/agent", "run", "create-page", "--json",
                                     "--input", json.dumps(create), wrap=AGENT))  # fmt: skip

    # The state directory, the credential, the database, the key: all unreadable.
    for path in (
        node.home / "secrets" / "credential.json",
        node.home / "secrets" / "integrity.key",
        node.home / "queue.sqlite3",
        node.home / "audit.jsonl",
        node.home / "identities.json",
    ):
        p = _as_agent(PYTHON, "-c", f"open({str(path)!r}, 'rb').read()")
        assert p.returncode != 0
        assert "PermissionError" in p.stderr, p.stderr
    p = _as_agent(PYTHON, "-c", f"import os; os.listdir({str(node.home)!r})")
    assert "PermissionError" in p.stderr
    p = _as_agent(PYTHON, "-c",
                  f"import sqlite3; sqlite3.connect({str(node.home / 'queue.sqlite3')!r})"
                  ".execute('UPDATE tickets SET state=\"approved\"')")  # fmt: skip
    assert p.returncode != 0

    # Embedded mode on the node's state directory, asserting an operator: refused by the OS.
    p = _as_agent(PYTHON, "-m", "harbor_confluence.cli", "queue", "approve", ticket, "--as",
                  "alice", env={"HARBOR_CONFLUENCE_HOME": str(node.home)})  # fmt: skip
    assert p.returncode != 0
    # The unix socket is the node user's alone (0600 in a 0700 directory).
    r = node.client("codex/agent", "actions", socket=True, wrap=AGENT)
    assert r.code != 0
    # The agent token cannot approve over TCP either.
    r = node.client("codex/agent", "queue", "approve", ticket, wrap=AGENT)
    assert r.code == 3
    assert len(writes(sim)) == before

    # An operator token approves; the write leaves exactly once.
    r = node.client("alice/operator", "queue", "approve", ticket, "--json", wrap=AGENT)
    assert r.code == 0, r.err
    assert r.json()["state"] == "succeeded"
    assert len(writes(sim)) == before + 1
    r = node.client("alice/operator", "audit", "verify", wrap=AGENT)
    assert r.code == 0, r.out + r.err


def test_node_state_belongs_to_the_node_user(node: Node) -> None:
    """After the calls above: every file the node wrote is its user's, and private."""
    uid = pwd.getpwnam(NODE_USER).pw_uid
    names = ("queue.sqlite3", "audit.jsonl", "secrets/credential.json", "identities.json")
    for path in (node.home, *(node.home / n for n in names)):
        info = path.stat()
        assert info.st_uid == uid, path
        assert info.st_mode & 0o077 == 0, (path, oct(info.st_mode))
