"""S3 multipart uploads part by part, across requests and processes (aiobotocore).

obstore uploads a multipart object within one call and offers no way to keep its upload id, so
the parts of a resumable upload go through aiobotocore: create, upload a part, complete, abort,
list. Everything else stays with obstore. The client is configured from the same
:class:`StorageSettings` (endpoint, region, keys, timeouts, retries) and created on first use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

from instashare.storage.errors import StorageUnavailableError
from instashare.storage.resumable import StoredPart
from instashare.storage.settings import StorageSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_GONE_CODES: Final = {"NoSuchUpload", "404"}


class MultipartUploadGoneError(Exception):
    """S3 no longer knows the multipart upload (completed or aborted before)."""


@contextlib.contextmanager
def _translated(key: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError  # see S3Parts._s3

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _GONE_CODES:
            raise MultipartUploadGoneError(key) from exc
        message = f"S3 refused a multipart request for {key!r}: {code}"
        raise StorageUnavailableError(message) from exc
    except (BotoCoreError, OSError) as exc:
        raise StorageUnavailableError(f"S3 multipart request for {key!r} failed: {exc}") from exc


class S3Parts:
    """Part-level multipart calls on one bucket, keys under one prefix (as S3Storage's)."""

    def __init__(self, bucket: str, prefix: str, settings: StorageSettings) -> None:
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._settings = settings
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._client: S3Client | None = None

    async def _s3(self) -> S3Client:
        if self._client is None:
            # Imported on first use: botocore's import costs tens of MiB that a server on
            # local storage never needs.
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            settings = self._settings
            config = AioConfig(
                region_name=settings.s3_region,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.request_timeout,
                retries={"max_attempts": settings.max_retries + 1, "mode": "standard"},
                # Self-hosted endpoints (MinIO) want path-style URLs, as obstore is told too.
                s3={"addressing_style": "path"} if settings.s3_endpoint else None,
                # Parts are signed (over plain HTTP) or sent over TLS; no extra CRC pass.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            stack = contextlib.AsyncExitStack()
            self._client = await stack.enter_async_context(
                get_session().create_client(
                    "s3",
                    endpoint_url=settings.s3_endpoint,
                    aws_access_key_id=settings.s3_access_key_id,
                    aws_secret_access_key=settings.s3_secret_access_key,
                    config=config,
                )
            )
            self._exit_stack = stack
        return self._client

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def create(self, key: str, content_type: str | None) -> str:
        s3 = await self._s3()
        with _translated(key):
            if content_type:
                answer = await s3.create_multipart_upload(
                    Bucket=self._bucket, Key=self._key(key), ContentType=content_type
                )
            else:
                answer = await s3.create_multipart_upload(Bucket=self._bucket, Key=self._key(key))
        return answer["UploadId"]

    async def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> StoredPart:
        s3 = await self._s3()
        with _translated(key):
            answer = await s3.upload_part(
                Bucket=self._bucket,
                Key=self._key(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
        return StoredPart(number, answer["ETag"], len(body))

    async def complete(self, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
        """Raises MultipartUploadGoneError when S3 no longer knows the upload."""
        s3 = await self._s3()
        with _translated(key):
            await s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]
                },
            )

    async def abort(self, key: str, upload_id: str) -> None:
        """Abort the upload; one that is gone already is no error."""
        s3 = await self._s3()
        with contextlib.suppress(MultipartUploadGoneError), _translated(key):
            await s3.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key(key), UploadId=upload_id
            )

    async def open_uploads(self, key: str) -> list[str]:
        """Ids of the multipart uploads in progress for exactly ``key``."""
        s3 = await self._s3()
        ids: list[str] = []
        with _translated(key):
            paginator = s3.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=self._key(key)):
                ids += [
                    upload["UploadId"]
                    for upload in page.get("Uploads", [])
                    if upload.get("Key") == self._key(key) and "UploadId" in upload
                ]
        return ids

    async def close(self) -> None:
        if self._exit_stack is not None:
            stack, self._exit_stack, self._client = self._exit_stack, None, None
            await stack.aclose()
