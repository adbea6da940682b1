"""Sharing with people by email: before or after they register, no password, no limit."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import login, register, unique_email
from tests.support.shares import create_share, settled_share

from instashare.models import Share


async def person(client: httpx.AsyncClient, email: str | None = None) -> tuple[str, dict]:
    email = email or unique_email("person")
    await register(client, email)
    return email, {"Authorization": f"Bearer {await login(client, email)}"}


async def shared_with(client: httpx.AsyncClient, headers: dict[str, str]) -> dict:
    response = await client.get("/api/shared-with-me", headers=headers)
    assert response.status_code == 200
    return dict(response.json())


async def test_recipients_registered_before_and_after_see_the_share(
    client: httpx.AsyncClient, ready
) -> None:
    owner_email = unique_email("owner")
    await client.post(
        "/api/auth/register",
        json={"email": owner_email, "password": "correct horse battery", "full_name": "Olga"},
    )
    owner = {"Authorization": f"Bearer {await login(client, owner_email)}"}
    document = await ready(owner, b"for both", filename="both.txt")
    early_email, early = await person(client)
    late_email = unique_email("late")
    share = await create_share(
        client,
        owner,
        [document["id"]],
        title="For you two",
        message="hi",
        password="a password they need not know",
        max_downloads=1,
        recipients=[early_email.upper(), late_email],
    )
    _, late = await person(client, late_email.title())  # registers with another case

    for headers in (early, late):
        listing = await shared_with(client, headers)
        assert listing["total"] == 1
        [item] = listing["items"]
        assert item["id"] == share["id"]
        assert item["title"] == "For you two"
        assert item["message"] == "hi"
        assert item["owner"] == {"email": owner_email, "full_name": "Olga"}
        assert item["files"] == [
            {"id": document["id"], "name": "both.txt", "size": 8, "status": "ready"}
        ]
        assert item["expires_at"] is None
        assert item["created_at"] == share["created_at"]
        # No password and no download limit: both may download, more than once.
        for _ in range(2):
            response = await client.get(
                f"/api/shared-with-me/{share['id']}/download", headers=headers
            )
            assert response.status_code == 200
            with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
                assert archive.read("both.txt") == b"for both"
        one = await client.get(
            f"/api/shared-with-me/{share['id']}/files/{document['id']}", headers=headers
        )
        assert one.status_code == 200
        head = await client.head(f"/api/shared-with-me/{share['id']}/download", headers=headers)
        assert head.status_code == 200

    # Their downloads leave receipts naming them, but do not use up the link.
    shown = await settled_share(client, owner, share["id"], download_count=0)
    assert shown["max_downloads"] == 1
    receipts = (
        await client.get(f"/api/shares/{share['id']}/downloads?limit=100", headers=owner)
    ).json()["items"]
    assert {r["recipient"] for r in receipts} == {early_email.lower(), late_email.lower()}


async def test_others_see_nothing_and_cannot_download(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    _, stranger = await person(client)
    recipient_email, _ = await person(client)
    share = await create_share(client, headers, [document["id"]], recipients=[recipient_email])
    assert (await shared_with(client, stranger))["total"] == 0
    for path in (
        f"/api/shared-with-me/{share['id']}/download",
        f"/api/shared-with-me/{share['id']}/files/{document['id']}",
    ):
        assert (await client.get(path, headers=stranger)).status_code == 404
        # The owner is not a recipient of their own share.
        assert (await client.get(path, headers=headers)).status_code == 404
    assert (await client.get(f"/api/shared-with-me/{share['id']}/download")).status_code == 401


async def test_recipients_lose_access_on_revoke_removal_and_expiry(
    client: httpx.AsyncClient, headers: dict[str, str], ready, engine: AsyncEngine
) -> None:
    document = await ready(headers)
    email, recipient = await person(client)
    revoked = await create_share(client, headers, [document["id"]], recipients=[email])
    removed = await create_share(client, headers, [document["id"]], recipients=[email])
    expired = await create_share(client, headers, [document["id"]], recipients=[email])
    kept = await create_share(client, headers, [document["id"]], recipients=[email])
    assert (await shared_with(client, recipient))["total"] == 4

    await client.delete(f"/api/shares/{revoked['id']}", headers=headers)
    await client.patch(f"/api/shares/{removed['id']}", headers=headers, json={"recipients": []})
    async with engine.begin() as connection:
        await connection.execute(
            update(Share)
            .where(Share.id == expired["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    listing = await shared_with(client, recipient)
    assert [item["id"] for item in listing["items"]] == [kept["id"]]
    for share in (revoked, removed, expired):
        download = f"/api/shared-with-me/{share['id']}/download"
        assert (await client.get(download, headers=recipient)).status_code == 404


async def test_listing_is_newest_first_and_paged(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    email, recipient = await person(client)
    shares = [
        await create_share(client, headers, [document["id"]], title=f"#{i}", recipients=[email])
        for i in range(3)
    ]
    page = (await client.get("/api/shared-with-me?limit=2&offset=1", headers=recipient)).json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    assert [item["id"] for item in page["items"]] == [shares[1]["id"], shares[0]["id"]]


async def test_the_owner_cannot_tell_who_has_an_account(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    registered, _ = await person(client)
    unknown = unique_email("nobody")
    with_account = await client.post(
        "/api/shares",
        headers=headers,
        json={"document_ids": [document["id"]], "recipients": [registered]},
    )
    without = await client.post(
        "/api/shares",
        headers=headers,
        json={"document_ids": [document["id"]], "recipients": [unknown]},
    )
    assert with_account.status_code == without.status_code == 201
    differing = {k for k in with_account.json() if with_account.json()[k] != without.json()[k]}
    assert differing <= {"id", "url", "recipients", "created_at", "updated_at"}


async def test_an_empty_share_disappears_for_recipients_too(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    email, recipient = await person(client)
    share = await create_share(client, headers, [document["id"]], recipients=[email])
    await client.delete(f"/api/documents/{document['id']}", headers=headers)
    assert (await shared_with(client, recipient))["total"] == 0
    download = f"/api/shared-with-me/{share['id']}/download"
    assert (await client.get(download, headers=recipient)).status_code == 404
