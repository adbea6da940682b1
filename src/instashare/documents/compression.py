"""Compressing one document into a stored ZIP: claim it, stream it through deflate, record it.

Safe to run any number of times, in any number of workers, and to die anywhere: a document is
claimed with a lease that the running job keeps renewing; the result is recorded only by the
claim holder; a lapsed claim (a killed worker) may be taken over; every stored object written
by a job that did not win is removed by that job.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from instashare.config import Settings
from instashare.documents.models import Document, DocumentStatus
from instashare.logs import get_logger
from instashare.storage import ObjectNotFoundError, Storage, StorageUnavailableError
from instashare.zipstream import write_zip

log = get_logger(__name__)
# Long enough that an upload whose enqueue was lost is not raced; short enough to be "stuck".
STALE_PENDING_AFTER = timedelta(minutes=2)
Heartbeat = Callable[[], Awaitable[object]]
INTERRUPTED_TOO_OFTEN = "compression failed: the job was interrupted too many times"


class Outcome(enum.StrEnum):
    COMPRESSED = "compressed"
    ALREADY_READY = "already ready"
    IN_PROGRESS_ELSEWHERE = "held by another worker"
    GONE = "document deleted"
    FAILED = "failed"


class PermanentCompressionError(Exception):
    """Retrying cannot help (the original is missing or not what was uploaded)."""


def archive_key(document_id: UUID, claim: UUID) -> str:
    # One key per claim: a job that lost its claim can remove its own archive without touching
    # the archive of the job that won.
    return f"archives/{document_id}/{claim}"


class Compressor:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        *,
        level: int,
        max_attempts: int,
        lease: timedelta,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.level = level
        self.max_attempts = max_attempts
        self.lease = lease

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession], storage: Storage
    ) -> Compressor:
        """The compressor every worker (and test) uses: level, attempts and lease from settings."""
        return cls(
            sessions,
            storage,
            level=settings.compression_level,
            max_attempts=settings.compress_max_attempts,
            # Renewed every quarter lease; expires well before SAQ's heartbeat gives up on the job.
            lease=timedelta(seconds=settings.compress_heartbeat_seconds * 3 / 4),
        )

    async def run(
        self, document_id: UUID, *, last_attempt: bool, heartbeat: Heartbeat | None = None
    ) -> Outcome:
        claim = uuid4()
        document = await self._claim(document_id, claim)
        if document is None:
            return await self._why_not_claimed(document_id)
        renewer = asyncio.create_task(self._keep_claim(document_id, claim, heartbeat))
        try:
            outcome = await self._compress(document, claim)
        except PermanentCompressionError as exc:
            await self._release(document_id, claim, error=str(exc), final=True)
            log.warning("compression failed for good", document_id=str(document_id), error=str(exc))
            return Outcome.FAILED
        except Exception as exc:
            await self._release(document_id, claim, error=_describe(exc), final=last_attempt)
            log.warning(
                "compression attempt failed",
                document_id=str(document_id),
                error=repr(exc),
                final=last_attempt,
            )
            raise
        except BaseException:
            # Stopped (shutdown, abort): hand the document back at once rather than let the
            # retry find it still claimed until the lease runs out.
            await asyncio.shield(
                self._release(document_id, claim, error=None, final=False, refund=True)
            )
            raise
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        return outcome

    async def _claim(self, document_id: UUID, claim: UUID) -> Document | None:
        now = func.now()
        statement = (
            update(Document)
            .where(
                Document.id == document_id,
                Document.compress_attempts < self.max_attempts,
                or_(
                    Document.status == DocumentStatus.PENDING,
                    and_(
                        Document.status == DocumentStatus.PROCESSING,
                        or_(Document.lease_expires_at.is_(None), Document.lease_expires_at < now),
                    ),
                ),
            )
            .values(
                status=DocumentStatus.PROCESSING,
                claim_token=claim,
                lease_expires_at=now + self.lease,
                compress_attempts=Document.compress_attempts + 1,
            )
            .returning(Document)
            .execution_options(synchronize_session=False)
        )
        async with self.sessions() as session, session.begin():
            return (await session.execute(statement)).scalar_one_or_none()

    async def _why_not_claimed(self, document_id: UUID) -> Outcome:
        async with self.sessions() as session:
            document = await session.get(Document, document_id)
        if document is None:
            return Outcome.GONE
        if document.status == DocumentStatus.READY:
            await self.remove_original(document)
            return Outcome.ALREADY_READY
        if document.status == DocumentStatus.FAILED:
            return Outcome.FAILED
        live_claim = document.status == DocumentStatus.PROCESSING and (
            document.lease_expires_at is not None and document.lease_expires_at > datetime.now(UTC)
        )
        if document.compress_attempts >= self.max_attempts and not live_claim:
            await self.mark_failed(document_id, INTERRUPTED_TOO_OFTEN)
            return Outcome.FAILED
        return Outcome.IN_PROGRESS_ELSEWHERE

    async def _keep_claim(
        self, document_id: UUID, claim: UUID, heartbeat: Heartbeat | None
    ) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 4)
            try:
                async with self.sessions() as session, session.begin():
                    await session.execute(
                        update(Document)
                        .where(Document.id == document_id, Document.claim_token == claim)
                        .values(lease_expires_at=func.now() + self.lease)
                        .execution_options(synchronize_session=False)
                    )
                if heartbeat is not None:
                    await heartbeat()
            except Exception:  # a missed renewal is retried on the next beat
                log.warning("could not renew a compression claim", document_id=str(document_id))

    async def _compress(self, document: Document, claim: UUID) -> Outcome:
        if document.original_key is None:
            raise PermanentCompressionError("the uploaded file is missing from storage")
        key = archive_key(document.id, claim)
        try:
            async with self.storage.writer(key, content_type="application/zip") as sink:
                info = await write_zip(
                    self.storage.read(document.original_key),
                    document.name,
                    sink.write,
                    modified=document.created_at,
                    level=self.level,
                )
                if info.size != document.size:
                    raise PermanentCompressionError(
                        f"the stored file has {info.size} bytes, {document.size} were uploaded"
                    )
        except ObjectNotFoundError as exc:
            raise PermanentCompressionError("the uploaded file is missing from storage") from exc
        recorded = (
            update(Document)
            .where(Document.id == document.id, Document.claim_token == claim)
            .values(
                status=DocumentStatus.READY,
                archive_key=key,
                compressed_size=info.archive_size,
                compressed_at=datetime.now(UTC),
                archive_crc32=info.crc32,
                archive_data_offset=info.data_offset,
                archive_data_size=info.compressed_size,
                claim_token=None,
                lease_expires_at=None,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
        async with self.sessions() as session, session.begin():
            won = (await session.execute(recorded)).rowcount == 1  # type: ignore[attr-defined]
        if not won:
            # Deleted meanwhile, or our claim lapsed and another worker took over.
            await self.storage.delete(key)
            return await self._why_not_claimed(document.id)
        log.info(
            "compressed",
            document_id=str(document.id),
            size=info.size,
            compressed_size=info.archive_size,
        )
        document.archive_key = key
        # Not worth losing to a shutdown; if it is lost anyway, the recovery job finishes it.
        await asyncio.shield(self.remove_original(document))
        return Outcome.COMPRESSED

    async def remove_original(self, document: Document) -> None:
        """Once the archive is recorded the original is no longer needed."""
        if document.original_key is None:
            return
        await self.storage.delete(document.original_key)
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Document)
                .where(Document.id == document.id, Document.status == DocumentStatus.READY)
                .values(original_key=None)
                .execution_options(synchronize_session=False)
            )

    async def _release(
        self,
        document_id: UUID,
        claim: UUID,
        *,
        error: str | None,
        final: bool,
        refund: bool = False,
    ) -> None:
        """Give the document back: to be retried, or failed for good.

        ``refund``: the attempt was interrupted (a shutdown), not failed; it does not count.
        """
        status = DocumentStatus.FAILED if final else DocumentStatus.PENDING
        attempts = Document.compress_attempts - 1 if refund else Document.compress_attempts
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Document)
                .where(Document.id == document_id, Document.claim_token == claim)
                .values(
                    status=status,
                    error=error,
                    claim_token=None,
                    lease_expires_at=None,
                    compress_attempts=attempts,
                )
                .execution_options(synchronize_session=False)
            )

    async def mark_failed(self, document_id: UUID, error: str) -> None:
        """The job gave up (e.g. its last attempt was swept): unless already settled, fail."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Document)
                .where(
                    Document.id == document_id,
                    Document.status.in_([DocumentStatus.PENDING, DocumentStatus.PROCESSING]),
                )
                .values(
                    status=DocumentStatus.FAILED,
                    error=error,
                    claim_token=None,
                    lease_expires_at=None,
                )
                .execution_options(synchronize_session=False)
            )

    async def leftover_originals(self, limit: int = 1000) -> list[Document]:
        """Ready documents whose original outlived the job that compressed them."""
        query = (
            select(Document)
            .where(
                Document.status == DocumentStatus.READY,
                Document.original_key.is_not(None),
                Document.updated_at < func.now() - STALE_PENDING_AFTER,
            )
            .limit(limit)
        )
        async with self.sessions() as session:
            return list((await session.scalars(query)).all())

    async def unfinished(self, limit: int = 1000) -> list[UUID]:
        """Documents that should be compressing but nobody is: stale pending, lapsed claims."""
        now = func.now()
        query = (
            select(Document.id)
            .where(
                or_(
                    and_(
                        Document.status == DocumentStatus.PENDING,
                        Document.updated_at < now - STALE_PENDING_AFTER,
                    ),
                    and_(
                        Document.status == DocumentStatus.PROCESSING,
                        Document.lease_expires_at < now,
                    ),
                )
            )
            .order_by(Document.updated_at)
            .limit(limit)
        )
        async with self.sessions() as session:
            return list((await session.scalars(query)).all())


def _describe(exc: Exception) -> str:
    """What the owner reads: the kind of failure, never internals (those go to the log)."""
    if isinstance(exc, StorageUnavailableError):
        return "compression failed: storage was unavailable"
    return "compression failed: an internal error occurred"
