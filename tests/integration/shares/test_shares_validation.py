"""Every malformed or absurd share field: a clear 4xx, and nothing created or changed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import auth_headers
from tests.support.documents import uploaded
from tests.support.shares import create_share

from instashare.config import Settings
from instashare.db import session_maker
from instashare.documents.compression import Compressor
from instashare.models import Share, ShareDocument, ShareRecipient
from instashare.storage import Storage


async def count_rows(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as connection:
        return tuple(  # type: ignore[return-value]
            [
                int(await connection.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Share, ShareDocument, ShareRecipient)
            ]
        )


@pytest.fixture(scope="module")
async def owner(
    server_url: str, engine: AsyncEngine, settings: Settings
) -> tuple[dict[str, str], str]:
    """One account with one ready document for the whole module (these tests change nothing)."""
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as http:
        headers = await auth_headers(http)
        document = await uploaded(http, headers)
    storage = Storage.from_settings(settings.storage_settings())
    compressor = Compressor.from_settings(settings, session_maker(engine), storage)
    await compressor.run(uuid.UUID(document["id"]), last_attempt=True)
    return headers, document["id"]


def future(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


BAD_FIELDS = [
    pytest.param({"document_ids": []}, "document_ids", id="no-documents"),
    pytest.param({"document_ids": "abc"}, "document_ids", id="ids-not-a-list"),
    pytest.param({"document_ids": ["not-a-uuid"]}, "document_ids", id="id-not-a-uuid"),
    pytest.param({"document_ids": [str(uuid.uuid4())] * 1001}, "document_ids", id="1001-ids"),
    pytest.param({"title": "t" * 201}, "title", id="title-too-long"),
    pytest.param({"title": "bell\x07"}, "title", id="title-control"),
    pytest.param({"title": 5}, "title", id="title-not-text"),
    pytest.param({"message": "m" * 5001}, "message", id="message-too-long"),
    pytest.param({"message": "nul\x00"}, "message", id="message-control"),
    pytest.param({"expires_at": "yesterday"}, "expires_at", id="expiry-not-a-time"),
    pytest.param({"expires_at": future(days=-1)}, "future", id="expiry-in-the-past"),
    pytest.param({"expires_at": future(days=366)}, "365 days", id="expiry-beyond-max"),
    pytest.param({"expires_at": "2030-01-01T00:00:00"}, "offset", id="expiry-without-offset"),
    pytest.param({"expires_in": 0}, "expires_in", id="expires-in-zero"),
    pytest.param({"expires_in": 366 * 86400}, "365 days", id="expires-in-beyond-max"),
    pytest.param({"expires_in": 60, "expires_at": future(days=1)}, "not both", id="both-expiries"),
    pytest.param({"password": "short"}, "password", id="password-too-short"),
    pytest.param({"password": "p" * 129}, "password", id="password-too-long"),
    pytest.param({"max_downloads": 0}, "max_downloads", id="zero-downloads"),
    pytest.param({"max_downloads": -3}, "max_downloads", id="negative-downloads"),
    pytest.param({"max_downloads": 10**20}, "max_downloads", id="absurd-downloads"),
    pytest.param({"recipients": ["not an email"]}, "recipients[0]", id="bad-email"),
    pytest.param({"recipients": ["a@example.com", "@x"]}, "recipients[1]", id="bad-second-email"),
    pytest.param({"recipients": [f"p{i}@example.com" for i in range(101)]}, "recipients", id="101"),
    pytest.param({"recipients": "a@example.com"}, "recipients", id="recipients-not-a-list"),
    pytest.param({"owner_id": str(uuid.uuid4())}, "owner_id", id="unknown-field"),
]


@pytest.mark.parametrize(("fields", "fragment"), BAD_FIELDS)
async def test_create_rejects_bad_fields_and_creates_nothing(
    client: httpx.AsyncClient,
    owner: tuple[dict[str, str], str],
    engine: AsyncEngine,
    fields: dict,
    fragment: str,
) -> None:
    headers, document_id = owner
    before = await count_rows(engine)
    body = {"document_ids": [document_id], **fields}
    response = await client.post("/api/shares", headers=headers, json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["status_code"] == 400
    assert fragment in error["detail"] + str(error.get("extra", "")), error
    assert await count_rows(engine) == before


async def test_a_repeated_document_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    response = await client.post(
        "/api/shares", headers=headers, json={"document_ids": [document["id"], document["id"]]}
    )
    assert response.status_code == 400
    assert "only once" in str(response.json())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"document_ids": [',
        b"null",
        b'{"title": "\xff"}',
        b'{"title": "\\ud800"}',
    ],
)
async def test_malformed_bodies_are_400(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes
) -> None:
    response = await client.post(
        "/api/shares", headers={**headers, "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 400
    assert response.json()["status_code"] == 400


async def test_unknown_document_is_404(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    missing = str(uuid.uuid4())
    response = await client.post("/api/shares", headers=headers, json={"document_ids": [missing]})
    assert response.status_code == 404
    assert missing in response.json()["detail"]


async def test_recipient_emails_are_normalized_and_deduplicated(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(
        client,
        headers,
        [document["id"]],
        recipients=["Ann@Example.com", "ann@example.COM ", "  bo@example.org"],
    )
    assert share["recipients"] == ["ann@example.com", "bo@example.org"]


@pytest.mark.parametrize(("fields", "fragment"), BAD_FIELDS)
async def test_edit_rejects_bad_fields_and_changes_nothing(
    client: httpx.AsyncClient,
    owner: tuple[dict[str, str], str],
    fields: dict,
    fragment: str,
) -> None:
    headers, document_id = owner
    share = await create_share(
        client, headers, [document_id], title="kept", recipients=["kept@example.com"]
    )
    # The valid title sent alongside must not be applied either.
    response = await client.patch(
        f"/api/shares/{share['id']}", headers=headers, json={"title": "changed", **fields}
    )
    assert response.status_code == 400, response.text
    assert fragment in response.text
    assert (await client.get(f"/api/shares/{share['id']}", headers=headers)).json() == share


async def test_edit_with_someone_elses_document_is_404_and_changes_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    mine = await ready(headers)
    theirs = await ready(await auth_headers(client))
    share = await create_share(client, headers, [mine["id"]])
    response = await client.patch(
        f"/api/shares/{share['id']}",
        headers=headers,
        json={"document_ids": [theirs["id"]], "title": "x"},
    )
    assert response.status_code == 404
    assert (await client.get(f"/api/shares/{share['id']}", headers=headers)).json() == share


async def test_edit_of_null_document_ids_is_400(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    response = await client.patch(
        f"/api/shares/{share['id']}", headers=headers, json={"document_ids": None}
    )
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/api/shares/not-a-uuid", "/api/shares/123/rotate"])
async def test_malformed_share_ids_are_client_errors(
    client: httpx.AsyncClient, headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=headers)
    assert 400 <= response.status_code < 500
