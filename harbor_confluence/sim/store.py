"""In-memory Confluence content behind one lock.

Records are frozen: an update replaces the record, so a handler can serialise a snapshot
without holding the lock while another thread writes. Every check-then-write (version
checks, duplicate titles, duplicate file names) happens inside one critical section, so
two racing updates of the same version cannot both win.

Pages, blog posts, comments, attachments and custom content share one id sequence, as in
Confluence, so a v1 ``/content/{id}`` route can find any of them by id alone.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "Attachment",
    "Comment",
    "ContentRecord",
    "CqlRecord",
    "CustomContent",
    "DuplicateTitle",
    "Invalid",
    "Label",
    "LongTask",
    "Missing",
    "Node",
    "Page",
    "Property",
    "Space",
    "Store",
    "StoreError",
    "Task",
    "Template",
    "UnknownParent",
    "UnknownSpace",
    "User",
    "VersionConflict",
    "VersionInfo",
    "label_parts",
    "label_text",
    "parse_tasks",
]

Label = tuple[str, str]  # (prefix, name)
LABEL_PREFIXES = ("global", "my", "team", "system")


def label_parts(text: str) -> Label:
    """Confluence's text form of a label: ``name`` is global, ``my:name`` has a prefix."""
    prefix, sep, name = text.partition(":")
    if sep and prefix in LABEL_PREFIXES:
        return prefix, name
    return "global", text


def label_text(prefix: str, name: str) -> str:
    return name if prefix == "global" else f"{prefix}:{name}"


@dataclass(frozen=True, slots=True)
class User:
    """An Atlassian account; ids look like ``557058:<uuid>`` as on a real site."""

    account_id: str
    display_name: str
    email: str


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One entry of a history with the content as it was, so old versions can be served."""

    number: int
    created_at: str
    message: str
    minor_edit: bool
    author_id: str
    title: str
    body_representation: str
    body_value: str


@dataclass(frozen=True, slots=True)
class Space:
    """A space; its ``labels`` are space categories, which Confluence keeps as ``team`` labels."""

    id: int
    key: str
    name: str
    type: str
    status: str
    author_id: str
    created_at: str
    homepage_id: int | None
    description: str = ""
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    """A page or (``kind="blogpost"``) a blog post; title and body mirror ``versions[-1]``."""

    id: int
    space_id: int
    title: str
    status: str
    parent_id: int | None
    position: int
    author_id: str
    created_at: str
    body_representation: str
    body_value: str
    versions: tuple[VersionInfo, ...]
    labels: tuple[str, ...] = ()  # text form: "name" (global) or "prefix:name"
    subtype: str | None = None
    owner_id: str | None = None
    last_owner_id: str | None = None
    kind: str = "page"
    parent_type: str = "page"  # "folder" when the page sits in a folder

    @property
    def version(self) -> VersionInfo:
        return self.versions[-1]

    @property
    def modified_at(self) -> str:
        return self.versions[-1].created_at


@dataclass(frozen=True, slots=True)
class Node:
    """A folder, whiteboard or database: tree content the simulator holds without a body."""

    id: int
    kind: str  # "folder" | "whiteboard" | "database"
    space_id: int
    title: str
    status: str
    parent_id: int | None
    parent_type: str | None  # "page" | "folder" | "whiteboard" | "database"
    position: int
    author_id: str
    created_at: str
    version: VersionInfo

    @property
    def owner_id(self) -> str:
        return self.author_id

    @property
    def modified_at(self) -> str:
        return self.version.created_at


TreeItem = Page | Node


@dataclass(frozen=True, slots=True)
class Template:
    """A page template (``templateType`` page) of a space, or global when ``space_id`` is None."""

    id: int
    name: str
    description: str
    space_id: int | None
    body: str  # storage XHTML
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LongTask:
    """A page-hierarchy copy that completes after ``polls_needed`` status reads.

    ``plan`` is (source page id, copied title) in parent-before-child order; ``copied``
    holds the new ids once the copy ran.
    """

    id: int
    source_id: int
    destination_id: int
    plan: tuple[tuple[int, str], ...]
    options: frozenset[str]  # "attachments", "labels", "properties"
    author_id: str
    polls_needed: int
    polls_done: int = 0
    copied: tuple[int, ...] = ()
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.polls_done >= self.polls_needed


@dataclass(frozen=True, slots=True)
class Comment:
    """A footer or inline comment on a page, blog post, attachment or custom content."""

    id: int
    kind: str  # "footer" | "inline"
    container_type: str  # "page" | "blogpost" | "attachment" | "custom"
    container_id: int
    parent_id: int | None  # the comment this one replies to
    status: str
    title: str
    author_id: str
    created_at: str
    body_representation: str
    body_value: str
    versions: tuple[VersionInfo, ...]
    resolution_status: str | None = None  # inline comments only
    resolution_modifier_id: str | None = None
    resolution_modified_at: str | None = None
    marker_ref: str | None = None
    original_selection: str | None = None

    @property
    def version(self) -> VersionInfo:
        return self.versions[-1]

    @property
    def modified_at(self) -> str:
        return self.versions[-1].created_at


@dataclass(frozen=True, slots=True, repr=False)
class Attachment:
    """A file attached to a page, blog post or custom content; ``data`` holds its bytes."""

    id: int  # the API shows it as "att<id>"
    container_type: str
    container_id: int
    title: str  # the file name
    status: str
    media_type: str
    comment: str
    file_id: str
    author_id: str
    created_at: str
    versions: tuple[VersionInfo, ...]
    data: bytes
    labels: tuple[str, ...] = ()

    @property
    def version(self) -> VersionInfo:
        return self.versions[-1]

    @property
    def modified_at(self) -> str:
        return self.versions[-1].created_at

    @property
    def file_size(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Attachment(att{self.id}, {self.title!r}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class CustomContent:
    """Content of an app-defined ``type`` (e.g. ``ac:com.example.decisions:decision``)."""

    id: int
    type: str
    status: str
    title: str
    space_id: int
    page_id: int | None
    blog_post_id: int | None
    parent_custom_id: int | None
    author_id: str
    created_at: str
    body_representation: str  # "raw" or "storage"
    body_value: str
    versions: tuple[VersionInfo, ...]
    labels: tuple[str, ...] = ()

    @property
    def version(self) -> VersionInfo:
        return self.versions[-1]

    @property
    def modified_at(self) -> str:
        return self.versions[-1].created_at


@dataclass(frozen=True, slots=True)
class Property:
    """A content or space property; ``value`` is JSON text so the record stays immutable."""

    id: int
    owner_type: str  # "page" | "blogpost" | "space" | ...
    owner_id: int
    key: str
    value: str
    created_at: str
    created_by: str
    version: int
    version_at: str
    version_by: str
    version_message: str = ""
    minor_edit: bool = False


@dataclass(frozen=True, slots=True)
class Task:
    """An ``<ac:task>`` of a page or blog post body, with the id the tasks API gives it."""

    id: int
    local_id: str
    space_id: int
    container_type: str  # "page" | "blogpost"
    container_id: int
    status: str  # "complete" | "incomplete"
    body: str  # storage XHTML of <ac:task-body>
    created_by: str
    created_at: str
    updated_at: str
    assigned_to: str | None = None
    due_at: str | None = None
    completed_by: str | None = None
    completed_at: str | None = None


@dataclass(frozen=True, slots=True)
class CqlRecord:
    """One CQL query as received, and what the parser made of it (``ast`` is None on a 400)."""

    raw: str
    ast: Any
    error: str | None


ContentRecord = Page | Comment | Attachment | CustomContent


class StoreError(Exception):
    """A domain refusal; handlers map each subclass to the status Confluence uses."""


class UnknownSpace(StoreError):
    pass


class UnknownParent(StoreError):
    pass


class Missing(StoreError):
    """The entity is absent (or in a state where it cannot be seen): a 404."""


class Invalid(StoreError):
    """The request contradicts the data (wrong state, duplicate key): a 400."""


class DuplicateTitle(StoreError):
    def __init__(self, title: str, space_key: str, existing_id: int) -> None:
        super().__init__(title)
        self.title = title
        self.space_key = space_key
        self.existing_id = existing_id


class VersionConflict(StoreError):
    """``version.number`` was not current + 1; carries what the caller needs to retry."""

    def __init__(self, sent: int, current: int, author_id: str, when: str) -> None:
        super().__init__(f"sent {sent}, current {current}")
        self.sent = sent
        self.current = current
        self.author_id = author_id
        self.when = when


_TASK = re.compile(
    r"<ac:task>\s*<ac:task-id>(?P<local>[^<]*)</ac:task-id>\s*"
    r"(?:<ac:task-uuid>[^<]*</ac:task-uuid>\s*)?"
    r"<ac:task-status>(?P<status>[^<]*)</ac:task-status>\s*"
    r"<ac:task-body>(?P<body>.*?)</ac:task-body>\s*</ac:task>",
    re.DOTALL,
)
_ACCOUNT = re.compile(r'ri:account-id="([^"]+)"')
_DUE = re.compile(r'<time\s+datetime="(\d{4}-\d\d-\d\d)"')


def parse_tasks(body: str) -> list[tuple[str, str, str, str | None, str | None]]:
    """(local id, status, body, assignee, due) for each ``<ac:task>`` in a storage body."""
    if "<ac:task>" not in body:
        return []
    found = []
    for match in _TASK.finditer(body):
        text = match.group("body")
        assignee = _ACCOUNT.search(text)
        due = _DUE.search(text)
        found.append(
            (
                match.group("local").strip(),
                "complete" if match.group("status").strip() == "complete" else "incomplete",
                text,
                assignee.group(1) if assignee else None,
                f"{due.group(1)}T00:00:00.000Z" if due else None,
            )
        )
    return found


def _set_task_status(body: str, local_id: str, status: str) -> str:
    def swap(match: re.Match[str]) -> str:
        if match.group("local").strip() != local_id:
            return match.group(0)
        start, end = match.span("status")
        offset = match.start()
        text = match.group(0)
        return text[: start - offset] + status + text[end - offset :]

    return _TASK.sub(swap, body)


_LIVE = ("current", "archived", "draft")


class Store:
    """All simulated content. Every public method is atomic under ``self.lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._spaces: dict[int, Space] = {}
        self._pages: dict[int, Page] = {}
        self._blogposts: dict[int, Page] = {}
        self._comments: dict[int, Comment] = {}
        self._attachments: dict[int, Attachment] = {}
        self._custom: dict[int, CustomContent] = {}
        self._properties: dict[int, Property] = {}
        self._tasks: dict[int, Task] = {}
        self._label_ids: dict[Label, int] = {}
        self._next_label_id = 1_015_809
        self._next_id = 1
        self._next_property_id = 4_587_521
        self._next_task_id = 7_340_033
        self._revision = 0  # bumped by every write, so readers can cache derived views
        self.cql_history: deque[CqlRecord] = deque(maxlen=200)
        self._nodes: dict[int, Node] = {}
        self._templates: dict[int, Template] = {}
        self._watches: set[tuple[str, int]] = set()  # (account id, content id)
        self._views: dict[int, list[tuple[str, str]]] = {}  # content id -> (account, when)
        self._long_tasks: dict[int, LongTask] = {}
        self._next_long_task_id = 8_257_537
        # Status reads until a page-hierarchy copy completes (Simulator(long_task_polls=...)).
        self.long_task_polls = 3

    # -- seeding -------------------------------------------------------------------------

    def add_user(self, user: User) -> None:
        with self.lock:
            self._revision += 1
            self._users[user.account_id] = user

    def add_space(self, space: Space) -> None:
        with self.lock:
            self._revision += 1
            self._spaces[space.id] = space
            for name in space.labels:
                self._label("team", name)

    def add_pages(self, pages: Iterable[Page], *, advance_ids: bool = True) -> None:
        """Insert as-is (seed data); ids must be unique, later creates get higher ids
        (unless ``advance_ids`` is false: for a far-off id that must not move the sequence).
        """
        with self.lock:
            self._revision += 1
            top = 0
            for page in pages:
                (self._blogposts if page.kind == "blogpost" else self._pages)[page.id] = page
                top = max(top, page.id)
                for text in page.labels:
                    self._label(*label_parts(text))
            if advance_ids:
                self._next_id = max(self._next_id, top + 1)

    def _seed(self, table: dict[int, Any], items: Iterable[Any], *, labelled: bool) -> None:
        """Insert seed items that share the content id sequence (and, maybe, labels)."""
        with self.lock:
            self._revision += 1
            for item in items:
                table[item.id] = item
                self._next_id = max(self._next_id, item.id + 1)
                if labelled:
                    for text in item.labels:
                        self._label(*label_parts(text))

    def add_comments(self, comments: Iterable[Comment]) -> None:
        self._seed(self._comments, comments, labelled=False)

    def add_attachments(self, attachments: Iterable[Attachment]) -> None:
        self._seed(self._attachments, attachments, labelled=True)

    def add_custom_content(self, items: Iterable[CustomContent]) -> None:
        self._seed(self._custom, items, labelled=True)

    def add_properties(self, properties: Iterable[Property]) -> None:
        with self.lock:
            self._revision += 1
            for prop in properties:
                self._properties[prop.id] = prop
                self._next_property_id = max(self._next_property_id, prop.id + 1)

    def derive_tasks(self, container: Page, completed_by: str | None = None) -> None:
        """Create the tasks of a seeded body (complete ones completed by ``completed_by``)."""
        with self.lock:
            self._revision += 1
            self._sync_tasks(container, container.author_id, container.created_at, completed_by)

    # -- reads ---------------------------------------------------------------------------

    def user(self, account_id: str) -> User | None:
        with self.lock:
            return self._users.get(account_id)

    def users(self) -> list[User]:
        with self.lock:
            return list(self._users.values())

    def space(self, space_id: int) -> Space | None:
        with self.lock:
            return self._spaces.get(space_id)

    def space_by_key(self, key: str) -> Space | None:
        with self.lock:
            return next((s for s in self._spaces.values() if s.key == key), None)

    def spaces(self) -> list[Space]:
        with self.lock:
            return sorted(self._spaces.values(), key=lambda s: s.id)

    def page(self, page_id: int) -> Page | None:
        with self.lock:
            return self._pages.get(page_id)

    def pages(self) -> list[Page]:
        """A snapshot in id order (dict insertion order is id order for seeded data)."""
        with self.lock:
            return list(self._pages.values())

    def blogpost(self, blogpost_id: int) -> Page | None:
        with self.lock:
            return self._blogposts.get(blogpost_id)

    def blogposts(self) -> list[Page]:
        with self.lock:
            return list(self._blogposts.values())

    def container(self, kind: str, content_id: int) -> Page | None:
        """A page (``kind="page"``) or blog post (``kind="blogpost"``)."""
        with self.lock:
            return (self._blogposts if kind == "blogpost" else self._pages).get(content_id)

    def children(self, parent_id: int) -> list[Page]:
        with self.lock:
            return [p for p in self._pages.values() if p.parent_id == parent_id]

    def comment(self, comment_id: int) -> Comment | None:
        with self.lock:
            return self._comments.get(comment_id)

    def comments(self) -> list[Comment]:
        with self.lock:
            return list(self._comments.values())

    def attachment(self, attachment_id: int) -> Attachment | None:
        with self.lock:
            return self._attachments.get(attachment_id)

    def attachments(self) -> list[Attachment]:
        with self.lock:
            return list(self._attachments.values())

    def custom_content(self, content_id: int) -> CustomContent | None:
        with self.lock:
            return self._custom.get(content_id)

    def custom_contents(self) -> list[CustomContent]:
        with self.lock:
            return list(self._custom.values())

    def content(self, content_id: int) -> ContentRecord | None:
        """Any content by id: page, blog post, comment, attachment or custom content."""
        with self.lock:
            return (
                self._pages.get(content_id)
                or self._blogposts.get(content_id)
                or self._comments.get(content_id)
                or self._attachments.get(content_id)
                or self._custom.get(content_id)
            )

    def properties(self, owner_type: str, owner_id: int) -> list[Property]:
        with self.lock:
            return [
                p
                for p in self._properties.values()
                if p.owner_type == owner_type and p.owner_id == owner_id
            ]

    def find_property(self, owner_type: str, owner_id: int, property_id: int) -> Property | None:
        with self.lock:
            prop = self._properties.get(property_id)
            if prop is None or prop.owner_type != owner_type or prop.owner_id != owner_id:
                return None
            return prop

    def task(self, task_id: int) -> Task | None:
        with self.lock:
            return self._tasks.get(task_id)

    def tasks(self) -> list[Task]:
        with self.lock:
            return list(self._tasks.values())

    def label_id(self, text: str) -> str:
        """Stable numeric id per label (``name`` or ``prefix:name``), as in Confluence."""
        with self.lock:
            return str(self._label(*label_parts(text)))

    def labels(self) -> list[tuple[int, str, str]]:
        """Every label the site knows: (id, prefix, name), in creation order."""
        with self.lock:
            return [(i, prefix, name) for (prefix, name), i in self._label_ids.items()]

    @property
    def revision(self) -> int:
        """Changes whenever content changes (a cache key for derived views such as search)."""
        with self.lock:
            return self._revision

    @property
    def last_cql(self) -> CqlRecord | None:
        with self.lock:
            return self.cql_history[-1] if self.cql_history else None

    def record_cql(self, record: CqlRecord) -> None:
        with self.lock:
            self.cql_history.append(record)

    # -- writes: pages and blog posts -------------------------------------------------------

    def create_page(
        self,
        *,
        space_id: int,
        title: str,
        status: str,
        parent_id: int | None,
        root_level: bool,
        body_representation: str,
        body_value: str,
        author_id: str,
        subtype: str | None,
        now: str,
        kind: str = "page",
    ) -> Page:
        """Check and insert in one critical section so two racing creates cannot both win."""
        with self.lock:
            self._revision += 1
            space = self._spaces.get(space_id)
            if space is None:
                raise UnknownSpace(str(space_id))
            parent_type = "page"
            if kind == "page":
                if parent_id is not None:
                    parent: Page | Node | None = self._pages.get(parent_id)
                    if parent is None:
                        parent = self.node(parent_id, "folder")
                        parent_type = "folder"
                    if parent is None or parent.space_id != space_id or parent.status != "current":
                        raise UnknownParent(str(parent_id))
                elif not root_level:
                    parent_id = space.homepage_id
            if status == "current":
                self._check_title(kind, space, title, None, now)
            siblings = [
                p.position
                for p in self._pages.values()
                if p.space_id == space_id and p.parent_id == parent_id
            ]
            first = VersionInfo(
                1, now, "", False, author_id, title, body_representation, body_value
            )
            page = Page(
                id=self._next_id,
                space_id=space_id,
                title=title,
                status=status,
                parent_id=parent_id if kind == "page" else None,
                position=max(siblings, default=0) + 1 if kind == "page" else 0,
                author_id=author_id,
                created_at=now,
                body_representation=body_representation,
                body_value=body_value,
                versions=(first,),
                subtype=subtype,
                owner_id=author_id,
                kind=kind,
                parent_type=parent_type,
            )
            self._container_dict(kind)[page.id] = page
            self._next_id += 1
            self._sync_tasks(page, author_id, now, None)
            return page

    def update_page(
        self,
        kind: str,
        page_id: int,
        *,
        version: int,
        message: str,
        title: str,
        status: str,
        body_representation: str,
        body_value: str,
        parent_id: int | None,
        author_id: str,
        now: str,
    ) -> Page:
        """A new version: ``version`` must be current + 1, checked under the lock.

        A trashed page or blog post can be restored by updating it to ``current``, as in
        Confluence; anything else that is not live is a 404.
        """
        with self.lock:
            self._revision += 1
            records = self._container_dict(kind)
            page = records.get(page_id)
            restoring = page is not None and page.status == "trashed" and status == "current"
            if page is None or (page.status not in _LIVE and not restoring):
                raise Missing(f"{kind} {page_id}")
            current = page.version
            if version != current.number + 1:
                raise VersionConflict(
                    version, current.number, current.author_id, current.created_at
                )
            space = self._spaces[page.space_id]
            if status == "current":
                self._check_title(kind, space, title, page.id, page.created_at)
            new_parent = page.parent_id
            if kind == "page" and parent_id is not None and parent_id != page.parent_id:
                self._check_move(page, parent_id)
                new_parent = parent_id
            entry = VersionInfo(
                current.number + 1,
                now,
                message,
                False,
                author_id,
                title,
                body_representation,
                body_value,
            )
            updated = replace(
                page,
                title=title,
                status="current" if restoring else status,
                parent_id=new_parent,
                body_representation=body_representation,
                body_value=body_value,
                versions=(*page.versions, entry),
            )
            records[page_id] = updated
            self._sync_tasks(updated, author_id, now, author_id)
            return updated

    def trash_page(self, kind: str, page_id: int) -> Page:
        """Move a live page or blog post to the trash; a page's children move up a level."""
        with self.lock:
            self._revision += 1
            records = self._container_dict(kind)
            page = records.get(page_id)
            if page is None or page.status not in ("current", "archived"):
                raise Missing(f"{kind} {page_id}")
            trashed = replace(page, status="trashed")
            records[page_id] = trashed
            if kind == "page":
                for child in [c for c in self._pages.values() if c.parent_id == page_id]:
                    self._pages[child.id] = replace(child, parent_id=page.parent_id)
            return trashed

    def purge_page(self, kind: str, page_id: int, *, draft: bool) -> None:
        """Remove for good: a trashed item (``purge=true``) or a draft (``draft=true``)."""
        with self.lock:
            self._revision += 1
            records = self._container_dict(kind)
            page = records.get(page_id)
            wanted = "draft" if draft else "trashed"
            if page is None or page.status != wanted:
                raise Missing(f"{kind} {page_id}")
            del records[page_id]
            self._drop_dependents(kind, page_id)

    def _drop_dependents(self, container_type: str, container_id: int) -> None:
        for comment in list(self._comments.values()):
            if comment.container_type == container_type and comment.container_id == container_id:
                del self._comments[comment.id]
        for attachment in list(self._attachments.values()):
            if (
                attachment.container_type == container_type
                and attachment.container_id == container_id
            ):
                del self._attachments[attachment.id]
                self._drop_dependents("attachment", attachment.id)
        for prop in list(self._properties.values()):
            if prop.owner_type == container_type and prop.owner_id == container_id:
                del self._properties[prop.id]
        for task in list(self._tasks.values()):
            if task.container_type == container_type and task.container_id == container_id:
                del self._tasks[task.id]

    def _container_dict(self, kind: str) -> dict[int, Page]:
        return self._blogposts if kind == "blogpost" else self._pages

    def _check_title(
        self, kind: str, space: Space, title: str, self_id: int | None, created_at: str
    ) -> None:
        """Page titles are unique per space; blog post titles per space and posting day."""
        folded = title.casefold()
        day = created_at[:10]
        for other in self._container_dict(kind).values():
            if (
                other.id != self_id
                and other.space_id == space.id
                and other.status == "current"
                and other.title.casefold() == folded
                and (kind == "page" or other.created_at[:10] == day)
            ):
                raise DuplicateTitle(title, space.key, other.id)

    def _check_move(self, page: Page, parent_id: int) -> None:
        parent = self._pages.get(parent_id)
        if parent is None or parent.space_id != page.space_id or parent.status != "current":
            raise UnknownParent(str(parent_id))
        cursor: Page | None = parent
        while cursor is not None:
            if cursor.id == page.id:
                raise Invalid(f"Page {page.id} cannot be moved below itself ({parent_id})")
            cursor = self._pages.get(cursor.parent_id) if cursor.parent_id else None

    # -- writes: tasks ---------------------------------------------------------------------

    def _sync_tasks(
        self, container: Page, author_id: str, now: str, completed_by: str | None
    ) -> None:
        """Keep the task records in step with a body: match by local id, add, drop."""
        found = parse_tasks(container.body_value) if container.status != "draft" else []
        existing = {
            t.local_id: t
            for t in self._tasks.values()
            if t.container_type == container.kind and t.container_id == container.id
        }
        if not found and not existing:
            return
        seen: set[str] = set()
        for local_id, status, body, assignee, due in found:
            if local_id in seen:
                continue
            seen.add(local_id)
            old = existing.get(local_id)
            done = status == "complete"
            if old is None:
                task = Task(
                    id=self._next_task_id,
                    local_id=local_id,
                    space_id=container.space_id,
                    container_type=container.kind,
                    container_id=container.id,
                    status=status,
                    body=body,
                    created_by=author_id,
                    created_at=now,
                    updated_at=now,
                    assigned_to=assignee,
                    due_at=due,
                    completed_by=(completed_by or author_id) if done else None,
                    completed_at=now if done else None,
                )
                self._next_task_id += 1
                self._tasks[task.id] = task
            elif (old.status, old.body, old.assigned_to, old.due_at) != (
                status,
                body,
                assignee,
                due,
            ):
                changed = old.status != status
                self._tasks[old.id] = replace(
                    old,
                    status=status,
                    body=body,
                    assigned_to=assignee,
                    due_at=due,
                    updated_at=now,
                    completed_by=(completed_by or author_id)
                    if done and changed
                    else (old.completed_by if done else None),
                    completed_at=now if done and changed else (old.completed_at if done else None),
                )
        for local_id, old in existing.items():
            if local_id not in seen:
                del self._tasks[old.id]

    def set_task_status(self, task_id: int, status: str, author_id: str, now: str) -> Task:
        """Tick or untick a task; the container's body follows, without a new version."""
        with self.lock:
            self._revision += 1
            task = self._tasks.get(task_id)
            if task is None:
                raise Missing(f"task {task_id}")
            container = self._container_dict(task.container_type).get(task.container_id)
            if container is None or container.status not in _LIVE:
                raise Missing(f"task {task_id}")
            if task.status == status:
                return task
            body = _set_task_status(container.body_value, task.local_id, status)
            last = replace(container.version, body_value=body)
            self._container_dict(task.container_type)[container.id] = replace(
                container, body_value=body, versions=(*container.versions[:-1], last)
            )
            done = status == "complete"
            updated = replace(
                task,
                status=status,
                updated_at=now,
                completed_by=author_id if done else None,
                completed_at=now if done else None,
            )
            self._tasks[task_id] = updated
            return updated

    # -- writes: comments ---------------------------------------------------------------------

    def create_comment(
        self,
        *,
        kind: str,
        container_type: str | None,
        container_id: int | None,
        parent_id: int | None,
        body_representation: str,
        body_value: str,
        author_id: str,
        now: str,
    ) -> Comment:
        """A top-level comment on live content, or a reply to an existing comment."""
        with self.lock:
            self._revision += 1
            if parent_id is not None:
                parent = self._comments.get(parent_id)
                if parent is None or parent.kind != kind or parent.status != "current":
                    raise Missing(f"comment {parent_id}")
                container_type, container_id = parent.container_type, parent.container_id
            if container_type is None or container_id is None:
                raise Invalid("a comment needs a container or a parent comment")
            title = self._container_title(container_type, container_id)
            if title is None:
                raise Missing(f"{container_type} {container_id}")
            first = VersionInfo(
                1, now, "", False, author_id, f"Re: {title}", body_representation, body_value
            )
            comment = Comment(
                id=self._next_id,
                kind=kind,
                container_type=container_type,
                container_id=container_id,
                parent_id=parent_id,
                status="current",
                title=f"Re: {title}",
                author_id=author_id,
                created_at=now,
                body_representation=body_representation,
                body_value=body_value,
                versions=(first,),
                resolution_status="open" if kind == "inline" else None,
            )
            self._comments[comment.id] = comment
            self._next_id += 1
            return comment

    def _container_title(
        self, container_type: str, container_id: int, statuses: tuple[str, ...] = ("current",)
    ) -> str | None:
        record: Page | Attachment | CustomContent | None
        if container_type in ("page", "blogpost"):
            record = self._container_dict(container_type).get(container_id)
        elif container_type == "attachment":
            record = self._attachments.get(container_id)
        else:
            record = self._custom.get(container_id)
        if record is None or record.status not in statuses:
            return None
        return record.title

    def update_comment(
        self,
        comment_id: int,
        *,
        kind: str,
        version: int,
        message: str,
        body_representation: str,
        body_value: str,
        author_id: str,
        now: str,
    ) -> Comment:
        with self.lock:
            self._revision += 1
            comment = self._comments.get(comment_id)
            if comment is None or comment.kind != kind or comment.status != "current":
                raise Missing(f"comment {comment_id}")
            current = comment.version
            if version != current.number + 1:
                raise VersionConflict(
                    version, current.number, current.author_id, current.created_at
                )
            entry = VersionInfo(
                version,
                now,
                message,
                False,
                author_id,
                comment.title,
                body_representation,
                body_value,
            )
            updated = replace(
                comment,
                body_representation=body_representation,
                body_value=body_value,
                versions=(*comment.versions, entry),
            )
            self._comments[comment_id] = updated
            return updated

    def delete_comment(self, comment_id: int, *, kind: str) -> None:
        """Comments are deleted for good, replies with them (they have no trash)."""
        with self.lock:
            self._revision += 1
            comment = self._comments.get(comment_id)
            if comment is None or comment.kind != kind:
                raise Missing(f"comment {comment_id}")
            doomed = [comment_id]
            while doomed:
                current = doomed.pop()
                self._comments.pop(current, None)
                doomed.extend(c.id for c in self._comments.values() if c.parent_id == current)

    # -- writes: attachments -------------------------------------------------------------------

    def add_attachment(
        self,
        *,
        container_type: str,
        container_id: int,
        filename: str,
        media_type: str,
        data: bytes,
        comment: str,
        minor_edit: bool,
        author_id: str,
        now: str,
        container_status: str = "current",
    ) -> Attachment:
        """A new attachment; a live attachment with the same file name is a 400, as documented.

        ``container_status`` is the status the container must have (v1's ``status``).
        """
        with self.lock:
            self._revision += 1
            if self._container_title(container_type, container_id, (container_status,)) is None:
                raise Missing(f"{container_type} {container_id}")
            for other in self._attachments.values():
                if (
                    other.container_type == container_type
                    and other.container_id == container_id
                    and other.status == "current"
                    and other.title == filename
                ):
                    raise Invalid(
                        "Cannot add a new attachment with same file name as an existing "
                        f"attachment: {filename}"
                    )
            attachment = Attachment(
                id=self._next_id,
                container_type=container_type,
                container_id=container_id,
                title=filename,
                status="current",
                media_type=media_type,
                comment=comment,
                file_id=str(uuid.uuid4()),
                author_id=author_id,
                created_at=now,
                versions=(VersionInfo(1, now, comment, minor_edit, author_id, filename, "", ""),),
                data=data,
            )
            self._attachments[attachment.id] = attachment
            self._next_id += 1
            return attachment

    def trash_attachment(self, attachment_id: int) -> None:
        with self.lock:
            self._revision += 1
            attachment = self._attachments.get(attachment_id)
            if attachment is None or attachment.status not in ("current", "archived"):
                raise Missing(f"attachment {attachment_id}")
            self._attachments[attachment_id] = replace(attachment, status="trashed")

    def purge_attachment(self, attachment_id: int) -> None:
        with self.lock:
            self._revision += 1
            attachment = self._attachments.get(attachment_id)
            if attachment is None or attachment.status != "trashed":
                raise Missing(f"attachment {attachment_id}")
            del self._attachments[attachment_id]
            self._drop_dependents("attachment", attachment_id)

    # -- writes: properties --------------------------------------------------------------------

    def create_property(
        self, owner_type: str, owner_id: int, key: str, value: str, author_id: str, now: str
    ) -> Property:
        with self.lock:
            self._revision += 1
            for other in self._properties.values():
                if (
                    other.owner_type == owner_type
                    and other.owner_id == owner_id
                    and other.key == key
                ):
                    raise Invalid(f"A property with key '{key}' already exists")
            prop = Property(
                id=self._next_property_id,
                owner_type=owner_type,
                owner_id=owner_id,
                key=key,
                value=value,
                created_at=now,
                created_by=author_id,
                version=1,
                version_at=now,
                version_by=author_id,
            )
            self._properties[prop.id] = prop
            self._next_property_id += 1
            return prop

    def update_property(
        self,
        owner_type: str,
        owner_id: int,
        property_id: int,
        *,
        key: str,
        value: str,
        version: int,
        message: str,
        minor_edit: bool,
        author_id: str,
        now: str,
    ) -> Property:
        with self.lock:
            self._revision += 1
            prop = self.find_property(owner_type, owner_id, property_id)
            if prop is None:
                raise Missing(f"property {property_id}")
            if version != prop.version + 1:
                raise VersionConflict(version, prop.version, prop.version_by, prop.version_at)
            if key != prop.key:
                raise Invalid(f"The key of property {property_id} is '{prop.key}', not '{key}'")
            updated = replace(
                prop,
                value=value,
                version=version,
                version_at=now,
                version_by=author_id,
                version_message=message,
                minor_edit=minor_edit,
            )
            self._properties[property_id] = updated
            return updated

    def delete_property(self, owner_type: str, owner_id: int, property_id: int) -> None:
        with self.lock:
            self._revision += 1
            if self.find_property(owner_type, owner_id, property_id) is None:
                raise Missing(f"property {property_id}")
            del self._properties[property_id]

    # -- writes: labels ------------------------------------------------------------------------

    def _label(self, prefix: str, name: str) -> int:
        key = (prefix, name)
        if key not in self._label_ids:
            self._label_ids[key] = self._next_label_id
            self._next_label_id += 1
        return self._label_ids[key]

    def add_labels(self, content_id: int, labels: Iterable[Label]) -> tuple[str, ...]:
        """Add (prefix, name) labels to a page, blog post, attachment or custom content."""
        with self.lock:
            self._revision += 1
            record = self._labelled(content_id)
            merged = list(record.labels)
            for prefix, name in labels:
                self._label(prefix, name)
                text = label_text(prefix, name)
                if text not in merged:
                    merged.append(text)
            self._put_labelled(replace(record, labels=tuple(merged)))
            return tuple(merged)

    def remove_label(self, content_id: int, name: str) -> None:
        """Remove a label given as ``name`` or ``prefix:name``; absent is a 404."""
        with self.lock:
            self._revision += 1
            record = self._labelled(content_id)
            kept = tuple(t for t in record.labels if t != name)
            if len(kept) == len(record.labels):
                raise Missing(f"label {name} on content {content_id}")
            self._put_labelled(replace(record, labels=kept))

    def _labelled(self, content_id: int) -> Page | Attachment | CustomContent:
        record = (
            self._pages.get(content_id)
            or self._blogposts.get(content_id)
            or self._attachments.get(content_id)
            or self._custom.get(content_id)
        )
        if record is None or record.status not in _LIVE:
            raise Missing(f"content {content_id}")
        return record

    def _put_labelled(self, record: Page | Attachment | CustomContent) -> None:
        if isinstance(record, Page):
            self._container_dict(record.kind)[record.id] = record
        elif isinstance(record, Attachment):
            self._attachments[record.id] = record
        else:
            self._custom[record.id] = record

    def replace_page(self, page: Page) -> None:
        """Swap in a record as-is (tests use it to stage odd states)."""
        with self.lock:
            self._revision += 1
            records = self._container_dict(page.kind)
            if page.id not in records:
                raise KeyError(page.id)
            records[page.id] = page

    # -- tree content: folders, whiteboards, databases ------------------------------------------

    def add_nodes(self, nodes: Iterable[Node]) -> None:
        """Seed folders, whiteboards and databases (they share the content id sequence)."""
        with self.lock:
            self._revision += 1
            for node in nodes:
                self._nodes[node.id] = node
                self._next_id = max(self._next_id, node.id + 1)

    def node(self, node_id: int, kind: str | None = None) -> Node | None:
        with self.lock:
            node = self._nodes.get(node_id)
            return node if node is not None and kind in (None, node.kind) else None

    def nodes(self) -> list[Node]:
        with self.lock:
            return list(self._nodes.values())

    def tree_item(self, item_id: int) -> TreeItem | None:
        """A page, folder, whiteboard or database by id (ids are unique across them)."""
        with self.lock:
            return self._pages.get(item_id) or self._nodes.get(item_id)

    def tree_children(self, parent_id: int) -> list[TreeItem]:
        """Live (current or archived) children of any tree content, pages and nodes alike."""
        with self.lock:
            found: list[TreeItem] = [
                p
                for p in self._pages.values()
                if p.parent_id == parent_id and p.status in ("current", "archived")
            ]
            found.extend(
                n
                for n in self._nodes.values()
                if n.parent_id == parent_id and n.status in ("current", "archived")
            )
            return found

    def descendants(self, root_id: int, depth: int) -> list[tuple[TreeItem, int]]:
        """Live descendants down to ``depth`` levels, top to bottom: every item of level 1
        (by child position), then level 2, and so on; each with its level."""
        with self.lock:
            found: list[tuple[TreeItem, int]] = []
            level = [root_id]
            for current in range(1, depth + 1):
                below: list[TreeItem] = []
                for parent in level:
                    below.extend(
                        sorted(self.tree_children(parent), key=lambda i: (i.position, i.id))
                    )
                found.extend((item, current) for item in below)
                level = [item.id for item in below]
                if not level:
                    break
            return found

    def _ancestor_ids(self, item_id: int | None) -> list[int]:
        """``item_id`` and every tree parent above it (pages and nodes)."""
        chain: list[int] = []
        cursor = item_id
        while cursor is not None and cursor not in chain:
            chain.append(cursor)
            item = self._pages.get(cursor) or self._nodes.get(cursor)
            cursor = item.parent_id if item is not None else None
        return chain

    def create_folder(
        self, *, space_id: int, title: str, parent_id: int | None, author_id: str, now: str
    ) -> Node:
        """A folder at the top of the space's tree (under the homepage) or under a parent."""
        with self.lock:
            self._revision += 1
            space = self._spaces.get(space_id)
            if space is None:
                raise UnknownSpace(str(space_id))
            parent_type: str | None = None
            if parent_id is None:
                parent_id = space.homepage_id
                parent_type = "page" if parent_id is not None else None
            else:
                parent = self._pages.get(parent_id) or self._nodes.get(parent_id)
                if parent is None or parent.space_id != space_id or parent.status != "current":
                    raise UnknownParent(str(parent_id))
                parent_type = parent.kind
            siblings = [i.position for i in self.tree_children(parent_id)] if parent_id else []
            folder = Node(
                id=self._next_id,
                kind="folder",
                space_id=space_id,
                title=title,
                status="current",
                parent_id=parent_id,
                parent_type=parent_type,
                position=max(siblings, default=0) + 1,
                author_id=author_id,
                created_at=now,
                version=VersionInfo(1, now, "", False, author_id, title, "", ""),
            )
            self._nodes[folder.id] = folder
            self._next_id += 1
            return folder

    def trash_node(self, node_id: int, kind: str) -> None:
        """Move a folder (whiteboard, database) to the trash; its children move up a level."""
        with self.lock:
            self._revision += 1
            node = self._nodes.get(node_id)
            if node is None or node.kind != kind or node.status not in ("current", "archived"):
                raise Missing(f"{kind} {node_id}")
            self._nodes[node_id] = replace(node, status="trashed")
            for page in [p for p in self._pages.values() if p.parent_id == node_id]:
                self._pages[page.id] = replace(
                    page, parent_id=node.parent_id, parent_type=node.parent_type or "page"
                )
            for child in [n for n in self._nodes.values() if n.parent_id == node_id]:
                self._nodes[child.id] = replace(
                    child, parent_id=node.parent_id, parent_type=node.parent_type
                )

    # -- writes: moving, copying and restoring pages -------------------------------------------

    def _subtree_pages(self, root: Page) -> list[Page]:
        """``root`` and its descendant pages (any depth, through nodes), parent first."""
        found = [root]
        queue: list[int] = [root.id]
        while queue:
            parent = queue.pop(0)
            for child in sorted(self.tree_children(parent), key=lambda i: (i.position, i.id)):
                queue.append(child.id)
                if isinstance(child, Page) and child.status == "current":
                    found.append(child)
        return found

    def _renumber(self, siblings: list[TreeItem]) -> None:
        """Give ``siblings`` positions 1000, 2000, ... in list order."""
        for n, item in enumerate(siblings, start=1):
            if isinstance(item, Page):
                self._pages[item.id] = replace(self._pages[item.id], position=n * 1000)
            else:
                self._nodes[item.id] = replace(self._nodes[item.id], position=n * 1000)

    def move_page(self, page_id: int, position: str, target_id: int) -> Page:
        """v1 move: ``before``/``after`` the target (same parent), or ``append`` under it.

        A move into another space takes the page's subtree along; titles must be free
        there. Moving a page below itself is refused. The version does not change.
        """
        with self.lock:
            self._revision += 1
            page = self._pages.get(page_id)
            target = self._pages.get(target_id)
            if page is None or page.status != "current":
                raise Missing(f"page {page_id}")
            if target is None or target.status != "current":
                raise Missing(f"page {target_id}")
            if target_id == page_id:
                raise Invalid(f"Page {page_id} cannot be moved relative to itself")
            parent_id: int | None
            if position == "append":
                parent_id, parent_type = target.id, "page"
            else:
                parent_id, parent_type = target.parent_id, target.parent_type
            if page_id in self._ancestor_ids(parent_id):
                raise Invalid(
                    f"Page {page_id} cannot be moved below itself: {target_id} is the page "
                    "or one of its descendants"
                )
            moving = self._subtree_pages(page)
            if target.space_id != page.space_id:
                space = self._spaces[target.space_id]
                moving_ids = {p.id for p in moving}
                for item in moving:
                    folded = item.title.casefold()
                    clash = next(
                        (
                            o
                            for o in self._pages.values()
                            if o.space_id == space.id
                            and o.status == "current"
                            and o.id not in moving_ids
                            and o.title.casefold() == folded
                        ),
                        None,
                    )
                    if clash is not None:
                        raise DuplicateTitle(item.title, space.key, clash.id)
                for item in moving:
                    self._pages[item.id] = replace(self._pages[item.id], space_id=space.id)
            moved = replace(
                self._pages[page_id],
                parent_id=parent_id,
                parent_type=parent_type if parent_id is not None else "page",
            )
            self._pages[page_id] = moved
            siblings = (
                self.tree_children(parent_id)
                if parent_id is not None
                else [
                    p
                    for p in self._pages.values()
                    if p.parent_id is None and p.space_id == target.space_id
                ]
            )
            ordered = sorted(
                (s for s in siblings if s.id != page_id), key=lambda i: (i.position, i.id)
            )
            if position == "append":
                ordered.append(moved)
            else:
                at = next(n for n, s in enumerate(ordered) if s.id == target_id)
                ordered.insert(at if position == "before" else at + 1, moved)
            self._renumber(ordered)
            return self._pages[page_id]

    def _copy_extras(self, source: Page, copy: Page, options: frozenset[str], now: str) -> None:
        """Attachments and properties of ``source`` copied onto ``copy`` (new ids)."""
        if "attachments" in options:
            for attachment in [
                a
                for a in self._attachments.values()
                if a.container_type == "page"
                and a.container_id == source.id
                and a.status == "current"
            ]:
                first = VersionInfo(
                    1, now, attachment.comment, False, copy.author_id, attachment.title, "", ""
                )
                self._attachments[self._next_id] = replace(
                    attachment,
                    id=self._next_id,
                    container_id=copy.id,
                    file_id=str(uuid.uuid4()),
                    author_id=copy.author_id,
                    created_at=now,
                    versions=(first,),
                )
                self._next_id += 1
        if "properties" in options:
            for prop in [
                p
                for p in self._properties.values()
                if p.owner_type == "page" and p.owner_id == source.id
            ]:
                self._properties[self._next_property_id] = replace(
                    prop,
                    id=self._next_property_id,
                    owner_id=copy.id,
                    created_at=now,
                    created_by=copy.author_id,
                    version=1,
                    version_at=now,
                    version_by=copy.author_id,
                    version_message="",
                )
                self._next_property_id += 1

    def _new_copy(
        self,
        source: Page,
        *,
        space_id: int,
        parent_id: int | None,
        title: str,
        body: tuple[str, str] | None,
        options: frozenset[str],
        author_id: str,
        now: str,
    ) -> Page:
        representation, value = body or (source.body_representation, source.body_value)
        siblings = [i.position for i in self.tree_children(parent_id)] if parent_id else []
        copy = Page(
            id=self._next_id,
            space_id=space_id,
            title=title,
            status="current",
            parent_id=parent_id,
            position=max(siblings, default=0) + 1,
            author_id=author_id,
            created_at=now,
            body_representation=representation,
            body_value=value,
            versions=(VersionInfo(1, now, "", False, author_id, title, representation, value),),
            labels=source.labels if "labels" in options else (),
            owner_id=author_id,
        )
        self._pages[copy.id] = copy
        self._next_id += 1
        for text in copy.labels:
            self._label(*label_parts(text))
        self._copy_extras(source, copy, options, now)
        self._sync_tasks(copy, author_id, now, None)
        return copy

    def copy_page(
        self,
        page_id: int,
        *,
        destination: str,
        value: str,
        title: str | None,
        body: tuple[str, str] | None,
        options: frozenset[str],
        author_id: str,
        now: str,
    ) -> Page:
        """v1 single-page copy to a ``space`` (top level), under a ``parent_page``, or over
        an ``existing_page`` (which gets a new version with the copied title and body)."""
        with self.lock:
            self._revision += 1
            source = self._pages.get(page_id)
            if source is None or source.status != "current":
                raise Missing(f"page {page_id}")
            new_title = title or source.title
            if destination == "existing_page":
                existing = self._pages.get(int(value)) if value.isdigit() else None
                if existing is None or existing.status != "current":
                    raise Missing(f"page {value}")
                if existing.id == source.id:
                    raise Invalid("A page cannot be copied over itself")
                space = self._spaces[existing.space_id]
                self._check_title("page", space, new_title, existing.id, existing.created_at)
                representation, text = body or (source.body_representation, source.body_value)
                entry = VersionInfo(
                    existing.version.number + 1,
                    now,
                    f"Copied from {source.title}",
                    False,
                    author_id,
                    new_title,
                    representation,
                    text,
                )
                updated = replace(
                    existing,
                    title=new_title,
                    body_representation=representation,
                    body_value=text,
                    versions=(*existing.versions, entry),
                )
                self._pages[existing.id] = updated
                self._sync_tasks(updated, author_id, now, author_id)
                return updated
            if destination == "space":
                found = next((s for s in self._spaces.values() if s.key == value), None)
                if found is None:
                    raise UnknownSpace(value)
                space, parent_id = found, None
            else:
                parent = self._pages.get(int(value)) if value.isdigit() else None
                if parent is None or parent.status != "current":
                    raise Missing(f"page {value}")
                space, parent_id = self._spaces[parent.space_id], parent.id
            self._check_title("page", space, new_title, None, now)
            return self._new_copy(
                source,
                space_id=space.id,
                parent_id=parent_id,
                title=new_title,
                body=body,
                options=options,
                author_id=author_id,
                now=now,
            )

    def start_copy_tree(
        self,
        page_id: int,
        *,
        destination_id: int,
        prefix: str,
        search: str,
        replacement: str,
        options: frozenset[str],
        author_id: str,
    ) -> LongTask:
        """Plan a page-hierarchy copy (checked now) that runs when its task completes."""
        with self.lock:
            self._revision += 1
            source = self._pages.get(page_id)
            if source is None or source.status != "current":
                raise Missing(f"page {page_id}")
            target = self._pages.get(destination_id)
            if target is None or target.status != "current":
                raise Missing(f"page {destination_id}")
            pages = self._subtree_pages(source)
            if destination_id in {p.id for p in pages}:
                raise Invalid("A page hierarchy cannot be copied into itself")
            renames = bool(prefix or search)
            if target.space_id == source.space_id and not renames:
                raise Invalid(
                    "titleOptions (a prefix, or search and replace) are required to copy "
                    "pages within the same space"
                )
            space = self._spaces[target.space_id]
            plan = []
            for page in pages:
                title = page.title.replace(search, replacement) if search else page.title
                title = f"{prefix}{title}"
                self._check_title("page", space, title, None, page.created_at)
                plan.append((page.id, title))
            task = LongTask(
                id=self._next_long_task_id,
                source_id=page_id,
                destination_id=destination_id,
                plan=tuple(plan),
                options=options,
                author_id=author_id,
                polls_needed=max(1, self.long_task_polls),
            )
            self._long_tasks[task.id] = task
            self._next_long_task_id += 1
            return task

    def long_task(self, task_id: int) -> LongTask | None:
        with self.lock:
            return self._long_tasks.get(task_id)

    def poll_long_task(self, task_id: int, now: str) -> LongTask:
        """One status read: progress one step; the read that completes the task copies."""
        with self.lock:
            task = self._long_tasks.get(task_id)
            if task is None:
                raise Missing(f"long task {task_id}")
            if task.finished:
                return task
            task = replace(task, polls_done=task.polls_done + 1)
            if task.finished:
                self._revision += 1
                task = self._run_copy(task, now)
            self._long_tasks[task_id] = task
            return task

    def _run_copy(self, task: LongTask, now: str) -> LongTask:
        target = self._pages.get(task.destination_id)
        if target is None or target.status != "current":
            return replace(task, error=f"The destination page {task.destination_id} is gone")
        space = self._spaces[target.space_id]
        mapping: dict[int, int] = {}
        copied: list[int] = []
        for source_id, title in task.plan:
            source = self._pages.get(source_id)
            if source is None or source.status != "current":
                continue  # deleted since the copy was asked for
            # The nearest copied ancestor (folders are not copied); the root goes under
            # the destination.
            parent_id = next(
                (mapping[a] for a in self._ancestor_ids(source.parent_id) if a in mapping),
                task.destination_id,
            )
            try:
                self._check_title("page", space, title, None, now)
            except DuplicateTitle:
                return replace(task, copied=tuple(copied), error=f"Title '{title}' is taken")
            copy = self._new_copy(
                source,
                space_id=space.id,
                parent_id=task.destination_id if source_id == task.source_id else parent_id,
                title=title,
                body=None,
                options=task.options,
                author_id=task.author_id,
                now=now,
            )
            mapping[source_id] = copy.id
            copied.append(copy.id)
        return replace(task, copied=tuple(copied))

    def restore_version(
        self,
        kind: str,
        page_id: int,
        *,
        number: int,
        message: str,
        restore_title: bool,
        author_id: str,
        now: str,
    ) -> Page:
        """A new version (current + 1) whose body is version ``number``'s, and its title too
        when ``restore_title``; the history is kept, as Confluence does."""
        with self.lock:
            self._revision += 1
            records = self._container_dict(kind)
            page = records.get(page_id)
            if page is None or page.status not in ("current", "archived"):
                raise Missing(f"{kind} {page_id}")
            old = next((v for v in page.versions if v.number == number), None)
            if old is None:
                raise Invalid(f"Content {page_id} has no version {number}")
            if number == page.version.number:
                raise Invalid(f"Version {number} is the current version of {page_id}")
            title = old.title if restore_title else page.title
            if title != page.title and page.status == "current":
                self._check_title(kind, self._spaces[page.space_id], title, page.id, now)
            entry = VersionInfo(
                page.version.number + 1,
                now,
                message,
                False,
                author_id,
                title,
                old.body_representation,
                old.body_value,
            )
            updated = replace(
                page,
                title=title,
                body_representation=old.body_representation,
                body_value=old.body_value,
                versions=(*page.versions, entry),
            )
            records[page_id] = updated
            self._sync_tasks(updated, author_id, now, author_id)
            return updated

    # -- writes: attachment data, inline comment resolution --------------------------------------

    def update_attachment_data(
        self,
        attachment_id: int,
        *,
        container_id: int,
        data: bytes,
        media_type: str,
        comment: str | None,
        minor_edit: bool,
        author_id: str,
        now: str,
    ) -> Attachment:
        """A new version of a live attachment: new bytes (and comment, when given)."""
        with self.lock:
            self._revision += 1
            attachment = self._attachments.get(attachment_id)
            if (
                attachment is None
                or attachment.container_id != container_id
                or attachment.status != "current"
            ):
                raise Missing(f"attachment {attachment_id} on content {container_id}")
            text = attachment.comment if comment is None else comment
            entry = VersionInfo(
                attachment.version.number + 1,
                now,
                comment or "",
                minor_edit,
                author_id,
                attachment.title,
                "",
                "",
            )
            updated = replace(
                attachment,
                data=data,
                media_type=media_type,
                comment=text,
                versions=(*attachment.versions, entry),
            )
            self._attachments[attachment_id] = updated
            return updated

    def set_resolution(
        self, comment_id: int, *, resolved: bool, author_id: str, now: str
    ) -> Comment:
        """Resolve or reopen a top-level inline comment; matching its state changes nothing."""
        with self.lock:
            self._revision += 1
            comment = self._comments.get(comment_id)
            if comment is None or comment.kind != "inline":
                raise Missing(f"comment {comment_id}")
            if comment.parent_id is not None:
                raise Invalid("Only top-level inline comments can be resolved or reopened")
            state = comment.resolution_status or "open"
            if state == "dangling":
                raise Invalid("A dangling inline comment cannot be updated")
            if resolved == (state == "resolved"):
                return comment
            updated = replace(
                comment,
                resolution_status="resolved" if resolved else "reopened",
                resolution_modifier_id=author_id,
                resolution_modified_at=now,
            )
            self._comments[comment_id] = updated
            return updated

    def mark_inline(self, comment_id: int, marker_ref: str, selection: str, body: str) -> None:
        """Record an inline comment's marker; ``body`` is the container body with the marker
        element around the selection (kept in the current version, as the editor does)."""
        with self.lock:
            self._revision += 1
            comment = self._comments[comment_id]
            self._comments[comment_id] = replace(
                comment, marker_ref=marker_ref, original_selection=selection
            )
            records = self._container_dict(comment.container_type)
            container = records.get(comment.container_id)
            if container is not None and body != container.body_value:
                last = replace(container.version, body_value=body)
                records[container.id] = replace(
                    container, body_value=body, versions=(*container.versions[:-1], last)
                )

    # -- templates, watches, views --------------------------------------------------------------

    def add_templates(self, templates: Iterable[Template]) -> None:
        with self.lock:
            self._revision += 1
            for template in templates:
                self._templates[template.id] = template

    def templates(self) -> list[Template]:
        with self.lock:
            return sorted(self._templates.values(), key=lambda t: t.id)

    def template(self, template_id: int) -> Template | None:
        with self.lock:
            return self._templates.get(template_id)

    def set_watch(self, account_id: str, content_id: int, watching: bool) -> None:
        with self.lock:
            self._revision += 1
            if watching:
                self._watches.add((account_id, content_id))
            else:
                self._watches.discard((account_id, content_id))

    def watching(self, account_id: str, content_id: int) -> bool:
        with self.lock:
            return (account_id, content_id) in self._watches

    def add_views(self, content_id: int, views: Iterable[tuple[str, str]]) -> None:
        """Record page views as (account id, timestamp)."""
        with self.lock:
            self._revision += 1
            self._views.setdefault(content_id, []).extend(views)

    def views(self, content_id: int) -> list[tuple[str, str]]:
        with self.lock:
            return list(self._views.get(content_id, ()))
