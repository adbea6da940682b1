"""Resumable uploads on S3: a real multipart upload whose parts are the client's chunks.

S3 wants every part but the last to be at least 5 MiB, while tus clients send chunks of any
size. Bytes are gathered in memory until they make a part; what a request leaves over (less
than a part) is stored as a small *tail* object (``<scratch key>/tail``) at the checkpoint and
read back by the next request. The recorded state (multipart upload id, parts, offset) says how
much of the tail counts, so a tail rewritten by a request that died before recording is simply
read up to the recorded length. A part uploaded but never recorded is uploaded again under the
same number. At most one part is in memory per upload.

The multipart upload is created on the first part, with the destination key, so completing it
puts the object in place at once. An upload that never reaches one part (a small file) is
copied from its tail when finished.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from instashare.storage.errors import ObjectNotFoundError
from instashare.storage.resumable import (
    ResumableDataLostError,
    ResumableUpload,
    ResumableWriter,
    StoredPart,
)
from instashare.storage.s3_parts import MultipartUploadGoneError, S3Parts
from instashare.storage.settings import MIN_PART_SIZE

if TYPE_CHECKING:
    from instashare.storage.s3 import S3Storage

# S3 numbers parts 1 to 10,000.
_MAX_PARTS: Final = 10_000


def tail_key(upload: ResumableUpload) -> str:
    return f"{upload.scratch_key}/tail"


def part_sizes(length: int, part_size: int) -> tuple[int, int]:
    """(smallest part a request may end with, size at which a part is sent mid-request), so
    that no upload of ``length`` bytes needs more than 10,000 parts."""
    smallest = max(MIN_PART_SIZE, math.ceil(length / _MAX_PARTS))
    return smallest, max(part_size, smallest)


class S3ResumableWriter(ResumableWriter):
    def __init__(
        self,
        upload: ResumableUpload,
        storage: S3Storage,
        parts: S3Parts,
        part_size: int,
        tail: bytes,
    ) -> None:
        super().__init__(upload)
        self._storage = storage
        self._parts = parts
        self._smallest_part, self._send_at = part_sizes(upload.length, part_size)
        # Bytes after the recorded parts: the recorded tail first, then this request's bytes.
        self._buffer = bytearray(tail)
        self._tail_stored = len(tail)  # how much of the buffer the tail object already holds
        self._multipart_id = upload.multipart_id
        self._created_multipart_id: str | None = None  # by this writer, not yet recorded
        self._new_parts: list[StoredPart] = []

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.pending += len(data)
        if len(self._buffer) >= self._send_at:
            await self._send_part()

    @property
    def checkpoint_due(self) -> bool:
        return bool(self._new_parts) and not self._buffer

    async def _send_part(self) -> None:
        destination = self.recorded.destination_key
        if self._multipart_id is None:
            self._multipart_id = await self._parts.create(destination, self.recorded.content_type)
            self._created_multipart_id = self._multipart_id
        number = len(self.recorded.parts) + len(self._new_parts) + 1
        part = await self._parts.upload_part(
            destination, self._multipart_id, number, bytes(self._buffer)
        )
        self._new_parts.append(part)
        self._buffer.clear()
        self._tail_stored = 0

    async def checkpoint(self) -> ResumableUpload:
        final = self.offset == self.recorded.length
        if len(self._buffer) >= self._smallest_part or (
            final and self._buffer and self._multipart_id is not None
        ):
            await self._send_part()  # the last part may be of any size
        elif len(self._buffer) > self._tail_stored:
            await self._storage.put_bytes(tail_key(self.recorded), bytes(self._buffer))
            self._tail_stored = len(self._buffer)
        self.recorded = self.recorded.advanced(
            offset=self.offset,
            multipart_id=self._multipart_id,
            parts=(*self.recorded.parts, *self._new_parts),
        )
        self._new_parts = []
        self._created_multipart_id = None
        self.pending = 0
        return self.recorded

    async def discard(self) -> None:
        if self._created_multipart_id is not None:
            # Nobody recorded it: left alone it would outlive the upload.
            await self._parts.abort(self.recorded.destination_key, self._created_multipart_id)
        self._multipart_id = self.recorded.multipart_id
        self._created_multipart_id = None
        self._new_parts = []
        del self._buffer[self._tail_stored :]
        self.pending = 0

    async def close(self) -> None:
        self._buffer = bytearray()


async def read_tail(storage: S3Storage, upload: ResumableUpload) -> bytes:
    """The recorded tail: the bytes after the recorded parts (at most one part)."""
    size = upload.offset - upload.parts_size
    if size <= 0:
        return b""
    try:
        tail = b"".join([chunk async for chunk in storage.read(tail_key(upload), length=size)])
    except ObjectNotFoundError:
        tail = b""
    if len(tail) != size:
        raise ResumableDataLostError(f"the tail of {upload.scratch_key} lost bytes")
    return tail


async def finish(storage: S3Storage, parts: S3Parts, upload: ResumableUpload) -> None:
    destination = upload.destination_key
    if upload.multipart_id is not None:
        try:
            await parts.complete(destination, upload.multipart_id, upload.parts)
        except MultipartUploadGoneError as exc:
            if not await storage.exists(destination):
                message = f"the multipart upload of {destination} is gone"
                raise ResumableDataLostError(message) from exc
    elif not await storage.exists(destination):
        await storage.put_bytes(
            destination, await read_tail(storage, upload), content_type=upload.content_type
        )
    await remove(storage, parts, upload, keep=upload.multipart_id)


async def remove(
    storage: S3Storage, parts: S3Parts, upload: ResumableUpload, keep: str | None = None
) -> None:
    """Delete the tail and abort every multipart upload of the destination (also one created by
    a request that died before recording it), except ``keep``."""
    await storage.delete(tail_key(upload))
    leftovers = set(await parts.open_uploads(upload.destination_key))
    if upload.multipart_id is not None and upload.multipart_id != keep:
        leftovers.add(upload.multipart_id)
    if keep is not None:
        leftovers.discard(keep)
    for multipart_id in sorted(leftovers):
        await parts.abort(upload.destination_key, multipart_id)
