"""What happens to shares over time: deleted documents, deleted accounts."""

from __future__ import annotations

from uuid import UUID

import httpx
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import login, register, unique_email
from tests.support.shares import create_share, link_path

from instashare.models import Share, User


async def test_deleting_a_document_removes_it_from_its_shares(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    kept = await ready(headers, b"kept", filename="kept.txt")
    gone = await ready(headers, b"gone", filename="gone.txt")
    share = await create_share(client, headers, [gone["id"], kept["id"]])
    assert (await client.delete(f"/api/documents/{gone['id']}", headers=headers)).status_code == 204

    shown = (await client.get(f"/api/shares/{share['id']}", headers=headers)).json()
    assert shown["document_ids"] == [kept["id"]]
    files = (await client.get(link_path(share))).json()["files"]
    assert [f["name"] for f in files] == ["kept.txt"]

    await client.delete(f"/api/documents/{kept['id']}", headers=headers)
    emptied = (await client.get(f"/api/shares/{share['id']}", headers=headers)).json()
    assert emptied["document_ids"] == []
    assert (await client.get(link_path(share))).status_code == 404
    # Adding a document brings the link back: the share was empty, not revoked.
    fresh = await ready(headers, b"fresh", filename="fresh.txt")
    await client.patch(
        f"/api/shares/{share['id']}", headers=headers, json={"document_ids": [fresh["id"]]}
    )
    assert (await client.get(link_path(share))).status_code == 200


async def exists(engine: AsyncEngine, share_id: str) -> bool:
    async with engine.connect() as connection:
        found = await connection.scalar(select(Share.id).where(Share.id == UUID(share_id)))
    return found is not None


async def test_deleting_an_account_removes_its_shares(
    client: httpx.AsyncClient, ready, engine: AsyncEngine
) -> None:
    email = unique_email("leaver")
    user = await register(client, email)
    headers = {"Authorization": f"Bearer {await login(client, email)}"}
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    # The account's removal itself comes with the administration routes; the database already
    # takes the account's shares (and their links) with it.
    async with engine.begin() as connection:
        await connection.execute(delete(User).where(User.id == UUID(str(user["id"]))))
    assert not await exists(engine, share["id"])
    assert (await client.get(link_path(share))).status_code == 404
