"""A real node for tests: its own state directory, tokens, and a `node serve` process.

Used by ``test_node.py`` (the node runs as the test's own user) and
``test_node_privsep.py`` (as root in CI: the node as one system user, the agent client
as another).  ``wrap`` prefixes every command (``runuser -u harbor-node --``) and
``python`` is an interpreter those users may run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import CliResult


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(extra: dict[str, str]) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "PYTHONPATH", "COVERAGE_PROCESS_START")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(extra)
    return env


@dataclass
class Node:
    """A node home plus the served process; ``tokens`` maps "name/role" to a token."""

    home: Path
    sim_url: str
    python: str = sys.executable
    wrap: Sequence[str] = ()
    tokens: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[str] | None = None
    cwd: str | None = None  # "/" when another user runs it: never import from the checkout

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket(self) -> Path:
        return self.home / "node.sock"

    def admin(self, *argv: str, stdin: str | None = None) -> CliResult:
        """A command on the node host, as the node's user, on its state directory."""
        proc = subprocess.run(
            [*self.wrap, self.python, "-m", "harbor_confluence.cli", *argv],
            input=stdin,
            capture_output=True,
            text=True,
            env=_env({"HARBOR_CONFLUENCE_HOME": str(self.home), "HOME": str(self.home)}),
            timeout=60,
            check=False,
            cwd=self.cwd,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def setup(self, email: str, api_token: str, identities: Sequence[tuple[str, str]]) -> None:
        for argv, stdin in (
            (("node", "init"), None),
            (("config", "set", "base-url", self.sim_url), None),
            (("token", "set", "--basic", "--email", email), api_token + "\n"),
        ):
            r = self.admin(*argv, stdin=stdin)
            assert r.code == 0, r.err
        for name, role in identities:
            r = self.admin("node", f"add-{role}", name, "--json")
            assert r.code == 0, r.err
            self.tokens[f"{name}/{role}"] = r.json()["token"]

    def start(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [*self.wrap, self.python, "-m", "harbor_confluence.cli", "node", "serve",
             "--listen", f"127.0.0.1:{self.port}"],
            env=_env({"HARBOR_CONFLUENCE_HOME": str(self.home), "HOME": str(self.home)}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.cwd,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"node exited: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError("the node did not start")

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.proc = None
        return err

    def client_env(self, who: str, *, socket: bool = False) -> dict[str, str]:
        where = (
            {"HARBOR_NODE_SOCKET": str(self.socket)} if socket else {"HARBOR_NODE_URL": self.url}
        )
        return {**where, "HARBOR_NODE_TOKEN": self.tokens.get(who, who)}

    def client(
        self,
        who: str,
        *argv: str,
        socket: bool = False,
        stdin: str | None = None,
        wrap: Sequence[str] = (),
        extra: dict[str, str] | None = None,
    ) -> CliResult:
        """The CLI in client mode with ``who``'s token (or a literal token)."""
        env = _env({**self.client_env(who, socket=socket), "HOME": "/nonexistent", **(extra or {})})
        proc = subprocess.run(
            [*wrap, self.python, "-m", "harbor_confluence.cli", *argv],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
            cwd=self.cwd,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


def writes(sim: Any) -> list[Any]:
    """Every non-GET request the simulator received."""
    return [e for e in sim.exchanges if e.method != "GET"]


def held_ticket(result: CliResult) -> str:
    assert result.code == 4, (result.code, result.out, result.err)
    return str(json.loads(result.out)["ticket"])
