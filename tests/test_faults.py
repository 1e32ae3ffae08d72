"""Every fault of tests/faults.py against a read and an approved write, as README's
"Faults and retries" table says: the outcome, how often the request reached the server,
and no traceback.  Small limits (deadline 1 s, cap 1 MiB) keep it fast; two tests in a
child process show the default cap keeps a 1 GB body and a gzip bomb out of memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from harbor_confluence.pipeline.executor import Port
from harbor_confluence.pipeline.transport import RetryPolicy
from harbor_confluence.secrets.credentials import Credential
from tests import faults
from tests.conftest import API_TOKEN, EMAIL, ROOT
from tests.faults import Answer, FaultServer

pytestmark = pytest.mark.timeout(60)

DEADLINE = 1.0
CAP = faults.MIB
# Real retry counts, short waits: a 429 without Retry-After waits 0.01, 0.02, 0.04 s.
RETRY = RetryPolicy(default_wait=0.01, connect_wait=0.01)
PAGE = {
    "id": "98305",
    "title": "Runbook",
    "spaceId": "65538",
    "status": "current",
    "version": {"number": 3},
    "body": {"storage": {"value": "<p>old</p>", "representation": "storage"}},
}
CREATED = {"id": "98999", "title": "Fault page", "spaceId": "65538", "status": "current"}
# How `harbor-confluence queue status` exits by state.
STATE_EXIT = {"succeeded": 0, "failed": 5, "unknown": 4}


@dataclass(frozen=True)
class Case:
    """One row of the README table."""

    name: str
    install: Callable[[FaultServer, FaultServer], None]  # (fault, other origin)
    read_error: str | None  # None: the read succeeds
    read_sends: int
    write_state: str
    write_sends: int
    status: int | None = None  # the status the Result carries, if any
    port: dict[str, Any] = field(default_factory=dict)


def always(make: Callable[[], Answer]) -> Callable[[FaultServer, FaultServer], None]:
    def install(fault: FaultServer, other: FaultServer) -> None:
        fault.default = make()

    return install


def then_ok(*first: Answer) -> Callable[[FaultServer, FaultServer], None]:
    def install(fault: FaultServer, other: FaultServer) -> None:
        fault.default = faults.ok(CREATED)
        fault.script(*first)

    return install


def redirect(code: int, elsewhere: bool) -> Callable[[FaultServer, FaultServer], None]:
    def install(fault: FaultServer, other: FaultServer) -> None:
        origin = other.url if elsewhere else fault.url
        fault.default = faults.redirect(code, f"{origin}/wiki/api/v2/pages/98305")

    return install


CASES = [
    Case("slow answer within the deadline", always(lambda: faults.slow(0.2, faults.ok(CREATED))),
         None, 1, "succeeded", 1, 200),
    Case("timeout after sending (no answer within the read timeout)", always(faults.hang),
         "timeout", 1, "unknown", 1, port={"timeout": 0.3, "deadline": 5.0}),
    Case("hang: no answer by the deadline", always(faults.hang), "deadline", 1, "unknown", 1),
    Case("slow answer past the deadline", always(lambda: faults.slow(10, faults.ok(CREATED))),
         "deadline", 1, "unknown", 1),
    Case("body dripping 1 byte / 0.5 s past the deadline", always(faults.drip),
         "deadline", 1, "unknown", 1, 200),
    Case("headers dripping 1 byte / 0.5 s past the deadline", always(faults.drip_headers),
         "deadline", 1, "unknown", 1),
    Case("reset before the headers", always(faults.reset_before_headers),
         "transport", 1, "unknown", 1),
    Case("reset after the headers", always(faults.reset_after_headers),
         "transport", 1, "unknown", 1, 200),
    Case("429 with Retry-After, then 200", then_ok(faults.status(429, "0")),
         None, 2, "succeeded", 2, 200),
    Case("429 with Retry-After, every time", always(lambda: faults.status(429, "0")),
         "upstream", 4, "failed", 4, 429),
    Case("429 without Retry-After, every time", always(lambda: faults.status(429)),
         "upstream", 4, "failed", 4, 429),
    Case("429 asking for longer than max_wait", always(lambda: faults.status(429, "3600")),
         "upstream", 1, "failed", 1, 429),
    Case("429 asking to wait past the deadline", always(lambda: faults.status(429, "5")),
         "upstream", 1, "failed", 1, 429),
    Case("500", always(lambda: faults.status(500)), "upstream", 1, "failed", 1, 500),
    Case("502", always(lambda: faults.status(502)), "upstream", 1, "unknown", 1, 502),
    Case("503 with Retry-After, every time", always(lambda: faults.status(503, "0")),
         "upstream", 4, "failed", 1, 503),
    Case("503 without Retry-After, every time", always(lambda: faults.status(503)),
         "upstream", 4, "failed", 1, 503),
    Case("503 once, then 200", then_ok(faults.status(503, "0")), None, 2, "failed", 1),
    Case("504", always(lambda: faults.status(504)), "upstream", 1, "unknown", 1, 504),
    Case("301 to another origin", redirect(301, True), "redirect", 1, "failed", 1, 301),
    Case("302 to another origin", redirect(302, True), "redirect", 1, "failed", 1, 302),
    Case("307 to another origin", redirect(307, True), "redirect", 1, "failed", 1, 307),
    Case("302 to the same origin", redirect(302, False), "redirect", 1, "failed", 1, 302),
    Case("307 to the same origin", redirect(307, False), "redirect", 1, "failed", 1, 307),
    Case("200 text/html", always(lambda: faults.raw(200, b"<html>login</html>", "text/html")),
         "upstream", 1, "unknown", 1, 200),
    Case("200 JSON without a Content-Type",
         always(lambda: faults.raw(200, json.dumps(CREATED).encode(), None)),
         "upstream", 1, "unknown", 1, 200),
    Case("200 JSON that does not parse",
         always(lambda: faults.raw(200, b'{"id": "1",', "application/json")),
         "upstream", 1, "unknown", 1, 200),
    Case("body over the cap (1 GB, Content-Length)", always(faults.huge),
         "too_large", 1, "unknown", 1, 200),
    Case("body over the cap (1 GB, chunked)", always(lambda: faults.huge(chunked=True)),
         "too_large", 1, "unknown", 1, 200),
    Case("gzip bomb (~1 MB -> 1 GB)", always(faults.gzip_bomb),
         "too_large", 1, "unknown", 1, 200),
    Case("gzip body that does not decompress",
         always(lambda: faults.raw(200, b"not gzip", "application/json",
                                   [("Content-Encoding", "gzip")])),
         "decoding", 1, "unknown", 1, 200),
    Case("empty 2xx (204)", always(lambda: faults.raw(204, b"", None)),
         None, 1, "succeeded", 1, 204),
]  # fmt: skip
IDS = [c.name for c in CASES]
WRITES = ["create-page", "update-page", "delete-page"]
METHOD = {"create-page": "POST", "update-page": "PUT", "delete-page": "DELETE"}


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def other() -> Iterator[FaultServer]:
    """Another origin: a redirect's target, which must never be contacted."""
    with FaultServer() as server:
        yield server


def make_port(home: Path, url: str, **overrides: Any) -> Port:
    kwargs: dict[str, Any] = {
        "deadline": DEADLINE,
        "max_response_bytes": CAP,
        "retry": RETRY,
        **overrides,
    }
    return Port.load(
        home=home,
        base_url=url,
        credential=Credential.basic(EMAIL, API_TOKEN, "test"),
        requester="pytest",
        **kwargs,
    )


def no_traceback(payload: Any) -> None:
    text = json.dumps(payload, default=str)
    assert "Traceback" not in text and 'File "' not in text


def hold(port: Port, fault: FaultServer, write: str) -> str:
    """Hold ``write`` (an update reads the page first); nothing of the write is sent."""
    fault.default = faults.ok(PAGE)
    if write == "create-page":
        data: dict[str, Any] = {
            "body": {
                "spaceId": "65538",
                "title": "Fault page",
                "body": {"representation": "storage", "value": "<p>new</p>"},
            }
        }
    elif write == "update-page":
        data = {
            "path": {"id": "98305"},
            "body": {"body": {"representation": "storage", "value": "<p>new</p>"}},
        }
    else:
        data = {"path": {"id": "98305"}}
    held = port.call(write, data)
    assert held.outcome == "held" and held.ticket
    assert fault.count(METHOD[write]) == 0
    return held.ticket


def run_approved(port: Port, ticket_id: str, write: str) -> Any:
    ticket = port.approve(ticket_id, operator="alice")
    if write == "delete-page":  # deletes need two operators, neither the requester
        assert ticket.state == "pending"
        ticket = port.approve(ticket_id, operator="bob")
    return ticket


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_read(case: Case, fault: FaultServer, other: FaultServer, home: Path) -> None:
    case.install(fault, other)
    with make_port(home, fault.url, **case.port) as port:
        result = port.call("get-page", {"path": {"id": "98305"}})
    if case.read_error is None:
        assert result.ok, result.to_dict()
    else:
        assert not result.ok and result.error is not None, result.to_dict()
        assert result.error["type"] == case.read_error, result.to_dict()
    if case.status is not None:
        assert result.status == case.status
    assert fault.count("GET") == case.read_sends
    assert other.count() == 0
    no_traceback(result.to_dict())


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_approved_write(
    case: Case,
    write: str,
    fault: FaultServer,
    other: FaultServer,
    home: Path,
    cli: Callable[..., Any],
) -> None:
    with make_port(home, fault.url, **case.port) as port:
        ticket_id = hold(port, fault, write)
        case.install(fault, other)
        ticket = run_approved(port, ticket_id, write)
        assert ticket.state == case.write_state, ticket.result
        assert fault.count(METHOD[write]) == case.write_sends
        assert other.count() == 0
        result = ticket.result or {}
        no_traceback(result)
        if case.write_state != "succeeded":
            assert result["error"]["type"] == (case.read_error or "upstream"), result
        if case.write_state == "unknown":
            assert "queue resolve" in result["message"]
        # Never again: an executed ticket cannot be run a second time.
        assert fault.count(METHOD[write]) == case.write_sends
    status = cli("queue", "status", ticket_id)
    assert status.code == STATE_EXIT[case.write_state], status.out


# -- connections that never open: refused, timed out ------------------------------------------


def count_attempts(port: Port) -> list[str]:
    """Every request the port's httpx client starts (refused ones never reach a server)."""
    seen: list[str] = []
    port.client.event_hooks["request"].append(lambda r: seen.append(r.method))
    return seen


def test_read_connection_refused_is_retried_then_connect_error(
    fault: FaultServer, home: Path
) -> None:
    fault.refuse()
    with make_port(home, fault.url) as port:
        attempts = count_attempts(port)
        result = port.call("get-page", {"path": {"id": "98305"}})
    assert not result.ok and result.error and result.error["type"] == "connect"
    assert attempts == ["GET"] * 4  # the first try and RETRY.max_retries more
    assert fault.count() == 0
    no_traceback(result.to_dict())


@pytest.mark.parametrize("write", WRITES)
def test_write_connection_refused_is_retried_then_failed(
    write: str, fault: FaultServer, home: Path
) -> None:
    with make_port(home, fault.url) as port:
        ticket_id = hold(port, fault, write)
        fault.refuse()
        attempts = count_attempts(port)
        ticket = run_approved(port, ticket_id, write)
    assert ticket.state == "failed"
    assert ticket.result and ticket.result["error"]["type"] == "connect"
    assert "nothing reached Confluence" in ticket.result["message"]
    assert attempts == [METHOD[write]] * 4  # refused: no byte left, so it may go again
    assert fault.count(METHOD[write]) == 0


def test_read_connect_timeout_is_not_retried(fault: FaultServer, home: Path) -> None:
    fault.blackhole()
    with make_port(home, fault.url, timeout=0.3, deadline=5.0) as port:
        attempts = count_attempts(port)
        result = port.call("get-page", {"path": {"id": "98305"}})
    assert not result.ok and result.error and result.error["type"] == "connect"
    assert attempts == ["GET"]
    assert fault.count() == 0


@pytest.mark.parametrize("write", WRITES)
def test_write_connect_timeout_is_failed(write: str, fault: FaultServer, home: Path) -> None:
    with make_port(home, fault.url, timeout=0.3, deadline=5.0) as port:
        ticket_id = hold(port, fault, write)
        fault.blackhole()
        attempts = count_attempts(port)
        ticket = run_approved(port, ticket_id, write)
    assert ticket.state == "failed"
    assert ticket.result and ticket.result["error"]["type"] == "connect"
    assert attempts == [METHOD[write]]
    assert fault.count(METHOD[write]) == 0


def test_read_deadline_before_connecting(fault: FaultServer, home: Path) -> None:
    fault.blackhole()
    with make_port(home, fault.url, timeout=30.0, deadline=0.5) as port:
        attempts = count_attempts(port)
        result = port.call("get-page", {"path": {"id": "98305"}})
    assert not result.ok and result.error
    assert result.error == {
        "type": "deadline",
        "message": "no complete answer within 0.5 s (nothing was sent)",
    }
    assert attempts == ["GET"]


@pytest.mark.parametrize("write", WRITES)
def test_deadline_before_connecting_sends_nothing(
    write: str, fault: FaultServer, home: Path
) -> None:
    """The deadline passing while the connection is still being opened: nothing was sent,
    so the approved write is ``failed``, not ``unknown``."""
    with make_port(home, fault.url, timeout=30.0, deadline=0.5) as port:
        ticket_id = hold(port, fault, write)
        fault.blackhole()
        attempts = count_attempts(port)
        ticket = run_approved(port, ticket_id, write)
    assert ticket.state == "failed"
    assert ticket.result and ticket.result["error"]["type"] == "deadline"
    assert "nothing was sent" in ticket.result["error"]["message"]
    assert attempts == [METHOD[write]]
    assert fault.count(METHOD[write]) == 0


# -- the CLI's exit code for a failed read ------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda: faults.status(500), "upstream"),
        (lambda: faults.status(502), "upstream"),
        (lambda: faults.raw(200, b"<html></html>", "text/html"), "upstream"),
        (faults.huge, "too_large"),
        (faults.gzip_bomb, "too_large"),
        (faults.reset_before_headers, "transport"),
        (lambda: faults.redirect(302, "http://127.0.0.1:9/x"), "redirect"),
    ],
    ids=["500", "502", "html", "huge", "bomb", "reset", "redirect"],
)
def test_cli_run_exits_5(
    answer: Callable[[], Answer],
    error: str,
    fault: FaultServer,
    home: Path,
    cli: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI at its defaults (8 MiB cap, 60 s deadline): exit 5, the error as data."""
    for key, value in {
        "CONFLUENCE_URL": fault.url,
        "CONFLUENCE_EMAIL": EMAIL,
        "CONFLUENCE_API_TOKEN": API_TOKEN,
    }.items():
        monkeypatch.setenv(key, value)
    fault.default = answer()
    out = cli("run", "get-page", "--input", '{"path": {"id": "98305"}}', "--json")
    assert out.code == 5, out.err
    assert out.json()["error"]["type"] == error
    assert "Traceback" not in out.out + out.err
    assert fault.count("GET") == 1


# -- memory: a 1 GB body and a gzip bomb at the default cap, measured in a child ---------------

CHILD = r"""
import json, resource, sys, tempfile
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.pipeline.executor import Port

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

port = Port.load(home=tempfile.mkdtemp(), base_url=sys.argv[1],
                 credential=Credential.basic("agent@example.com", "token", "child"))
warm = port.call("get-page", {"path": {"id": "98305"}})  # imports, connection, compiled action
assert warm.ok, warm.to_dict()
peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss_before = rss_kib()
result = port.call("get-page", {"path": {"id": "98305"}})
peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_before_kib": peak_before, "rss_before_kib": rss_before,
                  "peak_after_kib": peak_after, "result": result.to_dict()}))
"""
# Linux carries a process's peak RSS over fork and exec: a child of pytest starts with
# pytest's size as its ru_maxrss.  A small launcher in between gives the measuring
# process a clean one (the launcher's own RSS, a few MB, is what it inherits).
LAUNCHER = (
    "import subprocess, sys; "
    "sys.exit(subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]]).returncode)"
)


def measure(fault: FaultServer, hostile: Answer) -> dict[str, Any]:
    """Peak RSS of a clean child while it refuses ``hostile`` (after a warm-up call)."""
    fault.script(faults.ok(PAGE), hostile)
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, CHILD, fault.url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "hostile",
    [faults.huge, lambda: faults.huge(chunked=True), faults.gzip_bomb],
    ids=["1GB-body", "1GB-chunked-body", "gzip-bomb"],
)
def test_default_cap_keeps_a_hostile_gigabyte_out_of_memory(
    hostile: Callable[[], Answer], fault: FaultServer
) -> None:
    report = measure(fault, hostile())
    result = report["result"]
    assert result["error"]["type"] == "too_large"
    assert f"larger than {8 * faults.MIB} bytes after decompression" in result["error"]["message"]
    # The peak during the refused call, against the RSS just before it (conservative: the
    # peak may be an earlier one, from the imports).
    growth_mib = (report["peak_after_kib"] - report["rss_before_kib"]) / 1024
    print(f"peak RSS growth {growth_mib:.1f} MiB ({report})", file=sys.stderr)
    assert growth_mib < 100e6 / 2**20  # 100 MB
    assert fault.count("GET") == 2


def test_bare_httpx_would_hold_the_whole_body(fault: FaultServer) -> None:
    """For contrast (and to show the fault is real): httpx's own ``response.content``
    reads a 64 MiB answer whole; the runner stops at its cap."""
    fault.default = faults.huge(64 * faults.MIB)
    with httpx.Client() as client:
        assert len(client.get(fault.url + "/wiki/api/v2/pages/1").content) == 64 * faults.MIB


def test_async_pool_drops_a_keep_alive_connection_the_server_closed(
    fault: FaultServer, home: Path
) -> None:
    """The async pool asks each idle connection whether its socket is readable (the
    runner answers with one poll on the held socket): a connection the server closed
    while idle is dropped, and the next read opens a new one instead of failing."""
    import asyncio
    import time

    async def two_reads(port: Port) -> list[bool]:
        first = await port.acall("get-page", {"path": {"id": "98305"}})
        fault.drop_connections()
        time.sleep(0.05)  # the close has reached the client's socket
        second = await port.acall("get-page", {"path": {"id": "98305"}})
        return [first.ok, second.ok]

    with make_port(home, fault.url) as port:
        assert asyncio.run(two_reads(port)) == [True, True]
    assert fault.count("GET") == 2
