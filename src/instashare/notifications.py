"""PostgreSQL ``LISTEN``/``NOTIFY`` for the whole process, on one connection.

Whatever one process changes, the others hear about when the change commits: accounts whose
tokens were revoked (accounts/principals.py), documents whose status changed (documents/events.py).
Each interested part subscribes to a channel with a callback for messages and one for the moment
the connection is lost, since a notification sent meanwhile never arrives: from then until the
connection is back, a subscriber must assume it missed something.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from instashare.database_setup import connect
from instashare.logs import get_logger

log = get_logger(__name__)
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0


@dataclass(frozen=True)
class Subscription:
    channel: str
    on_message: Callable[[str], None]
    # Called when listening stops (and before it starts again): notifications may be lost.
    on_lost: Callable[[], None]


class Notifications:
    """One listening connection per process, reconnected with backoff whenever it is lost."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._subscriptions: list[Subscription] = []
        self._listening = False
        self._listening_changed = asyncio.Event()

    @property
    def listening(self) -> bool:
        """True while every notification sent to this process's channels reaches it."""
        return self._listening

    def subscribe(
        self, channel: str, on_message: Callable[[str], None], on_lost: Callable[[], None]
    ) -> None:
        """Register before :meth:`run` starts. Callbacks run on the event loop: never block."""
        self._subscriptions.append(Subscription(channel, on_message, on_lost))

    async def wait_until_listening(self) -> None:
        while not self._listening:
            self._listening_changed.clear()
            await self._listening_changed.wait()

    def _set_listening(self, listening: bool) -> None:
        if not listening:
            for subscription in self._subscriptions:
                subscription.on_lost()
        self._listening = listening
        self._listening_changed.set()

    async def _listen_once(self) -> None:
        connection: asyncpg.Connection = await connect(self._database_url)
        lost = asyncio.Event()

        def on_termination(_: Any) -> None:
            # Runs as soon as the connection is gone: from then on nothing reaches us.
            self._set_listening(False)
            lost.set()

        try:
            connection.add_termination_listener(on_termination)
            for subscription in self._subscriptions:
                callback = _dispatcher(subscription.on_message)
                await connection.add_listener(subscription.channel, callback)
            # What was sent before LISTEN took effect never reached us: subscribers start over.
            self._set_listening(False)
            self._set_listening(True)
            await lost.wait()
            log.warning("lost the connection that listens for changes; reconnecting")
        finally:
            if self._listening:
                self._set_listening(False)
            with contextlib.suppress(Exception):
                await connection.close()

    async def run(self) -> None:
        """Listen until cancelled."""
        delay = RECONNECT_FIRST_SECONDS
        while True:
            try:
                await self._listen_once()
                delay = RECONNECT_FIRST_SECONDS
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "cannot listen for changes; retrying", error=repr(exc), in_seconds=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Listen in the background for the duration of the block (an app lifespan)."""
        task = asyncio.create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _dispatcher(on_message: Callable[[str], None]) -> Callable[[Any, int, str, str], None]:
    def dispatch(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            on_message(payload)
        except Exception:  # one subscriber's bug must not stop the others' notifications
            log.exception("a change notification could not be handled", payload=payload)

    return dispatch
