"""Counting real downloads: the byte ranges each client received, per archive version (ETag).

Every response that carries a share's ZIP (or one of its files) records, as it streams and when
it ends or the client goes away, the range of the archive it actually handed to the connection.
A download is complete when the union of those ranges covers the archive, in one response or
many (resumed with ``Range``, or fetched in parallel pieces); it is then counted exactly once.
A partial download that is never resumed stays a receipt that says ``completed: false``.

Who "one client" is: a recipient's account, else the unlock token a password gave, else the
client's network (/24 or /48) and user agent, kept as a hash; a receipt keeps the network only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from anyio import CancelScope, move_on_after
from litestar import Request
from sqlalchemy import Boolean, false, func, literal, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from uuid_utils.compat import uuid7

from instashare.config import Settings
from instashare.logs import get_logger
from instashare.ratelimit import client_host
from instashare.shares.models import Share, ShareDownload

log = get_logger(__name__)
MAX_USER_AGENT_LENGTH = 512
# A long response records its progress this often, so a crash loses little of it.
FLUSH_EVERY_SECONDS = 15.0
RECORD_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Downloader:
    """One client, as far as counting downloads goes."""

    key: str
    client: str
    user_agent: str | None
    recipient: str | None = None  # the recipient's email; None for the public link


def truncated_network(host: str) -> str:
    """The address's /24 (IPv4) or /48 (IPv6) network, which is all a receipt keeps of it."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def identify(
    request: Request[Any, Any, Any],
    settings: Settings,
    *,
    unlock_token_id: str | None = None,
    recipient_id: UUID | None = None,
    recipient_email: str | None = None,
) -> Downloader:
    host = client_host(request, trust_forwarded_headers=settings.trust_forwarded_headers)
    client = truncated_network(host)
    agent = request.headers.get("user-agent")
    user_agent = agent[:MAX_USER_AGENT_LENGTH] if agent else None
    if recipient_id is not None:
        material = f"recipient:{recipient_id}"
    elif unlock_token_id is not None:
        material = f"unlock:{unlock_token_id}"
    else:
        material = f"anonymous:{client}:{user_agent or ''}"
    return Downloader(
        key=hashlib.sha256(material.encode()).hexdigest(),
        client=client,
        user_agent=user_agent,
        recipient=recipient_email,
    )


class DeliveryLedger:
    """Receipts and progress in ``share_download``; each call is its own committed transaction."""

    def __init__(self, engine: AsyncEngine, resume_window: timedelta) -> None:
        self.engine = engine
        self.resume_window = resume_window

    def _open_for(self, share_id: UUID, downloader: Downloader, etag: str) -> list[Any]:
        return [
            ShareDownload.share_id == share_id,
            ShareDownload.client_key == downloader.key,
            ShareDownload.etag == etag,
            ShareDownload.is_open,
        ]

    async def under_way(self, share_id: UUID, downloader: Downloader, etag: str) -> bool:
        """Whether this client has an unfinished download of this archive it may resume."""
        recent = ShareDownload.updated_at > func.now() - literal(self.resume_window)
        statement = ShareDownload.__table__.select().where(
            *self._open_for(share_id, downloader, etag), recent
        )
        async with self.engine.connect() as connection:
            return (await connection.execute(statement.limit(1))).first() is not None

    async def begin(
        self,
        share_id: UUID,
        downloader: Downloader,
        etag: str,
        archive_size: int,
        document_id: UUID | None,
    ) -> UUID:
        """The receipt this response adds to: the client's open one, or a new one."""
        stale = ShareDownload.updated_at <= func.now() - literal(self.resume_window)
        close_stale = (
            update(ShareDownload)
            .where(*self._open_for(share_id, downloader, etag), stale)
            .values(is_open=False, updated_at=ShareDownload.updated_at)
        )
        upsert = (
            insert(ShareDownload)
            .values(
                id=uuid7(),
                share_id=share_id,
                document_id=document_id,
                client_key=downloader.key,
                etag=etag,
                archive_size=archive_size,
                client=downloader.client,
                user_agent=downloader.user_agent,
                recipient=downloader.recipient,
                created_at=func.now(),
                updated_at=func.now(),
            )
            .on_conflict_do_update(
                index_elements=["share_id", "client_key", "etag"],
                index_where=text("is_open"),  # exactly the unique index's predicate
                set_={"updated_at": func.now()},
            )
            .returning(ShareDownload.id)
        )
        async with self.engine.begin() as connection:
            await connection.execute(close_stale)
            download_id: UUID = (await connection.execute(upsert)).scalar_one()
        return download_id

    async def record(self, download_id: UUID, start: int, end: int, new_bytes: int) -> bool:
        """Add ``[start, end)`` as delivered; True when that completed the download just now."""
        delivered = func.int8multirange(func.int8range(start, end))
        progress = (
            update(ShareDownload)
            .where(ShareDownload.id == download_id)
            .values(
                delivered=ShareDownload.delivered.op("+")(delivered),
                bytes_sent=ShareDownload.bytes_sent + new_bytes,
                updated_at=func.now(),
            )
            .returning(
                ShareDownload.completed,
                ShareDownload.delivered.op("@>", return_type=Boolean)(
                    func.int8range(0, ShareDownload.archive_size)
                ),
                ShareDownload.share_id,
                ShareDownload.recipient,
            )
        )
        complete = (
            update(ShareDownload)
            .where(ShareDownload.id == download_id, ShareDownload.completed == false())
            .values(completed=True, completed_at=func.now(), is_open=False)
            .returning(ShareDownload.id)
        )
        async with self.engine.begin() as connection:
            # The first statement locks the row: concurrent responses of one client complete it
            # one after the other, and only the first to see it covered counts it.
            row = (await connection.execute(progress)).one_or_none()
            if row is None:  # the share was deleted meanwhile
                return False
            already, covered, share_id, recipient = row
            if already or not covered:
                return False
            if (await connection.execute(complete)).first() is None:
                return False
            if recipient is None:
                await connection.execute(
                    update(Share)
                    .where(Share.id == share_id)
                    .values(download_count=Share.download_count + 1, updated_at=Share.updated_at)
                )
        return True


class DeliveryRecorder:
    """Counts what one response has sent and writes it to the ledger now and then."""

    def __init__(self, ledger: DeliveryLedger, download_id: UUID, start: int) -> None:
        self.ledger = ledger
        self.download_id = download_id
        self.start = start
        self.sent = 0
        self.recorded = 0
        self.last_flush = time.monotonic()

    async def delivered(self, size: int) -> None:
        self.sent += size
        if time.monotonic() - self.last_flush >= FLUSH_EVERY_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        if self.sent == self.recorded:
            return
        sent = self.sent
        self.last_flush = time.monotonic()
        try:
            # Shielded (and bounded): a disconnect cancelling the response must not leave it
            # unknown whether this write happened, or the bytes would be counted twice.
            with CancelScope(shield=True), move_on_after(RECORD_TIMEOUT_SECONDS) as scope:
                await self.ledger.record(
                    self.download_id, self.start, self.start + sent, sent - self.recorded
                )
        except Exception:  # bookkeeping never breaks a download
            log.exception("could not record a download's progress", download=str(self.download_id))
            return
        if scope.cancelled_caught:
            log.warning("recording a download's progress timed out", download=str(self.download_id))
            return
        self.recorded = sent
