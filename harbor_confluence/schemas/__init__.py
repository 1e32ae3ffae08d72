"""JSON Schemas that ship with the package (the manifest format, the catalog format)."""

from __future__ import annotations

from importlib import resources

__all__ = ["catalog_schema_text", "manifest_schema_text"]


def manifest_schema_text() -> str:
    return resources.files(__package__).joinpath("manifest.schema.json").read_text("utf-8")


def catalog_schema_text() -> str:
    return resources.files(__package__).joinpath("catalog.schema.json").read_text("utf-8")
