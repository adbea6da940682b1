"""Who is calling: each account's sign-in state, cached per process, invalidated across processes.

Every authenticated request needs to know that its token's account exists, is active, and has not
revoked the token (a password change or "sign out everywhere" bumps ``token_version``). Reading
the account row for that on every request costs a round trip each time, so each process keeps
what it read, and every change to that state is announced with PostgreSQL ``NOTIFY`` in the
transaction that makes it (:func:`announce_change`): each API process listens and forgets the
account at once. While a process is not listening (starting, or its listening connection was
lost) it cannot trust what it remembers, so it reads the row on every request until it listens
again.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from uuid import UUID

import msgspec
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from instashare.accounts.models import User
from instashare.notifications import Notifications

CHANNEL = "instashare_account_changed"
# Bounds the memory of a process: the most recently seen accounts stay, the rest are re-read.
MAX_CACHED = 100_000


class Principal(msgspec.Struct, frozen=True):
    """An account as authentication knows it; never its password hash or its usage counters."""

    id: UUID
    email: str
    full_name: str | None
    created_at: datetime
    is_active: bool
    token_version: int


_PRINCIPAL_COLUMNS = (
    User.id,
    User.email,
    User.full_name,
    User.created_at,
    User.is_active,
    User.token_version,
)


async def announce_change(session: AsyncSession | AsyncConnection, user_id: UUID) -> None:
    """Tell every process to forget ``user_id``'s cached state once this transaction commits."""
    await session.execute(
        text("SELECT pg_notify(:channel, :user_id)"), {"channel": CHANNEL, "user_id": str(user_id)}
    )


class PrincipalCache:
    """Principals by account id, trusted only while this process listens for changes."""

    def __init__(self, engine: AsyncEngine, notifications: Notifications) -> None:
        self._engine = engine
        self._notifications = notifications
        self._principals: dict[UUID, Principal] = {}
        # Bumped by every forget: a row read while it changed may be stale, so is not kept.
        self._generation = 0
        notifications.subscribe(CHANNEL, self._on_announcement, self._forget_everything)

    async def get(self, user_id: UUID) -> Principal | None:
        """The account's principal, from memory while listening, else from the database."""
        listening = self._notifications.listening
        if listening and (cached := self._principals.get(user_id)) is not None:
            return cached
        generation = self._generation
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(select(*_PRINCIPAL_COLUMNS).where(User.id == user_id))
            ).one_or_none()
        if row is None:
            return None
        principal = Principal(*row)
        if listening and generation == self._generation and self._notifications.listening:
            if len(self._principals) >= MAX_CACHED:
                self._principals.pop(next(iter(self._principals)))
            self._principals[user_id] = principal
        return principal

    def forget(self, user_id: UUID) -> None:
        self._generation += 1
        self._principals.pop(user_id, None)

    def _forget_everything(self) -> None:
        self._generation += 1
        self._principals.clear()

    def _on_announcement(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.forget(UUID(payload))
