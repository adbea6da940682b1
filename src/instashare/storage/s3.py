"""S3 (or MinIO) storage: every operation goes through obstore's S3Store.

Uploads are obstore's multipart uploads. S3 keeps no partial objects in view: an upload that
stops before its end is aborted, and one whose process died is an incomplete multipart upload
that a bucket lifecycle rule expires. Resumable uploads keep their multipart upload across
requests, through :mod:`.s3_parts` (see :mod:`.s3_resumable`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

import obstore
from obstore.store import S3Store

from instashare.storage import s3_resumable
from instashare.storage.base import Storage
from instashare.storage.chunk_source import ChunkSource
from instashare.storage.errors import translate_errors
from instashare.storage.resumable import ResumableUpload, ResumableWriter
from instashare.storage.s3_parts import S3Parts
from instashare.storage.settings import StorageSettings
from instashare.storage.tasks import mark_retrieved, wait_out

if TYPE_CHECKING:
    from obstore import Attributes
    from obstore.store import ClientConfig, RetryConfig, S3Config

# Overall deadline for one streamed GET. Its body is consumed at the pace of the downloading
# client, so the normal request timeout would cut off slow downloads of large files; stalls of
# the storage itself are still caught by the read timeout set alongside it.
_STREAM_TIMEOUT: Final = timedelta(hours=24)


class S3Storage(Storage):
    """Objects in one bucket, under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str, settings: StorageSettings) -> None:
        client: ClientConfig = {
            "connect_timeout": timedelta(seconds=settings.connect_timeout),
            "timeout": timedelta(seconds=settings.request_timeout),
        }
        # obstore's defaults retry for up to 3 minutes, so an outage would look like a hang;
        # a few quick retries ride out blips and then report the failure.
        retry: RetryConfig = {
            "max_retries": settings.max_retries,
            "retry_timeout": timedelta(seconds=settings.request_timeout),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
        }
        config: S3Config = {"region": settings.s3_region}
        if settings.s3_endpoint:
            # MinIO and other self-hosted endpoints: path-style URLs, plain http allowed.
            config["endpoint"] = settings.s3_endpoint
            config["virtual_hosted_style_request"] = False
            client["allow_http"] = settings.s3_endpoint.lower().startswith("http://")
        # Keys left unset fall back to obstore's usual AWS chain (environment, instance role).
        if settings.s3_access_key_id is not None:
            config["access_key_id"] = settings.s3_access_key_id
        if settings.s3_secret_access_key is not None:
            config["secret_access_key"] = settings.s3_secret_access_key

        def build(client_options: ClientConfig) -> S3Store:
            return S3Store(
                bucket,
                prefix=prefix or None,
                config=config,
                client_options=client_options,
                retry_config=retry,
            )

        stream_client: ClientConfig = {
            **client,
            "timeout": _STREAM_TIMEOUT,
            "read_timeout": timedelta(seconds=settings.request_timeout),
        }
        super().__init__(build(client), stream_store=build(stream_client))
        self._part_size = settings.part_size
        self._upload_concurrency = settings.upload_concurrency
        self._parts = S3Parts(bucket, prefix, settings)

    async def upload(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        """A multipart upload of ``part_size`` parts, ``upload_concurrency`` of them in flight.

        ``content_type`` becomes the object's Content-Type.
        """
        source = ChunkSource(chunks)
        attributes: Attributes | None = None
        if content_type:
            attributes = {"Content-Type": content_type}
        put = asyncio.ensure_future(
            obstore.put_async(
                self._store,
                key,
                source,
                attributes=attributes,
                use_multipart=True,
                chunk_size=self._part_size,
                max_concurrency=self._upload_concurrency,
            )
        )
        try:
            # asyncio.wait, not await: cancelling this task must not cancel `put`, because
            # obstore drops a cancelled upload without aborting it on S3.
            await asyncio.wait({put})
        except asyncio.CancelledError:
            await self._abandon_upload(key, put, source)
            raise
        await source.aclose()
        if source.error is not None:
            mark_retrieved(put)
            raise source.error
        with translate_errors(key):
            put.result()
        return source.bytes_read

    async def _abandon_upload(
        self, key: str, put: asyncio.Future[Any], source: ChunkSource
    ) -> None:
        source.stop()
        await wait_out(put)
        await wait_out(asyncio.ensure_future(source.aclose()))
        if put.cancelled() or put.exception() is not None:
            return
        # The upload completed before the stop reached it: remove the object the caller gave up.
        await wait_out(asyncio.ensure_future(self.delete(key)))

    async def _remove_stale_partials(self, older_than: timedelta) -> int:
        """Nothing to remove: S3 keeps no partial objects (see the module's docstring)."""
        return 0

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Store a small object (at most one part) in one request."""
        attributes: Attributes | None = {"Content-Type": content_type} if content_type else None
        with translate_errors(key, missing_is_not_found=False):
            await obstore.put_async(
                self._store, key, data, attributes=attributes, use_multipart=False
            )

    async def open_resumable(self, upload: ResumableUpload) -> ResumableWriter:
        tail = await s3_resumable.read_tail(self, upload)
        return s3_resumable.S3ResumableWriter(upload, self, self._parts, self._part_size, tail)

    async def finish_resumable(self, upload: ResumableUpload) -> None:
        await s3_resumable.finish(self, self._parts, upload)

    async def remove_resumable(self, upload: ResumableUpload) -> None:
        await s3_resumable.remove(self, self._parts, upload)

    async def close(self) -> None:
        await self._parts.close()
