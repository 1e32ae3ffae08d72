"""Deterministic seed content, loaded from the JSON files in ``sim/data/`` (see its README):
three spaces of pages (and the examples' space), plus blog posts, comments, attachments,
custom content, properties and the tasks found in bodies; optional bulk pages.

Adding data means editing JSON, not code. This module keeps what the files cannot say:
ids derived from positions, version histories derived from the current body, timestamps,
and the constants tests import.

Ids, titles and timestamps never change between runs, so tests and docs can name them:
spaces ENG 65538 / DOCS 65539 / OPS 65540 (homepages 98305, 163841, 229377), the examples'
space HARBOR 123456 (page 123456789, outside the id sequence), blog posts
from 294913, comments from 360449, attachments from 425985 (``att425985``; a CSV
``att425991``, a Markdown file ``att425992``, a generated 1.5 MiB log ``att425993``),
custom content from 491521, folders 557057 (in ENG under the homepage; it holds page 98323
and folder 557058), whiteboard 557059, database 557060, properties from 4587521, tasks from
7340033, page templates 720897 and 720898 (ENG) and 720899 (global), long tasks from
8257537. ENG's tree is four levels deep (98305 > 98306 > 98308 > 98309). Page versions keep
their bodies: version n of a seeded page holds the first n/N share of its current body.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from .store import (
    Attachment,
    Comment,
    CustomContent,
    Node,
    Page,
    Property,
    Space,
    Store,
    Template,
    User,
    VersionInfo,
)

__all__ = [
    "ATTACHMENT_FIRST_ID",
    "BLOGPOST_FIRST_ID",
    "COMMENT_FIRST_ID",
    "CUSTOM_CONTENT_FIRST_ID",
    "DATA_DIR",
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
    "load_json",
    "seed_store",
    "split_blocks",
]

DATA_DIR = Path(__file__).resolve().with_name("data")

EXTRA_PAGE_FIRST_ID = 1_000_001
BLOGPOST_FIRST_ID = 294913
COMMENT_FIRST_ID = 360449
ATTACHMENT_FIRST_ID = 425985
CUSTOM_CONTENT_FIRST_ID = 491521
PROPERTY_FIRST_ID = 4_587_521
DECISION_TYPE = "ac:com.example.decisions:decision"
TIMELINE_TYPE = "forge:harbor-timeline:incident-event"


@cache
def load_json(name: str) -> Any:
    """One data file, parsed once per process (treat the result as read-only)."""
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def format_time(moment: datetime) -> str:
    """Confluence's timestamp format: ``YYYY-MM-DDTHH:mm:ss.sssZ``."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _time(text: str) -> datetime:
    """A data file's timestamp (``2024-03-12T15:04:31.220Z``) as an aware datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


# -- users -------------------------------------------------------------------------------------

_USER_DATA = load_json("users.json")
USERS: tuple[User, ...] = tuple(
    User(u["accountId"], u["displayName"], u["email"]) for u in _USER_DATA["users"]
)
_HANDLES: dict[str, str] = {u["handle"]: u["accountId"] for u in _USER_DATA["users"]}
# Who edits seeded content after its author: the derived histories rotate through these.
_ROTATION: tuple[str, ...] = tuple(_HANDLES[h] for h in _USER_DATA["editorRotation"])


def _who(handle: str) -> str:
    """A data file names people by handle (``"priya"``); the store keeps account ids."""
    try:
        return _HANDLES[handle]
    except KeyError:
        raise ValueError(f"seed data names an unknown user handle {handle!r}") from None


def account_id_for(email: str) -> str:
    """The simulator caller's account id: stable per email, in the ``557058:uuid`` format."""
    known = next((u.account_id for u in USERS if u.email == email), None)
    return known or f"557058:{uuid.uuid5(uuid.NAMESPACE_URL, 'mailto:' + email)}"


# -- spaces and pages ----------------------------------------------------------------------------


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
    parent_id: int | None = None  # a parent outside the page list (a folder), by id
    parent_type: str = "page"


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
    outside_id_sequence: bool = False


def _page_seed(item: Mapping[str, Any]) -> _PageSeed:
    return _PageSeed(
        slug=item["slug"],
        title=item["title"],
        parent=item.get("parent"),
        body=item["body"],
        author=_who(item["author"]),
        versions=item.get("versions", 1),
        labels=tuple(item.get("labels", ())),
        status=item.get("status", "current"),
        first_title=item.get("firstTitle"),
        parent_id=item.get("parentId"),
        parent_type=item.get("parentType", "page"),
    )


def _space_seed(item: Mapping[str, Any]) -> _SpaceSeed:
    return _SpaceSeed(
        id=item["id"],
        key=item["key"],
        name=item["name"],
        description=item["description"],
        author=_who(item["author"]),
        created=_time(item["created"]),
        first_page_id=item["homepageId"],
        labels=tuple(item.get("labels", ())),
        pages=tuple(_page_seed(p) for p in load_json(item["pages"])),
        outside_id_sequence=item.get("outsideIdSequence", False),
    )


_ALL_SPACES = tuple(_space_seed(s) for s in load_json("spaces.json"))
SPACES: tuple[_SpaceSeed, ...] = tuple(s for s in _ALL_SPACES if not s.outside_id_sequence)
# The space and page the catalog's own examples name (space 123456, page 123456789).  Seeded
# last and outside the id sequence, so every other seeded and created id stays as it was.
EXAMPLE_SPACE = next(s for s in _ALL_SPACES if s.outside_id_sequence)

_VERSION_MESSAGES: tuple[str, ...] = tuple(load_json("version-messages.json"))

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
    positions: dict[str | int | None, int] = {}
    pages = []
    for n, seed in enumerate(space.pages):
        created = space.created + timedelta(days=11 * n, hours=n % 7, minutes=13 * n, seconds=n)
        parent_key = seed.parent if seed.parent_id is None else seed.parent_id
        positions[parent_key] = positions.get(parent_key, 0) + 1
        editor = _ROTATION[(n + 2) % len(_ROTATION)]
        pages.append(
            Page(
                id=ids[seed.slug],
                space_id=space.id,
                title=seed.title,
                status=seed.status,
                parent_id=seed.parent_id if seed.parent is None else ids[seed.parent],
                position=positions[parent_key] * 1000 if parent_key else 0,
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
                parent_type=seed.parent_type,
            )
        )
    return pages


def _space(space: _SpaceSeed) -> Space:
    return Space(
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


# -- blog posts ------------------------------------------------------------------------------


def _blogposts() -> list[Page]:
    posts = []
    for n, item in enumerate(load_json("blogposts.json")):
        author = _who(item["author"])
        created = _time(item["created"])
        editor = _ROTATION[(n + 1) % len(_ROTATION)]
        posts.append(
            Page(
                id=item["id"],
                space_id=item["spaceId"],
                title=item["title"],
                status=item.get("status", "current"),
                parent_id=None,
                position=0,
                author_id=author,
                created_at=format_time(created),
                body_representation="storage",
                body_value=item["body"],
                versions=_versions(
                    item.get("versions", 1),
                    created,
                    (author, editor),
                    item["title"],
                    item["body"],
                ),
                labels=tuple(item.get("labels", ())),
                owner_id=author,
                kind="blogpost",
            )
        )
    return posts


# -- comments --------------------------------------------------------------------------------


def _comments(titles: dict[tuple[str, int], str]) -> list[Comment]:
    comments: dict[int, Comment] = {}
    for item in load_json("comments.json"):
        author = _who(item["author"])
        created = _time(item["created"])
        parent = item.get("parent")
        if "container" in item:
            container = (item["container"]["type"], item["container"]["id"])
        else:
            container = (comments[parent].container_type, comments[parent].container_id)
        title = f"Re: {titles[container]}"
        bodies: list[str] = item["bodies"]
        versions = tuple(
            VersionInfo(
                n,
                format_time(created + timedelta(hours=20 * (n - 1))),
                "",
                False,
                author,
                title,
                "storage",
                body,
            )
            for n, body in enumerate(bodies, start=1)
        )
        resolved_by = _who(item["resolvedBy"]) if "resolvedBy" in item else None
        selection = item.get("selection")
        comments[item["id"]] = Comment(
            id=item["id"],
            kind=item["kind"],
            container_type=container[0],
            container_id=container[1],
            parent_id=parent,
            status="current",
            title=title,
            author_id=author,
            created_at=format_time(created),
            body_representation="storage",
            body_value=bodies[-1],
            versions=versions,
            resolution_status=item.get("resolution")
            if item["kind"] == "inline" and parent is None
            else None,
            resolution_modifier_id=resolved_by,
            resolution_modified_at=format_time(created + timedelta(days=1))
            if resolved_by is not None
            else None,
            marker_ref=str(uuid.uuid5(uuid.NAMESPACE_OID, f"marker-{item['id']}"))
            if selection
            else None,
            original_selection=selection,
        )
    return list(comments.values())


# -- attachments -------------------------------------------------------------------------------


def attachment_bytes(spec: Mapping[str, Any]) -> bytes:
    """An attachment's ``data``: ``text`` (UTF-8), ``base64``, ``file`` (under data/), or
    ``generated`` (``{"size": N, "line": "..."}``: the line repeated, cut at N bytes, so a
    large file costs nothing in the repository)."""
    if "text" in spec:
        return str(spec["text"]).encode()
    if "base64" in spec:
        return base64.b64decode(str(spec["base64"]))
    if "file" in spec:
        return (DATA_DIR / str(spec["file"])).read_bytes()
    generated = spec["generated"]
    return _generated(str(generated["line"]), int(generated["size"]))


@cache
def _generated(line: str, size: int) -> bytes:
    """Built once per process: bytes are immutable, so every store can share them."""
    raw = line.encode()
    return (raw * (size // len(raw) + 1))[:size]


def _attachments() -> list[Attachment]:
    items = []
    for item in load_json("attachments.json"):
        author = _who(item["author"])
        created = _time(item["created"])
        comment = item.get("comment", "")
        versions = tuple(
            VersionInfo(
                n,
                format_time(created + timedelta(days=30 * (n - 1))),
                comment if n == 1 else "New export",
                False,
                author,
                item["title"],
                "",
                "",
            )
            for n in range(1, item.get("versions", 1) + 1)
        )
        items.append(
            Attachment(
                id=item["id"],
                container_type=item["container"]["type"],
                container_id=item["container"]["id"],
                title=item["title"],
                status=item.get("status", "current"),
                media_type=item["mediaType"],
                comment=comment,
                file_id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"file-{item['id']}")),
                author_id=author,
                created_at=format_time(created),
                versions=versions,
                data=attachment_bytes(item["data"]),
                labels=tuple(item.get("labels", ())),
            )
        )
    return items


# -- custom content -------------------------------------------------------------------------------


def _custom_content() -> list[CustomContent]:
    items = []
    for item in load_json("custom-content.json"):
        author = _who(item["author"])
        created = _time(item["created"])
        bodies: list[str] = item["bodies"]
        representation = item["representation"]
        versions = tuple(
            VersionInfo(
                n,
                format_time(created + timedelta(days=2 * (n - 1))),
                "",
                False,
                author,
                item["title"],
                representation,
                body,
            )
            for n, body in enumerate(bodies, start=1)
        )
        items.append(
            CustomContent(
                id=item["id"],
                type=item["type"],
                status="current",
                title=item["title"],
                space_id=item["spaceId"],
                page_id=item.get("pageId"),
                blog_post_id=item.get("blogPostId"),
                parent_custom_id=item.get("parent"),
                author_id=author,
                created_at=format_time(created),
                body_representation=representation,
                body_value=bodies[-1],
                versions=versions,
                labels=tuple(item.get("labels", ())),
            )
        )
    return items


# -- properties -----------------------------------------------------------------------------------


def _properties() -> list[Property]:
    items = []
    for item in load_json("properties.json"):
        author = _who(item["author"])
        created = _time(item["created"])
        version = item.get("version", 1)
        changed = created + timedelta(days=14 * (version - 1))
        items.append(
            Property(
                id=item["id"],
                owner_type=item["owner"]["type"],
                owner_id=item["owner"]["id"],
                key=item["key"],
                value=json.dumps(item["value"], separators=(",", ":")),
                created_at=format_time(created),
                created_by=author,
                version=version,
                version_at=format_time(changed),
                version_by=_who(item["editor"]) if "editor" in item else author,
                version_message="" if version == 1 else "Update review date",
            )
        )
    return items


# -- folders, whiteboards, databases, templates, views, watches ----------------------------------


def _nodes() -> list[Node]:
    items: list[tuple[str, dict[str, Any]]] = []
    for kind in ("folder", "whiteboard", "database"):
        items.extend((kind, item) for item in load_json(f"{kind}s.json"))
    nodes = []
    for kind, item in items:
        author = _who(item["author"])
        created = format_time(_time(item["created"]))
        parent = item.get("parent")
        nodes.append(
            Node(
                id=item["id"],
                kind=kind,
                space_id=item["spaceId"],
                title=item["title"],
                status=item.get("status", "current"),
                parent_id=parent["id"] if parent else None,
                parent_type=parent["type"] if parent else None,
                position=item.get("position", 0),
                author_id=author,
                created_at=created,
                version=VersionInfo(1, created, "", False, author, item["title"], "", ""),
            )
        )
    return nodes


def _templates() -> list[Template]:
    keys = {s.key: s.id for s in _ALL_SPACES}
    return [
        Template(
            id=item["id"],
            name=item["name"],
            description=item["description"],
            space_id=keys[item["space"]] if item.get("space") else None,
            body=item["body"],
            labels=tuple(item.get("labels", ())),
        )
        for item in load_json("templates.json")
    ]


def _seed_activity(store: Store, caller: str | None) -> None:
    """Page views (analytics) and watches; ``"@caller"`` is the simulator's own user."""
    for item in load_json("analytics.json"):
        store.add_views(item["contentId"], [(_who(h), when) for h, when in item["views"]])
    for item in load_json("watches.json"):
        for handle in item["watchers"]:
            who = caller if handle == "@caller" else _who(handle)
            if who is not None:
                store.set_watch(who, item["contentId"], True)


# -- bulk pages and the whole seed ---------------------------------------------------------------


def generated_pages(count: int, space_id: int, parent_id: int) -> Iterator[Page]:
    """Cheap bulk pages for pagination benchmarks: tiny bodies, one version, no labels."""
    start = datetime(2024, 6, 1, 8, 0, 0, tzinfo=UTC)
    for n in range(count):
        author = _ROTATION[n % len(_ROTATION)]
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


def seed_store(store: Store, extra_pages: int = 0, caller: str | None = None) -> None:
    """Fill ``store`` with the seed content, then ``extra_pages`` bulk ENG pages.

    ``caller`` is the account the simulator serves; the seed's ``"@caller"`` watches are its.
    """
    for user in USERS:
        store.add_user(user)
    titles: dict[tuple[str, int], str] = {}
    containers: list[Page] = []
    for space in SPACES:
        store.add_space(_space(space))
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
    store.add_nodes(_nodes())
    store.add_templates(_templates())
    _seed_activity(store, caller)
    store.add_space(_space(EXAMPLE_SPACE))
    store.add_pages(_space_pages(EXAMPLE_SPACE), advance_ids=False)
    if extra_pages:
        eng = SPACES[0]
        store.add_pages(generated_pages(extra_pages, eng.id, eng.first_page_id))
