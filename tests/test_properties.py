"""Property-based tests: every action of the packaged manifest, valid and hostile inputs.

Inputs come from each action's own JSON Schemas (tests/strategies.py), then are broken on
purpose: wrong types, hostile unicode, traversal-looking path values, integral floats,
huge numbers, depth, size, unknown keys, missing required keys.  They are run two ways:
in-process through ``Port.call`` (most examples) and through the real CLI entry point
``harbor_confluence.cli.main`` (fewer, slower).  For every example:

- the outcome is exit 0, 2 (invalid), 3 (denied) or 4 (held); 5 (upstream) only when the
  simulator answered an error status, and each such case is counted;
- nothing but a ``HarborError`` escapes ``Port.call``; the CLI prints no traceback, exits
  without an internal error and, with ``--json``, prints one JSON document;
- a refusal (2, 3) sends nothing; a held write sends no write (only the read an update or
  diff needs first);
- input the action's schemas refuse is refused (2); input drawn valid (including every
  declared bound, at the bound) is not refused, except by the runner's documented extra
  rules (CQL characters, path segments, base64, a search needing one criterion);
- every request that reached the simulator conforms to Atlassian's OpenAPI document, and
  so does the request a held write stored for approval (the default policy holds every
  write, so this is the only place their bytes are checked).

One simulator and one Port serve the whole module; hypothesis runs derandomized with no
example database, so CI sees the same examples every time.  The last test checks the
example budget (>= 2,000 distinct examples) and prints the tallies (see them with -rP).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harbor_confluence.errors import HarborError
from harbor_confluence.pipeline.executor import Port, default_manifest_path
from harbor_confluence.pipeline.manifest import Action, load_manifest
from harbor_confluence.secrets.credentials import Credential
from harbor_confluence.sim import Simulator
from tests.contract import ContractSkip
from tests.strategies import (
    Case,
    boundaries,
    boundary_input,
    hostile_input,
    hostile_strings,
    materialize,
    schema_valid,
    to_json_text,
    valid_case,
)

EMAIL = "props@example.com"
API_TOKEN = "props-api-token-0123456789"
MANIFEST = load_manifest(default_manifest_path())
ACTIONS: dict[str, Action] = {a.name: a for a in MANIFEST.actions}
NAMES = sorted(ACTIONS)

# Examples per action (in-process) and for the CLI; they add up to >= MIN_EXAMPLES.
VALID_PER_ACTION = 15
HOSTILE_PER_ACTION = 30
BOUNDARY_EXAMPLES = 2  # per declared bound and side (tests below enumerate every bound)
CLI_EXAMPLES = 100
UNKNOWN_ACTION_EXAMPLES = 40
MIN_EXAMPLES = 2_000

ALLOWED_EXITS = frozenset({0, 2, 3, 4, 5})
_PRE_READ_TRANSFORMS = frozenset({"page-diff"})
# Runner-built writes that read once before their request can be built (issue 17: a space
# key resolved to its id, a template's body), the action they read with, and the rules of
# the refusals only that read can show.
_WRITE_PRE_READS = {"space-key": "list-spaces", "page-from-template": "get-template"}
_READ_SHOWN_RULES = frozenset({"exists", "template"})

# No "explain" phase: it re-runs a failing example many times to annotate it, which
# costs more than it tells here (each example already names its mutations).
BASE = settings(
    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
        HealthCheck.differing_executors,
    ],
)


# -- tallies (printed by the last test) ----------------------------------------------------


@dataclass
class Tally:
    examples: Counter[str] = field(default_factory=Counter)  # per test kind
    exits: Counter[int] = field(default_factory=Counter)
    upstream: Counter[tuple[str, int]] = field(default_factory=Counter)  # (action, status)
    upstream_sample: dict[tuple[str, int], str] = field(default_factory=dict)
    refused_valid: Counter[tuple[str, str]] = field(default_factory=Counter)
    schema_valid_hostile: Counter[str] = field(default_factory=Counter)
    exchanges: int = 0
    held_checked: int = 0
    contract_notes: int = 0
    tests_run: set[str] = field(default_factory=set)
    distinct: set[tuple[str, str, str]] = field(default_factory=set)

    def count(self, kind: str, name: str, case: Any) -> None:
        """One executed example; ``distinct`` tells generated inputs apart from re-runs."""
        self.examples[kind] += 1
        self.distinct.add((kind, name, repr(case)))

    def total(self) -> int:
        return sum(self.examples.values())


TALLY = Tally()


# -- the world: one simulator, one Port, a CLI environment -----------------------------------


@dataclass
class World:
    sim: Simulator
    port: Port
    contract: Any
    cli_home: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, contract: Any) -> Iterator[World]:
    if contract is None and os.environ.get("HARBOR_REQUIRE_CONTRACT") == "1":
        pytest.fail("Atlassian's OpenAPI documents are missing: requests cannot be checked")
    root = tmp_path_factory.mktemp("props")
    with (
        Simulator(email=EMAIL, api_token=API_TOKEN) as sim,
        pytest.MonkeyPatch.context() as mp,
    ):
        cli_home = root / "cli-state"
        mp.setenv("HARBOR_CONFLUENCE_HOME", str(cli_home))
        mp.setenv("CONFLUENCE_URL", sim.url)
        mp.setenv("CONFLUENCE_EMAIL", EMAIL)
        mp.setenv("CONFLUENCE_API_TOKEN", API_TOKEN)
        for var in ("CONFLUENCE_ACCESS_TOKEN", "HARBOR_NODE_URL", "HARBOR_NODE_SOCKET",
                    "HARBOR_DEBUG"):  # fmt: skip
            mp.delenv(var, raising=False)
        with Port.load(
            home=root / "port-state",
            base_url=sim.url,
            credential=Credential.basic(EMAIL, API_TOKEN, "test"),
            requester="hypothesis",
        ) as port:
            yield World(sim, port, contract, cli_home)


# -- one example, and the properties every example must hold --------------------------------


@dataclass
class Outcome:
    code: int
    error: dict[str, Any] | None
    status: int | None  # the result's HTTP status, in-process only
    ticket: str | None = None  # a held request's ticket, in-process only


@dataclass(frozen=True)
class HeldExchange:
    """A held request as the contract checker reads an exchange: what approval would send.

    The stored request carries no credential (it is attached at send time), so it is
    checked as if answered 401, the one status under which the checker tolerates that.
    """

    method: str
    path: str
    query: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    status: int = 401
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes = b""

    @classmethod
    def of(cls, prepared: Any) -> HeldExchange:
        url = urlsplit(prepared.url)
        headers = dict(prepared.headers)
        if prepared.content_type:
            headers["Content-Type"] = prepared.content_type
        return cls(
            prepared.method, url.path, url.query, tuple(headers.items()), prepared.body or b""
        )


def _short(value: Any, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _route_regex(route: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]*\})", route)
    return re.compile(
        "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p) + r"\Z"
    )


# Refusals that depend on the stored body (a section or text not found, a Markdown edit
# that does not fit it, a version that moved): made after the update's own read.
_AFTER_READ_RULES = frozenset({"not_found", "markdown", "storage", "conflict"})


def _runner_only_rule(violation: dict[str, Any]) -> bool:
    """Refusals of schema-valid input the runner documents on top of the schemas."""
    message = str(violation.get("message", ""))
    rule = violation.get("rule")
    return (
        (rule == "pattern" and "is not allowed in a search value" in message)  # CQL text
        or (
            rule == "pattern"
            and message in ("control characters are not allowed", "empty or dot segment")
        )
        or rule == "contentEncoding"  # upload: the base64 pattern admits bad padding
        or rule == "minProperties"  # search-content: at least one search criterion
        or rule in ("truncated", "xml")  # a cut copy; text storage (XML) cannot hold
        or (rule in ("required", "not") and re.search(r"\bop\b", message) is not None)
        or rule in _AFTER_READ_RULES
        or rule in _READ_SHOWN_RULES  # a space key no space has; a template without a body
    )


def _refused_after_read(action: Action | None, outcome: Outcome) -> bool:
    """An edit computed from the stored body (edit-page, a Markdown update) refused for
    what only that body shows."""
    if action is None or action.update is None or outcome.code != 2:
        return False
    if action.transform != "page-edit" and action.markdown_body is None:
        return False
    violations = (outcome.error or {}).get("violations") or []
    return bool(violations) and all(v.get("rule") in _AFTER_READ_RULES for v in violations)


def _refused_for_what_it_read(action: Action | None, outcome: Outcome) -> bool:
    """A runner-built write refused for what its one read showed (no such space key)."""
    if action is None or action.transform not in _WRITE_PRE_READS or outcome.code != 2:
        return False
    violations = (outcome.error or {}).get("violations") or []
    return bool(violations) and all(v.get("rule") in _READ_SHOWN_RULES for v in violations)


def _check_contract(world: World, exchange: Any) -> None:
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always", ContractSkip)
        world.contract.check_exchange(exchange)
    TALLY.contract_notes += len(notes)


def check_example(world: World, action: Action | None, name: str, case: Case,
                  data: Any, outcome: Outcome) -> None:  # fmt: skip
    """The properties; each assert is its own line so hypothesis keeps bugs apart."""
    exchanges = world.sim.exchanges
    received = world.sim.request_count
    TALLY.exits[outcome.code] += 1
    TALLY.exchanges += len(exchanges)
    where = f"{name} {case.mutations or 'valid'} -> exit {outcome.code} {_short(outcome.error)}"

    # P1: only the documented exit codes.
    assert outcome.code in ALLOWED_EXITS, f"[exit-code] {where}"

    # P2: exit 5 only when the simulator really answered an error status.
    if outcome.code == 5:
        statuses = [e.status for e in exchanges]
        assert any(s >= 400 for s in statuses), f"[exit-5-without-error-status] {where}"
        TALLY.upstream[(name, max(statuses))] += 1
        message = str((outcome.error or {}).get("message", ""))[:120]
        TALLY.upstream_sample.setdefault((name, max(statuses)), message)

    # P3: a refusal sends nothing (an edit refused for what the stored body shows has
    # made only the one read it needed).
    if outcome.code in (2, 3):
        sent = [f"{e.method} {e.path}" for e in exchanges]
        if _refused_for_what_it_read(action, outcome):
            assert action is not None and action.transform is not None
            read_route = _route_regex(ACTIONS[_WRITE_PRE_READS[action.transform]].route)
            assert received == 1, f"[refused-extra-reads] {where}; sent {sent}"
            assert all(e.method == "GET" and read_route.match(e.path) for e in exchanges), (
                f"[refused-but-sent] {where}; sent {sent}"
            )
        elif _refused_after_read(action, outcome):
            assert action is not None and action.update is not None
            read_route = _route_regex(ACTIONS[action.update.read].route)
            assert received <= 1, f"[refused-extra-reads] {where}; sent {sent}"
            assert all(e.method == "GET" and read_route.match(e.path) for e in exchanges), (
                f"[refused-but-sent] {where}; sent {sent}"
            )
        else:
            assert received == 0, f"[refused-but-sent] {where}; sent {sent}"

    # P4: a held write sends no write; only the read an update or diff makes first.
    if outcome.code == 4:
        assert action is not None and not action.is_read, f"[held-read] {where}"
        writes = [f"{e.method} {e.path}" for e in exchanges if e.method != "GET"]
        assert not writes, f"[held-but-wrote] {where}; sent {writes}"
        reads = [e for e in exchanges if e.method == "GET"]
        if action.update is not None:
            read_route = _route_regex(ACTIONS[action.update.read].route)
            assert len(reads) <= 1, f"[held-extra-reads] {where}"
            assert all(read_route.match(e.path) for e in reads), f"[held-odd-read] {where}"
        elif action.transform in _WRITE_PRE_READS:
            read_route = _route_regex(ACTIONS[_WRITE_PRE_READS[action.transform]].route)
            assert len(reads) <= 1, f"[held-extra-reads] {where}"
            assert all(read_route.match(e.path) for e in reads), f"[held-odd-read] {where}"
        elif action.transform not in _PRE_READ_TRANSFORMS:
            assert received == 0, f"[held-but-sent] {where}"

    # P5: every request that went out conforms to Atlassian's document.
    if world.contract is not None:
        for exchange in exchanges:
            _check_contract(world, exchange)

    # P9: so does the request a held write would send once approved.
    if outcome.ticket is not None and world.contract is not None:
        ticket = world.port.ticket(outcome.ticket)
        assert ticket is not None, f"[held-ticket-missing] {where}"
        held = HeldExchange.of(ticket.prepared())
        TALLY.held_checked += 1
        try:
            _check_contract(world, held)
        except AssertionError as exc:
            raise AssertionError(f"[held-request-contract] {where}: {exc}") from None

    if action is None:
        return
    judged = schema_valid(action, data)
    # P6: what the action's own schemas refuse, the runner refuses (before sending).
    if judged is False:
        assert outcome.code == 2, f"[invalid-not-refused] {where}"
    # P7: input drawn valid is not refused, except by the runner's documented extra rules.
    if judged and outcome.code == 2:
        violations = (outcome.error or {}).get("violations") or []
        extra_rule = bool(violations) and all(_runner_only_rule(v) for v in violations)
        if case.valid_by_construction:
            assert extra_rule, f"[valid-refused] {where}"
        for v in violations:
            TALLY.refused_valid[(name, f"{str(v.get('field'))[:40]}:{v.get('rule')}")] += 1
    if judged and case.mutations:
        TALLY.schema_valid_hostile[name] += 1


def run_in_process(world: World, name: str, case: Case) -> None:
    action = ACTIONS.get(name)
    data = materialize(case.data)
    world.sim.clear()
    try:
        result = world.port.call(name, data)
    except HarborError as exc:
        outcome = Outcome(exc.exit_code, exc.to_dict(), None)
    except Exception as exc:
        # P0: nothing but a HarborError may escape (let it propagate, with context).
        exc.add_note(f"[only-harbor-errors] {name} {case.mutations or 'valid'}")
        raise
    else:
        code = 4 if result.outcome == "held" else 0 if result.ok else 5
        outcome = Outcome(code, result.error, result.status, result.ticket)
    check_example(world, action, name, case, data, outcome)


# -- (a) in-process, per action ------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_valid_inputs(world: World, name: str) -> None:
    TALLY.tests_run.add("valid")

    @settings(BASE, max_examples=VALID_PER_ACTION)
    @given(case=valid_case(ACTIONS[name]))
    def prop(case: Case) -> None:
        TALLY.count("valid", name, case)
        run_in_process(world, name, case)

    prop()


@pytest.mark.parametrize("name", NAMES)
def test_hostile_inputs(world: World, name: str) -> None:
    TALLY.tests_run.add("hostile")

    @settings(BASE, max_examples=HOSTILE_PER_ACTION)
    @given(case=hostile_input(ACTIONS[name]))
    def prop(case: Case) -> None:
        TALLY.count("hostile", name, case)
        run_in_process(world, name, case)

    prop()


BOUNDS = [(name, *bound) for name in NAMES for bound in boundaries(ACTIONS[name])]


@pytest.mark.parametrize(
    ("name", "slot", "keyword", "side"),
    BOUNDS,
    ids=[f"{n}-{'.'.join(map(str, s))}-{k}-{d}" for n, s, k, d in BOUNDS],
)
def test_boundaries(world: World, name: str, slot: tuple[Any, ...], keyword: str,
                    side: str) -> None:  # fmt: skip
    """Every bound the manifest declares, at the bound (valid) and one step past it."""
    TALLY.tests_run.add("boundary")

    @settings(BASE, max_examples=BOUNDARY_EXAMPLES)
    @given(case=boundary_input(ACTIONS[name], slot, keyword, side))
    def prop(case: Case) -> None:
        TALLY.count("boundary", name, case)
        run_in_process(world, name, case)

    prop()


# -- (b) the real CLI entry point, in-process ------------------------------------------------


def _cli_case(name: str) -> st.SearchStrategy[tuple[str, Case]]:
    action = ACTIONS[name]
    return st.tuples(st.just(name), st.one_of(valid_case(action), hostile_input(action)))


def run_cli(
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    case: Case,
    *,
    via_stdin: bool,
    ascii_only: bool,
) -> Outcome:
    from harbor_confluence.cli import main

    text = to_json_text(case.data, ascii_only=ascii_only)
    if via_stdin:
        raw = io.BytesIO(text.encode("utf-8"))
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw, encoding="utf-8"))
        argv = ["run", name, "--input", "-", "--json"]
    else:
        argv = ["run", name, f"--input={text}", "--json"]
    capsys.readouterr()
    world.sim.clear()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusing the command line exits like the real CLI
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    where = f"{name} {case.mutations or 'valid'} -> exit {code}"
    # P8: no traceback, no internal error, and --json prints one JSON document.
    assert "Traceback" not in out + err, f"[cli-traceback] {where}: {err[-2000:]}"
    assert code != 1, f"[cli-internal-error] {where}: {_short(out + err, 1500)}"
    payload = None
    if out.strip():
        try:
            payload = json.loads(out)
        except ValueError:
            pytest.fail(f"[cli-json-output] {where}: stdout is not JSON: {_short(out)}")
    error = payload.get("error") if isinstance(payload, dict) else None
    return Outcome(code, error if isinstance(error, dict) else None, None)


def test_cli_inputs(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    TALLY.tests_run.add("cli")

    @settings(BASE, max_examples=CLI_EXAMPLES)
    @given(
        drawn=st.sampled_from(NAMES).flatmap(_cli_case),
        via_stdin=st.booleans(),
        ascii_only=st.booleans(),
    )
    def prop(drawn: tuple[str, Case], via_stdin: bool, ascii_only: bool) -> None:
        name, case = drawn
        TALLY.count("cli", name, (case, via_stdin, ascii_only))
        outcome = run_cli(
            world, capsys, monkeypatch, name, case, via_stdin=via_stdin, ascii_only=ascii_only
        )
        data = materialize(case.data)
        check_example(world, ACTIONS[name], name, case, data, outcome)

    prop()


# fmt: off
_NEAR_MISSES = tuple(
    variant
    for n in ("get-page", "create-page", "delete-page", "search-content")
    for variant in (n.upper(), n.replace("-", "_"), f" {n}", f"{n} ", f"{n}\x00", f"../{n}",
                    f"{n}/..", f"{n}\u202e", n[:-1])
)
# fmt: on


def test_unknown_action_names(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names that are not actions: refused (2 or 3) in-process and by the CLI, nothing sent."""
    TALLY.tests_run.add("unknown")

    @settings(BASE, max_examples=UNKNOWN_ACTION_EXAMPLES)
    @given(
        name=st.one_of(st.sampled_from(_NEAR_MISSES), hostile_strings(), st.text(max_size=20))
        .map(materialize)
        .filter(lambda n: n not in ACTIONS),
        through_cli=st.booleans(),
    )
    def prop(name: str, through_cli: bool) -> None:
        TALLY.count("unknown-action", name, through_cli)
        case = Case(("unknown-action",), {"query": {}})
        if through_cli:
            outcome = run_cli(
                world, capsys, monkeypatch, name, case, via_stdin=False, ascii_only=True
            )
            check_example(world, None, name, case, case.data, outcome)
            assert outcome.code in (2, 3), f"[unknown-action-exit] {name!r} -> {outcome.code}"
            return
        world.sim.clear()
        try:
            world.port.call(name, case.data)
        except HarborError as exc:
            outcome = Outcome(exc.exit_code, exc.to_dict(), None)
        else:
            pytest.fail(f"[unknown-action-ran] {name!r} was run")
        check_example(world, None, name, case, case.data, outcome)
        assert outcome.code in (2, 3), f"[unknown-action-exit] {name!r} -> {outcome.code}"

    prop()


# -- the budget ------------------------------------------------------------------------------


def test_zz_example_budget() -> None:
    """At least MIN_EXAMPLES distinct examples ran across the file; prints the tallies."""
    distinct = Counter(kind for kind, _, _ in TALLY.distinct)
    samples = {f"{a} {s}": m for (a, s), m in sorted(TALLY.upstream_sample.items())}
    lines = [
        f"property examples: {len(TALLY.distinct)} distinct {dict(distinct)}; "
        f"{TALLY.total()} runs including hypothesis' shrinking",
        f"exit codes: {dict(sorted(TALLY.exits.items()))}",
        f"exchanges checked against the OpenAPI documents: {TALLY.exchanges} "
        f"+ {TALLY.held_checked} held requests (ContractSkip notes: {TALLY.contract_notes})",
        f"exit 5 (the simulator answered an error status), by action and status: "
        f"{sum(TALLY.upstream.values())} {dict(TALLY.upstream.most_common())}",
        f"exit 5 messages: {samples}",
        f"schema-valid input refused by runner-only rules: "
        f"{sum(TALLY.refused_valid.values())} {dict(TALLY.refused_valid.most_common())}",
        f"hostile draws that stayed schema-valid: {sum(TALLY.schema_valid_hostile.values())}",
    ]
    print("\n" + "\n".join(lines))
    if TALLY.tests_run < {"valid", "hostile", "boundary", "cli", "unknown"}:
        pytest.skip(f"only part of the file ran ({sorted(TALLY.tests_run)}); budget not checked")
    planned = (
        len(NAMES) * (VALID_PER_ACTION + HOSTILE_PER_ACTION)
        + len(BOUNDS) * BOUNDARY_EXAMPLES
        + CLI_EXAMPLES
        + UNKNOWN_ACTION_EXAMPLES
    )
    assert planned >= MIN_EXAMPLES
    assert len(TALLY.distinct) >= MIN_EXAMPLES, lines[0]
