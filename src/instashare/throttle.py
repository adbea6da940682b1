"""Attempt counters in Postgres: one atomic statement per attempt, shared by every API process.

A counter is keyed by what is being protected (a share, an account), never by the client's
address: rotating addresses or forging ``X-Forwarded-For`` buys an attacker nothing. Each key
has a fixed window; the first attempt opens it, and attempts beyond the limit inside it are
refused until it ends. Writes go through their own connection and commit at once, so a counted
attempt stays counted even when the request that made it is answered with an error (and rolled
back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Text, case, delete, func, literal, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column


class ThrottleCounter(DefaultBase):
    __tablename__ = "throttle_counter"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    hits: Mapped[int] = mapped_column(BigInteger)
    window_ends_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    hits: int  # attempts in the current window, this one included
    retry_after: int  # whole seconds until the window ends (at least 1)


class Throttle:
    """At most ``limit`` attempts per key and ``window``."""

    def __init__(self, engine: AsyncEngine, *, limit: int, window: timedelta) -> None:
        self.engine = engine
        self.limit = limit
        self.window = window

    async def attempt(self, key: str) -> Verdict:
        """Count one attempt for ``key`` and say whether it may go ahead."""
        table = ThrottleCounter.__table__
        now = func.now()
        window_over = table.c.window_ends_at <= now
        new_end = now + literal(self.window)
        statement = (
            insert(ThrottleCounter)
            .values(key=key, hits=1, window_ends_at=new_end)
            .on_conflict_do_update(
                index_elements=[ThrottleCounter.key],
                set_={
                    "hits": case((window_over, 1), else_=table.c.hits + 1),
                    "window_ends_at": case((window_over, new_end), else_=table.c.window_ends_at),
                },
            )
            .returning(ThrottleCounter.hits, ThrottleCounter.window_ends_at, now)
        )
        async with self.engine.begin() as connection:
            hits, ends_at, at = (await connection.execute(statement)).one()
        seconds = max(1, math.ceil((ends_at - at).total_seconds()))
        return Verdict(allowed=hits <= self.limit, hits=hits, retry_after=seconds)

    async def refund(self, key: str) -> None:
        """Take back one attempt of the current window (it turned out to be legitimate)."""
        statement = (
            update(ThrottleCounter)
            .where(ThrottleCounter.key == key, ThrottleCounter.window_ends_at > func.now())
            .values(hits=func.greatest(ThrottleCounter.hits - 1, 0))
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)


async def remove_ended_windows(engine: AsyncEngine, older_than: timedelta) -> int:
    """Delete counters whose window ended more than ``older_than`` ago; returns how many."""
    statement = delete(ThrottleCounter).where(
        ThrottleCounter.window_ends_at < func.now() - literal(older_than)
    )
    async with engine.begin() as connection:
        result = await connection.execute(statement)
    return int(result.rowcount or 0)
