"""Contract checks: recorded HTTP exchanges against Atlassian's own OpenAPI documents.

Used by every contract test (simulator and runner alike). The documents are read from
``$CONFLUENCE_OPENAPI_DIR``, else ``<repo>/../shared/confluence-openapi``, parsed once per
session and never edited: where a document cannot be applied literally (listed below) the
checker says so in a ``ContractSkip`` warning and in the result's ``notes``, never silently.

Known gaps in the v2 document this checker works around (reported each time):
- error responses (400/401/404/...) declare ``content: {}``: there is no error schema, so
  error bodies are not checked;
- statuses Confluence really sends but the document omits (409, 429, 500, 503): the body
  is not checked; an undeclared 2xx/3xx is still a failure;
- ``PageCreateRequest.body`` is ``oneOf [PageBodyWrite, PageNestedBodyWrite]`` where both
  are open objects with only optional properties, so *every* object matches both and
  ``oneOf`` can never pass: it is checked as ``anyOf``;
- the document only describes the default ``form``/``explode`` array style, while its
  parameter descriptions say "comma-separated list": both forms are accepted;
- some query parameters declare a ``default`` outside their own ``enum`` (GET
  /spaces/{id}/labels: ``prefix`` defaults to ``"my, team"``, enum ``[my, team]``);
  openapi-core validates that default when the parameter is absent, so the error is
  tolerated only when the request did not send the parameter.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, unquote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_SPEC_DIR = "CONFLUENCE_OPENAPI_DIR"
ENV_REQUIRE = "HARBOR_REQUIRE_CONTRACT"
SPEC_FILES: Mapping[str, str] = {
    "v2": "confluence-cloud-v2.openapi.json",
    "v1": "confluence-cloud-v1.openapi*.json",
}
# Stand-ins for the tenant origin that the documents' ``servers`` entries match:
# v2 is ``https://{your-domain}/wiki/api/v2``, v1 is the scheme-relative ``//your-domain...``.
SPEC_HOSTS: Mapping[str, str] = {
    "v2": "https://your-domain.atlassian.net",
    "v1": "//your-domain.atlassian.net",
}

ApiVersion = Literal["v1", "v2"]
RequestExpectation = Literal["valid", "invalid"]

__all__ = [
    "ContractChecker",
    "ContractResult",
    "ContractSkip",
    "ExchangeLike",
    "api_version_for",
    "contract_path",
    "contract_required",
    "load_spec",
    "missing_message",
    "missing_specs",
    "require_spec",
    "spec_dir",
    "spec_path",
]


class ContractSkip(UserWarning):
    """A part of an exchange that the document cannot judge; shown in pytest's summary."""


class ExchangeLike(Protocol):
    """What the checker reads; ``harbor_confluence.sim.Exchange`` has exactly these fields."""

    method: str
    path: str
    query: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    status: int
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes


# -- locating and loading the documents ----------------------------------------------------


def spec_dir() -> Path:
    configured = os.environ.get(ENV_SPEC_DIR)
    if configured:
        return Path(configured)
    return (REPO_ROOT / ".." / "shared" / "confluence-openapi").resolve()


def spec_path(version: ApiVersion) -> Path:
    """The document file (the newest snapshot if several match); may not exist."""
    directory = spec_dir()
    matches = sorted(directory.glob(SPEC_FILES[version]))
    return matches[-1] if matches else directory / SPEC_FILES[version].replace("*", "")


@functools.cache
def load_spec(version: ApiVersion) -> dict[str, Any] | None:
    """The parsed document, or None when absent. Cached: treat the result as read-only."""
    path = spec_path(version)
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def missing_specs() -> list[Path]:
    """The documents the suite checks against that are not on disk (v2 and v1)."""
    return [path for path in (spec_path("v2"), spec_path("v1")) if not path.is_file()]


def contract_required() -> bool:
    """``HARBOR_REQUIRE_CONTRACT=1`` (CI): a missing document fails the session."""
    return os.environ.get(ENV_REQUIRE) == "1"


def missing_message(missing: Sequence[Path]) -> str:
    listed = ", ".join(str(p) for p in missing)
    return (
        f"Atlassian's OpenAPI document(s) not found: {listed}; set {ENV_SPEC_DIR} to the "
        "directory that holds them"
    )


def require_spec(version: ApiVersion = "v2") -> dict[str, Any]:
    """The document, else skip the test (or fail it when HARBOR_REQUIRE_CONTRACT=1, as in CI)."""
    spec = load_spec(version)
    if spec is not None:
        return spec
    message = f"Atlassian OpenAPI document not found at {spec_path(version)}: set {ENV_SPEC_DIR}"
    if contract_required():
        pytest.fail(message)
    pytest.skip(message)


# Atlassian's identity endpoints (accessible-resources, the token endpoint) are not in the
# Confluence documents; exchanges with them are not checked here (tests/test_auth.py does).
IDENTITY_PATHS = ("/oauth/token", "/oauth/token/accessible-resources")
GATEWAY_PREFIX = "/ex/confluence/"


DOWNLOAD_PREFIX = "/wiki/download/"


def contract_path(path: str) -> str | None:
    """The Confluence path to check: the gateway prefix ``/ex/confluence/{cloudId}`` is
    stripped; None for the identity endpoints and the file downloads a download route
    redirects to (``/wiki/download/...``), which no Confluence document describes."""
    if path in IDENTITY_PATHS:
        return None
    if path.startswith(GATEWAY_PREFIX):
        _, _, rest = path[len(GATEWAY_PREFIX) :].partition("/")
        path = "/" + rest
    if path.startswith(DOWNLOAD_PREFIX):
        return None
    return path


def api_version_for(path: str) -> ApiVersion | None:
    if path.startswith("/wiki/api/v2/"):
        return "v2"
    if path.startswith("/wiki/rest/api/"):
        return "v1"
    return None


def _version_of(spec: Mapping[str, Any]) -> ApiVersion:
    servers = spec.get("servers") or [{}]
    return "v2" if "/wiki/api/v2" in str(servers[0].get("url", "")) else "v1"


# -- openapi-core plumbing (imported lazily: it is a dev dependency) ------------------------


def _security_factory() -> Any:
    """Providers that really look at Authorization.

    openapi-core treats oauth2 as "unsupported" and lets any request through it (with a
    warning); here oauth2 means ``Bearer <token>`` and basic means base64 ``user:secret``.
    """
    from openapi_core.security.exceptions import SecurityProviderError
    from openapi_core.security.factories import SecurityProviderFactory
    from openapi_core.security.providers import BaseProvider, HttpProvider

    def scheme_and_value(parameters: Any) -> tuple[str, str]:
        header = parameters.header.get("Authorization")
        if not header:
            raise SecurityProviderError("Missing authorization header.")
        scheme, _, value = str(header).strip().partition(" ")
        return scheme.lower(), value.strip()

    class BearerProvider(BaseProvider):
        def __call__(self, parameters: Any) -> Any:
            scheme, value = scheme_and_value(parameters)
            if scheme != "bearer" or not value:
                raise SecurityProviderError("OAuth 2.0 needs 'Authorization: Bearer <token>'.")
            return value

    class StrictHttpProvider(HttpProvider):
        def __call__(self, parameters: Any) -> Any:
            value = super().__call__(parameters)
            if (self.scheme / "scheme").read_str().lower() == "basic":
                try:
                    decoded = base64.b64decode(str(value).strip(), validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    raise SecurityProviderError("Basic credentials are not base64.") from None
                if ":" not in decoded:
                    raise SecurityProviderError("Basic credentials are not 'user:secret'.")
            return value

    factory = SecurityProviderFactory()
    factory.PROVIDERS = {
        **SecurityProviderFactory.PROVIDERS,
        "http": StrictHttpProvider,
        "oauth2": BearerProvider,
    }
    return factory


_APPS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _app_for(spec: Mapping[str, Any]) -> Any:
    """One openapi-core app per document object for the whole session (parsing is costly)."""
    cached = _APPS.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    from openapi_core import OpenAPI
    from openapi_core.configurations import Config

    # spec_validator_cls=None: the v2 document fails strict validation on one enum
    # default ('my, team' not in ['my', 'team']); nothing else depends on it.
    config = Config(
        spec_validator_cls=None,  # type: ignore[arg-type]  # None is the documented "off"
        security_provider_factory=_security_factory(),
    )
    app = OpenAPI.from_dict(dict(spec), config=config)
    _APPS[id(spec)] = (spec, app)
    return app


@dataclass
class _Request:
    """openapi-core's Request protocol, with the simulator's origin mapped to the tenant."""

    host_url: str
    path: str
    method: str
    parameters: Any
    body: bytes | None
    content_type: str


@dataclass
class _Response:
    status_code: int
    headers: Any
    content_type: str
    data: bytes | None


@dataclass(frozen=True)
class ContractResult:
    """What was checked: the operation, request errors that were tolerated, and notes."""

    operation: str  # e.g. "getPages (GET /pages)"
    status: int
    request_errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    """A one-line reason: the error class plus the first schema errors, never a page dump."""
    cause = exc.__cause__
    schema_errors = getattr(cause, "schema_errors", None) or getattr(exc, "schema_errors", None)
    if schema_errors:
        details = []
        for error in list(schema_errors)[:3]:
            where = "/".join(str(p) for p in error.absolute_path) or "<root>"
            details.append(f"{where}: {_short(error.message, 200)}")
        head = str(exc).split(": Value ")[0].rstrip(":")
        if not head.startswith(type(exc).__name__):
            head = f"{type(exc).__name__}: {head}"
        return _short(head, 160) + " -> " + "; ".join(details)
    text = str(exc)
    if not text.startswith(type(exc).__name__):
        text = f"{type(exc).__name__}: {text}"
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({type(cause).__name__}: {cause})"
    return _short(text)


def _is_security_error(exc: BaseException) -> bool:
    from openapi_core.validation.request.exceptions import SecurityValidationError

    return isinstance(exc, SecurityValidationError)


def _broken_default(exc: BaseException, operation: Any, sent: Any) -> str | None:
    """The parameter's name when ``exc`` is its unsent, out-of-enum document default."""
    from openapi_core.validation.request.exceptions import ParameterValidationError

    if not isinstance(exc, ParameterValidationError) or exc.location != "query":
        return None
    if exc.name in sent or "parameters" not in operation:
        return None
    for param in operation / "parameters":
        if (param / "name").read_str() != exc.name or "schema" not in param:
            continue
        schema = (param / "schema").read_value()
        default, enum = schema.get("default"), schema.get("enum")
        if default is not None and enum is not None and default not in enum:
            return exc.name
    return None


def _only_ambiguous_one_of(exc: BaseException) -> bool:
    """True when every schema error is the document's overlapping-``oneOf`` defect."""
    from openapi_core.validation.request.exceptions import RequestBodyValidationError

    if not isinstance(exc, RequestBodyValidationError):
        return False
    errors = list(getattr(exc.__cause__, "schema_errors", None) or ())
    return bool(errors) and all(
        e.validator == "oneOf" and "is valid under each of" in e.message for e in errors
    )


class ContractChecker:
    """Validate exchanges (request and response) against the Confluence documents.

    ``ContractChecker(spec)`` takes an already-loaded document (v2 or v1, detected from its
    ``servers``); the other version is loaded from disk when an exchange needs it.
    """

    def __init__(
        self,
        spec: Mapping[str, Any] | None = None,
        *,
        v1_spec: Mapping[str, Any] | None = None,
    ) -> None:
        self._specs: dict[str, Mapping[str, Any]] = {}
        if spec is not None:
            self._specs[_version_of(spec)] = spec
        if v1_spec is not None:
            self._specs["v1"] = v1_spec
        self.notes: list[str] = []

    def _app(self, version: ApiVersion) -> Any:
        if version not in self._specs:
            self._specs[version] = require_spec(version)
        return _app_for(self._specs[version])

    def _note(self, message: str) -> None:
        self.notes.append(message)
        warnings.warn(ContractSkip(message), stacklevel=3)

    def check_exchanges(
        self, exchanges: Iterable[ExchangeLike], *, invalid: Sequence[int] = ()
    ) -> list[ContractResult]:
        """Check several; ``invalid`` lists the indexes expected to be rejected by the document."""
        return [
            self.check_exchange(ex, request="invalid" if i in invalid else "valid")
            for i, ex in enumerate(exchanges)
        ]

    def check_exchange(
        self, exchange: ExchangeLike, *, request: RequestExpectation = "valid"
    ) -> ContractResult:
        """Raise AssertionError naming the operation and the first violation.

        ``request="valid"``: the request must conform, except that missing or unusable
        credentials are tolerated (and noted) when the server answered 401.
        ``request="invalid"``: the document must reject the request too (a negative test
        that the document would accept proves nothing) and the answer must be a 4xx.
        """
        from openapi_core.datatypes import RequestParameters
        from openapi_core.templating.paths.exceptions import PathError
        from openapi_core.templating.paths.finders import APICallPathFinder
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        method = exchange.method.lower()
        label = f"{exchange.method} {exchange.path}"
        checked = contract_path(unquote(exchange.path))
        if checked is None:
            return ContractResult(f"identity endpoint {label}", exchange.status)
        path = checked
        version = api_version_for(path)
        if version is None:
            raise AssertionError(
                f"{label} is not an operation of the Confluence documents "
                "(neither /wiki/api/v2/ nor /wiki/rest/api/)"
            )
        app = self._app(version)
        host = SPEC_HOSTS[version]
        try:
            found = APICallPathFinder(app.spec).find(method, host + path)
        except PathError as exc:
            raise AssertionError(
                f"{label} is not an operation of the Confluence {version} document: {exc}"
            ) from None
        operation = found.operation
        op_id = (operation / "operationId").read_str() if "operationId" in operation else label
        name = f"{op_id} ({exchange.method} {found.path_result.pattern})"
        notes: list[str] = []

        # -- request --------------------------------------------------------------------
        headers = Headers(list(exchange.request_headers))
        query = ImmutableMultiDict(self._query_pairs(exchange.query, found))
        content_type = headers.get("Content-Type", "")
        req = _Request(
            host_url=host,
            path=path,
            method=method,
            parameters=RequestParameters(query=query, header=headers),
            body=exchange.request_body or None,
            content_type=content_type,
        )
        errors = self._request_errors(app, req)
        tolerated: list[str] = []
        problems: list[BaseException] = []
        for error in errors:
            broken = _broken_default(error, operation, query)
            if broken is not None:
                tolerated.append(_describe(error))
                notes.append(
                    f"{name}: the document's default for query parameter '{broken}' is not "
                    "in its own enum and the parameter was not sent; not the request's fault"
                )
            elif _only_ambiguous_one_of(error):
                tolerated.append(_describe(error))
                notes.append(
                    f"{name}: request body matched several alternatives of an overlapping "
                    "oneOf in the document (its alternatives are open objects); accepted as "
                    "anyOf"
                )
            elif _is_security_error(error) and exchange.status == 401 and request == "valid":
                tolerated.append(_describe(error))
                notes.append(
                    f"{name}: request had no credentials the document accepts and the server "
                    "answered 401"
                )
            else:
                problems.append(error)
        if request == "valid" and problems:
            raise AssertionError(
                f"{name}: request does not conform to the {version} document: "
                f"{_describe(problems[0])}"
            )
        if request == "invalid":
            if not problems:
                raise AssertionError(
                    f"{name}: expected the {version} document to reject this request "
                    f"({exchange.method} {exchange.path}?{exchange.query}), but it conforms"
                )
            if not 400 <= exchange.status < 500:
                raise AssertionError(
                    f"{name}: a request the document rejects was answered {exchange.status}, "
                    "not a 4xx"
                )
            tolerated.extend(_describe(e) for e in problems or errors)

        # -- response -------------------------------------------------------------------
        notes.extend(self._check_response(app, req, exchange, name, operation))
        for note in notes:
            self._note(note)
        return ContractResult(name, exchange.status, tuple(tolerated), tuple(notes))

    @staticmethod
    def _request_errors(app: Any, req: _Request) -> list[BaseException]:
        """All request errors; on a security error the rest is still checked.

        openapi-core stops at the first security error, which would leave parameters and
        body of an unauthenticated request unchecked; a placeholder credential fills in.
        """
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers

        errors: list[BaseException] = list(app.request_validator.iter_errors(req))
        if not any(_is_security_error(e) for e in errors):
            return errors
        headers = Headers(req.parameters.header)
        headers["Authorization"] = "Basic " + base64.b64encode(b"placeholder:x").decode()
        retry = _Request(
            host_url=req.host_url,
            path=req.path,
            method=req.method,
            parameters=RequestParameters(query=req.parameters.query, header=headers),
            body=req.body,
            content_type=req.content_type,
        )
        return errors + list(app.request_validator.iter_errors(retry))

    @staticmethod
    def _query_pairs(raw: str, found: Any) -> list[tuple[str, str]]:
        """Query pairs, with comma-separated values of array parameters split into items."""
        arrays: set[str] = set()
        for holder in (found.operation, found.path):
            if "parameters" not in holder:
                continue
            for param in holder / "parameters":
                schema = param / "schema" if "schema" in param else None
                if (
                    schema is not None
                    and (param / "in").read_str() == "query"
                    and "type" in schema
                    and (schema / "type").read_str() == "array"
                ):
                    arrays.add((param / "name").read_str())
        pairs: list[tuple[str, str]] = []
        for key, value in parse_qsl(raw, keep_blank_values=True):
            if key in arrays and "," in value:
                pairs.extend((key, item) for item in value.split(","))
            else:
                pairs.append((key, value))
        return pairs

    @staticmethod
    def _check_response(
        app: Any, req: _Request, exchange: ExchangeLike, name: str, operation: Any
    ) -> list[str]:
        from werkzeug.datastructures import Headers

        status = str(exchange.status)
        responses = operation / "responses"
        declared = list(responses.str_keys())
        key = next(
            (k for k in (status, f"{status[0]}XX", "default") if k in declared),
            None,
        )
        headers = Headers(list(exchange.response_headers))
        content_type = headers.get("Content-Type", "")
        if key is None:
            if exchange.status < 400:
                raise AssertionError(
                    f"{name}: status {status} is not declared by the document "
                    f"(declared: {', '.join(declared)})"
                )
            if "json" in content_type and exchange.response_body:
                try:
                    json.loads(exchange.response_body)
                except ValueError as exc:
                    raise AssertionError(
                        f"{name}: {status} response says {content_type} but is not JSON: {exc}"
                    ) from None
            return [
                f"{name}: status {status} is not declared by the document (declared: "
                f"{', '.join(declared)}); response body not checked"
            ]
        described = responses / key
        has_schema = "content" in described and any(
            True for _ in (described / "content").str_keys()
        )
        if not has_schema:
            if exchange.response_body:
                return [
                    f"{name}: the document declares status {status} without a body schema; "
                    "response body not checked"
                ]
            return []
        response = _Response(exchange.status, headers, content_type, exchange.response_body)
        for error in app.response_validator.iter_errors(req, response):
            raise AssertionError(
                f"{name}: {status} response does not conform to the document: {_describe(error)}"
            )
        return []
