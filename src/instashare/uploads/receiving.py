"""Writing bytes to an upload, finishing it into a document, and removing it.

Each of these holds the upload's lock: a PostgreSQL advisory lock taken on a connection of its
own, which survives the commits that record progress within one request and is released by the
server if the process dies (its connection closes). Two requests on one upload never write at
once: the second is answered 423 Locked, which tus clients retry.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from litestar.exceptions import ClientException, NotFoundException
from litestar.status_codes import HTTP_410_GONE, HTTP_413_REQUEST_ENTITY_TOO_LARGE, HTTP_423_LOCKED
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from instashare.accounts.models import User
from instashare.documents.models import Document, DocumentStatus
from instashare.documents.services import DocumentService
from instashare.errors import ConflictException
from instashare.logs import get_logger
from instashare.storage import ResumableDataLostError, ResumableWriter, Storage
from instashare.storage.tasks import wait_out
from instashare.uploads.hashing import UploadHash, hash_stored
from instashare.uploads.models import Upload
from instashare.uploads.protocol import HTTP_460_CHECKSUM_MISMATCH, Checksum, TusError
from instashare.uploads.services import (
    NOT_FOUND,
    UploadPolicy,
    is_gone,
    record_progress,
    stored_view,
)

log = get_logger(__name__)


class UploadLockedException(ClientException):
    status_code = HTTP_423_LOCKED


class BodyInterruptedError(Exception):
    """The request body stopped before its end: the client went away."""


class BodyStalledError(BodyInterruptedError):
    """The request body stopped arriving without the connection closing."""


@dataclass(frozen=True)
class Chunk:
    """A PATCH (or a creation request's body): where its bytes go and how to check them."""

    offset: int
    length: int | None  # Content-Length, when the client sent one
    checksum: Checksum | None = None


def _lock_key(upload_id: UUID) -> int:
    # The random half of the UUIDv7: collisions are as unlikely as the ids' own.
    return int.from_bytes(upload_id.bytes[8:], "big", signed=True)


@contextlib.asynccontextmanager
async def locked_upload(engine: AsyncEngine, upload_id: UUID) -> AsyncIterator[AsyncSession]:
    """A session on a connection holding the upload's lock; UploadLockedException if taken."""
    key = _lock_key(upload_id)
    async with engine.connect() as connection:
        locked = await connection.scalar(select(func.pg_try_advisory_lock(key)))
        await connection.commit()
        if not locked:
            raise UploadLockedException(
                detail="another request is writing to this upload; retry in a moment"
            )
        try:
            async with AsyncSession(bind=connection, expire_on_commit=False) as session:
                yield session
        finally:
            await wait_out(asyncio.ensure_future(_unlock(connection, key)))


async def _unlock(connection: AsyncConnection, key: int) -> None:
    try:
        await connection.rollback()
        unlocked = await connection.scalar(select(func.pg_advisory_unlock(key)))
        await connection.commit()
        if unlocked:
            return
    except Exception:
        log.warning("could not release an upload lock; dropping its connection", exc_info=True)
    # A session-level lock outlives transactions: a pooled connection that might still hold it
    # must be closed, which releases it.
    await connection.invalidate()


async def _load(session: AsyncSession, upload_id: UUID, owner_id: UUID | None) -> Upload:
    upload = await session.get(Upload, upload_id, populate_existing=True)
    if upload is None or (owner_id is not None and upload.owner_id != owner_id):
        raise NotFoundException(detail=NOT_FOUND)
    if is_gone(upload):
        raise NotFoundException(detail=NOT_FOUND)
    return upload


async def receive(
    engine: AsyncEngine,
    storage: Storage,
    upload_id: UUID,
    owner_id: UUID,
    chunk: Chunk,
    body: AsyncIterator[bytes],
    policy: UploadPolicy,
) -> tuple[Upload, bool]:
    """Append the body at ``chunk.offset``; returns the upload and whether it just completed."""
    async with locked_upload(engine, upload_id) as session:
        upload = await _load(session, upload_id, owner_id)
        if chunk.offset != upload.upload_offset:
            raise ConflictException(
                detail=f"Upload-Offset is {chunk.offset} but the upload is at "
                f"{upload.upload_offset}: ask HEAD for the offset and continue from there"
            )
        if upload.completed_at is not None:
            if chunk.length:
                raise _past_the_end(upload, chunk.offset + chunk.length)
            return upload, False
        try:
            await _write(session, storage, upload, chunk, body, policy)
            if upload.upload_offset < upload.length:
                return upload, False
            await complete(session, storage, upload, policy)
        except ResumableDataLostError as exc:
            raise await _lost(session, storage, upload, exc) from exc
        return upload, True


def _past_the_end(upload: Upload, end: int) -> TusError:
    return TusError(
        HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        f"the chunk would end at byte {end}, past the upload's length of {upload.length}",
    )


async def _write(
    session: AsyncSession,
    storage: Storage,
    upload: Upload,
    chunk: Chunk,
    body: AsyncIterator[bytes],
    policy: UploadPolicy,
) -> None:
    if chunk.length is not None and chunk.offset + chunk.length > upload.length:
        raise _past_the_end(upload, chunk.offset + chunk.length)
    writer = await storage.open_resumable(stored_view(upload))
    sha256 = UploadHash.resume(upload.sha256_state, upload.upload_offset)
    verifier = chunk.checksum.hasher() if chunk.checksum else None
    try:
        try:
            async for data in body:
                if writer.offset + len(data) > upload.length:
                    raise _past_the_end(upload, writer.offset + len(data))
                await writer.write(data)
                sha256.update(data)
                if verifier is not None:
                    verifier.update(data)
                elif writer.checkpoint_due:
                    await _checkpoint(session, upload, writer, sha256, policy)
        except BodyInterruptedError:
            if verifier is None:
                # The spec asks to keep as much as arrived; a checked chunk cannot be kept.
                await _checkpoint(session, upload, writer, sha256, policy)
            else:
                await _discard(writer)
            raise
        except BaseException:
            await _discard(writer)
            raise
        if (
            chunk.checksum is not None
            and verifier is not None
            and not chunk.checksum.matches(verifier)
        ):
            await _discard(writer)
            raise TusError(
                HTTP_460_CHECKSUM_MISMATCH,
                f"the chunk does not match its {chunk.checksum.algorithm} checksum; "
                "it was discarded: send it again",
            )
        await _checkpoint(session, upload, writer, sha256, policy)
    finally:
        await writer.close()


async def _checkpoint(
    session: AsyncSession,
    upload: Upload,
    writer: ResumableWriter,
    sha256: UploadHash,
    policy: UploadPolicy,
) -> None:
    """Make the written bytes durable, then move the recorded offset to their end."""
    stored = await writer.checkpoint()
    record_progress(upload, stored, sha256.state())
    upload.expires_at = policy.expires_at()  # an upload that makes progress is not abandoned
    await session.commit()


async def _discard(writer: ResumableWriter) -> None:
    try:
        await wait_out(asyncio.ensure_future(writer.discard()))
    except Exception:  # unrecorded bytes are ignored anyway; the original error matters more
        log.warning("could not discard an unrecorded chunk", exc_info=True)


async def complete(
    session: AsyncSession, storage: Storage, upload: Upload, policy: UploadPolicy
) -> Document:
    """Put the complete file in place and record its document, converting the reservation
    into usage in the same transaction. Safe to run again after a crash anywhere in it."""
    stored = stored_view(upload)
    await storage.finish_resumable(stored)
    digest = UploadHash.resume(upload.sha256_state, upload.upload_offset).hexdigest()
    if digest is None:
        digest = await hash_stored(storage, stored.destination_key)
    document = Document(
        id=upload.document_id,
        owner_id=upload.owner_id,
        name=upload.name,
        status=DocumentStatus.PENDING,
        size=upload.length,
        content_type=upload.content_type,
        sha256=digest,
        original_key=stored.destination_key,
    )
    await DocumentService(session=session).record_upload(
        document, upload.owner_id, policy.limits, reserved=upload.length, commit=False
    )
    upload.completed_at = datetime.now(UTC)
    # Kept a while, so that a client that missed the last answer learns the Document-Id.
    upload.expires_at = policy.expires_at()
    await session.commit()
    return document


async def discard(session: AsyncSession, storage: Storage, upload: Upload) -> None:
    """Remove the upload: its stored bytes, its row and, unless it became a document, its
    reservation."""
    if upload.completed_at is None:
        stored = stored_view(upload)
        await storage.remove_resumable(stored)
        # A finish that a crash kept from being recorded left an object no document names.
        await storage.delete(stored.destination_key)
        await session.execute(
            update(User)
            .where(User.id == upload.owner_id)
            .values(bytes_reserved=User.bytes_reserved - upload.length)
            .execution_options(synchronize_session=False)
        )
    await session.delete(upload)
    await session.commit()


async def _lost(
    session: AsyncSession, storage: Storage, upload: Upload, exc: ResumableDataLostError
) -> ClientException:
    upload_id = upload.id  # read before the rollback expires the row
    log.error(
        "an upload's stored bytes are gone; removing it", upload_id=str(upload_id), error=str(exc)
    )
    await session.rollback()
    reloaded = await session.get(Upload, upload_id, populate_existing=True)
    if reloaded is not None:
        await discard(session, storage, reloaded)
    return ClientException(
        status_code=HTTP_410_GONE,
        detail="the upload's stored bytes were lost; start a new upload",
    )


async def terminate(engine: AsyncEngine, storage: Storage, upload_id: UUID, owner_id: UUID) -> None:
    async with locked_upload(engine, upload_id) as session:
        await discard(session, storage, await _load(session, upload_id, owner_id))


async def finish_pending(
    engine: AsyncEngine, storage: Storage, upload_id: UUID, policy: UploadPolicy
) -> Upload | None:
    """Record the document of an upload whose bytes all arrived but whose completion a crash
    interrupted; None when the upload is busy or gone, or has nothing to finish."""
    try:
        async with locked_upload(engine, upload_id) as session:
            upload = await _load(session, upload_id, None)
            if upload.completed_at is not None or upload.upload_offset < upload.length:
                return None
            try:
                await complete(session, storage, upload, policy)
            except ResumableDataLostError as exc:
                await _lost(session, storage, upload, exc)
                return None
            return upload
    except (UploadLockedException, NotFoundException):
        return None


async def expire(engine: AsyncEngine, storage: Storage, upload_id: UUID) -> bool:
    """Remove an expired upload unless it is busy or was resumed meanwhile."""
    try:
        async with locked_upload(engine, upload_id) as session:
            upload = await session.get(Upload, upload_id, populate_existing=True)
            if upload is None or not is_gone(upload):
                return False
            await discard(session, storage, upload)
            return True
    except UploadLockedException:
        return False
