"""multipart/form-data bodies (v1 attachment upload) with a deterministic boundary.

The boundary is derived from the parts themselves, so the same upload always produces
the same bytes and therefore the same fingerprint: an approval binds to the exact file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["FilePart", "Part", "encode_form", "file_from_input"]

# Header-breaking characters are refused (the schema already does; this is the last gate).
_UNSAFE_FILENAME = re.compile(r'["\\/\x00-\x1f\x7f]')
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9.+-]{1,127}/[A-Za-z0-9.+-]{1,127}$")


@dataclass(frozen=True, slots=True)
class Part:
    """One form field."""

    name: str
    value: bytes
    filename: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class FilePart:
    """The decoded file an agent supplied, plus what the operator is shown."""

    filename: str
    media_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def review(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "mediaType": self.media_type,
            "bytes": len(self.content),
            "sha256": self.sha256,
        }


def file_from_input(value: dict[str, Any]) -> FilePart:
    """Decode ``{filename, mediaType, contentBase64}``; ValueError names the bad key."""
    filename = str(value.get("filename", ""))
    if not filename or _UNSAFE_FILENAME.search(filename):
        raise ValueError("filename: quotes, slashes, backslashes and control characters")
    media_type = str(value.get("mediaType") or "application/octet-stream")
    if not _MEDIA_TYPE.match(media_type):
        raise ValueError("mediaType: must look like type/subtype")
    try:
        content = base64.b64decode(str(value.get("contentBase64", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("contentBase64: not valid base64") from None
    return FilePart(filename, media_type, content)


def _disposition(part: Part) -> bytes:
    head = f'Content-Disposition: form-data; name="{part.name}"'
    if part.filename is not None:
        head += f'; filename="{part.filename}"'
    lines = [head]
    if part.content_type:
        lines.append(f"Content-Type: {part.content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def encode_form(parts: list[Part]) -> tuple[bytes, str]:
    """The body and its Content-Type; the boundary is a digest of the parts."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(_disposition(part))
        digest.update(hashlib.sha256(part.value).digest())
    salt = 0
    while True:
        boundary = (
            "harbor-" + hashlib.sha256(digest.digest() + salt.to_bytes(4, "big")).hexdigest()[:40]
        )
        marker = boundary.encode()
        if not any(marker in part.value for part in parts):
            break
        salt += 1  # pragma: no cover - a 160-bit digest inside the file itself
    out = bytearray()
    for part in parts:
        out += b"--" + marker + b"\r\n" + _disposition(part) + part.value + b"\r\n"
    out += b"--" + marker + b"--\r\n"
    return bytes(out), f"multipart/form-data; boundary={boundary}"
