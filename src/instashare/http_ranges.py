"""Conditional and partial GET (RFC 9110 §13-14) and attachment names (RFC 6266).

Litestar streams responses but does not evaluate ``Range`` or ``If-None-Match`` for them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

# At most 18 digits: beyond any real size, and never a number too long to convert.
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d{0,18})\s*-\s*(\d{0,18})\s*$", re.IGNORECASE)


class RangeNotSatisfiableError(ValueError):
    """The range lies wholly outside the representation: answer 416."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range asked for, or None to send the whole representation.

    Multiple ranges and syntactically invalid headers are ignored (RFC 9110 §14.2 allows
    answering them with the full 200 response); a valid range that misses the representation
    raises RangeNotSatisfiableError.
    """
    if not header or "," in header:
        return None
    match = _RANGE.match(header)
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiableError(header)
        return ByteRange(max(0, size - suffix), size)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiableError(header)
    end = size if not last else min(int(last) + 1, size)
    return ByteRange(start, end)


def _opaque_tags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` matches ``etag`` (weak comparison), so 304 applies."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    return etag.removeprefix("W/") in _opaque_tags(header)


def if_range_allows(header: str | None, etag: str) -> bool:
    """``If-Range`` with a stale validator means: ignore Range, send everything."""
    if not header:
        return True
    # Strong comparison only; a date validator cannot be strong for us, so it never matches.
    return header.strip() == etag and not etag.startswith("W/")


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 name in ``filename*``."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r'[\x00-\x1f\x7f"\\;]', "_", ascii_name).strip() or "download"
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value
