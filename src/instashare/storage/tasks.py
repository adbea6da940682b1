"""Waiting for work that must finish even when the waiting task is cancelled.

A storage operation cut short must still clean up: abort a multipart upload, close a file that a
thread is using, close the caller's chunk iterator. These helpers make cleanup paths wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


async def wait_out(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, even if the waiting task is cancelled meanwhile.

    Used on cleanup paths: walking away from an in-flight abort is exactly what would leave an
    incomplete multipart upload behind. The caller re-raises its own CancelledError afterwards.
    """
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({future})
    mark_retrieved(future)


def mark_retrieved(future: asyncio.Future[Any]) -> None:
    """Silence asyncio's "exception was never retrieved": the caller raises another error."""
    if not future.cancelled():
        future.exception()


async def close_quietly(iterator: AsyncIterator[bytes]) -> None:
    """Close the caller's iterator, if it can be closed, when an upload stops before its end.

    Otherwise an abandoned async generator (say, over a request body) would only run its
    ``finally`` whenever the garbage collector gets to it. Closing a generator that already
    finished or failed does nothing. Cleanup must not mask the error being raised.
    """
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


async def run_to_completion(func: Callable[[], _T]) -> _T:
    """Run blocking ``func`` in a thread; if cancelled, wait for it before raising CancelledError.

    A thread cannot be stopped: returning while it still uses a file would let the cleanup close
    that file under it.
    """
    future = asyncio.ensure_future(asyncio.to_thread(func))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await wait_out(future)
        raise
