"""The review page (/review), run for real: `node serve` with the simulator, operators in a
headless Chromium (Playwright), forged requests with httpx.

Browser tests need the ``playwright`` package and a Chromium (Debian: ``apt-get install
chromium``; ``HARBOR_CHROMIUM`` names another binary).  They skip, saying why, when either
is missing, and fail instead when ``HARBOR_REQUIRE_BROWSER=1`` (CI).  Screenshots go to
``HARBOR_SCREENSHOTS`` (default: a temporary directory, printed).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harbor_confluence import NodeClient
from harbor_confluence.sim import Simulator
from tests.conftest import API_TOKEN, EMAIL
from tests.nodeutil import Node, held_ticket

CHROMIUM = os.environ.get("HARBOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "correct horse battery staple"
CREATE = {
    "body": {
        "spaceId": "65538",
        "title": "Review page test",
        "status": "current",
        "body": {"representation": "storage", "value": "<p>held for the review page</p>"},
    }
}
RUNBOOK = "\n".join(
    [
        "<h2>Deploying</h2>",
        "<p>Deploys run from the release branch every Tuesday.</p>",
        '<ac:structured-macro ac:name="info"><ac:rich-text-body><p>Freeze on Fridays.'
        "</p></ac:rich-text-body></ac:structured-macro>",
        "<p>Roll back with <code>deployctl rollback</code> within 30 minutes.</p>",
        '<p>Owner: <ac:link><ri:user ri:account-id="557058:priya" /></ac:link></p>',
        "<h2>Checks</h2>",
        "<p>Smoke tests must pass before traffic shifts.</p>",
    ]
)
RUNBOOK_EDIT = "\n".join(
    [
        "<h2>Deploying</h2>",
        "<p>Deploys run from the release branch every Tuesday and Thursday.</p>",
        "<p>Roll back with <code>deployctl rollback</code> within 15 minutes.</p>",
        "<h2>Checks</h2>",
        "<p>Smoke tests must pass before traffic shifts.</p>",
        "<p>Page the on-call engineer if a check fails twice.</p>",
    ]
)


# -- the node -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(email=EMAIL, api_token=API_TOKEN) as s:
        yield s


@pytest.fixture(scope="module")
def node(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    n = Node(tmp_path_factory.mktemp("review") / "home", sim.url)
    n.setup(
        EMAIL,
        API_TOKEN,
        [("codex", "agent"), ("bob", "operator"), ("carol", "agent"), ("carol", "operator")],
    )
    r = n.admin("node", "add-operator", "alice", "--password", "--json", stdin=PASSWORD + "\n")
    assert r.code == 0, r.err
    n.tokens["alice/operator"] = r.json()["token"]
    n.start()
    yield n
    log = n.stop()
    assert API_TOKEN not in log and PASSWORD not in log
    for token in n.tokens.values():
        assert token not in log


class Sent:
    """What reached the simulator since this was made."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.before = len(sim.exchanges)

    def writes(self) -> list[Any]:
        return [e for e in list(self.sim.exchanges)[self.before :] if e.method != "GET"]


TITLES = (
    "Q3 incident review", "On-call handbook", "Team onboarding checklist",
    "API deprecation plan", "Postmortem: cache outage", "Capacity plan 2027",
    "Security review: SSO", "Quarterly OKRs", "Data retention policy", "Vendor shortlist",
)  # fmt: skip
_held = iter(range(10_000))


def hold(node: Node, who: str = "codex/agent", data: dict[str, Any] | None = None) -> str:
    """A held create-page (titles differ: several of them are approved and created)."""
    n = next(_held)
    title = TITLES[n % len(TITLES)] + (f" ({n // len(TITLES) + 1})" if n >= len(TITLES) else "")
    body = data or {"body": {**CREATE["body"], "title": title}}
    return held_ticket(
        node.client(who, "run", "create-page", "--json", "--input", json.dumps(body))
    )


def state_of(node: Node, ticket: str) -> str:
    with NodeClient(node.url, token=node.tokens["bob/operator"]) as op:
        return op.reviews.show(ticket).state


# -- a signed-in httpx session (no browser) ---------------------------------------------------


def login_csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


@contextlib.contextmanager
def http_session(
    node: Node, *, token: str | None = None, password: str | None = None, name: str = "alice"
) -> Iterator[httpx.Client]:
    """A signed-in review session without a browser (redirects followed)."""
    with httpx.Client(base_url=node.url, timeout=30, follow_redirects=True) as client:
        page = client.get("/review/login")
        form = {"csrf": login_csrf(page.text), "next": "/review/"}
        if token is not None:
            form |= {"method": "token", "token": token}
        else:
            form |= {"method": "password", "name": name, "password": password or PASSWORD}
        r = client.post("/review/login", data=form, follow_redirects=False)
        assert r.status_code == 303, (r.status_code, r.text)
        yield client


def page_csrf(client: httpx.Client, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return login_csrf(r.text)


# -- forged and refused requests (no browser needed) --------------------------------------------


def test_forged_posts_are_refused_and_nothing_is_sent(node: Node, sim: Simulator) -> None:
    ticket = hold(node)
    sent = Sent(sim)
    with http_session(node, password=PASSWORD) as alice:
        csrf = page_csrf(alice, f"/review/tickets/{ticket}")
        shown = alice.get(f"/review/tickets/{ticket}").text
        fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]{64})"', shown)
        assert fingerprint
        approve = f"/review/tickets/{ticket}/approve"
        form = {"fingerprint": fingerprint.group(1)}
        # 1. no CSRF token, 2. a wrong one, 3. the right one from another site
        r = alice.post(approve, data=form)
        assert r.status_code == 403 and "could not be verified" in r.text
        r = alice.post(approve, data={**form, "csrf": "x" * 43})
        assert r.status_code == 403
        r = alice.post(approve, data={**form, "csrf": csrf},
                       headers={"Origin": "https://evil.example"})  # fmt: skip
        assert r.status_code == 403
        r = alice.post(approve, data={**form, "csrf": csrf},
                       headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
        assert r.status_code == 403
    # 4. no session at all
    r = httpx.post(f"{node.url}{approve}", data=form)
    assert r.status_code == 403
    # 5. an agent's bearer token, on a form and on a page
    agent = {"Authorization": f"Bearer {node.tokens['codex/agent']}"}
    r = httpx.post(f"{node.url}{approve}", data=form, headers=agent)
    assert r.status_code == 403 and "operator token" in r.text
    r = httpx.get(f"{node.url}/review/", headers=agent)
    assert r.status_code == 403
    for path in ("/review/events", "/review/login", "/review/static/review.css", "/review/audit"):
        r = httpx.get(f"{node.url}{path}", headers=agent)
        assert r.status_code == 403, path
    assert state_of(node, ticket) == "pending"
    assert sent.writes() == []
    records = node.client("bob/operator", "audit", "tail", "-n", "50", "--json").json()
    forbidden = [r for r in records if r["event"] == "forbidden"]
    assert any(r.get("reason") == "missing or wrong CSRF token" for r in forbidden)
    assert any(r.get("identity") == "codex" and r.get("operation") == "review page"
               for r in forbidden)  # fmt: skip


def test_agent_token_cannot_sign_in(node: Node) -> None:
    client = httpx.Client(base_url=node.url)
    page = client.get("/review/login")
    r = client.post("/review/login", data={"csrf": login_csrf(page.text), "method": "token",
                                           "token": node.tokens["codex/agent"]})  # fmt: skip
    assert r.status_code == 403
    assert "Agent tokens cannot open the review page" in r.text
    assert "harbor_review=" not in r.headers.get("set-cookie", "")
    assert client.get("/review/", follow_redirects=False).status_code == 303
    # A wrong password and a sign-in form without its CSRF cookie are refused too.
    csrf = login_csrf(client.get("/review/login").text)
    r = client.post(
        "/review/login", data={"csrf": csrf, "name": "alice", "password": "not the password"}
    )
    assert r.status_code == 401 and "Wrong operator name or password" in r.text
    r = httpx.post(f"{node.url}/review/login", data={"csrf": "x", "name": "alice",
                                                     "password": PASSWORD})  # fmt: skip
    assert r.status_code == 403


def test_security_headers_and_cookie_flags(node: Node) -> None:
    client = httpx.Client(base_url=node.url)
    for path in ("/review/login", "/review/static/review.css", "/review/static/review.js"):
        r = client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    page = client.get("/review/login")
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline
    login = page.headers["set-cookie"]
    assert "HttpOnly" in login and "SameSite=strict" in login
    form = {"csrf": login_csrf(page.text), "method": "password", "name": "alice",
            "password": PASSWORD}  # fmt: skip
    cookie = client.post("/review/login", data=form).headers.get_list("set-cookie")[0]
    assert cookie.startswith("harbor_review=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/review" in cookie
    assert "Secure" not in cookie  # plain http on loopback; see the TLS test below
    signed_in = client.get("/review/")
    assert signed_in.status_code == 200
    assert signed_in.headers["cache-control"] == "no-store"
    # Sign-out ends the session on the node, not only in the browser.
    old = client.cookies["harbor_review"]
    r = client.post("/review/logout", data={"csrf": login_csrf(signed_in.text)})
    assert r.status_code == 303
    stale = httpx.get(f"{node.url}/review/", cookies={"harbor_review": old},
                      follow_redirects=False)  # fmt: skip
    assert stale.status_code == 303 and "/review/login" in stale.headers["location"]


def test_secure_cookie_over_tls(tmp_path: Path, sim: Simulator) -> None:
    """Served over https (the scope's scheme), the cookie is Secure and __Secure- named."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from harbor_confluence import Port
    from harbor_confluence.node.identities import IdentityStore
    from harbor_confluence.node.review import review_routes
    from harbor_confluence.node.service import NodeService
    from harbor_confluence.secrets.credentials import Credential

    home = tmp_path / "home"
    credential = Credential.basic(EMAIL, API_TOKEN, "test")
    with Port.load(home=home, base_url=sim.url, credential=credential) as port:
        service = NodeService(home, port=port)
        _, token = IdentityStore(home).add("dora", "operator")
        app = Starlette(routes=review_routes(service))
        with TestClient(app, base_url="https://testserver") as client:
            page = client.get("/review/login")
            assert "__Secure-harbor_review_login=" in page.headers["set-cookie"]
            assert "Secure" in page.headers["set-cookie"]
            r = client.post("/review/login", data={"csrf": login_csrf(page.text),
                                                   "method": "token", "token": token},
                            follow_redirects=False)  # fmt: skip
            assert r.status_code == 303
            session = r.headers.get_list("set-cookie")[0]
            assert session.startswith("__Secure-harbor_review=")
            assert "Secure" in session and "HttpOnly" in session
            assert client.get("/review/").status_code == 200
        # The plain-http cookie name is not accepted over TLS (and vice versa).
        with TestClient(app, base_url="http://testserver") as plain:
            plain.cookies.set("__Secure-harbor_review", "whatever")
            assert plain.get("/review/", follow_redirects=False).status_code == 303


def test_self_approval_is_refused_with_a_clear_message(node: Node, sim: Simulator) -> None:
    made = node.client("bob/operator", "run", "create-page", "--json", "--input",
                       json.dumps({"body": {**CREATE["body"], "title": "to delete"}}))  # fmt: skip
    approved = node.client("alice/operator", "queue", "approve", held_ticket(made), "--json")
    page_id = approved.json()["result"]["summary"]["id"]
    delete = held_ticket(node.client("carol/agent", "run", "delete-page", "--json",
                                     "--input", json.dumps({"path": {"id": page_id}})))  # fmt: skip
    sent = Sent(sim)
    with http_session(node, token=node.tokens["carol/operator"]) as carol:
        shown = carol.get(f"/review/tickets/{delete}").text
        assert "does not let the requester approve it" in shown
        fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]{64})"', shown)
        assert fingerprint
        form = {"csrf": login_csrf(shown), "fingerprint": fingerprint.group(1)}
        r = carol.post(f"/review/tickets/{delete}/approve", data=form)
        assert r.status_code == 200  # redirected back to the ticket, with the refusal
        assert "Refused:" in r.text and "forbids the requester (carol)" in r.text
        # A fingerprint other than the stored request's is refused too (bound approvals).
        r = carol.post(f"/review/tickets/{delete}/approve",
                       data={"csrf": login_csrf(shown), "fingerprint": "0" * 64})  # fmt: skip
        assert "Refused:" in r.text
    with http_session(node, password=PASSWORD) as alice:
        shown = alice.get(f"/review/tickets/{delete}").text
        fp = re.search(r'name="fingerprint" value="([0-9a-f]{64})"', shown)
        assert fp
        r = alice.post(f"/review/tickets/{delete}/approve",
                       data={"csrf": login_csrf(shown), "fingerprint": "f" * 64})  # fmt: skip
        assert "Refused:" in r.text and "fingerprint" in r.text
        r = alice.post(f"/review/tickets/{delete}/approve",
                       data={"csrf": login_csrf(shown), "fingerprint": fp.group(1)})  # fmt: skip
        assert "Approved (1 of 2)" in r.text
        r = alice.post(f"/review/tickets/{delete}/approve",
                       data={"csrf": login_csrf(shown), "fingerprint": fp.group(1)})  # fmt: skip
        assert "already approved" in r.text or "You approved this" in r.text
    assert sent.writes() == []


def test_audit_view_shows_verification_and_records(node: Node) -> None:
    with http_session(node, password=PASSWORD) as alice:
        r = alice.get("/review/audit?n=20")
        assert r.status_code == 200
        assert "verified" in r.text and "signed-in" in r.text
        log = node.home / "audit.jsonl"
        saved = log.read_bytes()
        lines = saved.splitlines(keepends=True)
        record = json.loads(lines[3])
        record["operator"] = "mallory"
        lines[3] = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        log.write_bytes(b"".join(lines))
        try:
            r = alice.get("/review/audit")
            assert "broken" in r.text and "line 4" in r.text
        finally:
            log.write_bytes(saved)
        assert "verified" in alice.get("/review/audit").text


def test_queue_list_filters_and_pages(node: Node) -> None:
    mine = [hold(node, "carol/agent") for _ in range(3)]
    with http_session(node, password=PASSWORD) as alice:
        r = alice.get("/review/", params={"requester": "carol", "state": "pending"})
        shown = re.findall(r'id="row-(t_[0-9a-f]+)"', r.text)
        assert set(mine) <= set(shown)
        assert all(t in mine or "carol" in r.text for t in shown)
        r = alice.get("/review/", params={"space": "no-such-space"})
        assert "No tickets match" in r.text
        r = alice.get("/review/", params={"action": "create-page", "space": "65538"})
        assert set(mine) <= set(re.findall(r'id="row-(t_[0-9a-f]+)"', r.text))
        r = alice.get("/review/", params={"state": "bogus", "after": "pending."})
        assert r.status_code == 200 and "Unknown state" in r.text
        r = alice.get("/review/", params={"after": "nope"})
        assert r.status_code == 400


# -- a real browser -----------------------------------------------------------------------------


def _no_browser(why: str) -> None:
    if os.environ.get("HARBOR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"HARBOR_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        _no_browser(f"no Chromium at {CHROMIUM} (apt-get install chromium, or HARBOR_CHROMIUM)")
    pw = sync_playwright().start()
    try:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:
            _no_browser(f"Chromium at {CHROMIUM} did not start: {exc}")
        yield b
        b.close()
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("HARBOR_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"review page screenshots: {path}")
    return path


def sign_in_with_password(page: Any, node: Node, name: str = "alice") -> None:
    """By keyboard only: the form must work without a mouse."""
    page.goto(f"{node.url}/review/")
    assert "/review/login" in page.url
    page.get_by_label("Operator name").focus()
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{node.url}/review/")


def sign_in_with_token(page: Any, node: Node, who: str) -> None:
    page.goto(f"{node.url}/review/login")
    page.get_by_label("Operator token", exact=True).fill(node.tokens[who])
    page.get_by_role("button", name="Sign in with token").click()
    page.wait_for_url(f"{node.url}/review/")


def test_sign_in_and_approve(browser: Any, node: Node, sim: Simulator, shots: Path) -> None:
    title = "Release notes 2.4"
    ticket = hold(node, data={"body": {**CREATE["body"], "title": title}})
    sent = Sent(sim)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in_with_password(page, node)
    row = page.locator(f"#row-{ticket}")
    row.wait_for()
    assert "pending" in row.inner_text() and "codex" in row.inner_text()
    # Pending tickets come first.
    states = page.locator("#rows tbody tr").evaluate_all("rs => rs.map(r => r.dataset.state)")
    assert states == sorted(states, key=lambda s: s != "pending")
    page.screenshot(path=str(shots / "review-list.png"), full_page=False)
    row.get_by_role("link").click()
    page.wait_for_url(f"{node.url}/review/tickets/{ticket}")
    body = page.locator("#request-body").inner_text()
    assert title in body and "held for the review page" in body
    assert "POST /wiki/api/v2/pages" in page.inner_text("main")
    assert "0 of 1" in page.locator("#status").inner_text()
    page.screenshot(path=str(shots / "review-ticket-create.png"), full_page=True)
    page.get_by_label("Note (optional)").first.fill("looks right")
    page.get_by_role("button", name="Approve and send").click()
    page.wait_for_selector("#status[data-state=succeeded]")
    assert "Approved and sent" in page.locator(".flash-ok").inner_text()
    posts = sent.writes()
    assert [(e.method, e.path) for e in posts] == [("POST", "/wiki/api/v2/pages")]
    assert json.loads(posts[0].request_body)["title"] == title
    shown = node.client("bob/operator", "queue", "show", ticket, "--json").json()
    assert shown["state"] == "succeeded"
    assert [(a["operator"], a["reason"]) for a in shown["approvals"]] == [("alice", "looks right")]
    assert page.locator("#approve-button").count() == 0
    context.close()
    assert len(sent.writes()) == 1


def test_without_javascript_and_a_stale_form(browser: Any, node: Node, sim: Simulator) -> None:
    """Plain forms work with JavaScript off; a form left open after someone else decided
    is refused by the queue (the request is sent exactly once)."""
    ticket = hold(node)
    sent = Sent(sim)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in_with_token(page, node, "bob/operator")
    page.goto(f"{node.url}/review/tickets/{ticket}")
    with NodeClient(node.url, token=node.tokens["alice/operator"]) as alice:
        assert alice.reviews.approve(ticket).state == "succeeded"
    assert page.locator("#status").get_attribute("data-state") == "pending"  # no live update
    page.get_by_role("button", name="Approve and send").click()
    page.wait_for_selector(".flash-error")
    assert "Refused:" in page.locator(".flash-error").inner_text()
    assert page.locator("#status").get_attribute("data-state") == "succeeded"
    assert len(sent.writes()) == 1
    fresh = hold(node)
    page.goto(f"{node.url}/review/tickets/{fresh}")
    page.get_by_role("button", name="Approve and send").click()
    page.wait_for_selector("#status[data-state=succeeded]")
    assert len(sent.writes()) == 2
    context.close()


def test_update_diff_and_reject(browser: Any, node: Node, sim: Simulator, shots: Path) -> None:
    made = node.client("codex/agent", "run", "create-page", "--json", "--input", json.dumps(
        {"body": {**CREATE["body"], "title": "Deploy runbook",
                  "body": {"representation": "storage", "value": RUNBOOK}}}))  # fmt: skip
    with NodeClient(node.url, token=node.tokens["alice/operator"]) as alice:
        page_id = alice.reviews.approve(held_ticket(made)).result["summary"]["id"]  # type: ignore[index]
    update = {"path": {"id": page_id},
              "body": {"body": {"representation": "storage", "value": RUNBOOK_EDIT}}}  # fmt: skip
    ticket = held_ticket(node.client("codex/agent", "run", "update-page", "--json",
                                     "--input", json.dumps(update)))  # fmt: skip
    sent = Sent(sim)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in_with_token(page, node, "bob/operator")
    page.goto(f"{node.url}/review/tickets/{ticket}")
    diff = page.locator("table.diff")
    diff.wait_for()
    removed = diff.locator("td.removed").all_inner_texts()
    added = diff.locator("td.added").all_inner_texts()
    assert any("Freeze on Fridays" in t for t in removed)
    assert any("Page the on-call engineer" in t for t in added)
    assert diff.locator("ins", has_text="Thursday").count() >= 1
    assert diff.locator("del", has_text="30").count() >= 1
    assert "Current (v1)" in diff.inner_text() and "Proposed (v2)" in diff.inner_text()
    assert "PUT /wiki/api/v2/pages/{id}" in page.inner_text("main")
    page.locator("#review-h").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "review-ticket.png"), full_page=True)
    # A rejection needs a reason: the browser will not submit the empty form ...
    page.get_by_role("button", name="Reject").click()
    assert page.url.endswith(f"/review/tickets/{ticket}")
    assert page.evaluate("document.getElementById('reject-reason').validity.valueMissing")
    assert state_of(node, ticket) == "pending"
    page.get_by_label("Reason (required; the agent sees it)").fill("Keep the freeze notice")
    page.get_by_role("button", name="Reject").click()
    page.wait_for_selector("#status[data-state=rejected]")
    assert "Keep the freeze notice" in page.locator("#status").inner_text()
    context.close()
    status = node.client("codex/agent", "queue", "status", ticket, "--json")
    assert status.code == 3, status.out
    assert status.json()["reason"] == "Keep the freeze notice"
    assert status.json()["decided_by"] == "bob"
    with NodeClient(node.url, token=node.tokens["codex/agent"]) as agent:
        assert agent.status(ticket)["state"] == "rejected"
    assert sent.writes() == []


def test_empty_reject_reason_is_refused_by_the_node(node: Node) -> None:
    ticket = hold(node)
    with http_session(node, password=PASSWORD) as alice:
        csrf = page_csrf(alice, f"/review/tickets/{ticket}")
        r = alice.post(f"/review/tickets/{ticket}/reject", data={"csrf": csrf, "reason": "  "})
        assert "A rejection needs a reason" in r.text
    assert state_of(node, ticket) == "pending"


def _wait(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_live_updates_without_reload(browser: Any, node: Node, sim: Simulator) -> None:
    watcher_ctx = browser.new_context()
    actor_ctx = browser.new_context()
    watcher, actor = watcher_ctx.new_page(), actor_ctx.new_page()
    sign_in_with_token(watcher, node, "bob/operator")
    sign_in_with_password(actor, node)
    watcher.evaluate("window.__notReloaded = true")
    # A new ticket appears in the other operator's open list.
    ticket = hold(node)
    watcher.locator(f"#row-{ticket}").wait_for(timeout=15_000)
    assert watcher.evaluate("window.__notReloaded === true")
    # An approval in one browser shows in the other's open ticket page.
    watcher.goto(f"{node.url}/review/tickets/{ticket}")
    watcher.wait_for_function("document.body.dataset.page === 'ticket'")
    time.sleep(0.5)  # let the page's event stream connect
    watcher.evaluate("window.__notReloaded = true")
    watcher.get_by_label("Reason (required; the agent sees it)").fill("typing, not sent")
    actor.goto(f"{node.url}/review/tickets/{ticket}")
    actor.get_by_role("button", name="Approve and send").click()
    actor.wait_for_selector("#status[data-state=succeeded]")
    watcher.wait_for_selector("#status[data-state=succeeded]", timeout=15_000)
    assert watcher.evaluate("window.__notReloaded === true")
    assert watcher.locator("#approve-button").count() == 0  # the decided forms went away
    assert "This ticket is now succeeded." in watcher.locator("#live").inner_text()
    watcher_ctx.close()
    actor_ctx.close()


def test_accessibility_labels_keyboard_and_zoom(browser: Any, node: Node, shots: Path) -> None:
    ticket = hold(node)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{node.url}/review/login")
    unlabelled = """() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter(el => el.type !== 'hidden')
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !(el.tagName === 'BUTTON' && el.textContent.trim()))
        .map(el => el.outerHTML)"""
    assert page.evaluate(unlabelled) == []
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    sign_in_with_password(page, node)
    for path in ("/review/", f"/review/tickets/{ticket}", "/review/audit"):
        page.goto(f"{node.url}{path}")
        assert page.evaluate(unlabelled) == [], path
        assert page.locator("main").count() == 1
        assert page.locator("header").count() >= 1
        assert page.get_by_role("navigation", name="Main").count() == 1
        assert page.locator("h1").count() == 1
    # 400% zoom of a 1280 px window is 320 CSS px: nothing scrolls sideways.
    page.set_viewport_size({"width": 320, "height": 640})
    for path in ("/review/", f"/review/tickets/{ticket}", "/review/login"):
        page.goto(f"{node.url}{path}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, (path, overflow)
        name = path.strip("/").split("/")[-1].replace("t_", "ticket-") or "list"
        page.screenshot(path=str(shots / f"zoom400-{name}.png"), full_page=True)
    # Approve by keyboard alone: focus the button and press Enter.
    page.goto(f"{node.url}/review/tickets/{ticket}")
    page.locator("#approve-button").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#status[data-state=succeeded]")
    context.close()


# -- the parts, in process -----------------------------------------------------------------------


def test_list_order_cursors_filters_and_scan_budget(tmp_path: Path) -> None:
    from harbor_confluence.node.review.listing import Filters, list_tickets
    from harbor_confluence.pipeline.request import PreparedRequest, canonical_json
    from harbor_confluence.review.queue import ReviewQueue

    queue = ReviewQueue.for_home(tmp_path)
    ids: list[str] = []
    for i in range(30):
        body = canonical_json({"spaceId": "7" if i % 3 == 0 else "8", "title": f"p{i}"})
        prepared = PreparedRequest("create-page", "POST", "https://x.example/wiki/api/v2/pages",
                                   body, "application/json")  # fmt: skip
        ids.append(queue.hold(prepared, port="p", manifest_version="1", rule="r",
                              requester=f"agent-{i % 5}", ttl_seconds=3600).id)  # fmt: skip
    for ticket in ids[:10]:  # the oldest ten are decided: they list after every pending one
        queue.reject(ticket, "op", "no")
    walked: list[str] = []
    cursor = None
    while True:
        page = list_tickets(queue, Filters(), cursor, limit=7)
        walked += [t.id for t in page.tickets]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert walked == ids[10:] + ids[:10]  # pending first, oldest first within each state
    agent2 = list_tickets(queue, Filters(requester="AGENT-2"), limit=50)
    expected = [ids[i] for i in range(10, 30) if i % 5 == 2] + [ids[i] for i in (2, 7)]
    assert [t.id for t in agent2.tickets] == expected
    space = list_tickets(queue, Filters(state="pending", space="7"), limit=50)
    assert [t.id for t in space.tickets] == [ids[i] for i in range(10, 30) if i % 3 == 0]
    # A filter nothing matches reads at most `budget` tickets, then offers to go on.
    seen = 0
    cursor = None
    for _ in range(10):
        page = list_tickets(queue, Filters(requester="nobody"), cursor, budget=8, chunk=3)
        assert page.tickets == [] and page.scanned <= 8
        seen += page.scanned
        if not page.budget_spent:
            break
        cursor = page.next_cursor
    assert seen == 30 and not page.budget_spent


def test_side_by_side_diff_pairs_edited_lines() -> None:
    from harbor_confluence.node.review.views import diff_rows, review_view

    unified = "\n".join([
        "--- current (v3)", "+++ proposed (v4)", "@@ -1,4 +1,3 @@", " <h1>T</h1>",
        "-<p>keep the macro</p>", "-<p>due in 30 days</p>", "+<p>due in 15 days</p>",
        " <p>end</p>", "+<p>new</p>",
    ])  # fmt: skip
    rows, cut = diff_rows(unified)
    assert not cut
    kinds = [(r.left.kind, r.right.kind) for r in rows if r.hunk is None]
    assert kinds == [("context", "context"), ("removed", "empty"), ("removed", "added"),
                     ("context", "context"), ("empty", "added")]  # fmt: skip
    edited = next(r for r in rows if r.left.kind == "removed" and r.right.kind == "added")
    assert ("30", True) in edited.left.segments and ("15", True) in edited.right.segments
    view = review_view({
        "kind": "versioned-update", "base_version": 3, "current_version": 3, "new_version": 4,
        "diff": unified, "losses": [{"kind": "macro", "name": "info", "message": "removed"},
                                    "a link to Runbooks"],
        "counts": {"macros": {"before": 2, "after": 1}, "links": [4, 4]},
    })  # fmt: skip
    assert view.losses == ["macro info: removed", "a link to Runbooks"]
    assert view.counts == [("macros", "2", "1", True), ("links", "4", "4", False)]
    assert view.left_label == "Current (v3)" and view.right_label == "Proposed (v4)"


def test_sessions_expire_when_idle_and_csrf_compares_safely() -> None:
    from harbor_confluence.node.review.sessions import SessionStore, SignInLimiter, same_token

    now = [1000.0]
    store = SessionStore(idle=60, lifetime=600, clock=lambda: now[0])
    cookie, session = store.create("alice", "k_1")
    assert store.get(cookie) is session
    now[0] += 59
    assert store.get(cookie) is session  # touching renews the idle timer
    now[0] += 59
    assert store.get(cookie, touch=False) is session
    now[0] += 2
    assert store.get(cookie) is None  # idle for 61 s
    cookie, _ = store.create("alice", "k_1")
    for _ in range(13):
        now[0] += 50
        store.get(cookie)
    assert store.get(cookie) is None  # past the absolute lifetime
    other, _ = store.create("bob", "k_2")
    store.drop_token("k_2")
    assert store.get(other) is None
    assert same_token("abc", "abc") and not same_token("abc", None) and not same_token("", "")
    limiter = SignInLimiter(per_name=2, clock=lambda: now[0])
    limiter.failed("alice")
    limiter.failed("alice")
    assert limiter.blocked("alice") and not limiter.blocked("bob")
    now[0] += 16 * 60
    assert not limiter.blocked("alice")


def test_operator_password_is_stored_as_argon2id(node: Node) -> None:
    stored = json.loads((node.home / "identities.json").read_text())
    alice = next(t for t in stored["tokens"] if t["name"] == "alice")
    assert alice["password"].startswith("$argon2id$")
    assert PASSWORD not in (node.home / "identities.json").read_text()
    listed = node.admin("node", "tokens", "--json").json()
    assert any(r["name"] == "alice" and r.get("password") is True for r in listed)
    r = node.admin("node", "add-operator", "erin", "--password", stdin="short\n")
    assert r.code == 2 and "12 to 1024 characters" in r.err
    r = node.admin("node", "add-operator", "erin", "--password", "--json",
                   stdin="another long passphrase\n")  # fmt: skip
    assert r.code == 0
    node.tokens["erin/operator"] = r.json()["token"]
    with http_session(node, name="erin", password="another long passphrase") as erin:
        assert "Signed in as <strong>erin</strong>" in erin.get("/review/").text
        # Revoking the operator ends the session at its next request.
        assert node.admin("node", "revoke", "erin").code == 0
        r = erin.get("/review/", follow_redirects=False)
        assert r.status_code == 303 and "/review/login" in r.headers["location"]


def test_block_review_losses_and_counts_are_shown_first(tmp_path: Path, sim: Simulator) -> None:
    """The block-level review (``losses``, ``counts`` before/after, ``blocks``), as the
    editing review builds it, renders prominently above the diff."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from harbor_confluence import Port
    from harbor_confluence.node.identities import IdentityStore
    from harbor_confluence.node.review import review_routes
    from harbor_confluence.node.service import NodeService
    from harbor_confluence.pipeline.request import PreparedRequest, canonical_json
    from harbor_confluence.secrets.credentials import Credential

    review = {
        "kind": "versioned-update", "base_version": 7, "current_version": 7, "new_version": 8,
        "diff": "@@ -1 +1 @@\n-<p>old <b>x</b></p>\n+<p>new</p>",
        "block_review": {
            "changed": True,
            "summary": {"blocks_unchanged": 5, "blocks_changed": 1, "blocks_added": 0,
                        "blocks_removed": 1},
            "blocks": [
                {"op": "changed", "section": "Deploying", "old": "a", "new": "b",
                 "words": "runs every [-Tuesday-]{+Thursday+} at <noon>"},
                {"op": "removed", "section": "Deploying", "old": "Freeze on Fridays"},
            ],
            "counts": {"before": {"macros": {"info": 1}, "links": 2, "words": 40},
                       "after": {"macros": {}, "links": 2, "words": 35}},
            "losses": ["macro 'info': 1 -> 0"],
        },
    }  # fmt: skip
    home = tmp_path / "home"
    credential = Credential.basic(EMAIL, API_TOKEN, "test")
    with Port.load(home=home, base_url=sim.url, credential=credential) as port:
        service = NodeService(home, port=port)
        _, token = IdentityStore(home).add("dora", "operator")
        prepared = PreparedRequest(
            "update-page", "PUT", f"{sim.url}/wiki/api/v2/pages/98306",
            canonical_json({"id": "98306", "title": "T"}), "application/json", review=review,
        )  # fmt: skip
        ticket = port.queue.hold(prepared, port="p", manifest_version="1", rule="r",
                                 requester="codex", ttl_seconds=600)  # fmt: skip
        app = Starlette(routes=review_routes(service))
        with TestClient(app) as client:
            html = client.get(f"/review/tickets/{ticket.id}",
                              headers={"Authorization": f"Bearer {token}"}).text  # fmt: skip
    losses = html.index('class="losses"')
    assert losses < html.index('class="diff"') and losses < html.index('class="blocks"')
    assert "This update would lose 1 thing" in html and "macro &#39;info&#39;: 1 -&gt; 0" in html
    assert '<tr class="fewer"><th scope="row">info macros</th><td>1</td><td>0' in html
    assert '<del><span class="visually-hidden">removed: </span>Tuesday</del>' in html
    assert '<ins><span class="visually-hidden">added: </span>Thursday</ins>' in html
    assert "at &lt;noon&gt;" in html and "<noon>" not in html  # escaped, never markup
    assert "1 changed, 0 added, 1 removed, 5 unchanged blocks" in html
