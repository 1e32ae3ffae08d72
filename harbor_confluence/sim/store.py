"""In-memory Confluence content behind one lock.

Records are frozen: an update replaces the record, so a handler can serialise a snapshot
without holding the lock while another thread writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DuplicateTitle",
    "Page",
    "Space",
    "Store",
    "StoreError",
    "UnknownParent",
    "UnknownSpace",
    "User",
    "VersionInfo",
]


@dataclass(frozen=True, slots=True)
class User:
    """An Atlassian account; ids look like ``557058:<uuid>`` as on a real site."""

    account_id: str
    display_name: str
    email: str


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One entry of a page's history, shaped like the spec's ``Version`` schema."""

    number: int
    created_at: str
    message: str
    minor_edit: bool
    author_id: str


@dataclass(frozen=True, slots=True)
class Space:
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
    """A page; ``body_representation`` is how it is stored (storage or atlas_doc_format)."""

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
    labels: tuple[str, ...] = ()
    subtype: str | None = None
    owner_id: str | None = None
    last_owner_id: str | None = None

    @property
    def version(self) -> VersionInfo:
        return self.versions[-1]

    @property
    def modified_at(self) -> str:
        return self.versions[-1].created_at


class StoreError(Exception):
    """A domain refusal; handlers map each subclass to the status Confluence uses."""


class UnknownSpace(StoreError):
    pass


class UnknownParent(StoreError):
    pass


class DuplicateTitle(StoreError):
    def __init__(self, title: str, space_key: str, existing_id: int) -> None:
        super().__init__(title)
        self.title = title
        self.space_key = space_key
        self.existing_id = existing_id


class Store:
    """All simulated content. Every public method is atomic under ``self.lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._spaces: dict[int, Space] = {}
        self._pages: dict[int, Page] = {}
        self._label_ids: dict[str, str] = {}
        self._next_label_id = 1_015_809
        self._next_page_id = 1

    # -- seeding -------------------------------------------------------------------------

    def add_user(self, user: User) -> None:
        with self.lock:
            self._users[user.account_id] = user

    def add_space(self, space: Space) -> None:
        with self.lock:
            self._spaces[space.id] = space

    def add_pages(self, pages: Iterable[Page]) -> None:
        """Insert as-is (seed data); ids must be unique, later creates get higher ids."""
        with self.lock:
            for page in pages:
                self._pages[page.id] = page
                self._next_page_id = max(self._next_page_id, page.id + 1)

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

    def children(self, parent_id: int) -> list[Page]:
        with self.lock:
            return [p for p in self._pages.values() if p.parent_id == parent_id]

    def label_id(self, name: str) -> str:
        """Stable numeric id per label name, as Confluence keeps one id per global label."""
        with self.lock:
            if name not in self._label_ids:
                self._label_ids[name] = str(self._next_label_id)
                self._next_label_id += 1
            return self._label_ids[name]

    # -- writes --------------------------------------------------------------------------

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
    ) -> Page:
        """Check and insert in one critical section so two racing creates cannot both win."""
        with self.lock:
            space = self._spaces.get(space_id)
            if space is None:
                raise UnknownSpace(str(space_id))
            if parent_id is not None:
                parent = self._pages.get(parent_id)
                if parent is None or parent.space_id != space_id or parent.status != "current":
                    raise UnknownParent(str(parent_id))
            elif not root_level:
                parent_id = space.homepage_id
            if status == "current":
                folded = title.casefold()
                for other in self._pages.values():
                    if (
                        other.space_id == space_id
                        and other.status == "current"
                        and other.title.casefold() == folded
                    ):
                        raise DuplicateTitle(title, space.key, other.id)
            siblings = [
                p.position
                for p in self._pages.values()
                if p.space_id == space_id and p.parent_id == parent_id
            ]
            page = Page(
                id=self._next_page_id,
                space_id=space_id,
                title=title,
                status=status,
                parent_id=parent_id,
                position=max(siblings, default=0) + 1,
                author_id=author_id,
                created_at=now,
                body_representation=body_representation,
                body_value=body_value,
                versions=(VersionInfo(1, now, "", False, author_id),),
                subtype=subtype,
                owner_id=author_id,
            )
            self._pages[page.id] = page
            self._next_page_id += 1
            return page

    def replace_page(self, page: Page) -> None:
        """Swap in an updated record (future PUT/DELETE routes)."""
        with self.lock:
            if page.id not in self._pages:
                raise KeyError(page.id)
            self._pages[page.id] = page
