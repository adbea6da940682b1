"""What the app does once at startup."""

from __future__ import annotations

import gc

import httpx


async def test_startup_objects_are_exempt_from_garbage_collection(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/health")).status_code == 200
    # The server (started by the fixture, in this process) froze what startup built.
    assert gc.get_freeze_count() > 10_000
