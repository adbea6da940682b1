"""The owner's routes: create, list, read, edit, rotate, revoke; nobody else sees any of it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest
from tests.support.api import auth_headers, login, register, unique_email
from tests.support.documents import uploaded
from tests.support.shares import create_share, link_path

from instashare.config import Settings


async def test_create_returns_the_share_with_an_absolute_link(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    first = await ready(headers, b"one")
    second = await ready(headers, b"two")
    response = await client.post(
        "/api/shares",
        headers=headers,
        json={
            "document_ids": [second["id"], first["id"]],
            "title": "  Holiday photos ",
            "message": "For you.\nEnjoy!",
            "expires_in": 3600,
            "password": "open sesame",
            "max_downloads": 3,
            "recipients": ["  Bob@Example.COM ", "carol@example.com"],
        },
    )
    assert response.status_code == 201, response.text
    share = response.json()
    assert response.headers["location"] == f"/api/shares/{share['id']}"
    assert UUID(share["id"]).version == 7
    assert share["url"].startswith(f"{client.base_url}/s/")
    assert len(link_path(share).removeprefix("/s/")) == 48
    assert share["title"] == "Holiday photos"
    assert share["message"] == "For you.\nEnjoy!"
    assert share["document_ids"] == [second["id"], first["id"]]  # the order given
    assert share["recipients"] == ["bob@example.com", "carol@example.com"]
    assert share["has_password"] is True
    assert "password" not in share
    assert share["max_downloads"] == 3
    assert share["download_count"] == 0
    assert share["view_count"] == 0
    expires = datetime.fromisoformat(share["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    assert set(share) == {
        "id", "url", "title", "message", "document_ids", "recipients", "expires_at",
        "has_password", "max_downloads", "download_count", "view_count", "created_at",
        "updated_at",
    }  # fmt: skip


async def test_minimal_share_has_no_limits(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    assert share["title"] is None
    assert share["message"] is None
    assert share["expires_at"] is None
    assert share["has_password"] is False
    assert share["max_downloads"] is None
    assert share["recipients"] == []


async def test_any_document_may_be_shared_before_it_is_ready(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    pending = await uploaded(client, headers)
    share = await create_share(client, headers, [pending["id"]])
    assert share["document_ids"] == [pending["id"]]


async def test_list_is_newest_first_and_paged(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    created = [
        await create_share(client, headers, [document["id"]], title=f"share {i}") for i in range(5)
    ]
    page = await client.get("/api/shares?limit=2&offset=1", headers=headers)
    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 5
    assert (body["limit"], body["offset"]) == (2, 1)
    assert [item["title"] for item in body["items"]] == ["share 3", "share 2"]
    everything = (await client.get("/api/shares?limit=100", headers=headers)).json()
    assert [item["id"] for item in everything["items"]] == [s["id"] for s in reversed(created)]
    # The listed share is the same as the one read alone, url included.
    alone = await client.get(f"/api/shares/{created[0]['id']}", headers=headers)
    assert alone.json() == everything["items"][-1]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=abc"])
async def test_list_rejects_bad_paging(
    client: httpx.AsyncClient, headers: dict[str, str], query: str
) -> None:
    response = await client.get(f"/api/shares?{query}", headers=headers)
    assert response.status_code == 400


async def test_edit_changes_only_what_is_sent_and_keeps_the_link(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    a, b, c = [await ready(headers, bytes([i]) * 10) for i in range(3)]
    share = await create_share(
        client,
        headers,
        [a["id"], b["id"]],
        title="before",
        message="keep me",
        password="first password",
        expires_in=600,
        max_downloads=2,
        recipients=["x@example.com"],
    )
    path = f"/api/shares/{share['id']}"

    response = await client.patch(
        path, headers=headers, json={"title": "after", "document_ids": [c["id"], a["id"]]}
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["url"] == share["url"]
    assert edited["title"] == "after"
    assert edited["document_ids"] == [c["id"], a["id"]]
    assert edited["message"] == "keep me"
    assert edited["has_password"] is True
    assert edited["expires_at"] == share["expires_at"]
    assert edited["max_downloads"] == 2
    assert edited["recipients"] == ["x@example.com"]
    assert edited["updated_at"] > share["updated_at"]

    lifted = await client.patch(
        path,
        headers=headers,
        json={
            "password": None,
            "expires_at": None,
            "max_downloads": None,
            "title": None,
            "recipients": ["y@example.com", "x@example.com"],
        },
    )
    assert lifted.status_code == 200, lifted.text
    body = lifted.json()
    assert body["has_password"] is False
    assert body["expires_at"] is None
    assert body["max_downloads"] is None
    assert body["title"] is None
    assert body["recipients"] == ["x@example.com", "y@example.com"]
    assert body["url"] == share["url"]
    assert (await client.get(path, headers=headers)).json() == body

    later = datetime.now(UTC) + timedelta(days=2)
    again = await client.patch(
        path, headers=headers, json={"expires_at": later.isoformat(), "password": "a new secret"}
    )
    assert abs(datetime.fromisoformat(again.json()["expires_at"]) - later) < timedelta(seconds=1)
    assert again.json()["has_password"] is True


async def test_empty_edit_changes_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]], title="same")
    response = await client.patch(f"/api/shares/{share['id']}", headers=headers, json={})
    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "updated_at"} == {
        k: v for k, v in share.items() if k != "updated_at"
    }


async def test_rotate_gives_a_new_link_and_kills_the_old_one(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    assert (await client.get(link_path(share))).status_code == 200

    response = await client.post(f"/api/shares/{share['id']}/rotate", headers=headers)
    assert response.status_code == 200
    rotated = response.json()
    assert rotated["id"] == share["id"]
    assert rotated["url"] != share["url"]
    assert (await client.get(link_path(share))).status_code == 404
    assert (await client.get(f"{link_path(share)}/download")).status_code == 404
    assert (await client.get(link_path(rotated))).status_code == 200
    again = await client.get(f"/api/shares/{share['id']}", headers=headers)
    assert again.json()["url"] == rotated["url"]


async def test_revoke_kills_the_link_and_the_share(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    response = await client.delete(f"/api/shares/{share['id']}", headers=headers)
    assert response.status_code == 204
    assert (await client.get(link_path(share))).status_code == 404
    assert (await client.get(f"/api/shares/{share['id']}", headers=headers)).status_code == 404
    assert (await client.delete(f"/api/shares/{share['id']}", headers=headers)).status_code == 404
    listed = (await client.get("/api/shares", headers=headers)).json()
    assert share["id"] not in [item["id"] for item in listed["items"]]


async def test_every_owner_route_answers_other_users_404(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]], title="mine")
    # A recipient of the share is "someone else" for the owner routes too.
    recipient_email = unique_email("recipient")
    await register(client, recipient_email)
    await client.patch(
        f"/api/shares/{share['id']}", headers=headers, json={"recipients": [recipient_email]}
    )
    recipient = {"Authorization": f"Bearer {await login(client, recipient_email)}"}
    for intruder in (await auth_headers(client), recipient):
        path = f"/api/shares/{share['id']}"
        attempts = [
            await client.get(path, headers=intruder),
            await client.patch(path, headers=intruder, json={"title": "theirs"}),
            await client.post(f"{path}/rotate", headers=intruder),
            await client.get(f"{path}/downloads", headers=intruder),
            await client.delete(path, headers=intruder),
        ]
        assert [r.status_code for r in attempts] == [404] * 5
        assert (await client.get("/api/shares", headers=intruder)).json()["total"] == 0
    unchanged = await client.get(f"/api/shares/{share['id']}", headers=headers)
    assert unchanged.json()["title"] == "mine"
    assert unchanged.json()["url"] == share["url"]


async def test_sharing_someone_elses_document_is_404_and_creates_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    theirs = await ready(await auth_headers(client))
    mine = await ready(headers)
    response = await client.post(
        "/api/shares", headers=headers, json={"document_ids": [mine["id"], theirs["id"]]}
    )
    assert response.status_code == 404
    assert theirs["id"] in response.json()["detail"]
    assert (await client.get("/api/shares", headers=headers)).json()["total"] == 0


async def test_owner_routes_need_an_account(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/shares")).status_code == 401
    assert (await client.post("/api/shares", json={"document_ids": []})).status_code == 401
    assert (await client.get("/api/shared-with-me")).status_code == 401


async def test_public_url_is_the_base_of_every_link(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    settings = make_settings(public_url="https://files.example.com/")
    with start_server(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            headers = await auth_headers(http)
            document = await uploaded(http, headers)
            share = await create_share(http, headers, [document["id"]])
    assert share["url"].startswith("https://files.example.com/s/")
