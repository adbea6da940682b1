"""Renaming and deleting documents, and other people's documents staying out of reach."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import auth_headers
from tests.support.documents import stored_objects, uploaded


async def test_rename_changes_only_the_name(
    client: httpx.AsyncClient, headers: dict[str, str], storage_root: Path
) -> None:
    document = await uploaded(client, headers, content=b"same bytes")
    stored = (storage_root / "originals" / document["id"]).read_bytes()
    response = await client.patch(
        f"/api/documents/{document['id']}", headers=headers, json={"name": "  renamed.txt "}
    )
    assert response.status_code == 200
    renamed = response.json()
    assert renamed["name"] == "renamed.txt"
    assert renamed["sha256"] == document["sha256"]
    assert renamed["updated_at"] >= document["updated_at"]
    assert (storage_root / "originals" / document["id"]).read_bytes() == stored
    listed = (await client.get("/api/documents", headers=headers)).json()["items"][0]
    assert listed["name"] == "renamed.txt"


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "a/b"},
        {"name": "x" * 256},
        {"name": "tab\there"},
        {},
        {"name": 5},
        {"name": "ok", "extra": 1},
    ],
)
async def test_bad_renames_are_400(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, object]
) -> None:
    document = await uploaded(client, headers)
    response = await client.patch(f"/api/documents/{document['id']}", headers=headers, json=body)
    assert response.status_code == 400, response.text
    unchanged = await client.get(f"/api/documents/{document['id']}", headers=headers)
    assert unchanged.json()["name"] == document["name"]


async def test_delete_removes_the_row_and_the_stored_object(
    client: httpx.AsyncClient, headers: dict[str, str], storage_root: Path
) -> None:
    document = await uploaded(client, headers)
    assert f"originals/{document['id']}" in stored_objects(storage_root)
    response = await client.delete(f"/api/documents/{document['id']}", headers=headers)
    assert response.status_code == 204
    assert f"originals/{document['id']}" not in stored_objects(storage_root)
    gone = await client.get(f"/api/documents/{document['id']}", headers=headers)
    assert gone.status_code == 404
    again = await client.delete(f"/api/documents/{document['id']}", headers=headers)
    assert again.status_code == 404


async def test_concurrent_deletes_count_once(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine
) -> None:
    documents = [await uploaded(client, headers, content=b"z" * 1000) for _ in range(3)]
    for document in documents:
        path = f"/api/documents/{document['id']}"
        codes = sorted(
            r.status_code
            for r in await asyncio.gather(*(client.delete(path, headers=headers) for _ in range(4)))
        )
        assert codes == [204, 404, 404, 404]
    listing = (await client.get("/api/documents", headers=headers)).json()
    assert listing["total"] == 0
    me = (await client.get("/api/auth/me", headers=headers)).json()
    async with engine.connect() as connection:
        counters = (
            await connection.execute(
                text("SELECT document_count, bytes_used FROM user_account WHERE id = :id"),
                {"id": UUID(me["id"])},
            )
        ).one()
    assert tuple(counters) == (0, 0)


async def test_other_users_documents_are_404_everywhere_and_anonymous_is_401(
    client: httpx.AsyncClient, headers: dict[str, str], storage_root: Path
) -> None:
    document = await uploaded(client, headers)
    path = f"/api/documents/{document['id']}"
    intruder = await auth_headers(client)
    attempts = [
        await client.get(path, headers=intruder),
        await client.patch(path, headers=intruder, json={"name": "mine now"}),
        await client.delete(path, headers=intruder),
    ]
    for response in attempts:
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == "document not found"
    assert (await client.get(path, headers=headers)).json()["name"] == document["name"]
    assert f"originals/{document['id']}" in stored_objects(storage_root)

    anonymous = [
        await client.get("/api/documents"),
        await client.post("/api/documents", files={"file": ("a", b"a")}),
        await client.get(path),
        await client.patch(path, json={"name": "x"}),
        await client.delete(path),
    ]
    for response in anonymous:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_and_malformed_ids(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    missing = await client.get(
        "/api/documents/01933b5e-0000-7000-8000-000000000000", headers=headers
    )
    assert missing.status_code == 404
    malformed = await client.get("/api/documents/not-a-uuid", headers=headers)
    assert malformed.status_code in (400, 404)
