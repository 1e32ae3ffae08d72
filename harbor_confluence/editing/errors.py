"""Errors raised by the storage/Markdown conversion core.

All derive from ``ValueError`` so callers that validate input generically keep working,
while callers that care can tell a broken document from a broken edit.
"""

from __future__ import annotations


class EditingError(ValueError):
    """Base class: the input cannot be converted or edited without losing content."""


class StorageParseError(EditingError):
    """The storage document is not well-formed XHTML (after HTML entities are declared)."""

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class PlaceholderError(EditingError):
    """The edited Markdown misuses a placeholder token (unknown id, wrong place, ...)."""

    def __init__(self, message: str, *, token: str) -> None:
        super().__init__(message)
        self.token = token


class UnknownPlaceholderError(PlaceholderError):
    """The edited Markdown carries a placeholder id that the view never issued."""


class TargetNotFoundError(EditingError):
    """A targeted edit could not find its target (section, text) exactly once."""


class StaleViewError(EditingError):
    """The Markdown view was made from a different storage document than the base given."""
