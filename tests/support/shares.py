"""Creating shares and following their links as a client does."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx


async def create_share(
    client: httpx.AsyncClient, headers: dict[str, str], document_ids: list[str], **fields: object
) -> dict:
    response = await client.post(
        "/api/shares", headers=headers, json={"document_ids": document_ids, **fields}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def link_path(share: dict) -> str:
    """``/s/<token>`` of a share's absolute ``url``."""
    path = urlsplit(share["url"]).path
    assert path.startswith("/s/")
    return path


def token_of(share: dict) -> str:
    return link_path(share).removeprefix("/s/")


async def unlock(client: httpx.AsyncClient, share: dict, password: str) -> dict[str, str]:
    """The Authorization header an unlock gives."""
    response = await client.post(f"{link_path(share)}/unlock", json={"password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def settled_share(
    client: httpx.AsyncClient, headers: dict[str, str], share_id: str, **expected: object
) -> dict:
    """The owner's view of a share once it shows ``expected``.

    A download is recorded when its response has been handed to the connection, which the
    client may notice a moment before the server has written it down.
    """
    deadline = time.monotonic() + 10
    while True:
        share = dict((await client.get(f"/api/shares/{share_id}", headers=headers)).json())
        if all(share.get(key) == value for key, value in expected.items()):
            return share
        if time.monotonic() > deadline:
            raise AssertionError(f"share never showed {expected}: {share}")
        await asyncio.sleep(0.02)
