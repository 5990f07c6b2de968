"""Attachments: files and images a caller adds to a prompt, checked and turned into parts.

A caller sends each file's bytes (base64); the gateway never fetches a URL for anyone.
Images go to OpenCode as file parts with a `data:` URL (OpenCode hands them to a model that
takes images as `image_url` parts; bytes that are not the image they claim to be make the
provider answer 400, so the gateway checks the signature first). Text-like files go as
text parts of their own, wrapped in <attachment …> and marked with the gateway's metadata:
OpenCode 1.18.33 fails the whole turn on an `application/json` file part ("media type …
not supported"), and one path for every text type is simpler than a list of exceptions.
What a conversation shows of an attachment is its name, type and size, never its bytes.
"""

from __future__ import annotations

import base64
import binascii
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from ..opencode import Part
from .errors import TaskError

MARK = "gatewayAttachment"  # the metadata key of a text part that carries an attachment

# The first bytes each image type starts with.
IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8, checked below
}
TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/javascript",
        "application/x-sh",
        "application/sql",
        "application/x-ndjson",
    }
)
ACCEPTED = (
    "image/png, image/jpeg, image/webp, image/gif, text/* (text/plain, text/markdown, text/csv, …), "
    + ", ".join(sorted(TEXT_TYPES))
)


class AttachmentInput(BaseModel):
    """One file as a caller sends it."""

    filename: str = Field(min_length=1, max_length=255, description="the file's name, e.g. screenshot.png or build.log")
    mime_type: str = Field(description=f"its media type: one of {ACCEPTED}")
    data: str = Field(description="the file's bytes, base64-encoded (no data: prefix, no URL)")


class AttachmentError(TaskError):
    """An attachment the gateway refuses: the message names it and the limit."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str
    data: bytes

    @property
    def is_image(self) -> bool:
        return self.mime_type in IMAGE_SIGNATURES

    def summary(self) -> dict[str, Any]:
        return {"filename": self.filename, "mime_type": self.mime_type, "size": len(self.data)}


def decode(given: Sequence[AttachmentInput], *, max_bytes: int, max_count: int) -> tuple[Attachment, ...]:
    """The attachments, checked: count, base64, type, size, image signature, text encoding."""
    if len(given) > max_count:
        raise AttachmentError(f"{len(given)} attachments sent; the limit is MAX_ATTACHMENTS={max_count} per call")
    found = []
    for item in given:
        name, mime = item.filename, item.mime_type.strip().lower()
        if mime not in IMAGE_SIGNATURES and mime not in TEXT_TYPES and not mime.startswith("text/"):
            raise AttachmentError(f"attachment {name!r}: type {item.mime_type!r} is not accepted; accepted: {ACCEPTED}")
        if len(item.data) > (max_bytes + 2) // 3 * 4 + 4:  # refuse before decoding what is far too big
            raise AttachmentError(f"attachment {name!r} is over the MAX_ATTACHMENT_BYTES limit of {max_bytes} bytes")
        try:
            data = base64.b64decode(item.data, validate=True)
        except (binascii.Error, ValueError):
            raise AttachmentError(
                f"attachment {name!r}: data is not valid base64 (send the file's bytes base64-encoded, no data: prefix)"
            ) from None
        if len(data) > max_bytes:
            raise AttachmentError(
                f"attachment {name!r} is {len(data)} bytes; the MAX_ATTACHMENT_BYTES limit is {max_bytes} bytes"
            )
        if mime in IMAGE_SIGNATURES and not _looks_like(mime, data):
            raise AttachmentError(f"attachment {name!r}: its bytes are not a {mime} image")
        if mime not in IMAGE_SIGNATURES:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise AttachmentError(f"attachment {name!r}: a {mime} file must be UTF-8 text") from None
        found.append(Attachment(name, mime, data))
    return tuple(found)


def _looks_like(mime: str, data: bytes) -> bool:
    if not data.startswith(IMAGE_SIGNATURES[mime]):
        return False
    return mime != "image/webp" or data[8:12] == b"WEBP"


def to_parts(attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
    """OpenCode prompt parts for the attachments, in the order given."""
    parts: list[dict[str, Any]] = []
    for a in attachments:
        if a.is_image:
            url = f"data:{a.mime_type};base64,{base64.b64encode(a.data).decode()}"
            parts.append({"type": "file", "mime": a.mime_type, "filename": a.filename, "url": url})
        else:
            head = f'<attachment filename="{html.escape(a.filename)}" mime_type="{html.escape(a.mime_type)}">'
            text = f"{head}\n{a.data.decode('utf-8')}\n</attachment>"
            parts.append({"type": "text", "text": text, "synthetic": True, "metadata": {MARK: a.summary()}})
    return parts


def shown(parts: Sequence[Part]) -> list[dict[str, Any]]:
    """What a stored user message's parts say about its attachments: name, type, size."""
    found = []
    for part in parts:
        marked = part.metadata.get(MARK) if part.type == "text" else None
        if isinstance(marked, dict):
            found.append(marked)
        elif part.type == "file" and part.url and part.url.startswith("data:"):
            payload = part.url.partition(",")[2]
            size = len(payload) * 3 // 4 - payload[-2:].count("=")
            found.append({"filename": part.filename or "", "mime_type": part.mime or "", "size": size})
    return found
