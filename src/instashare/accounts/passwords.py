"""Argon2id password hashing, run in a worker thread so the event loop keeps serving."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

T = TypeVar("T")


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    return PasswordHash((Argon2Hasher(),))  # argon2id with pwdlib's recommended parameters


# Each argon2id hash holds 64 MiB for its duration; bound how many run at once so a burst of
# logins costs bounded memory (and waits its turn instead). A thread semaphore, taken in the
# worker thread, works whichever event loop asked.
_CONCURRENT_HASHES = threading.BoundedSemaphore(2)


def _limited(work: Callable[..., T], *args: str) -> T:
    with _CONCURRENT_HASHES:
        return work(*args)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash("a password nobody has, for unknown e-mail addresses")


def _verify_against_dummy(password: str) -> bool:
    # The dummy hash is made on first use, here in the worker thread, not on the event loop.
    return _hasher().verify(password, _dummy_hash())


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_limited, _hasher().hash, password)


async def verify_password(password: str, hashed: str | None) -> bool:
    """Check a password; with no hash (unknown user) spend the same time and return False."""
    if hashed is None:
        await asyncio.to_thread(_limited, _verify_against_dummy, password)
        return False
    return await asyncio.to_thread(_limited, _hasher().verify, password, hashed)
