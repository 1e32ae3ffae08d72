"""Deterministic seed content: three spaces of pages (and the examples' space), plus blog
posts, comments, attachments, custom content, properties and the tasks found in bodies;
optional bulk pages.

Ids, titles and timestamps never change between runs, so tests and docs can name them:
spaces ENG 65538 / DOCS 65539 / OPS 65540 (homepages 98305, 163841, 229377), the examples'
space HARBOR 123456 (page 123456789, outside the id sequence), blog posts
from 294913, comments from 360449, attachments from 425985 (``att425985``), custom content
from 491521, properties from 4587521, tasks from 7340033. Page versions keep their bodies:
version n of a seeded page holds the first n/N share of its current body.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from .store import (
    Attachment,
    Comment,
    CustomContent,
    Page,
    Property,
    Space,
    Store,
    User,
    VersionInfo,
)

__all__ = [
    "ATTACHMENT_FIRST_ID",
    "BLOGPOST_FIRST_ID",
    "COMMENT_FIRST_ID",
    "CUSTOM_CONTENT_FIRST_ID",
    "DECISION_TYPE",
    "EXAMPLE_SPACE",
    "EXTRA_PAGE_FIRST_ID",
    "PROPERTY_FIRST_ID",
    "SPACES",
    "TIMELINE_TYPE",
    "USERS",
    "account_id_for",
    "format_time",
    "generated_pages",
    "seed_store",
    "split_blocks",
]

USERS: tuple[User, ...] = (
    User("557058:2f4c6e1a-8b3d-4f5e-9a7c-1d2e3f4a5b6c", "Priya Raman", "priya.raman@example.com"),
    User("557058:7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "Marcus Webb", "marcus.webb@example.com"),
    User(
        "557058:c9d8e7f6-a5b4-4c3d-8e2f-1a0b9c8d7e6f",
        "Sofia Lindqvist",
        "sofia.lindqvist@example.com",
    ),
    User("557058:41e2d3c4-b5a6-4978-8f6e-5d4c3b2a1908", "Kenji Tanaka", "kenji.tanaka@example.com"),
    # Accounts created before 2018 still carry the old 24-hex id format.
    User("5d8f3a2b1c0e9f7a6b5c4d3e", "Dana Okafor", "dana.okafor@example.com"),
)

EXTRA_PAGE_FIRST_ID = 1_000_001


def account_id_for(email: str) -> str:
    """The simulator caller's account id: stable per email, in the ``557058:uuid`` format."""
    known = next((u.account_id for u in USERS if u.email == email), None)
    return known or f"557058:{uuid.uuid5(uuid.NAMESPACE_URL, 'mailto:' + email)}"


def format_time(moment: datetime) -> str:
    """Confluence's timestamp format: ``YYYY-MM-DDTHH:mm:ss.sssZ``."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


# -- storage-format building blocks ---------------------------------------------------------


def _p(text: str) -> str:
    return f"<p>{text}</p>"


def _h(level: int, text: str) -> str:
    return f"<h{level}>{escape(text, quote=False)}</h{level}>"


def _ul(*items: str) -> str:
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _ol(*items: str) -> str:
    return "<ol>" + "".join(f"<li>{item}</li>" for item in items) + "</ol>"


def _panel(kind: str, text: str) -> str:
    """Info/note/warning panels are ``ac:structured-macro`` elements in storage format."""
    return (
        f'<ac:structured-macro ac:name="{kind}" ac:schema-version="1">'
        f"<ac:rich-text-body><p>{text}</p></ac:rich-text-body></ac:structured-macro>"
    )


def _code(language: str, code: str) -> str:
    return (
        '<ac:structured-macro ac:name="code" ac:schema-version="1">'
        f'<ac:parameter ac:name="language">{language}</ac:parameter>'
        f"<ac:plain-text-body><![CDATA[{code}]]></ac:plain-text-body></ac:structured-macro>"
    )


def _link(title: str) -> str:
    return (
        f'<ac:link><ri:page ri:content-title="{escape(title)}" />'
        f"<ac:plain-text-link-body><![CDATA[{title}]]></ac:plain-text-link-body></ac:link>"
    )


def _user(account_id: str) -> str:
    return f'<ac:link><ri:user ri:account-id="{account_id}" /></ac:link>'


def _table(header: tuple[str, ...], *rows: tuple[str, ...]) -> str:
    head = "<tr>" + "".join(f"<th><p>{cell}</p></th>" for cell in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td><p>{c}</p></td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tbody>{head}{body}</tbody></table>"


def _tasks(*items: tuple[str, bool]) -> str:
    tasks = "".join(
        f"<ac:task><ac:task-id>{n}</ac:task-id>"
        f"<ac:task-status>{'complete' if done else 'incomplete'}</ac:task-status>"
        f"<ac:task-body>{text}</ac:task-body></ac:task>"
        for n, (text, done) in enumerate(items, start=1)
    )
    return f"<ac:task-list>{tasks}</ac:task-list>"


def _due(day: str) -> str:
    """A task due date is a ``<time>`` element inside the task body."""
    return f'<time datetime="{day}" />'


def _children() -> str:
    return '<ac:structured-macro ac:name="children" ac:schema-version="2" />'


PRIYA, MARCUS, SOFIA, KENJI, DANA = (u.account_id for u in USERS)


@dataclass(frozen=True, slots=True)
class _PageSeed:
    slug: str
    title: str
    parent: str | None
    body: str
    author: str
    versions: int = 1
    labels: tuple[str, ...] = ()
    status: str = "current"
    first_title: str | None = None  # the title of version 1, when the page was renamed


@dataclass(frozen=True, slots=True)
class _SpaceSeed:
    id: int
    key: str
    name: str
    description: str
    author: str
    created: datetime
    first_page_id: int
    labels: tuple[str, ...]
    pages: tuple[_PageSeed, ...]


_ENG_PAGES = (
    _PageSeed(
        "home",
        "Engineering Home",
        None,
        _h(1, "Welcome to Engineering")
        + _p(
            "This space holds how we build and run the platform: architecture, decisions, "
            "runbooks and process."
        )
        + _panel("info", f"New here? Start with {_link('Engineering Onboarding')}.")
        + _children(),
        PRIYA,
        versions=4,
    ),
    _PageSeed(
        "arch",
        "Architecture Overview",
        "home",
        _h(2, "Context")
        + _p(
            "The platform is a set of Python and Go services behind an Envoy edge, talking gRPC "
            "internally and publishing events to Kafka."
        )
        + _h(2, "Main components")
        + _table(
            ("Component", "Owner", "Tech"),
            ("edge-gateway", "Platform", "Envoy"),
            ("accounts-api", "Identity", "Python / FastAPI"),
            ("billing-worker", "Payments", "Go"),
            ("search-indexer", "Discovery", "Python / OpenSearch"),
        )
        + _p(
            f"Decisions that shaped this are recorded in {_link('Architecture Decision Records')}."
        ),
        MARCUS,
        versions=7,
        labels=("architecture",),
    ),
    _PageSeed(
        "catalog",
        "Service Catalog",
        "arch",
        _p("Every deployable service, its on-call team and its dashboards.")
        + _table(
            ("Service", "Team", "Tier", "Repository"),
            (
                "accounts-api",
                "Identity",
                "1",
                "<code>git@example.com:identity/accounts-api.git</code>",
            ),
            (
                "billing-worker",
                "Payments",
                "1",
                "<code>git@example.com:payments/billing-worker.git</code>",
            ),
            (
                "search-indexer",
                "Discovery",
                "2",
                "<code>git@example.com:discovery/search-indexer.git</code>",
            ),
            (
                "notifications",
                "Growth",
                "3",
                "<code>git@example.com:growth/notifications.git</code>",
            ),
        ),
        SOFIA,
        versions=3,
        labels=("architecture", "services"),
    ),
    _PageSeed(
        "adrs",
        "Architecture Decision Records",
        "arch",
        _p(
            "Short records of significant decisions, numbered and never rewritten: supersede "
            "instead."
        )
        + _children(),
        MARCUS,
        labels=("adr",),
    ),
    _PageSeed(
        "adr1",
        "ADR-001: Use PostgreSQL as the primary datastore",
        "adrs",
        _h(2, "Status")
        + _p("Accepted (2022-04-11)")
        + _h(2, "Decision")
        + _p(
            "All transactional services store their state in PostgreSQL 15 on managed instances, "
            "one database per service."
        )
        + _h(2, "Consequences")
        + _ul(
            "Cross-service joins are not possible; use events.",
            "Backups and failover follow the managed-service runbook.",
        ),
        MARCUS,
        versions=2,
        labels=("adr", "database"),
    ),
    _PageSeed(
        "adr2",
        "ADR-002: Adopt gRPC for internal service calls",
        "adrs",
        _h(2, "Status")
        + _p("Accepted (2022-06-02)")
        + _h(2, "Decision")
        + _p(
            "Service-to-service calls use gRPC with protobuf contracts kept in the "
            "<code>proto</code> repository."
        )
        + _code(
            "protobuf",
            'syntax = "proto3";\nservice Accounts {\n  rpc GetAccount(GetAccountRequest) returns '
            "(Account);\n}",
        ),
        KENJI,
        labels=("adr",),
    ),
    _PageSeed(
        "adr3",
        "ADR-003: Feature flags via OpenFeature",
        "adrs",
        _h(2, "Status")
        + _p("Proposed")
        + _p(
            "Wrap the flag vendor behind the OpenFeature SDK so it can be replaced without "
            "touching call sites."
        ),
        SOFIA,
        labels=("adr", "proposed"),
    ),
    _PageSeed(
        "runbooks",
        "Runbooks",
        "home",
        _p("Step-by-step procedures for on-call engineers. Keep them executable at 3 a.m.")
        + _children(),
        PRIYA,
        labels=("runbook",),
    ),
    _PageSeed(
        "rb-db",
        "Runbook: PostgreSQL failover",
        "runbooks",
        _panel("warning", "Failover drops in-flight transactions. Announce in #incidents first.")
        + _h(2, "Steps")
        + _ol(
            "Confirm the primary is unhealthy on the <em>Postgres overview</em> dashboard.",
            "Promote the replica:",
            "Point the <code>accounts-db</code> DNS record at the new primary.",
            "Rebuild a replica from the latest base backup.",
        )
        + _code("bash", "gcloud sql instances promote-replica accounts-db-replica-1 --quiet"),
        KENJI,
        versions=5,
        labels=("runbook", "database", "on-call"),
        first_title="Runbook: Postgres failover",
    ),
    _PageSeed(
        "rb-cache",
        "Runbook: Flush the Redis cache",
        "runbooks",
        _p("Use when stale sessions are reported after a deploy.")
        + _code("bash", "redis-cli -h cache.internal -n 2 FLUSHDB ASYNC")
        + _panel("note", "Flushing DB 2 logs everyone out. Prefer deleting the affected keys."),
        DANA,
        versions=2,
        labels=("runbook",),
    ),
    _PageSeed(
        "onboarding",
        "Engineering Onboarding",
        "home",
        _h(2, "Your first week")
        + _tasks(
            ("Get laptop and SSO access", True),
            (f"Set up your machine with {_link('Development Environment Setup')}", False),
            ("Ship a change to staging with a buddy", False),
            (f"Read the {_link('Code Review Guidelines')}", False),
        )
        + _p(f"Your onboarding buddy this quarter is {_user(SOFIA)}."),
        SOFIA,
        versions=6,
        labels=("onboarding",),
    ),
    _PageSeed(
        "devenv",
        "Development Environment Setup",
        "onboarding",
        _p(
            "We develop against containers; only Docker, Python 3.11 and Go 1.22 are needed "
            "locally."
        )
        + _code(
            "bash",
            "git clone git@example.com:platform/dev-env.git\ncd dev-env && make bootstrap\nmake up",
        ),
        KENJI,
        versions=3,
        labels=("onboarding", "tooling"),
    ),
    _PageSeed(
        "review",
        "Code Review Guidelines",
        "onboarding",
        _ul(
            "Review within one working day; say so if you cannot.",
            "Prefer small pull requests (under 400 changed lines).",
            "Comment on the code, not the author. Mark nits as <em>nit:</em>.",
            "Approve when it is better than before, not when it is perfect.",
        ),
        PRIYA,
        versions=2,
        labels=("process",),
    ),
    _PageSeed(
        "release",
        "Release Process",
        "home",
        _p("We release from <code>main</code> every weekday at 10:00 UTC.")
        + _ol(
            "The release bot cuts <code>release/YYYY-MM-DD</code> and deploys to staging.",
            "QA signs off in the release ticket.",
            "Progressive rollout: 5%, 25%, 100% with automatic rollback on SLO burn.",
        ),
        MARCUS,
        versions=4,
        labels=("process", "release"),
        first_title="Release process (draft)",
    ),
    _PageSeed(
        "postmortems",
        "Incident Postmortems",
        "home",
        _p("Blameless write-ups of customer-facing incidents.") + _children(),
        PRIYA,
        labels=("postmortem",),
    ),
    _PageSeed(
        "pm-latency",
        "Postmortem 2024-02-14: API latency spike",
        "postmortems",
        _h(2, "Summary")
        + _p(
            "Between 14:02 and 14:49 UTC p99 latency of accounts-api rose to 4.8 s after a "
            "connection-pool change."
        )
        + _h(2, "Action items")
        + _tasks(
            ("Add pool saturation alert", True), ("Load-test pool settings in staging", False)
        ),
        DANA,
        versions=2,
        labels=("postmortem", "accounts-api"),
    ),
    _PageSeed(
        "q3-planning",
        "Q3 2023 Planning",
        "home",
        _p("Archived: goals and staffing for Q3 2023.")
        + _ul("Finish Kafka migration", "Cut p99 latency by 30%", "Hire two SREs"),
        PRIYA,
        versions=3,
        labels=("planning",),
        status="archived",
    ),
    _PageSeed(
        "jenkins",
        "Legacy Jenkins Notes",
        "home",
        _p("Notes on the Jenkins setup we retired in 2023."),
        DANA,
        status="trashed",
    ),
)

_DOCS_PAGES = (
    _PageSeed(
        "home",
        "Documentation Home",
        None,
        _h(1, "Product documentation")
        + _p("User and developer documentation for the Harbor platform.")
        + _children(),
        SOFIA,
        versions=2,
    ),
    _PageSeed(
        "start",
        "Getting Started",
        "home",
        _p("Create an account, install the CLI and make your first API call in ten minutes.")
        + _children(),
        SOFIA,
        labels=("getting-started",),
    ),
    _PageSeed(
        "install",
        "Installation",
        "start",
        _h(2, "Requirements")
        + _ul("Python 3.11 or newer", "Network access to <code>api.example.com</code>")
        + _code("bash", "pipx install harbor-cli\nharbor --version"),
        KENJI,
        versions=3,
        labels=("getting-started", "cli"),
    ),
    _PageSeed(
        "config",
        "Configuration Reference",
        "start",
        _table(
            ("Key", "Default", "Description"),
            (
                "<code>api_url</code>",
                "<code>https://api.example.com</code>",
                "Base URL of the API.",
            ),
            ("<code>timeout</code>", "30", "Request timeout in seconds."),
            ("<code>retries</code>", "3", "Retries on 429 and 503, honouring Retry-After."),
        ),
        KENJI,
        versions=5,
        labels=("reference",),
    ),
    _PageSeed(
        "api",
        "API Reference",
        "home",
        _p("REST endpoints, authentication and conventions.") + _children(),
        MARCUS,
        labels=("api", "reference"),
    ),
    _PageSeed(
        "auth",
        "Authentication",
        "api",
        _p(
            "Use an API token with HTTP Basic authentication, or an OAuth 2.0 access token as a "
            "Bearer token."
        )
        + _code("bash", "curl -u you@example.com:$API_TOKEN https://api.example.com/v1/me"),
        MARCUS,
        versions=2,
        labels=("api", "security"),
    ),
    _PageSeed(
        "pagination",
        "Pagination",
        "api",
        _p(
            "List endpoints return a cursor. Follow the <code>Link</code> header with "
            '<code>rel="next"</code> until it is absent.'
        ),
        MARCUS,
        labels=("api",),
    ),
    _PageSeed(
        "rate-limits",
        "Rate Limits",
        "api",
        _p(
            "Clients get 100 requests per second per token. Over the limit the API answers 429 "
            "with a <code>Retry-After</code> header."
        )
        + _panel("tip", "Back off exponentially with jitter when no Retry-After is given."),
        DANA,
        versions=2,
        labels=("api",),
    ),
    _PageSeed(
        "webhooks",
        "Webhooks",
        "api",
        _p(
            "Webhooks deliver JSON events signed with HMAC-SHA256 in the <code>X-Signature</code> "
            "header."
        ),
        SOFIA,
        labels=("api", "webhooks"),
    ),
    _PageSeed(
        "troubleshooting",
        "Troubleshooting",
        "home",
        _h(2, "401 Unauthorized")
        + _p(
            "The token is wrong or expired. Create a new one under <em>Profile &gt; Security</em>."
        )
        + _h(2, "429 Too Many Requests")
        + _p(f"See {_link('Rate Limits')}."),
        DANA,
        versions=4,
        labels=("support",),
    ),
    _PageSeed(
        "faq",
        "FAQ",
        "home",
        _h(3, "Can I export my data?")
        + _p("Yes, from <em>Settings &gt; Export</em>, as JSON or CSV.")
        + _h(3, "Is there an SLA?")
        + _p("99.9% monthly uptime on the Business plan."),
        SOFIA,
        labels=("support",),
    ),
    _PageSeed(
        "release-notes",
        "Release Notes",
        "home",
        _p("What changed in each release.") + _children(),
        KENJI,
        labels=("release-notes",),
    ),
    _PageSeed(
        "rn-24",
        "Release Notes 2.4",
        "release-notes",
        _ul("New: cursor pagination on all list endpoints.", "Fixed: 500 on empty search queries."),
        KENJI,
        versions=2,
        labels=("release-notes",),
    ),
    _PageSeed(
        "rn-23",
        "Release Notes 2.3",
        "release-notes",
        _ul("New: OAuth 2.0 (3LO) support.", "Deprecated: offset pagination."),
        KENJI,
        labels=("release-notes",),
        status="archived",
    ),
    _PageSeed(
        "style",
        "Documentation Style Guide",
        "home",
        _ul(
            "Write in the second person and the present tense.",
            "One idea per sentence; one task per page.",
            "Show the command, then its output.",
        ),
        SOFIA,
        versions=3,
        labels=("style",),
    ),
    _PageSeed(
        "glossary",
        "Glossary",
        "home",
        _table(
            ("Term", "Meaning"),
            ("Space", "A container of pages."),
            ("Cursor", "An opaque paging token."),
        ),
        SOFIA,
        labels=("reference",),
    ),
)

_OPS_PAGES = (
    _PageSeed(
        "home",
        "Operations Home",
        None,
        _h(1, "Operations")
        + _p("On-call, incident response, monitoring and change management.")
        + _children(),
        PRIYA,
        versions=3,
    ),
    _PageSeed(
        "oncall",
        "On-call Rotation",
        "home",
        _table(
            ("Week", "Primary", "Secondary"),
            ("2024-W18", _user(KENJI), _user(DANA)),
            ("2024-W19", _user(DANA), _user(MARCUS)),
            ("2024-W20", _user(MARCUS), _user(KENJI)),
        ),
        DANA,
        versions=12,
        labels=("on-call",),
    ),
    _PageSeed(
        "escalation",
        "Escalation Policy",
        "home",
        _ol(
            "Primary on-call acknowledges within 5 minutes.",
            "Secondary is paged after 10 minutes without acknowledgement.",
            "The engineering manager is paged for SEV-1 after 20 minutes.",
        ),
        PRIYA,
        versions=2,
        labels=("on-call", "incident"),
    ),
    _PageSeed(
        "monitoring",
        "Monitoring and Alerting",
        "home",
        _p(
            "Metrics go to Prometheus, logs to Loki, traces to Tempo. Alerts route through "
            "Alertmanager to PagerDuty."
        )
        + _children(),
        KENJI,
        versions=4,
        labels=("monitoring",),
    ),
    _PageSeed(
        "alert-5xx",
        "Alert: High 5xx Error Rate",
        "monitoring",
        _code(
            "yaml",
            'alert: High5xxRate\nexpr: sum(rate(http_requests_total{code=~"5.."}[5m])) / '
            "sum(rate(http_requests_total[5m])) > 0.02\nfor: 10m",
        )
        + _p(f"First check recent deploys, then follow {_link('Incident Response Checklist')}."),
        KENJI,
        versions=2,
        labels=("monitoring", "alert"),
    ),
    _PageSeed(
        "alert-disk",
        "Alert: Disk Usage Above 85%",
        "monitoring",
        _p(
            "Usually log volume growth. Rotate logs, then expand the volume if usage stays above "
            "80%."
        ),
        DANA,
        labels=("monitoring", "alert"),
    ),
    _PageSeed(
        "checklist",
        "Incident Response Checklist",
        "home",
        _tasks(
            ("Declare the incident in #incidents and pick an incident commander", True),
            (f"Open a status page entry for customer-facing impact {_user(DANA)}", False),
            (f"Record a timeline as you go {_user(KENJI)} {_due('2024-05-10')}", False),
            (f"Schedule the postmortem within 3 working days {_due('2024-05-14')}", False),
        ),
        PRIYA,
        versions=3,
        labels=("incident",),
    ),
    _PageSeed(
        "change",
        "Change Management",
        "home",
        _p(
            "Standard changes ship through the release train; normal changes need a ticket "
            "approved by a second engineer."
        )
        + _children(),
        MARCUS,
        versions=2,
        labels=("process",),
    ),
    _PageSeed(
        "maintenance",
        "Maintenance Windows 2024",
        "change",
        _table(
            ("Date", "Window (UTC)", "Scope"),
            ("2024-03-09", "02:00-04:00", "PostgreSQL minor upgrade"),
            ("2024-06-08", "02:00-05:00", "Kubernetes 1.29"),
        ),
        MARCUS,
        labels=("maintenance",),
    ),
    _PageSeed(
        "dr",
        "Disaster Recovery Plan",
        "home",
        _p("RPO 15 minutes, RTO 4 hours for tier-1 services.")
        + _ol(
            "Fail over DNS to the secondary region.",
            "Promote regional database replicas.",
            "Scale the secondary cluster to production size.",
        ),
        PRIYA,
        versions=5,
        labels=("dr",),
    ),
    _PageSeed(
        "capacity",
        "Capacity Planning 2024",
        "home",
        _p(
            "Traffic grows about 8% per month; the current clusters last until Q3 without new "
            "nodes."
        ),
        KENJI,
        versions=2,
        labels=("planning",),
    ),
    _PageSeed(
        "vendors",
        "Vendor Contacts",
        "home",
        _table(
            ("Vendor", "Support", "Contract owner"),
            ("CloudCo", "support portal, P1 phone line", _user(PRIYA)),
            ("PagerDuty", "support@pagerduty.com", _user(DANA)),
        ),
        DANA,
        versions=2,
        labels=("vendors",),
    ),
    _PageSeed(
        "access",
        "Access Requests",
        "home",
        _p(
            "Production access is granted for 8 hours through the access portal and needs a "
            "ticket number."
        ),
        MARCUS,
        labels=("security",),
    ),
    _PageSeed(
        "glossary",
        "Glossary",
        "home",
        _table(
            ("Term", "Meaning"),
            ("SEV-1", "Full outage or data loss."),
            ("RPO", "Recovery point objective."),
        ),
        DANA,
        labels=("reference",),
    ),
)

SPACES: tuple[_SpaceSeed, ...] = (
    _SpaceSeed(
        65538,
        "ENG",
        "Engineering",
        "Engineering team space: architecture, decisions, runbooks and how we ship.",
        PRIYA,
        datetime(2022, 3, 1, 9, 12, 44, 103000, tzinfo=UTC),
        98305,
        ("engineering", "team"),
        _ENG_PAGES,
    ),
    _SpaceSeed(
        65539,
        "DOCS",
        "Documentation",
        "Product documentation for users and developers.",
        SOFIA,
        datetime(2022, 3, 8, 13, 40, 2, 518000, tzinfo=UTC),
        163841,
        ("documentation",),
        _DOCS_PAGES,
    ),
    _SpaceSeed(
        65540,
        "OPS",
        "Operations",
        "On-call, incident response and change management.",
        PRIYA,
        datetime(2022, 5, 16, 7, 55, 19, 960000, tzinfo=UTC),
        229377,
        ("operations", "team"),
        _OPS_PAGES,
    ),
)

_VERSION_MESSAGES = (
    "",
    "Fix typos",
    "Add rollback steps",
    "Update owners",
    "",
    "Clarify prerequisites",
    "Link related pages",
)

_TAG = re.compile(r"<!\[CDATA\[.*?\]\]>|<(/?)([A-Za-z][\w:-]*)[^>]*?(/?)>", re.DOTALL)


def split_blocks(xhtml: str) -> list[str]:
    """Top-level elements of a storage body (seed bodies only: no ``>`` inside attributes)."""
    blocks: list[str] = []
    depth = start = 0
    for match in _TAG.finditer(xhtml):
        if match.group(2) is None:
            continue  # CDATA
        if match.group(1):
            depth -= 1
        elif not match.group(3):
            depth += 1
            continue
        if depth == 0:
            blocks.append(xhtml[start : match.end()])
            start = match.end()
    if start < len(xhtml):
        blocks.append(xhtml[start:])
    return blocks


def _versions(
    count: int,
    created: datetime,
    authors: tuple[str, str],
    title: str,
    body: str,
    first_title: str | None = None,
) -> tuple[VersionInfo, ...]:
    """A plausible history: v1 by the creator, edits alternate between two people.

    Version n holds the first ceil(n/count) share of the body's top-level blocks, so older
    versions are real, shorter drafts of the current body (and diffs between them show it).
    """
    blocks = split_blocks(body) if count > 1 else [body]
    history = []
    for number in range(1, count + 1):
        moment = created + timedelta(
            days=9 * (number - 1), hours=3 * (number - 1), minutes=7 * number
        )
        cut = max(1, -(-len(blocks) * number // count))
        history.append(
            VersionInfo(
                number=number,
                created_at=format_time(moment),
                message=_VERSION_MESSAGES[(number - 1) % len(_VERSION_MESSAGES)]
                if number > 1
                else "",
                minor_edit=number > 1 and number % 3 == 0,
                author_id=authors[(number - 1) % 2],
                title=first_title if first_title and number == 1 else title,
                body_representation="storage",
                body_value=body if number == count else "".join(blocks[:cut]),
            )
        )
    return tuple(history)


def _space_pages(space: _SpaceSeed) -> list[Page]:
    ids = {seed.slug: space.first_page_id + n for n, seed in enumerate(space.pages)}
    positions: dict[str | None, int] = {}
    pages = []
    for n, seed in enumerate(space.pages):
        created = space.created + timedelta(days=11 * n, hours=n % 7, minutes=13 * n, seconds=n)
        positions[seed.parent] = positions.get(seed.parent, 0) + 1
        editor = USERS[(n + 2) % len(USERS)].account_id
        pages.append(
            Page(
                id=ids[seed.slug],
                space_id=space.id,
                title=seed.title,
                status=seed.status,
                parent_id=None if seed.parent is None else ids[seed.parent],
                position=positions[seed.parent] * 1000 if seed.parent else 0,
                author_id=seed.author,
                created_at=format_time(created),
                body_representation="storage",
                body_value=seed.body,
                versions=_versions(
                    seed.versions,
                    created,
                    (seed.author, editor),
                    seed.title,
                    seed.body,
                    seed.first_title,
                ),
                labels=seed.labels,
                owner_id=seed.author,
            )
        )
    return pages


# -- blog posts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _BlogSeed:
    id: int
    space_id: int
    title: str
    body: str
    author: str
    created: datetime
    versions: int = 1
    labels: tuple[str, ...] = ()
    status: str = "current"


BLOGPOST_FIRST_ID = 294913

_BLOGPOSTS = (
    _BlogSeed(
        294913,
        65538,
        "Kafka migration complete",
        _h(2, "What changed")
        + _p("All event producers now write to the new Kafka cluster; the old one is read-only.")
        + _ul("Consumer lag dashboards moved to Grafana.", "Retention is 7 days everywhere.")
        + _p(f"Thanks to everyone who helped, especially {_user(KENJI)}."),
        MARCUS,
        datetime(2024, 3, 12, 15, 4, 31, 220000, tzinfo=UTC),
        versions=2,
        labels=("kafka", "announcement"),
    ),
    _BlogSeed(
        294914,
        65538,
        "Welcome our new SREs",
        _p("Please welcome Ana and Tomasz, who join the platform team this week."),
        PRIYA,
        datetime(2024, 4, 2, 8, 30, 0, 0, tzinfo=UTC),
        labels=("team",),
    ),
    _BlogSeed(
        294915,
        65538,
        "Q3 platform roadmap",
        _p("Draft: themes for Q3 are reliability, cost and developer experience."),
        KENJI,
        datetime(2024, 5, 28, 10, 12, 9, 0, tzinfo=UTC),
        status="draft",
    ),
    _BlogSeed(
        294916,
        65538,
        "Deploy freeze over the holidays",
        _p("No production deploys between 2023-12-22 and 2024-01-02."),
        DANA,
        datetime(2023, 12, 15, 9, 0, 0, 0, tzinfo=UTC),
        status="trashed",
    ),
    _BlogSeed(
        294917,
        65539,
        "Docs 2.4 are live",
        _p("The 2.4 documentation covers cursor pagination and the new CLI flags.")
        + _h(2, "Follow-ups")
        + _tasks(
            (f"Update the screenshots in Installation {_user(SOFIA)} {_due('2024-06-07')}", False),
            ("Announce in the community forum", True),
        ),
        SOFIA,
        datetime(2024, 5, 20, 12, 0, 5, 0, tzinfo=UTC),
        versions=3,
        labels=("release-notes",),
    ),
    _BlogSeed(
        294918,
        65540,
        "Incident review: API latency spike",
        _p("A connection-pool change caused 47 minutes of slow responses on 2024-02-14.")
        + _p("Read the full write-up in the Engineering space."),
        DANA,
        datetime(2024, 2, 20, 16, 45, 0, 0, tzinfo=UTC),
        labels=("postmortem", "incident"),
    ),
    _BlogSeed(
        294919,
        65540,
        "New on-call handbook",
        _p("The on-call handbook now lives in the Operations space; the wiki page is gone."),
        PRIYA,
        datetime(2024, 5, 2, 7, 15, 0, 0, tzinfo=UTC),
        versions=2,
    ),
)


def _blogposts() -> list[Page]:
    posts = []
    for n, seed in enumerate(_BLOGPOSTS):
        editor = USERS[(n + 1) % len(USERS)].account_id
        posts.append(
            Page(
                id=seed.id,
                space_id=seed.space_id,
                title=seed.title,
                status=seed.status,
                parent_id=None,
                position=0,
                author_id=seed.author,
                created_at=format_time(seed.created),
                body_representation="storage",
                body_value=seed.body,
                versions=_versions(
                    seed.versions, seed.created, (seed.author, editor), seed.title, seed.body
                ),
                labels=seed.labels,
                owner_id=seed.author,
                kind="blogpost",
            )
        )
    return posts


# -- comments --------------------------------------------------------------------------------

COMMENT_FIRST_ID = 360449


@dataclass(frozen=True, slots=True)
class _CommentSeed:
    id: int
    kind: str
    container: tuple[str, int] | None  # None: a reply, container taken from the parent
    parent: int | None
    author: str
    created: datetime
    bodies: tuple[str, ...]  # one per version
    resolution: str | None = None
    selection: str | None = None
    resolved_by: str | None = None


_COMMENTS = (
    _CommentSeed(
        360449,
        "footer",
        ("page", 98306),
        None,
        KENJI,
        datetime(2024, 1, 9, 10, 2, 0, 0, tzinfo=UTC),
        ("<p>Should the notifications service be in the components table too?</p>",),
    ),
    _CommentSeed(
        360450,
        "footer",
        None,
        360449,
        MARCUS,
        datetime(2024, 1, 9, 11, 40, 0, 0, tzinfo=UTC),
        ("<p>It is tier 3, so it lives in the Service Catalog only.</p>",),
    ),
    _CommentSeed(
        360451,
        "footer",
        None,
        360450,
        KENJI,
        datetime(2024, 1, 9, 12, 5, 0, 0, tzinfo=UTC),
        ("<p>Makes sense, thanks.</p>",),
    ),
    _CommentSeed(
        360452,
        "footer",
        ("page", 98313),
        None,
        DANA,
        datetime(2024, 2, 1, 22, 17, 0, 0, tzinfo=UTC),
        (
            "<p>Step 3: the DNS TTL is 300 s, so clients may keep the old primary.</p>",
            "<p>Step 3: the DNS TTL is 60 s since February; clients follow within a minute.</p>",
        ),
    ),
    _CommentSeed(
        360453,
        "footer",
        ("page", 98315),
        None,
        SOFIA,
        datetime(2024, 3, 4, 9, 0, 0, 0, tzinfo=UTC),
        ("<p>Buddy assignments for next quarter are in the team calendar.</p>",),
    ),
    _CommentSeed(
        360454,
        "footer",
        ("page", 163843),
        None,
        MARCUS,
        datetime(2024, 4, 18, 14, 30, 0, 0, tzinfo=UTC),
        ("<p>pipx also works on macOS with Homebrew's Python.</p>",),
    ),
    _CommentSeed(
        360455,
        "footer",
        ("blogpost", 294913),
        None,
        SOFIA,
        datetime(2024, 3, 12, 16, 0, 0, 0, tzinfo=UTC),
        ("<p>Great work! Do consumers need to change anything?</p>",),
    ),
    _CommentSeed(
        360456,
        "footer",
        None,
        360455,
        MARCUS,
        datetime(2024, 3, 12, 16, 20, 0, 0, tzinfo=UTC),
        ("<p>No: the bootstrap servers moved behind the same DNS name.</p>",),
    ),
    _CommentSeed(
        360457,
        "footer",
        ("page", 229378),
        None,
        KENJI,
        datetime(2024, 4, 25, 8, 45, 0, 0, tzinfo=UTC),
        ("<p>Can someone swap week 19 with me?</p>",),
    ),
    _CommentSeed(
        360458,
        "inline",
        ("page", 98306),
        None,
        SOFIA,
        datetime(2024, 1, 15, 13, 0, 0, 0, tzinfo=UTC),
        ("<p>Which Envoy version do we run at the edge?</p>",),
        resolution="open",
        selection="Envoy edge",
    ),
    _CommentSeed(
        360459,
        "inline",
        ("page", 163848),
        None,
        KENJI,
        datetime(2024, 2, 8, 10, 10, 0, 0, tzinfo=UTC),
        ("<p>Per token or per IP address?</p>",),
        resolution="resolved",
        selection="100 requests per second per token",
        resolved_by=MARCUS,
    ),
    _CommentSeed(
        360460,
        "inline",
        None,
        360459,
        MARCUS,
        datetime(2024, 2, 8, 11, 0, 0, 0, tzinfo=UTC),
        ("<p>Per token; the page says so now.</p>",),
    ),
    _CommentSeed(
        360461,
        "inline",
        ("page", 229381),
        None,
        DANA,
        datetime(2024, 3, 20, 7, 30, 0, 0, tzinfo=UTC),
        ("<p>2% feels high for tier-1 services.</p>",),
        resolution="reopened",
        selection="> 0.02",
        resolved_by=PRIYA,
    ),
)


def _comments(titles: dict[tuple[str, int], str]) -> list[Comment]:
    comments: dict[int, Comment] = {}
    for seed in _COMMENTS:
        if seed.container is not None:
            container = seed.container
        else:
            assert seed.parent is not None
            parent = comments[seed.parent]
            container = (parent.container_type, parent.container_id)
        title = f"Re: {titles[container]}"
        versions = tuple(
            VersionInfo(
                n,
                format_time(seed.created + timedelta(hours=20 * (n - 1))),
                "",
                False,
                seed.author,
                title,
                "storage",
                body,
            )
            for n, body in enumerate(seed.bodies, start=1)
        )
        resolved_at = (
            format_time(seed.created + timedelta(days=1)) if seed.resolved_by is not None else None
        )
        comments[seed.id] = Comment(
            id=seed.id,
            kind=seed.kind,
            container_type=container[0],
            container_id=container[1],
            parent_id=seed.parent,
            status="current",
            title=title,
            author_id=seed.author,
            created_at=format_time(seed.created),
            body_representation="storage",
            body_value=seed.bodies[-1],
            versions=versions,
            resolution_status=seed.resolution
            if seed.kind == "inline" and seed.parent is None
            else None,
            resolution_modifier_id=seed.resolved_by,
            resolution_modified_at=resolved_at,
            marker_ref=str(uuid.uuid5(uuid.NAMESPACE_OID, f"marker-{seed.id}"))
            if seed.selection
            else None,
            original_selection=seed.selection,
        )
    return list(comments.values())


# -- attachments -------------------------------------------------------------------------------

ATTACHMENT_FIRST_ID = 425985

# Smallest well-formed headers, so a client sniffing magic bytes sees the right type.
_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@dataclass(frozen=True, slots=True)
class _AttachmentSeed:
    id: int
    container: tuple[str, int]
    title: str
    media_type: str
    data: bytes
    comment: str
    author: str
    created: datetime
    versions: int = 1
    status: str = "current"
    labels: tuple[str, ...] = ()


_ATTACHMENTS = (
    _AttachmentSeed(
        425985,
        ("page", 98306),
        "architecture-diagram.png",
        "image/png",
        _PNG + b"architecture-diagram" * 8,
        "Context diagram",
        MARCUS,
        datetime(2022, 3, 20, 10, 0, 0, 0, tzinfo=UTC),
        versions=2,
        labels=("diagram",),
    ),
    _AttachmentSeed(
        425986,
        ("page", 98313),
        "failover-checklist.pdf",
        "application/pdf",
        _PDF,
        "Printable checklist",
        KENJI,
        datetime(2023, 6, 2, 9, 30, 0, 0, tzinfo=UTC),
    ),
    _AttachmentSeed(
        425987,
        ("page", 163843),
        "install.sh",
        "application/x-sh",
        b"#!/bin/sh\nset -eu\npipx install harbor-cli\nharbor --version\n",
        "",
        KENJI,
        datetime(2023, 1, 10, 11, 0, 0, 0, tzinfo=UTC),
    ),
    _AttachmentSeed(
        425988,
        ("page", 229378),
        "rota-2024.csv",
        "text/csv",
        b"week,primary,secondary\n2024-W18,kenji,dana\n2024-W19,dana,marcus\n",
        "Rota export",
        DANA,
        datetime(2024, 4, 20, 17, 0, 0, 0, tzinfo=UTC),
    ),
    _AttachmentSeed(
        425989,
        ("blogpost", 294913),
        "kafka-lag.png",
        "image/png",
        _PNG + b"kafka-lag" * 4,
        "Consumer lag after the cut-over",
        MARCUS,
        datetime(2024, 3, 12, 15, 0, 0, 0, tzinfo=UTC),
    ),
    _AttachmentSeed(
        425990,
        ("page", 98306),
        "old-diagram.png",
        "image/png",
        _PNG + b"old" * 4,
        "Superseded",
        MARCUS,
        datetime(2022, 3, 18, 10, 0, 0, 0, tzinfo=UTC),
        status="trashed",
    ),
)


def _attachments() -> list[Attachment]:
    items = []
    for seed in _ATTACHMENTS:
        versions = tuple(
            VersionInfo(
                n,
                format_time(seed.created + timedelta(days=30 * (n - 1))),
                seed.comment if n == 1 else "New export",
                False,
                seed.author,
                seed.title,
                "",
                "",
            )
            for n in range(1, seed.versions + 1)
        )
        items.append(
            Attachment(
                id=seed.id,
                container_type=seed.container[0],
                container_id=seed.container[1],
                title=seed.title,
                status=seed.status,
                media_type=seed.media_type,
                comment=seed.comment,
                file_id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"file-{seed.id}")),
                author_id=seed.author,
                created_at=format_time(seed.created),
                versions=versions,
                data=seed.data,
                labels=seed.labels,
            )
        )
    return items


# -- custom content -------------------------------------------------------------------------------

CUSTOM_CONTENT_FIRST_ID = 491521
DECISION_TYPE = "ac:com.example.decisions:decision"
TIMELINE_TYPE = "forge:harbor-timeline:incident-event"


def _custom_content() -> list[CustomContent]:
    def item(
        content_id: int,
        content_type: str,
        title: str,
        space_id: int,
        page_id: int | None,
        parent: int | None,
        author: str,
        created: datetime,
        representation: str,
        bodies: tuple[str, ...],
        labels: tuple[str, ...] = (),
    ) -> CustomContent:
        versions = tuple(
            VersionInfo(
                n,
                format_time(created + timedelta(days=2 * (n - 1))),
                "",
                False,
                author,
                title,
                representation,
                body,
            )
            for n, body in enumerate(bodies, start=1)
        )
        return CustomContent(
            id=content_id,
            type=content_type,
            status="current",
            title=title,
            space_id=space_id,
            page_id=page_id,
            blog_post_id=None,
            parent_custom_id=parent,
            author_id=author,
            created_at=format_time(created),
            body_representation=representation,
            body_value=bodies[-1],
            versions=versions,
            labels=labels,
        )

    return [
        item(
            491521,
            DECISION_TYPE,
            "Adopt OpenTelemetry for tracing",
            65538,
            98308,
            None,
            SOFIA,
            datetime(2023, 9, 4, 10, 0, 0, 0, tzinfo=UTC),
            "storage",
            (
                "<p>Proposed: instrument services with OpenTelemetry.</p>",
                "<p>Accepted: instrument services with OpenTelemetry; export to Tempo.</p>",
            ),
            ("observability",),
        ),
        item(
            491522,
            DECISION_TYPE,
            "Retire Jenkins",
            65538,
            98308,
            None,
            DANA,
            datetime(2023, 2, 14, 9, 0, 0, 0, tzinfo=UTC),
            "storage",
            ("<p>Accepted: all pipelines run on the hosted CI service.</p>",),
        ),
        item(
            491523,
            DECISION_TYPE,
            "Trace sampling at 10%",
            65538,
            None,
            491521,
            KENJI,
            datetime(2023, 9, 20, 15, 0, 0, 0, tzinfo=UTC),
            "storage",
            ("<p>Head-based sampling at 10%, 100% for errors.</p>",),
        ),
        item(
            491524,
            DECISION_TYPE,
            "Quarterly disaster-recovery drill",
            65540,
            None,
            None,
            PRIYA,
            datetime(2024, 1, 8, 8, 0, 0, 0, tzinfo=UTC),
            "storage",
            ("<p>Run the DR plan end to end once a quarter.</p>",),
        ),
        item(
            491525,
            TIMELINE_TYPE,
            "14:02 UTC: latency alert fired",
            65540,
            229383,
            None,
            DANA,
            datetime(2024, 2, 14, 14, 5, 0, 0, tzinfo=UTC),
            "raw",
            ('{"at":"2024-02-14T14:02:00Z","event":"alert","service":"accounts-api"}',),
        ),
    ]


# -- properties -----------------------------------------------------------------------------------

PROPERTY_FIRST_ID = 4_587_521


def _properties() -> list[Property]:
    def prop(
        prop_id: int,
        owner: tuple[str, int],
        key: str,
        value: Any,
        author: str,
        created: datetime,
        version: int = 1,
        editor: str | None = None,
    ) -> Property:
        changed = created + timedelta(days=14 * (version - 1))
        return Property(
            id=prop_id,
            owner_type=owner[0],
            owner_id=owner[1],
            key=key,
            value=json.dumps(value, separators=(",", ":")),
            created_at=format_time(created),
            created_by=author,
            version=version,
            version_at=format_time(changed),
            version_by=editor or author,
            version_message="" if version == 1 else "Update review date",
        )

    day = datetime(2023, 11, 6, 9, 0, 0, 0, tzinfo=UTC)
    return [
        prop(4_587_521, ("page", 98306), "content-appearance-published", "full-width", MARCUS, day),
        prop(4_587_522, ("page", 98306), "editor", "v2", MARCUS, day),
        prop(
            4_587_523,
            ("page", 98313),
            "harbor.review",
            {"owner": KENJI, "nextReview": "2024-09-01", "cadenceDays": 90},
            KENJI,
            day,
            version=3,
            editor=DANA,
        ),
        prop(
            4_587_524,
            ("page", 163843),
            "docs.metadata",
            {"product": "cli", "audience": ["admins", "developers"]},
            SOFIA,
            day,
        ),
        prop(4_587_525, ("blogpost", 294913), "editor", "v2", MARCUS, day),
        prop(
            4_587_526,
            ("space", 65538),
            "team.metadata",
            {"slack": "#eng", "manager": PRIYA},
            PRIYA,
            day,
        ),
        prop(
            4_587_527,
            ("space", 65540),
            "oncall.schedule",
            {"tool": "PagerDuty", "escalationMinutes": 10},
            PRIYA,
            day,
            version=2,
            editor=DANA,
        ),
    ]


# -- bulk pages and the whole seed ---------------------------------------------------------------


def generated_pages(count: int, space_id: int, parent_id: int) -> Iterator[Page]:
    """Cheap bulk pages for pagination benchmarks: tiny bodies, one version, no labels."""
    start = datetime(2024, 6, 1, 8, 0, 0, tzinfo=UTC)
    for n in range(count):
        author = USERS[n % len(USERS)].account_id
        created = format_time(start + timedelta(minutes=n))
        title = f"Benchmark page {n + 1:05d}"
        body = f"<p>Generated page {n + 1} of {count} for pagination benchmarks.</p>"
        yield Page(
            id=EXTRA_PAGE_FIRST_ID + n,
            space_id=space_id,
            title=title,
            status="current",
            parent_id=parent_id,
            position=100_000 + n,
            author_id=author,
            created_at=created,
            body_representation="storage",
            body_value=body,
            versions=(VersionInfo(1, created, "", False, author, title, "storage", body),),
            owner_id=author,
        )


def seed_store(store: Store, extra_pages: int = 0) -> None:
    """Fill ``store`` with the seed content, then ``extra_pages`` bulk ENG pages."""
    for user in USERS:
        store.add_user(user)
    titles: dict[tuple[str, int], str] = {}
    containers: list[Page] = []
    for space in SPACES:
        store.add_space(
            Space(
                id=space.id,
                key=space.key,
                name=space.name,
                type="global",
                status="current",
                author_id=space.author,
                created_at=format_time(space.created),
                homepage_id=space.first_page_id,
                description=space.description,
                labels=space.labels,
            )
        )
        pages = _space_pages(space)
        store.add_pages(pages)
        containers.extend(pages)
    posts = _blogposts()
    store.add_pages(posts)
    containers.extend(posts)
    for container in containers:
        titles[(container.kind, container.id)] = container.title
        if container.status in ("current", "archived"):
            store.derive_tasks(container, completed_by=container.version.author_id)
    store.add_comments(_comments(titles))
    store.add_attachments(_attachments())
    store.add_custom_content(_custom_content())
    store.add_properties(_properties())
    _seed_example(store)
    if extra_pages:
        eng = SPACES[0]
        store.add_pages(generated_pages(extra_pages, eng.id, eng.first_page_id))


# The space and page the catalog's own examples name (space 123456, page 123456789).  Seeded
# last and outside the id sequence, so every other seeded and created id stays as it was.
EXAMPLE_SPACE = _SpaceSeed(
    123456,
    "HARBOR",
    "Harbor",
    "Harbor rollout: the space the action examples point at.",
    MARCUS,
    datetime(2022, 1, 10, 10, 0, 0, tzinfo=UTC),  # before every other seed date
    123456789,
    (),
    (
        _PageSeed(
            "rollout",
            "Harbor rollout",
            None,
            _h(2, "Harbor rollout")
            + _p("Agents reach Confluence through Harbor; writes wait for operator approval.")
            + _ul("Review the policy.", "Approve the first held write."),
            MARCUS,
            labels=("release", "process"),
        ),
    ),
)


def _seed_example(store: Store) -> None:
    space = EXAMPLE_SPACE
    store.add_space(
        Space(
            id=space.id,
            key=space.key,
            name=space.name,
            type="global",
            status="current",
            author_id=space.author,
            created_at=format_time(space.created),
            homepage_id=space.first_page_id,
            description=space.description,
            labels=space.labels,
        )
    )
    store.add_pages(_space_pages(space), advance_ids=False)
