"""The SHA-256 of a whole upload, carried across requests and processes.

hashlib cannot save a hash's state; rehashes (RustCrypto's SHA-256) can, in about a hundred
bytes, at hashlib's speed. Each checkpoint stores the state beside the offset, so the digest is
ready when the last byte arrives: the original is never read back. Measured against hashing
once at completion in benchmarks/README.md ("SHA-256 of resumable uploads").

A state that cannot be restored (saved by another version of the library, whose format is not
guaranteed to stay the same) is not an error: the upload goes on without one, and the file is
hashed by reading it back once it is complete.
"""

from __future__ import annotations

import hashlib
from typing import Final

import rehashes

from instashare.storage import MIB, Storage

# Names the library and format of a saved state; any other prefix is not restored.
_STATE_FORMAT: Final = b"rehashes-0.3/sha256:"


class UploadHash:
    """SHA-256 of the bytes before an upload's offset, or nothing when it cannot continue."""

    def __init__(self, hasher: rehashes.PySha256 | None) -> None:
        self._hasher = hasher

    @classmethod
    def resume(cls, state: bytes | None, offset: int) -> UploadHash:
        if offset == 0:
            return cls(rehashes.PySha256())
        if state is None or not state.startswith(_STATE_FORMAT):
            return cls(None)
        try:
            return cls(rehashes.PySha256.deserialize(state[len(_STATE_FORMAT) :]))
        except Exception:  # an unreadable state only costs a read-back at the end
            return cls(None)

    def update(self, data: bytes) -> None:
        if self._hasher is not None:
            self._hasher.update(data)

    def state(self) -> bytes | None:
        if self._hasher is None:
            return None
        return _STATE_FORMAT + bytes(self._hasher.serialize())

    def hexdigest(self) -> str | None:
        return None if self._hasher is None else str(self._hasher.finalize())


async def hash_stored(storage: Storage, key: str) -> str:
    """Read the object back and hash it: the fallback when no state could be kept."""
    digest = hashlib.sha256()
    async for chunk in storage.read(key, chunk_size=4 * MIB):
        digest.update(chunk)
    return digest.hexdigest()
