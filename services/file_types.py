"""What an uploaded file is, decided from its bytes: the name and the client's type are claims.

Images and PDFs are recognised by their magic numbers. Anything else must be UTF-8 text (no NUL
character): Markdown, CSV and JSON by their extension (JSON must parse), plain text otherwise.
A name or a declared type that claims an image or a PDF the bytes are not is refused, and so is
anything that is neither a known binary type nor text (an executable renamed ``.png``, say).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

from services.errors import BadInput

PNG, JPEG, GIF, WEBP, PDF = "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"
TEXT, MARKDOWN, CSV, JSON = "text/plain", "text/markdown", "text/csv", "application/json"

BINARY_TYPES = frozenset({PNG, JPEG, GIF, WEBP, PDF})  # reach the model as binary content
TEXT_TYPES = frozenset({TEXT, MARKDOWN, CSV, JSON})  # reach the model as text
ACCEPTED = BINARY_TYPES | TEXT_TYPES

_TEXT_BY_EXTENSION = {".md": MARKDOWN, ".markdown": MARKDOWN, ".csv": CSV, ".json": JSON}
_BINARY_BY_EXTENSION = {
    ".png": PNG,
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".gif": GIF,
    ".webp": WEBP,
    ".pdf": PDF,
}
_EXTENSION_OF = {PNG: ".png", JPEG: ".jpg", GIF: ".gif", WEBP: ".webp", PDF: ".pdf", TEXT: ".txt"}
_EXTENSION_OF |= {MARKDOWN: ".md", CSV: ".csv", JSON: ".json"}
MAX_FILENAME = 255
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True)
class FileType:
    media_type: str
    filename: str  # the client's name made safe (no path, no control character, bounded)


def _magic(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    return None


def safe_filename(name: str | None) -> str:
    """The last path component, without control characters, at most 255 characters (extension kept)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", _UNSAFE.sub("", base)).strip().strip(".")
    if len(base) > MAX_FILENAME:
        suffix = PurePosixPath(base).suffix[:16]
        base = base[: MAX_FILENAME - len(suffix)] + suffix
    return base


def detect(data: bytes, filename: str | None, declared: str | None) -> FileType:
    """The accepted type of these bytes, or BadInput naming why not."""
    name = safe_filename(filename)
    if not data:
        raise BadInput("the file is empty")
    extension = PurePosixPath(name.lower()).suffix
    claimed = (declared or "").split(";")[0].strip().lower()
    found = _magic(data)
    if found is None:
        if extension in _BINARY_BY_EXTENSION or claimed in BINARY_TYPES:
            shown = claimed if claimed in BINARY_TYPES else _BINARY_BY_EXTENSION[extension]
            raise BadInput(f"the file claims to be {shown}, but its bytes are not")
        found = _text_type(data, extension)
    if not name:
        name = "attachment" + _EXTENSION_OF[found]
    return FileType(found, name)


_UNSUPPORTED = (
    "unsupported file type: attachments are PNG, JPEG, GIF or WebP images, PDFs, "
    "or UTF-8 text (plain, Markdown, CSV, JSON) without NUL characters"
)


def _text_type(data: bytes, extension: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(_UNSUPPORTED) from exc
    if "\x00" in text:  # binary data that happens to decode
        raise BadInput(_UNSUPPORTED)
    media_type = _TEXT_BY_EXTENSION.get(extension, TEXT)
    if media_type == JSON:
        try:
            json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BadInput("the .json file is not valid JSON") from exc
    return media_type


def text_of(data: bytes) -> str:
    """A stored text attachment's text (checked to be UTF-8 when it was uploaded)."""
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")
