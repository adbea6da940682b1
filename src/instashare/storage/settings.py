"""What a storage backend is configured with, and the sizes shared by both backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MIB: Final = 1024 * 1024
# S3 rejects multipart parts below 5 MiB (except the last one) and above 5 GiB.
MIN_PART_SIZE: Final = 5 * MIB
MAX_PART_SIZE: Final = 5 * 1024 * MIB
# Small source chunks (a multipart form parser may hand out a few KiB at a time) are merged up
# to this size before they are handed on (to obstore, or written to a local file): each
# hand-over to obstore costs an asyncio task and two GIL round-trips, which dominates for tiny
# chunks, while one extra copy of 256 KiB is cheap.
MERGE_CHUNKS_UP_TO: Final = 256 * 1024


@dataclass(frozen=True)
class StorageSettings:
    """Plain values describing a backend; the app builds this from its own settings.

    ``url`` is ``file:///absolute/dir`` (a relative path, or a bare path without a scheme, is
    resolved against the working directory) or ``s3://bucket[/prefix]``.
    """

    url: str
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # Each upload holds at most part_size * (upload_concurrency + 1) bytes in memory.
    part_size: int = 8 * MIB
    upload_concurrency: int = 2
    connect_timeout: float = 5.0
    # Per request (one part upload, HEAD, DELETE...); also the stall limit of streamed reads.
    request_timeout: float = 60.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            msg = f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes"
            raise ValueError(msg)
        if self.upload_concurrency < 1:
            msg = "upload_concurrency must be at least 1"
            raise ValueError(msg)
        if self.connect_timeout <= 0 or self.request_timeout <= 0 or self.max_retries < 0:
            msg = "timeouts must be positive and max_retries not negative"
            raise ValueError(msg)
