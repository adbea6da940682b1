"""Resumable uploads as storage sees them: bytes appended across requests, durable at checkpoints.

The caller (the uploads domain) keeps a :class:`ResumableUpload` in its database between
requests. For each request it opens a :class:`ResumableWriter` at the recorded offset, writes the
request's bytes, and asks for a :meth:`~ResumableWriter.checkpoint`: once that returns, every
byte before the new offset is durably stored, and the caller records the returned state. Bytes
written after the last recorded checkpoint are ignored by the next writer (a local file is
truncated back, an S3 part that was not recorded is uploaded again under its number), so a
process killed anywhere never leaves an offset whose bytes are not all there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any


class ResumableDataLostError(Exception):
    """Storage holds fewer bytes than the recorded offset: the upload cannot continue."""


@dataclass(frozen=True)
class StoredPart:
    """An uploaded S3 part: enough to complete the multipart upload later."""

    number: int
    etag: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"number": self.number, "etag": self.etag, "size": self.size}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> StoredPart:
        return cls(int(value["number"]), str(value["etag"]), int(value["size"]))


@dataclass(frozen=True)
class ResumableUpload:
    """Where an upload's bytes are and how many of them are durably stored.

    ``scratch_key`` names the backend's working space (a partial file, or the S3 tail object
    under it); ``destination_key`` the object the upload becomes once finished.
    """

    scratch_key: str
    destination_key: str
    length: int
    offset: int = 0
    content_type: str | None = None
    multipart_id: str | None = None
    parts: tuple[StoredPart, ...] = field(default=())

    @property
    def parts_size(self) -> int:
        return sum(part.size for part in self.parts)

    @property
    def complete(self) -> bool:
        return self.offset == self.length

    def advanced(self, **changes: Any) -> ResumableUpload:
        return replace(self, **changes)


class ResumableWriter(ABC):
    """Appends one request's bytes to a resumable upload, from its recorded offset on.

    Memory stays bounded: a backend holds at most one S3 part. Always :meth:`close` it.
    """

    def __init__(self, upload: ResumableUpload) -> None:
        self.recorded = upload
        # Bytes accepted by write() beyond the last checkpoint.
        self.pending = 0

    @property
    def offset(self) -> int:
        """Where the next written byte goes."""
        return self.recorded.offset + self.pending

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Append ``data``; it is durable only after the next :meth:`checkpoint`."""

    @property
    def checkpoint_due(self) -> bool:
        """Whether a checkpoint now would be cheap and worth recording (a long request
        keeps its progress as it goes)."""
        return False

    @abstractmethod
    async def checkpoint(self) -> ResumableUpload:
        """Make every written byte durable; returns the state to record."""

    @abstractmethod
    async def discard(self) -> None:
        """Forget the bytes written since the last checkpoint (a failed checksum)."""

    async def close(self) -> None:  # noqa: B027  (optional: not every writer holds something)
        """Release what the writer holds; unrecorded bytes stay ignored."""
