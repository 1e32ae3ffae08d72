"""Authentication modes: which credential is in force, and where requests go with it.

- **basic** (``email:API token``): requests go to the tenant, ``https://TENANT.atlassian.net``.
- **bearer** / **oauth** (an OAuth 2.0 access token, optionally refreshing): requests go
  through Atlassian's gateway, ``{identity-url}/ex/confluence/{cloudId}``.  The cloudId is
  discovered from ``GET {identity-url}/oauth/token/accessible-resources`` and cached in
  ``sites.json`` under the state directory (a cloudId belongs to a site, not to a token,
  and is not a secret).  When several sites are accessible, config ``site`` (a name, URL
  or cloudId) or the tenant ``base-url`` picks one.

Credentials come, first match wins, from the ``credential=`` argument (Python API), the
environment (``CONFLUENCE_ACCESS_TOKEN``, or ``CONFLUENCE_EMAIL`` + ``CONFLUENCE_API_TOKEN``:
for CI and containers), then the hidden token store (``store.py``).

The only request that can leave before the policy has decided is the accessible-resources
lookup (once per site, then cached): the request URL of a bearer action, which a held
ticket records, contains the cloudId.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from harbor_confluence.config import LocalConfig, atomic_write
from harbor_confluence.errors import ConfigError
from harbor_confluence.pipeline.manifest import PLACEHOLDER_BASE_URL, Manifest
from harbor_confluence.pipeline.request import Target, URLRefused

from .credentials import Credential, ReconnectRequired, credential_from_env
from .store import BACKENDS, SecretStore

__all__ = [
    "DEFAULT_AUTH_URL",
    "DEFAULT_IDENTITY_URL",
    "AuthReport",
    "Connection",
    "Endpoints",
    "NoCredential",
    "ReconnectRequired",
    "Site",
    "check_config_value",
    "uncovered_actions",
]

DEFAULT_IDENTITY_URL = "https://api.atlassian.com"
DEFAULT_AUTH_URL = "https://auth.atlassian.com"
Mode = Literal["basic", "bearer", "oauth"]
_MAX_RESOURCES_BYTES = 1024 * 1024


def _endpoint(value: str, key: str) -> str:
    """An identity or token host: an origin (https, or http on loopback only, as the
    tenant), checked by the same rules as the base URL, without a path."""
    if value.rstrip("/") == PLACEHOLDER_BASE_URL.rstrip("/"):
        raise ConfigError(f"{key} may not be the catalog placeholder")
    return Target.parse(value, what=key, gateway=False).origin


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Atlassian's identity hosts; config ``identity-url`` / ``auth-url`` point them elsewhere."""

    identity_url: str = DEFAULT_IDENTITY_URL
    auth_url: str = DEFAULT_AUTH_URL

    @classmethod
    def resolve(
        cls, config: LocalConfig, identity_url: str | None = None, auth_url: str | None = None
    ) -> Endpoints:
        data = config.read()
        identity = identity_url or data.get("identity-url") or DEFAULT_IDENTITY_URL
        auth = auth_url or data.get("auth-url") or DEFAULT_AUTH_URL
        return cls(_endpoint(str(identity), "identity-url"), _endpoint(str(auth), "auth-url"))

    @property
    def token_url(self) -> str:
        return f"{self.auth_url}/oauth/token"

    @property
    def resources_url(self) -> str:
        return f"{self.identity_url}/oauth/token/accessible-resources"

    def gateway(self, cloud_id: str) -> str:
        return f"{self.identity_url}/ex/confluence/{cloud_id}"


@dataclass(frozen=True, slots=True)
class Site:
    """One entry of accessible-resources."""

    id: str
    name: str
    url: str
    scopes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "url": self.url, "scopes": list(self.scopes)}

    def matches(self, selector: str) -> bool:
        wanted = selector.strip()
        if wanted == self.id or wanted.lower() == self.name.lower():
            return True
        return "://" in wanted and _site_key(wanted) == _site_key(self.url)


def _site_key(url: str) -> str:
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    if path.endswith("/wiki"):
        path = path[: -len("/wiki")]
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def _is_gateway(base_url: str) -> bool:
    return "/ex/confluence/" in urlsplit(base_url).path


@dataclass
class AuthReport:
    """What ``auth check`` shows: never a credential, only where and how."""

    mode: Mode | None
    source: str | None
    target: str | None = None
    site: Site | None = None
    sites: list[Site] = field(default_factory=list)
    granted_scopes: list[str] | None = None
    uncovered: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = False
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "mode": self.mode,
            "source": self.source,
            "target": self.target,
            "site": None if self.site is None else self.site.to_dict(),
            "sites": [s.to_dict() for s in self.sites],
            "granted_scopes": self.granted_scopes,
            "uncovered": self.uncovered,
            "message": self.message,
        }


class NoCredential(ConfigError):
    """Sending needs a credential and none is set (argument, environment or store)."""

    code = "no_credential"


class Connection:
    """The credential and the target for one state directory, resolved lazily."""

    def __init__(
        self,
        home: Path,
        config: LocalConfig,
        *,
        base_url: str | None = None,
        credential: Credential | None = None,
        identity_url: str | None = None,
        auth_url: str | None = None,
    ) -> None:
        self._home = home
        self._config = config
        self._base_url = base_url
        self._credential = credential
        self._loaded = credential is not None
        self._identity_url = identity_url
        self._auth_url = auth_url
        self._endpoints: Endpoints | None = None
        self._site: Site | None = None
        self._lock = threading.Lock()

    # -- what is configured -----------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            self._endpoints = Endpoints.resolve(self._config, self._identity_url, self._auth_url)
        return self._endpoints

    def base_url(self, default: str = PLACEHOLDER_BASE_URL) -> str:
        """Constructor, then CONFLUENCE_URL, then config ``base-url``, then the manifest's."""
        return self._base_url_and_source(default)[0]

    def _base_url_and_source(self, default: str = PLACEHOLDER_BASE_URL) -> tuple[str, str]:
        """The base URL and where it came from (named in a refusal)."""
        if self._base_url:
            return str(self._base_url), "base_url"
        env = os.environ.get("CONFLUENCE_URL")
        if env:
            return env, "CONFLUENCE_URL"
        configured = self._config.get("base-url")
        if configured:
            return str(configured), "config base-url"
        return default, "the manifest's port.baseUrl"

    def _parse_base(self, default: str = PLACEHOLDER_BASE_URL) -> Target:
        """The one check every base URL passes: argument, CONFLUENCE_URL or config."""
        base, source = self._base_url_and_source(default)
        return Target.parse(base, what=source)

    def credential(self) -> Credential:
        """The credential to send with; :class:`NoCredential` (nothing sent) when none is set.

        Deciding and holding a request need no credential (nothing leaves); sending one,
        running an approved ticket included, does.
        """
        cred = self.configured()
        if cred is None:
            raise NoCredential(
                "no credential: nothing was sent. Store one with: harbor-confluence token set "
                "--basic --email you@example.com (or --bearer / --oauth), or set "
                "CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN, or CONFLUENCE_ACCESS_TOKEN"
            )
        return cred

    def configured(self) -> Credential | None:
        """The credential in force, or None (argument, environment, then the store)."""
        # One credential per connection even under threads: two OAuth sessions would
        # refresh twice, and the second would present a token the first had rotated.
        with self._lock:
            if not self._loaded:
                self._credential = credential_from_env() or self._from_store()
                self._loaded = True
            return self._credential

    def _from_store(self) -> Credential | None:
        store = SecretStore(self._home)
        record = store.load()
        if record is None:
            return None
        return Credential.from_record(
            record,
            f"{store.name}:{store.location}",
            token_url=self.endpoints.token_url,
            on_refresh=store.save,
            reload=store.load,
        )

    def mode(self) -> Mode | None:
        cred = self.configured()
        return None if cred is None else cred.kind

    # -- where requests go ------------------------------------------------------------

    def target(self, client: httpx.Client, default_base: str = PLACEHOLDER_BASE_URL) -> Target:
        """The tenant (Basic, or an explicit gateway URL), else the gateway for the site."""
        base = self.base_url(default_base)
        cred = self.configured()
        selector = self._config.get("site")
        if cred is None or cred.mode == "basic" or _is_gateway(base):
            return self._parse_base(default_base)
        if not selector:
            self._parse_base(default_base)  # a bad or placeholder URL is refused in every mode
            selector = base
        site = self.site(client, str(selector))
        return Target.parse(self.endpoints.gateway(site.id))

    def site(self, client: httpx.Client, selector: str) -> Site:
        if self._site is not None and self._site.matches(selector):
            return self._site
        cached = [s for s in self._read_cache() if s.matches(selector)]
        if len(cached) == 1:
            self._site = cached[0]
            return self._site
        self._site = _pick(self.discover(client), selector)
        return self._site

    def discover(self, client: httpx.Client) -> list[Site]:
        """GET accessible-resources with the bearer token; caches the sites it lists."""
        cred = self.configured()
        if cred is None or cred.mode != "bearer":
            raise ConfigError("site discovery needs a bearer or OAuth credential")
        url = self.endpoints.resources_url
        auth = cred.bind(Target.parse(self.endpoints.identity_url).origin)
        try:
            response = client.get(
                url, auth=auth, headers={"Accept": "application/json"}, follow_redirects=False
            )
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"cannot reach {self.endpoints.identity_url} to discover the Confluence site "
                f"({type(exc).__name__})"
            ) from None
        if response.status_code in (401, 403):
            raise ReconnectRequired(
                f"{self.endpoints.identity_url} refused the access token "
                f"(HTTP {response.status_code}) when listing accessible sites; reconnect: "
                "store a new token with harbor-confluence token set --bearer (or --oauth)"
            )
        sites = _parse_sites(response)
        if sites is None:
            raise ConfigError(f"{url} answered HTTP {response.status_code} without a list of sites")
        self._write_cache(sites)
        return sites

    # -- the cache of cloudIds --------------------------------------------------------

    @property
    def _cache_path(self) -> Path:
        return self._home / "sites.json"

    def _read_cache(self) -> list[Site]:
        try:
            data = json.loads(self._cache_path.read_bytes())
        except (OSError, ValueError):
            return []
        entries = data.get(self.endpoints.identity_url) if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return []
        return [s for s in (_site_from(e, scopes=False) for e in entries) if s is not None]

    def _write_cache(self, sites: list[Site]) -> None:
        try:
            data = json.loads(self._cache_path.read_bytes())
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        # Scopes belong to a token, not to a site: they are not cached.
        data[self.endpoints.identity_url] = [
            {"id": s.id, "name": s.name, "url": s.url} for s in sites
        ]
        atomic_write(self._cache_path, json.dumps(data, indent=2, sort_keys=True).encode())

    # -- auth check ---------------------------------------------------------------------

    def check(self, client: httpx.Client, manifest: Manifest) -> AuthReport:
        """Who we are connected as and which actions the granted scopes leave out.

        Bearer and OAuth: one GET of accessible-resources.  Basic: one read of the
        tenant (``GET /wiki/api/v2/spaces?limit=1``) to see the token is accepted.
        Never a write.
        """
        cred = self.configured()
        if cred is None:
            return AuthReport(
                None,
                None,
                message="no credential: run harbor-confluence token set (or set "
                "CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN, or CONFLUENCE_ACCESS_TOKEN)",
            )
        report = AuthReport(cred.kind, cred.source)
        base = self.base_url()
        if cred.mode == "basic" or _is_gateway(base):
            target = self._parse_base()
            report.target = target.base_url
            return _check_by_reading(report, client, cred, target)
        report.sites = self.discover(client)
        selector = self._config.get("site") or (None if base == PLACEHOLDER_BASE_URL else base)
        if selector is None and len(report.sites) != 1:
            report.message = (
                "several sites are accessible; pick one with: harbor-confluence config set "
                "site NAME-or-URL (or config set base-url https://YOUR-SITE.atlassian.net)"
            )
            return report
        report.site = _pick(report.sites, str(selector or report.sites[0].id))
        report.target = self.endpoints.gateway(report.site.id)
        report.granted_scopes = sorted(report.site.scopes)
        report.uncovered = uncovered_actions(manifest, report.site.scopes)
        report.ok = True
        report.message = (
            f"connected to {report.site.name} ({report.site.url}) with {cred.kind} auth; "
            + (
                f"{len(report.uncovered)} action(s) need scopes the token lacks"
                if report.uncovered
                else "the granted scopes cover every action"
            )
        )
        return report


def _check_by_reading(
    report: AuthReport, client: httpx.Client, cred: Credential, target: Target
) -> AuthReport:
    url = f"{target.origin}{target.prefix}/wiki/api/v2/spaces?limit=1"
    try:
        response = client.get(
            url,
            auth=cred.bind(target.origin),
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        report.message = f"cannot reach {target.origin} ({type(exc).__name__})"
        return report
    report.ok = response.status_code == 200
    if report.ok:
        report.message = (
            f"{target.base_url} accepted the {cred.kind} credential; API tokens without "
            "scopes act with your user's permissions, so scope coverage does not apply"
        )
    else:
        report.message = (
            f"{target.base_url} answered HTTP {response.status_code} to a read with the "
            f"{cred.kind} credential; check the email and token (harbor-confluence token set)"
        )
    return report


def uncovered_actions(
    manifest: Manifest, granted: tuple[str, ...] | list[str]
) -> list[dict[str, Any]]:
    """Actions whose declared scopes are not all granted, with what is missing."""
    have = set(granted)
    out = []
    for action in manifest.actions:
        missing = [s for s in action.scopes if s not in have]
        if missing:
            out.append({"action": action.name, "kind": action.kind, "missing": missing})
    return out


def _parse_sites(response: httpx.Response) -> list[Site] | None:
    if response.status_code != 200 or len(response.content) > _MAX_RESOURCES_BYTES:
        return None
    try:
        data = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, list):
        return None
    return [s for s in (_site_from(e, scopes=True) for e in data) if s is not None]


def _site_from(entry: Any, *, scopes: bool) -> Site | None:
    if not isinstance(entry, dict):
        return None
    cloud_id, name, url = entry.get("id"), entry.get("name"), entry.get("url")
    if not (isinstance(cloud_id, str) and isinstance(name, str) and isinstance(url, str)):
        return None
    if not (cloud_id and name and url):
        return None
    if not all(c.isalnum() or c == "-" for c in cloud_id):
        return None  # it becomes a path segment of every request
    granted = entry.get("scopes") if scopes else None
    scope_list: tuple[str, ...] = ()
    if isinstance(granted, list):
        scope_list = tuple(s for s in granted if isinstance(s, str))
    return Site(cloud_id, name, url, scope_list)


def _pick(sites: list[Site], selector: str) -> Site:
    found = [s for s in sites if s.matches(selector)]
    if len(found) == 1:
        return found[0]
    listing = "; ".join(f"{s.name} ({s.url})" for s in sites) or "none"
    if not found:
        raise ConfigError(
            f"the token cannot reach a site matching {selector!r}; accessible sites: "
            f"{listing}. Pick one with: harbor-confluence config set site NAME-or-URL"
        )
    raise ConfigError(
        f"{selector!r} matches several accessible sites ({listing}); "
        "pick one by URL with: harbor-confluence config set site URL"
    )


def check_config_value(key: str, value: str) -> None:
    """Refuse a bad value before ``config set`` stores it."""
    if key == "base-url":
        Target.parse(value, what=key)  # also refuses the catalog placeholder
    elif key in ("identity-url", "auth-url"):
        _endpoint(value, key)
    elif key == "secret-backend" and value not in BACKENDS:
        raise ConfigError(f"secret-backend must be one of: {', '.join(BACKENDS)}")
    elif key == "site" and not value.strip():
        raise ConfigError("site must be a site name, URL or cloudId")
    elif key == "database-url":
        from harbor_confluence.postgres import check_url, url_secrets

        check_url(value)
        if url_secrets(value):  # config.json is shown by `config get`: no password in it
            raise URLRefused(
                "database-url: a password does not belong in config.json; keep it in "
                "~/.pgpass or PGPASSFILE [password]"
            )
