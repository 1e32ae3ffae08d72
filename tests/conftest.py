"""Shared fixtures: a simulator on loopback, a throwaway state dir, a Port, the CLI.

Every exchange a test makes with the simulator is validated against Atlassian's
OpenAPI document at teardown.  Without the document the check is off, and the session
says so (in its header and as a warning); with ``HARBOR_REQUIRE_CONTRACT=1`` (CI) a
missing document stops the session before any test runs.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.pipeline.executor import Port
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator

ROOT = Path(__file__).resolve().parents[1]
EMAIL = "agent@example.com"
# Distinctive values, so leak checks can search for them.
API_TOKEN = "canary-api-token-" + secrets.token_hex(8)
ACCESS_TOKEN = "canary-access-token-" + secrets.token_hex(8)


def pytest_configure(config: pytest.Config) -> None:
    """Under HARBOR_REQUIRE_CONTRACT=1 the contract check may not switch itself off."""
    from tests.contract import ENV_REQUIRE, contract_required, missing_message, missing_specs

    missing = missing_specs()
    if missing and contract_required():
        raise pytest.UsageError(
            f"{ENV_REQUIRE}=1 but the contract check cannot run: {missing_message(missing)}"
        )


def pytest_report_header(config: pytest.Config) -> str:
    from tests.contract import ENV_REQUIRE, missing_message, missing_specs, spec_dir

    missing = missing_specs()
    if not missing:
        return f"contract: simulator exchanges are checked against {spec_dir()}"
    return (
        f"contract: OFF, exchanges are not checked: {missing_message(missing)} "
        f"({ENV_REQUIRE}=1 makes this an error)"
    )


@pytest.fixture(scope="session")
def contract() -> Any:
    import warnings

    from tests.contract import ContractChecker, ContractSkip, load_spec, missing_message
    from tests.contract import spec_path as contract_spec_path

    spec = load_spec("v2")
    if spec is None:
        warnings.warn(
            ContractSkip(
                "simulator exchanges are not checked against the contract: "
                + missing_message([contract_spec_path("v2")])
            ),
            stacklevel=2,
        )
        return None
    return ContractChecker(spec)


@pytest.fixture
def sim(contract: Any) -> Iterator[Simulator]:
    with Simulator(email=EMAIL, api_token=API_TOKEN, access_token=ACCESS_TOKEN) as s:
        yield s
        exchanges = list(s.exchanges)
    if contract is not None:
        for exchange in exchanges:
            contract.check_exchange(exchange)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("HARBOR_CONFLUENCE_HOME", str(state))
    for var in ("CONFLUENCE_URL", "CONFLUENCE_EMAIL", "CONFLUENCE_API_TOKEN",
                "CONFLUENCE_ACCESS_TOKEN"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    return state


@pytest.fixture
def port(sim: Simulator, home: Path) -> Iterator[Port]:
    with Port.load(
        home=home,
        base_url=sim.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
        requester="pytest",
    ) as p:
        yield p


def e2e_policy(tmp: Path) -> Path:
    """The default policy's hard limits (purge, size caps), then everything automatic."""
    import yaml

    from harbor_confluence.paths import default_policy_path

    rules = yaml.safe_load(default_policy_path().read_text())["rules"]
    keep = [r for r in rules if r["decision"] == "deny"]
    path = tmp / "e2e-policy.yaml"
    path.write_text(yaml.safe_dump({"rules": [*keep, {"name": "e2e-auto", "decision": "auto"}]}))
    return path


@pytest.fixture
def auto(sim: Simulator, home: Path, tmp_path: Path) -> Iterator[Port]:
    """A port on the simulator whose policy sends every write at once (the hard limits
    stay): for end-to-end tests of what the actions do, not of the review queue."""
    with Port.load(
        policy=e2e_policy(tmp_path),
        home=home,
        base_url=sim.url,
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
        requester="e2e",
    ) as p:
        yield p


@pytest.fixture
def cli_env(sim: Simulator, home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for the CLI: the simulator as tenant, Basic auth from the environment."""
    env = {
        "HARBOR_CONFLUENCE_HOME": str(home),
        "CONFLUENCE_URL": sim.url,
        "CONFLUENCE_EMAIL": EMAIL,
        "CONFLUENCE_API_TOKEN": API_TOKEN,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """Run the CLI in-process (fast); ``stdin`` feeds ``--input -``."""
    from harbor_confluence.cli import main

    def run(*argv: str, stdin: str | None = None) -> CliResult:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        code = main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_subprocess(
    *argv: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60
) -> CliResult:
    """Run the real ``harbor-confluence`` in a child process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CONFLUENCE_")}
    full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "harbor_confluence.cli", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
