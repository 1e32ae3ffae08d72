"""The three auth modes end to end against the simulator over loopback: Basic to the site,
Bearer through the gateway with cloudId discovery, OAuth with refresh (mid-run, async,
revoked); scope checks; ``auth check``; and the simulator's identity endpoints."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from harbor_confluence.config import LocalConfig
from harbor_confluence.errors import ConfigError
from harbor_confluence.pipeline.executor import Port
from harbor_confluence.secrets.auth import DEFAULT_IDENTITY_URL, Connection
from harbor_confluence.secrets.credentials import Credential, ReconnectRequired
from harbor_confluence.secrets.store import SecretRecord, SecretStore
from harbor_confluence.sim import Simulator
from harbor_confluence.sim.identity import Grant
from tests.conftest import ACCESS_TOKEN, API_TOKEN, EMAIL, CliResult

CLIENT_ID = "harbor-test-app"
CLIENT_SECRET = "client-secret-for-tests"
READ = ["read:page:confluence", "read:space:confluence"]
SEARCH = {"query": {"limit": 1}}


def gateway(sim: Simulator) -> str:
    return f"/ex/confluence/{sim.identity.cloud_id}"


def configure(home: Path, sim: Simulator, **extra: str) -> LocalConfig:
    """Local config pointing the tenant and Atlassian's identity hosts at the simulator."""
    config = LocalConfig(home)
    config.set("identity-url", sim.url)
    config.set("auth-url", sim.url)
    for key, value in {"base-url": sim.url, **extra}.items():
        config.set(key, value)
    return config


def oauth_grant(sim: Simulator, **kwargs: Any) -> Grant:
    sim.identity.register_client(CLIENT_ID, CLIENT_SECRET)
    return sim.identity.grant(client_id=CLIENT_ID, **kwargs)


def store_oauth(home: Path, grant: Grant, *, with_access: bool = True) -> None:
    SecretStore(home).save(
        SecretRecord(
            kind="oauth",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=grant.refresh_token,
            access_token=grant.access_token if with_access else None,
        )
    )


def stored(home: Path) -> SecretRecord:
    record = SecretStore(home).load()
    assert record is not None
    return record


def paths(sim: Simulator) -> list[str]:
    return [f"{e.method} {e.path} {e.status}" for e in sim.exchanges]


# -- mode 1: Basic, email:API token, to the site ------------------------------------------


def test_basic_from_the_store_goes_to_the_site(
    sim: Simulator, home: Path, cli: Callable[..., CliResult]
) -> None:
    assert cli("config", "set", "base-url", sim.url).code == 0
    assert cli("token", "set", "--basic", "--email", EMAIL, stdin=API_TOKEN).code == 0
    result = cli("run", "search-pages", "--input", json.dumps(SEARCH), "--json")
    assert result.code == 0 and result.json()["ok"] is True
    [exchange] = sim.exchanges
    assert exchange.path == "/wiki/api/v2/pages"
    assert (exchange.request_header("Authorization") or "").startswith("Basic ")


def test_wrong_basic_token_is_an_upstream_401(sim: Simulator, home: Path) -> None:
    SecretStore(home).save(SecretRecord(kind="basic", email=EMAIL, api_token="wrong"))
    with Port.load(home=home, base_url=sim.url) as port:
        result = port.call("search-pages", SEARCH)
    assert result.status == 401 and not result.ok
    assert sim.request_count == 1  # Basic is never "refreshed"


# -- mode 2: Bearer through the gateway ---------------------------------------------------


def test_bearer_discovers_the_cloud_id_and_caches_it(
    sim: Simulator, home: Path, cli: Callable[..., CliResult]
) -> None:
    configure(home, sim)
    assert cli("token", "set", "--bearer", stdin=ACCESS_TOKEN).code == 0
    first = cli("run", "search-pages", "--input", json.dumps(SEARCH), "--json")
    assert first.code == 0, first.err
    assert paths(sim) == [
        "GET /oauth/token/accessible-resources 200",
        f"GET {gateway(sim)}/wiki/api/v2/pages 200",
    ]
    assert sim.exchanges[1].request_header("Authorization") == f"Bearer {ACCESS_TOKEN}"
    cache = json.loads((home / "sites.json").read_text())
    assert cache[sim.url][0]["id"] == sim.identity.cloud_id
    sim.clear()
    again = cli("run", "get-page", "--input", '{"path": {"id": "98391"}}', "--json")
    assert again.code in (0, 5)
    assert [e.path for e in sim.exchanges] == [f"{gateway(sim)}/wiki/api/v2/pages/98391"]


def test_held_bearer_request_records_the_gateway_url(sim: Simulator, home: Path) -> None:
    configure(home, sim)
    with Port.load(home=home, credential=Credential.bearer(ACCESS_TOKEN, "t")) as port:
        held = port.call("create-page", {"body": {"spaceId": "65538", "title": "T"}})
        assert held.outcome == "held" and held.ticket
        ticket = port.ticket(held.ticket)
    assert ticket is not None
    assert ticket.url == f"{sim.url}{gateway(sim)}/wiki/api/v2/pages"
    assert all(e.method == "GET" for e in sim.exchanges)  # only the discovery, no write


def test_several_sites_pick_by_name_or_url(sim: Simulator, home: Path) -> None:
    sim.identity.add_site("other-team", "https://other-team.atlassian.net")
    config = configure(home, sim)
    config.unset("base-url")
    cred = Credential.bearer(ACCESS_TOKEN, "t")
    with Port.load(home=home, credential=cred) as port, pytest.raises(ConfigError) as info:
        port.call("search-pages", SEARCH)
    assert "placeholder" in str(info.value)  # nothing picked: the placeholder is still there
    config.set("site", "nowhere")
    with Port.load(home=home, credential=cred) as port, pytest.raises(ConfigError) as info:
        port.call("search-pages", SEARCH)
    assert "harbor-sim" in str(info.value) and "other-team" in str(info.value)
    assert "config set site" in str(info.value)
    config.set("site", "HARBOR-SIM")  # by name, case-insensitively
    with Port.load(home=home, credential=cred) as port:
        assert port.call("search-pages", SEARCH).ok
    config.unset("site")
    config.set("base-url", sim.url + "/wiki/")  # by URL, as users paste it
    with Port.load(home=home, credential=cred) as port:
        assert port.target().prefix == gateway(sim)


def test_environment_access_token_goes_through_the_gateway(
    sim: Simulator, home: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(home, sim)
    monkeypatch.setenv("CONFLUENCE_ACCESS_TOKEN", ACCESS_TOKEN)
    monkeypatch.setenv("CONFLUENCE_URL", sim.url)
    result = cli("run", "search-pages", "--input", json.dumps(SEARCH), "--json")
    assert result.code == 0, result.err
    assert sim.exchanges[-1].path.startswith(gateway(sim))


def test_issued_tokens_only_work_through_the_gateway(sim: Simulator) -> None:
    grant = oauth_grant(sim)
    headers = {"Authorization": f"Bearer {grant.access_token}"}
    direct = httpx.get(f"{sim.url}/wiki/api/v2/pages?limit=1", headers=headers)
    assert direct.status_code == 401
    via = httpx.get(f"{sim.url}{gateway(sim)}/wiki/api/v2/pages?limit=1", headers=headers)
    assert via.status_code == 200


def test_gateway_accepts_basic_for_scoped_api_tokens(sim: Simulator, home: Path) -> None:
    base = f"{sim.url}{gateway(sim)}"
    cred = Credential.basic(EMAIL, API_TOKEN, "t")
    with Port.load(home=home, base_url=base, credential=cred) as port:
        assert port.call("search-pages", SEARCH).ok
    assert paths(sim) == [f"GET {gateway(sim)}/wiki/api/v2/pages 200"]


def test_unreachable_identity_host_is_a_clear_error(home: Path) -> None:
    cred = Credential.bearer(ACCESS_TOKEN, "t")
    with (
        Port.load(
            home=home, base_url="https://acme.atlassian.net", credential=cred,
            identity_url="http://127.0.0.1:9",
        ) as port,
        pytest.raises(ConfigError, match=r"cannot reach http://127\.0\.0\.1:9"),
    ):  # fmt: skip
        port.call("search-pages", SEARCH)


def test_rejected_bearer_token_says_reconnect(sim: Simulator, home: Path) -> None:
    configure(home, sim)
    cred = Credential.bearer("not-a-token", "t")
    with Port.load(home=home, credential=cred) as port, pytest.raises(ReconnectRequired) as info:
        port.call("search-pages", SEARCH)
    assert "reconnect" in str(info.value) and info.value.exit_code == 1
    assert info.value.to_dict()["code"] == "reconnect"


# -- mode 3: OAuth with refresh ------------------------------------------------------------


def test_oauth_first_use_refreshes_and_stores_the_rotated_token(
    sim: Simulator, home: Path, cli: Callable[..., CliResult]
) -> None:
    configure(home, sim)
    grant = oauth_grant(sim, scopes=READ)
    stdin = f"{CLIENT_SECRET}\n{grant.refresh_token}\n"
    assert cli("token", "set", "--oauth", "--client-id", CLIENT_ID, stdin=stdin).code == 0
    result = cli("run", "search-pages", "--input", json.dumps(SEARCH), "--json")
    assert result.code == 0, result.err
    assert paths(sim) == [
        "POST /oauth/token 200",  # no access token stored: refreshed before the first call
        "GET /oauth/token/accessible-resources 200",
        f"GET {gateway(sim)}/wiki/api/v2/pages 200",
    ]
    body = sim.exchanges[0].request_json()
    assert body["grant_type"] == "refresh_token" and body["client_id"] == CLIENT_ID
    record = stored(home)
    assert record.refresh_token != grant.refresh_token  # rotated and stored
    assert record.access_token and record.expires_at
    assert sim.identity.refresh_count == 1


def test_refresh_mid_run_after_a_401(sim: Simulator, home: Path) -> None:
    configure(home, sim)
    grant = oauth_grant(sim, scopes=READ)
    store_oauth(home, grant)
    with Port.load(home=home) as port:
        assert port.call("search-pages", SEARCH).ok
        assert sim.identity.refresh_count == 0
        sim.clear()
        sim.identity.expire_access_tokens()  # the server says no; the client cannot know
        assert port.call("search-pages", SEARCH).ok
        assert paths(sim) == [
            f"GET {gateway(sim)}/wiki/api/v2/pages 401",
            "POST /oauth/token 200",
            f"GET {gateway(sim)}/wiki/api/v2/pages 200",
        ]
        sim.clear()
        assert port.call("search-pages", SEARCH).ok  # the new token is kept in memory
        assert len(sim.exchanges) == 1
    assert sim.identity.refresh_count == 1
    assert stored(home).refresh_token != grant.refresh_token
    # The next process starts from the stored (rotated) grant.
    sim.clear()
    with Port.load(home=home) as port:
        assert port.call("search-pages", SEARCH).ok
    assert sim.identity.refresh_count == 1 and len(sim.exchanges) == 1


def test_known_expiry_refreshes_before_sending(sim: Simulator, home: Path) -> None:
    configure(home, sim)
    sim.identity.access_ttl = 0.2
    store_oauth(home, oauth_grant(sim, scopes=READ), with_access=False)
    with Port.load(home=home) as port:
        assert port.call("search-pages", SEARCH).ok
        sim.clear()
        asyncio.run(asyncio.sleep(0.3))
        assert port.call("search-pages", SEARCH).ok
    assert paths(sim) == ["POST /oauth/token 200", f"GET {gateway(sim)}/wiki/api/v2/pages 200"]


def test_async_calls_share_one_refresh(sim: Simulator, home: Path) -> None:
    configure(home, sim)
    store_oauth(home, oauth_grant(sim, scopes=READ))

    async def main() -> list[bool]:
        async with Port.load(home=home) as port:
            assert (await port.acall("search-pages", SEARCH)).ok
            sim.identity.expire_access_tokens()
            results = await asyncio.gather(*(port.acall("search-pages", SEARCH) for _ in range(6)))
            return [r.ok for r in results]

    assert asyncio.run(main()) == [True] * 6
    assert sim.identity.refresh_count == 1  # six 401s, one refresh, six retries
    posts = [e for e in sim.exchanges if e.path == "/oauth/token"]
    assert len(posts) == 1


def test_threads_share_one_refresh_on_first_use(sim: Simulator, home: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    configure(home, sim)
    store_oauth(home, oauth_grant(sim, scopes=READ), with_access=False)
    with Port.load(home=home) as port, ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: port.call("search-pages", SEARCH), range(6)))
    assert all(r.ok for r in results)
    assert sim.identity.refresh_count == 1


def test_another_process_rotated_the_grant_first(sim: Simulator, home: Path) -> None:
    """Two runners on one state dir: the one that refreshes second adopts the stored grant."""
    configure(home, sim)
    store_oauth(home, oauth_grant(sim, scopes=READ))
    with Port.load(home=home) as first, Port.load(home=home) as second:
        assert first.call("search-pages", SEARCH).ok and second.call("search-pages", SEARCH).ok
        sim.identity.expire_access_tokens()
        assert first.call("search-pages", SEARCH).ok  # rotates; second still holds the old one
        sim.clear()
        assert second.call("search-pages", SEARCH).ok
        assert paths(sim) == [
            f"GET {gateway(sim)}/wiki/api/v2/pages 401",
            "POST /oauth/token 403",  # the refresh token it held was rotated away
            "POST /oauth/token 200",  # the one the first runner stored
            f"GET {gateway(sim)}/wiki/api/v2/pages 200",
        ]
    assert sim.identity.refresh_count == 2


def test_revoked_refresh_token_says_reconnect(
    sim: Simulator, home: Path, cli: Callable[..., CliResult]
) -> None:
    configure(home, sim)
    store_oauth(home, oauth_grant(sim, scopes=READ))
    with Port.load(home=home) as port:
        assert port.call("search-pages", SEARCH).ok
        sim.identity.revoke_refresh_tokens()
        sim.identity.expire_access_tokens()
        with pytest.raises(ReconnectRequired) as info:
            port.call("search-pages", SEARCH)
        message = str(info.value)
        assert "invalid_grant" in message and "Reconnect" in message
        assert "token set --oauth" in message
        sim.clear()
        with pytest.raises(ReconnectRequired):  # known dead: no second attempt on the wire
            port.call("search-pages", SEARCH)
        assert sim.request_count == 0
    result = cli("run", "search-pages", "--input", json.dumps(SEARCH), "--json")
    assert result.code == 1 and result.json()["error"]["code"] == "reconnect"


def test_wrong_client_secret_says_reconnect(sim: Simulator, home: Path) -> None:
    configure(home, sim)
    grant = oauth_grant(sim, scopes=READ)
    SecretStore(home).save(
        SecretRecord(
            kind="oauth", client_id=CLIENT_ID, client_secret="wrong",
            refresh_token=grant.refresh_token,
        )
    )  # fmt: skip
    with Port.load(home=home) as port, pytest.raises(ReconnectRequired, match="HTTP 401"):
        port.call("search-pages", SEARCH)


def test_missing_scope_is_named_and_not_refreshed(sim: Simulator, home: Path) -> None:
    configure(home, sim)
    store_oauth(home, oauth_grant(sim, scopes=["read:space:confluence"]))
    with Port.load(home=home) as port:
        result = port.call("search-pages", SEARCH)
    assert result.status == 401 and not result.ok
    assert result.error and "read:page:confluence" in result.error["message"]
    assert sim.identity.refresh_count == 0  # a new token would not have more scopes
    last = sim.exchanges[-1]
    assert last.response_header("X-Failure-Category") == "FAILURE_CLIENT_SCOPE_CHECK"


# -- auth check ---------------------------------------------------------------------------


def test_auth_check_lists_actions_the_scopes_do_not_cover(
    sim: Simulator, home: Path, cli: Callable[..., CliResult]
) -> None:
    configure(home, sim)
    store_oauth(home, oauth_grant(sim, scopes=READ))
    result = cli("auth", "check", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["mode"] == "oauth" and report["ok"] is True
    assert report["site"]["id"] == sim.identity.cloud_id and report["site"]["url"] == sim.url
    assert report["granted_scopes"] == sorted(READ)
    uncovered = {u["action"]: u["missing"] for u in report["uncovered"]}
    assert uncovered.get("create-page") == ["write:page:confluence"]
    assert "search-pages" not in uncovered and "get-page" not in uncovered
    text = cli("auth", "check")
    assert "create-page (write): needs write:page:confluence" in text.out
    assert f"cloudId {sim.identity.cloud_id}" in text.out
    assert all(e.path.startswith("/oauth/") for e in sim.exchanges)  # no Confluence call


def test_auth_check_basic_reads_once(
    sim: Simulator, home: Path, cli: Callable[..., CliResult]
) -> None:
    configure(home, sim)
    SecretStore(home).save(SecretRecord(kind="basic", email=EMAIL, api_token=API_TOKEN))
    result = cli("auth", "check", "--json")
    assert result.code == 0 and result.json()["mode"] == "basic"
    assert paths(sim) == ["GET /wiki/api/v2/spaces 200"]
    SecretStore(home).save(SecretRecord(kind="basic", email=EMAIL, api_token="wrong"))
    bad = cli("auth", "check")
    assert bad.code == 1 and "HTTP 401" in bad.err


def test_auth_check_without_a_credential(home: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("auth", "check")
    assert result.code == 1 and "token set" in result.err


def test_auth_check_with_several_sites_lists_them(
    sim: Simulator, home: Path, cli: Callable[..., CliResult]
) -> None:
    sim.identity.add_site("other-team", "https://other-team.atlassian.net")
    configure(home, sim).unset("base-url")
    SecretStore(home).save(SecretRecord(kind="bearer", access_token=ACCESS_TOKEN))
    result = cli("auth", "check")
    assert result.code == 1
    assert "other-team (https://other-team.atlassian.net)" in result.err
    assert "config set site" in result.err


# -- configuration ------------------------------------------------------------------------


def test_identity_hosts_must_be_https_unless_loopback(
    home: Path, cli: Callable[..., CliResult]
) -> None:
    refused = cli("config", "set", "identity-url", "http://api.example.com")
    assert refused.code == 2 and "loopback" in refused.err  # a broken URL rule: invalid input
    assert cli("config", "set", "auth-url", "http://127.0.0.1:8089").code == 0
    assert cli("config", "get", "auth-url").out.strip() == "http://127.0.0.1:8089"
    assert cli("config", "set", "base-url", "https://your-domain.atlassian.net/").code == 1


def test_default_identity_hosts_are_atlassians(home: Path) -> None:
    connection = Connection(home, LocalConfig(home))
    assert connection.endpoints.identity_url == DEFAULT_IDENTITY_URL
    assert connection.endpoints.token_url == "https://auth.atlassian.com/oauth/token"


def test_credential_is_only_attached_for_its_origin_in_every_mode() -> None:
    oauth = Credential.oauth(
        refresh_token="r", client_id="c", client_secret="s", token_url="https://a/oauth/token",
        source="t", access_token=ACCESS_TOKEN,
    ).bind("https://api.atlassian.com")  # fmt: skip
    other = httpx.Request("GET", "https://evil.example/wiki/api/v2/pages")
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        response = client.send(other, auth=oauth)
    assert "Authorization" not in response.request.headers
    assert ACCESS_TOKEN not in repr(oauth)


# -- the simulator's identity endpoints and the scope table -----------------------------


def test_accessible_resources_shape(sim: Simulator) -> None:
    grant = oauth_grant(sim, scopes=READ)
    response = httpx.get(
        f"{sim.url}/oauth/token/accessible-resources",
        headers={"Authorization": f"Bearer {grant.access_token}"},
    )
    assert response.status_code == 200
    [site] = response.json()
    assert set(site) == {"id", "name", "url", "scopes", "avatarUrl"}
    assert site["scopes"] == sorted(READ) and site["url"] == sim.url
    denied = httpx.get(f"{sim.url}/oauth/token/accessible-resources")
    assert denied.status_code == 401 and denied.json() == {"code": 401, "message": "Unauthorized"}


def test_token_endpoint_rotates_and_refuses_reuse(sim: Simulator) -> None:
    grant = oauth_grant(sim)
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": grant.refresh_token,
    }
    first = httpx.post(f"{sim.url}/oauth/token", data=form)  # form-encoded works too
    assert first.status_code == 200
    assert first.json()["token_type"] == "Bearer" and first.json()["refresh_token"]
    reused = httpx.post(f"{sim.url}/oauth/token", json=form)
    assert reused.status_code == 403 and reused.json()["error"] == "invalid_grant"
    assert grant.refresh_token not in reused.text and CLIENT_SECRET not in repr(sim.identity)
    other = httpx.post(f"{sim.url}/oauth/token", json={**form, "grant_type": "password"})
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"


def _spec_scopes(spec: dict[str, Any], v1: bool) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for ops in spec["paths"].values():
        for op in ops.values():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            scopes: list[str] = []
            if v1:
                for requirement in op.get("security") or []:
                    scopes += [
                        s for s in requirement.get("oAuthDefinitions", []) if s not in scopes
                    ]
            else:
                for entry in op.get("x-atlassian-oauth2-scopes") or []:
                    scopes += [s for s in entry["scopes"] if s not in scopes]
            out[op["operationId"]] = tuple(scopes)
    return out


def test_scope_table_matches_atlassians_documents() -> None:
    from harbor_confluence.sim import scopes
    from tests.contract import require_spec

    assert _spec_scopes(require_spec("v2"), v1=False) == scopes.V2
    assert _spec_scopes(require_spec("v1"), v1=True) == scopes.V1


def test_every_simulated_route_declares_its_scope() -> None:
    from harbor_confluence.sim import build_router
    from harbor_confluence.sim.scopes import V1, V2

    for route in build_router().routes:
        table = V1 if route.pattern.pattern.startswith("/wiki/rest/") else V2
        assert route.name in table, f"route {route.name} is not a documented operation"


def test_manifest_scopes_match_the_operations(sim: Simulator) -> None:
    """The scopes each action declares are what the simulator (and Atlassian) require."""
    from harbor_confluence.pipeline.executor import default_manifest_path
    from harbor_confluence.pipeline.manifest import load_manifest
    from harbor_confluence.sim.scopes import V2

    router = sim.router
    for action in load_manifest(default_manifest_path()).actions:
        probe = action.route.replace("{id}", "1")
        match = router.match(action.method, probe)
        if match is None or isinstance(match, list):
            continue  # not simulated (yet)
        assert tuple(action.scopes) == V2.get(match.route.name, tuple(action.scopes)), action.name


def test_gateway_exchanges_are_contract_checked(sim: Simulator, home: Path, contract: Any) -> None:
    if contract is None:
        pytest.skip("Atlassian's OpenAPI document is not available")
    configure(home, sim)
    with Port.load(home=home, credential=Credential.bearer(ACCESS_TOKEN, "t")) as port:
        assert port.call("search-pages", SEARCH).ok
    identity, api = sim.exchanges
    assert contract.check_exchange(identity).operation.startswith("identity endpoint")
    assert contract.check_exchange(api).operation.startswith("getPages")
