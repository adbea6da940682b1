"""Listing one's documents: filters, search, order, pages, and the index behind them."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import auth_headers
from tests.support.documents import uploaded


async def test_list_filters_sorts_and_pages_only_the_callers_documents(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    names = ["alpha.txt", "Beta.txt", "gamma.log", "delta_1.txt", "Alphabet.md"]
    created = [
        await uploaded(client, headers, content=b"x" * (i + 1), filename=name)
        for i, name in enumerate(names)
    ]
    stranger = await auth_headers(client)
    await uploaded(client, stranger, filename="alpha-of-someone-else.txt")

    page = (await client.get("/api/documents", headers=headers)).json()
    assert page["total"] == 5
    assert page["limit"] == 20
    assert page["offset"] == 0
    assert [d["id"] for d in page["items"]] == [d["id"] for d in reversed(created)]

    by_name = (
        await client.get(
            "/api/documents", headers=headers, params={"order_by": "name", "sort_order": "asc"}
        )
    ).json()
    assert [d["name"] for d in by_name["items"]] == sorted(names)

    by_size = (
        await client.get("/api/documents", headers=headers, params={"order_by": "size"})
    ).json()
    assert [d["size"] for d in by_size["items"]] == [5, 4, 3, 2, 1]

    search = (await client.get("/api/documents", headers=headers, params={"q": "ALPHA"})).json()
    assert {d["name"] for d in search["items"]} == {"alpha.txt", "Alphabet.md"}
    assert search["total"] == 2

    wildcard = (await client.get("/api/documents", headers=headers, params={"q": "_"})).json()
    assert [d["name"] for d in wildcard["items"]] == ["delta_1.txt"]

    pending = (
        await client.get("/api/documents", headers=headers, params={"status": "pending"})
    ).json()
    assert pending["total"] == 5
    ready = (await client.get("/api/documents", headers=headers, params={"status": "ready"})).json()
    assert ready == {"items": [], "total": 0, "limit": 20, "offset": 0}

    first = (
        await client.get("/api/documents", headers=headers, params={"limit": 2, "offset": 0})
    ).json()
    second = (
        await client.get("/api/documents", headers=headers, params={"limit": 2, "offset": 2})
    ).json()
    third = (
        await client.get("/api/documents", headers=headers, params={"limit": 2, "offset": 4})
    ).json()
    seen = [d["id"] for p in (first, second, third) for d in p["items"]]
    assert seen == [d["id"] for d in reversed(created)]
    assert first["total"] == second["total"] == third["total"] == 5


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"offset": -1},
        {"status": "done"},
        {"order_by": "owner_id"},
        {"sort_order": "up"},
        {"q": "q" * 256},
    ],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, object]
) -> None:
    response = await client.get("/api/documents", headers=headers, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["detail"]


async def test_control_characters_in_the_search_are_400(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/api/documents", headers=headers, params={"q": "a\x00b"})
    assert response.status_code == 400
    assert "control" in response.json()["detail"]


async def test_owner_listing_uses_the_owner_index(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(
            row[0]
            for row in await connection.execute(
                text(
                    "EXPLAIN SELECT * FROM document WHERE owner_id = "
                    "'01933b5e-0000-7000-8000-000000000000' ORDER BY created_at DESC LIMIT 50"
                )
            )
        )
    assert "ix_document_owner_id_created_at_id" in plan
