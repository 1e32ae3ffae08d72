"""The canary: run the suite's flows with distinctive secrets, then look for them everywhere.

Flows: CLI (in-process and a real subprocess) and the Python API (sync and async); success,
validation errors, policy denials, upstream 401/403/500, timeouts, held requests, Bearer
discovery, OAuth refresh (first use, mid-run, concurrent, timed out) and a revoked grant.
Afterwards no stdout, stderr, log record (root, httpx and httpcore at DEBUG), exception
text, result, ticket, or file under the state directory other than the secret file itself
may contain a canary: raw, or base64 (standard and URL-safe) of the secret alone, of
``email:secret``, and of the secret at every byte alignment inside a longer stream.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harbor_confluence.config import LocalConfig
from harbor_confluence.errors import HarborError
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.secrets.store import SecretStore
from harbor_confluence.sim import Simulator
from tests.conftest import CliResult, run_subprocess

EMAIL = "canary.user@example.com"
CANARY_API_TOKEN = "CanaryApiToken" + secrets.token_hex(12)
CANARY_ACCESS_TOKEN = "CanaryAccessToken" + secrets.token_hex(12)
CANARY_PASSWORD = "CanaryClientSecret" + secrets.token_hex(12)  # the OAuth client secret
CANARY_REFRESH = "CanaryRefreshToken" + secrets.token_hex(12)
CANARY_ISSUED = "CanaryIssued" + secrets.token_hex(8)  # prefix of every token the sim issues
CLIENT_ID = "canary-app"
CANARIES = (CANARY_API_TOKEN, CANARY_ACCESS_TOKEN, CANARY_PASSWORD, CANARY_REFRESH, CANARY_ISSUED)
SEARCH = '{"query": {"limit": 2}}'


def encoded_forms(secret: str) -> dict[bytes, str]:
    """Every way the secret could show up: raw, base64 of it and of ``email:secret``
    (standard and URL-safe), and its base64 image at each alignment inside a stream."""
    raw = secret.encode()
    forms: dict[bytes, str] = {raw: "raw"}
    for label, blob in (("token", raw), ("email:token", f"{EMAIL}:{secret}".encode())):
        for enc_name, enc in (("b64", base64.b64encode), ("urlsafe", base64.urlsafe_b64encode)):
            forms[enc(blob).rstrip(b"=")] = f"{enc_name}({label})"
    for shift in range(3):
        for enc_name, enc in (("b64", base64.b64encode), ("urlsafe", base64.urlsafe_b64encode)):
            image = enc(b"\0" * shift + raw)
            core = image[4 if shift else 0 : -4]  # drop groups mixed with neighbouring bytes
            forms[core] = f"{enc_name}(token at offset {shift})"
    return forms


FORMS = {form: f"{secret[:20]}... as {how}" for secret in CANARIES for form, how in
         encoded_forms(secret).items()}  # fmt: skip


def leaks(blob: bytes) -> list[str]:
    return sorted({why for form, why in FORMS.items() if form in blob})


@pytest.fixture
def canary_sim(contract: Any) -> Iterator[Simulator]:
    with Simulator(email=EMAIL, api_token=CANARY_API_TOKEN, access_token=CANARY_ACCESS_TOKEN) as s:
        s.identity.token_prefix = CANARY_ISSUED
        s.identity.register_client(CLIENT_ID, CANARY_PASSWORD)
        yield s
        exchanges = list(s.exchanges)
    if contract is not None:
        for exchange in exchanges:
            contract.check_exchange(exchange)


class Seen:
    """Everything the flows showed to a user, an agent or a log."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, value: Any) -> None:
        if isinstance(value, BaseException):
            self.texts.append((f"{where} str", str(value)))
            self.texts.append((f"{where} repr", repr(value)))
            self.texts.append((f"{where} traceback", "".join(traceback.format_exception(value))))
            if isinstance(value, HarborError):
                self.texts.append((f"{where} to_dict", json.dumps(value.to_dict())))
        elif hasattr(value, "to_dict"):
            self.texts.append((where, json.dumps(value.to_dict(), default=str)))
            self.texts.append((f"{where} repr", repr(value)))
        elif isinstance(value, CliResult):
            self.texts.append((f"{where} stdout", value.out))
            self.texts.append((f"{where} stderr", value.err))
        else:
            self.texts.append((where, str(value)))

    def expect_error(self, where: str, call: Callable[[], Any]) -> BaseException:
        try:
            call()
        except Exception as exc:
            self.add(where, exc)
            return exc
        raise AssertionError(f"{where}: expected an error")


@pytest.mark.timeout(360)  # dozens of CLI runs and two cold subprocess starts
def test_no_canary_leaks_anywhere(
    canary_sim: Simulator,
    home: Path,
    cli: Callable[..., CliResult],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = canary_sim
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "harbor_confluence", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    seen = Seen()
    config = LocalConfig(home)
    for key in ("identity-url", "auth-url", "base-url"):
        config.set(key, sim.url)

    def run(*argv: str, stdin: str | None = None) -> CliResult:
        result = cli(*argv, stdin=stdin)
        seen.add("cli " + " ".join(argv[:3]), result)
        return result

    # -- Basic, stored through the CLI ----------------------------------------------------
    assert run("token", "set", "--basic", "--email", EMAIL, stdin=CANARY_API_TOKEN).code == 0
    assert run("token", "status").code == 0
    assert run("token", "status", "--json").code == 0
    assert run("run", "search-pages", "--input", SEARCH, "--json").code == 0
    assert run("run", "search-pages", "--input", SEARCH).code == 0
    assert run("run", "get-page", "--input", '{"path": {"id": "../x"}}').code == 2
    assert run("run", "get-page", "--input", '{"path": {"id": "../x"}}', "--json").code == 2
    assert run("run", "search-pages", "--input", '{"query": {"limit": 200}}').code == 3
    for status, form in ((401, "--json"), (403, "--json"), (500, "--json"), (401, "")):
        sim.fail_next(1, status=status)
        assert run("run", "search-pages", "--input", SEARCH, *filter(None, [form])).code == 5
    held = run("run", "create-page", "--input", '{"body": {"spaceId": "65538", "title": "C"}}')
    assert held.code == 4
    assert run("queue", "list", "--json").code == 0
    ticket_id = held.out.strip().rsplit(" ", 1)[-1]
    assert run("queue", "show", ticket_id).code == 0
    assert run("auth", "check").code == 0
    assert run("auth", "check", "--json").code == 0
    assert run("config", "get").code == 0

    # -- Basic, Python API ------------------------------------------------------------------
    with Port.load(home=home, requester="canary") as port:
        seen.add("port", port)
        seen.add("ok", port.call("search-pages", {"query": {"limit": 2}}))
        seen.expect_error("invalid", lambda: port.call("get-page", {"path": {"id": "../x"}}))
        seen.expect_error("denied", lambda: port.call("search-pages", {"query": {"limit": 500}}))
        for status in (401, 403, 500):
            sim.fail_next(1, status=status)
            seen.add(f"upstream {status}", port.call("search-pages", {"query": {"limit": 1}}))
        result = port.call("create-page", {"body": {"spaceId": "65538", "title": "Held"}})
        seen.add("held", result)
        assert result.ticket
        seen.add("ticket", port.ticket(result.ticket))
        seen.add("prepared", port.prepare("get-page", {"path": {"id": "98391"}})[0])
    with Port.load(home=home, timeout=0.3) as port:
        sim.delay_next(1, 1.5)
        timed_out = port.call("search-pages", {"query": {"limit": 1}})
        assert timed_out.error and timed_out.error["type"] == "timeout"
        seen.add("timeout", timed_out)

    # -- Bearer through the gateway -----------------------------------------------------
    assert run("token", "set", "--bearer", stdin=CANARY_ACCESS_TOKEN).code == 0
    assert run("run", "search-pages", "--input", SEARCH, "--json").code == 0
    assert run("auth", "check").code == 0
    with Port.load(home=home) as port:
        seen.add("bearer ok", port.call("search-pages", {"query": {"limit": 1}}))
        seen.add("bearer held", port.call("create-page", {"body": {"spaceId": "1", "title": "B"}}))

    # -- OAuth with refresh ----------------------------------------------------------------
    sim.identity.grant(
        client_id=CLIENT_ID,
        scopes=["read:page:confluence", "read:space:confluence"],
        refresh_token=CANARY_REFRESH,
        access_token=CANARY_ISSUED + "-first-access",
    )
    oauth_stdin = f"{CANARY_PASSWORD}\n{CANARY_REFRESH}\n{CANARY_ISSUED}-first-access\n"
    assert run("token", "set", "--oauth", "--client-id", CLIENT_ID, stdin=oauth_stdin).code == 0
    assert run("token", "status", "--json").code == 0
    assert run("run", "search-pages", "--input", SEARCH, "--json").code == 0
    sim.identity.expire_access_tokens()
    assert run("run", "search-pages", "--input", SEARCH).code == 0  # refreshed mid-run
    assert run("auth", "check", "--json").code == 0
    with Port.load(home=home) as port:
        sim.fail_next(1, status=401)  # rejected once: refresh and retry
        seen.add("oauth 401 then ok", port.call("search-pages", {"query": {"limit": 1}}))

        async def concurrent() -> list[Any]:
            sim.identity.expire_access_tokens()
            async with Port.load(home=home) as aport:
                return list(
                    await asyncio.gather(
                        *(aport.acall("search-pages", {"query": {"limit": 1}}) for _ in range(4))
                    )
                )

        for i, r in enumerate(asyncio.run(concurrent())):
            assert r.ok
            seen.add(f"async {i}", r)
    writes_auto = home.parent / "writes-auto.yaml"
    writes_auto.write_text(
        "version: 1\nrules:\n  - {name: all-auto, actions: ['*'], decision: auto}\n"
    )
    with Port.load(policy=writes_auto, home=home) as port:
        body = {"body": {"spaceId": "65538", "title": "Scope"}}
        missing = port.call("create-page", body)  # sent: the token lacks write:page
        assert missing.status == 401 and "write:page:confluence" in str(missing.error)
        seen.add("oauth scope miss", missing)
    with Port.load(home=home, timeout=0.3) as port:
        sim.identity.expire_access_tokens()
        sim.delay_next(1, 1.5)  # the token endpoint itself is slow
        before = len(sim.exchanges)
        slow = port.call("search-pages", {"query": {"limit": 1}})
        assert slow.error and slow.error["type"] == "timeout"
        seen.add("refresh timeout", slow)
        # The simulator still answers the abandoned request after its delay; let it land
        # before later steps inject faults, or it would take their injected answer.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            e.duration >= 1.4 for e in list(sim.exchanges)[before:]
        ):
            time.sleep(0.05)
    assert sim.identity.refresh_count >= 3
    sim.identity.revoke_refresh_tokens()
    sim.identity.expire_access_tokens()
    with Port.load(home=home) as port:
        exc = seen.expect_error("revoked", lambda: port.call("search-pages", {"query": {}}))
        assert "Reconnect" in str(exc)
    assert run("run", "search-pages", "--input", SEARCH).code == 1
    assert run("run", "search-pages", "--input", SEARCH, "--json").code == 1
    assert run("auth", "check").code == 1

    # -- a real subprocess, credentials from the environment ------------------------------
    env = {
        "HARBOR_CONFLUENCE_HOME": str(home),
        "CONFLUENCE_URL": sim.url,
        "CONFLUENCE_EMAIL": EMAIL,
        "CONFLUENCE_API_TOKEN": CANARY_API_TOKEN,
    }
    # (Each subprocess pays the cold start, so only a few: the in-process runs above
    # cover the flows; these check the real stdout/stderr of a child process.)
    ok = run_subprocess("run", "search-pages", "--input", SEARCH, env=env)
    assert ok.code == 0, ok.err
    seen.add("subprocess ok", ok)
    seen.add("subprocess status", run_subprocess("token", "status", env=env))
    sim.fail_next(1, status=500)
    failed = run_subprocess("run", "search-pages", "--input", SEARCH, env=env)
    assert failed.code == 5
    seen.add("subprocess 500", failed)

    # -- the canaries went over the wire (so the search below means something) ----------
    wire = b"".join(
        "".join(f"{k}: {v}\n" for k, v in e.request_headers).encode() + e.request_body
        for e in sim.exchanges
    )
    for secret in (CANARY_API_TOKEN, CANARY_PASSWORD, CANARY_REFRESH, CANARY_ISSUED):
        assert leaks(wire), "the flows never sent the canaries"
        assert any(secret[:20] in why for why in leaks(wire)), secret[:20]
    secret_file = home / "secrets" / "credential.json"
    assert CANARY_PASSWORD.encode() in secret_file.read_bytes()  # the one place it may be

    # -- and nowhere else -----------------------------------------------------------------
    found: list[str] = []
    for where, text in seen.texts:
        found += [f"{where}: {why}" for why in leaks(text.encode())]
    for record in caplog.records:
        parts = [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
        found += [f"log {record.name}: {why}" for why in leaks("\n".join(parts).encode())]
    assert any(r.name.startswith("httpcore") for r in caplog.records), "DEBUG logs not captured"
    files = [p for p in home.rglob("*") if p.is_file() and p != secret_file]
    assert any(p.name == "config.json" for p in files)
    for path in files:
        found += [f"file {path.relative_to(home)}: {why}" for why in leaks(path.read_bytes())]
    assert not found, "canary leaked:\n" + "\n".join(found)


def test_canary_forms_catch_a_basic_header() -> None:
    """The detector itself: a Basic header, or the token in a base64 blob, is caught."""
    header = base64.b64encode(f"{EMAIL}:{CANARY_API_TOKEN}".encode())
    assert leaks(b"Authorization: Basic " + header)
    for prefix in (b"", b"a", b"ab", b"abc"):
        blob = base64.urlsafe_b64encode(prefix + CANARY_PASSWORD.encode() + b"tail")
        assert leaks(b"x" + blob + b"y"), prefix
    assert not leaks(b"Basic " + base64.b64encode(b"someone:else"))


def test_store_file_is_the_only_place(home: Path) -> None:
    """The secret file does hold the secret: the canary test's exemption is not vacuous."""
    from harbor_confluence.secrets.store import SecretRecord

    SecretStore(home).save(SecretRecord(kind="basic", email=EMAIL, api_token=CANARY_API_TOKEN))
    assert leaks((home / "secrets" / "credential.json").read_bytes())
