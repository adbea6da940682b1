"""tus over real HTTP, rule by rule: creation, chunks, completion, and every bad request."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from uuid import UUID

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import auth_headers
from tests.support.documents import stored_objects
from tests.support.tus import (
    CHUNK,
    TUS,
    b64,
    create,
    created,
    metadata,
    offset_of,
    patch,
    sha256_checksum,
    upload_files,
)

from instashare.models import Upload, User

HELLO_SHA1 = "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="  # the specification's example, of b"hello world"


async def user_totals(engine: AsyncEngine, headers: dict[str, str], client: httpx.AsyncClient):
    me = (await client.get("/api/auth/me", headers=headers)).json()
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(User.bytes_used, User.bytes_reserved, User.document_count).where(
                    User.id == UUID(me["id"])
                )
            )
        ).one()
    return tuple(row)


async def upload_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(Upload)) or 0)


async def test_options_describes_the_server_without_authentication(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options("/api/uploads")
    assert response.status_code == 204
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["tus-version"] == "1.0.0"
    assert "checksum" in response.headers["tus-extension"].split(",")
    assert response.headers["tus-checksum-algorithm"] == "sha1,sha256"
    assert int(response.headers["tus-max-size"]) == 2 * 1024**3


async def test_an_upload_in_chunks_becomes_a_document(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine, storage_root: Path
) -> None:
    content = b"hello world"
    response = await create(
        client,
        headers,
        len(content),
        extra={"Upload-Metadata": metadata(filename="C:\\docs\\hello.txt", filetype="text/plain")},
    )
    assert response.status_code == 201
    url = response.headers["location"]
    assert url.startswith("/api/uploads/")
    expires = parsedate_to_datetime(response.headers["upload-expires"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
    assert await user_totals(engine, headers, client) == (0, len(content), 0)

    first = await patch(client, headers, url, 0, content[:5])
    assert first.status_code == 204
    assert first.headers["upload-offset"] == "5"
    assert "document-id" not in first.headers
    head = await client.head(url, headers={**headers, **TUS})
    assert head.headers["upload-offset"] == "5"
    assert head.headers["upload-length"] == "11"
    assert head.headers["cache-control"] == "no-store"
    assert head.headers["upload-metadata"].startswith("filename ")
    assert head.headers["tus-resumable"] == "1.0.0"

    last = await patch(client, headers, url, 5, content[5:])
    assert last.status_code == 204
    assert last.headers["upload-offset"] == "11"
    document_id = last.headers["document-id"]
    document = (await client.get(f"/api/documents/{document_id}", headers=headers)).json()
    assert document["name"] == "hello.txt"
    assert document["status"] == "pending"
    assert document["size"] == 11
    assert document["content_type"] == "text/plain"
    assert document["sha256"] == hashlib.sha256(content).hexdigest()
    assert (storage_root / "originals" / document_id).read_bytes() == content
    assert UUID(url.rsplit("/", 1)[1]).hex not in "".join(upload_files(storage_root))
    assert await user_totals(engine, headers, client) == (11, 0, 1)
    # Later HEADs still say where the bytes went; an empty PATCH at the end is acknowledged.
    again = await client.head(url, headers={**headers, **TUS})
    assert again.headers["document-id"] == document_id
    assert "upload-expires" not in again.headers
    assert (await patch(client, headers, url, 11, b"")).status_code == 204


async def test_checksums_are_verified_and_a_mismatch_discards_the_chunk(
    client: httpx.AsyncClient, headers: dict[str, str], storage_root: Path
) -> None:
    url = await created(client, headers, 22)
    upload_id = url.rsplit("/", 1)[1]
    assert (
        await patch(client, headers, url, 0, b"hello world", checksum=HELLO_SHA1)
    ).status_code == 204
    wrong = await patch(client, headers, url, 11, b"hello there", checksum=HELLO_SHA1)
    assert wrong.status_code == 460
    assert wrong.json() == {
        "status_code": 460,
        "detail": "the chunk does not match its sha1 checksum; it was discarded: send it again",
    }
    assert await offset_of(client, headers, url) == 11
    assert (storage_root / "uploads" / upload_id).stat().st_size == 11
    unknown = await patch(client, headers, url, 11, b"hello there", checksum="md5 AAAA")
    assert unknown.status_code == 400
    good = await patch(
        client, headers, url, 11, b"HELLO WORLD", checksum=sha256_checksum(b"HELLO WORLD")
    )
    assert good.status_code == 204
    document = (
        await client.get(f"/api/documents/{good.headers['document-id']}", headers=headers)
    ).json()
    assert document["sha256"] == hashlib.sha256(b"hello worldHELLO WORLD").hexdigest()


async def test_bad_requests_are_clear_4xx_and_store_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine, storage_root: Path
) -> None:
    rows_before, files_before = await upload_rows(engine), stored_objects(storage_root)
    cases = {
        "no Tus-Resumable": ({"Tus-Resumable": ""}, 412),
        "old protocol": ({"Tus-Resumable": "0.2.2"}, 412),
        "no Upload-Length": ({"Upload-Length": ""}, 400),
        "negative length": ({"Upload-Length": "-1"}, 400),
        "huge length": ({"Upload-Length": "9" * 40}, 413),
        "over the maximum": ({"Upload-Length": str(2 * 1024**3 + 1)}, 413),
        "bad base64": ({"Upload-Metadata": "filename %%%"}, 400),
        "no file name": ({"Upload-Metadata": metadata(filetype="text/plain")}, 400),
        "unusable name": ({"Upload-Metadata": metadata(name="a/b")}, 400),
        "deferred length": ({"Upload-Defer-Length": "1"}, 400),
    }
    for label, (changes, status) in cases.items():
        request = {
            **headers,
            **TUS,
            "Upload-Length": "10",
            "Upload-Metadata": metadata(filename="a"),
        }
        request.update(changes)
        request = {k: v for k, v in request.items() if v}
        response = await client.post("/api/uploads", headers=request)
        assert response.status_code == status, (label, response.text)
        assert response.json()["status_code"] == status, label
        assert response.json()["detail"], label
        if status == 412:
            assert response.headers["tus-version"] == "1.0.0"
    wrong_body = await client.post(
        "/api/uploads",
        headers={**headers, **TUS, "Upload-Length": "5", "Content-Type": "text/plain"},
        content=b"hello",
    )
    assert wrong_body.status_code == 415
    assert await upload_rows(engine) == rows_before

    url = await created(client, headers, 10)
    upload_id = url.rsplit("/", 1)[1]
    assert (await patch(client, headers, url, 0, b"x" * 11)).status_code == 413
    assert (await patch(client, headers, url, 3, b"abc")).status_code == 409
    assert (
        await patch(client, headers, url, 0, b"abc", extra={"Tus-Resumable": "2.0.0"})
    ).status_code == 412
    assert (
        await patch(client, headers, url, 0, b"abc", extra={"Upload-Offset": "-1"})
    ).status_code == 400
    not_a_chunk = await client.patch(
        url,
        headers={
            **headers,
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/octet-stream",
        },
        content=b"abc",
    )
    assert not_a_chunk.status_code == 415
    assert await offset_of(client, headers, url) == 0

    stranger = await auth_headers(client)
    for method in ("HEAD", "PATCH", "DELETE"):
        response = await client.request(
            method, url, headers={**stranger, **TUS, **CHUNK, "Upload-Offset": "0"}, content=b"abc"
        )
        assert response.status_code == 404, method
    unknown = await client.head(
        "/api/uploads/01900000-0000-7000-8000-000000000000", headers={**headers, **TUS}
    )
    assert unknown.status_code == 404
    assert (await client.head(url, headers=TUS)).status_code == 401
    assert await offset_of(client, headers, url) == 0
    # Every chunk was refused before its first byte was stored.
    assert stored_objects(storage_root) == files_before
    assert upload_id not in upload_files(storage_root)


async def test_method_override_and_creation_with_upload(
    client: httpx.AsyncClient, headers: dict[str, str], storage_root: Path
) -> None:
    response = await create(client, headers, 10, body=b"01234")
    assert response.status_code == 201
    assert response.headers["upload-offset"] == "5"
    url = response.headers["location"]
    overridden = {
        **headers,
        **TUS,
        **CHUNK,
        "Upload-Offset": "5",
        "X-HTTP-Method-Override": "PATCH",
    }
    finished = await client.post(url, headers=overridden, content=b"56789")
    assert finished.status_code == 204
    assert finished.headers["upload-offset"] == "10"
    document_id = finished.headers["document-id"]
    assert (storage_root / "originals" / document_id).read_bytes() == b"0123456789"

    whole = await create(client, headers, 3, body=b"abc")
    assert whole.headers["upload-offset"] == "3"
    assert "document-id" in whole.headers
    empty = await create(client, headers, 0, filename="empty.txt")
    assert empty.status_code == 201
    assert (storage_root / "originals" / empty.headers["document-id"]).read_bytes() == b""

    doomed = await created(client, headers, 4)
    delete = {**headers, **TUS, "X-HTTP-Method-Override": "DELETE"}
    assert (await client.post(doomed, headers=delete)).status_code == 204
    assert (await client.head(doomed, headers={**headers, **TUS})).status_code == 404
    plain_post = await client.post(url, headers={**headers, **TUS})
    assert plain_post.status_code == 405


async def test_quota_is_reserved_at_creation(
    make_settings, start_server, engine: AsyncEngine
) -> None:
    settings = make_settings(user_quota_bytes=1000, max_upload_bytes=800)
    with start_server(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            headers = await auth_headers(client)
            both = await asyncio.gather(create(client, headers, 600), create(client, headers, 600))
            assert sorted(r.status_code for r in both) == [201, 413]
            refused = next(r for r in both if r.status_code == 413)
            assert "quota" in refused.json()["detail"]
            assert (await create(client, headers, 801)).status_code == 413
            # The reservation counts for the multipart upload too.
            files = {"file": ("big.bin", b"x" * 500)}
            assert (
                await client.post("/api/documents", headers=headers, files=files)
            ).status_code == 413
            kept = next(r for r in both if r.status_code == 201).headers["location"]
            assert (await client.delete(kept, headers={**headers, **TUS})).status_code == 204
            assert (await create(client, headers, 1000 - 0)).status_code == 413  # over the max
            assert (await create(client, headers, 800)).status_code == 201


async def test_a_second_writer_is_told_the_upload_is_locked(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine
) -> None:
    from instashare.uploads.receiving import _lock_key

    url = await created(client, headers, 6)
    key = _lock_key(UUID(url.rsplit("/", 1)[1]))
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.pg_try_advisory_lock(key)))
        busy = await patch(client, headers, url, 0, b"abc")
        assert busy.status_code == 423
        assert "retry" in busy.json()["detail"]
        await connection.scalar(select(func.pg_advisory_unlock(key)))
    assert (await patch(client, headers, url, 0, b"abc")).status_code == 204


async def test_expired_uploads_answer_404(
    client: httpx.AsyncClient, headers: dict[str, str], engine: AsyncEngine
) -> None:
    url = await created(client, headers, 6)
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE upload SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": UUID(url.rsplit("/", 1)[1])},
        )
    assert (await client.head(url, headers={**headers, **TUS})).status_code == 404
    assert (await patch(client, headers, url, 0, b"abc")).status_code == 404


async def test_cors_exposes_the_tus_headers_to_allowed_origins(make_settings, start_server) -> None:
    settings = make_settings(cors_allow_origins="https://app.example")
    with start_server(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            preflight = await client.options(
                "/api/uploads",
                headers={
                    "Origin": "https://app.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,tus-resumable,upload-length",
                },
            )
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == "https://app.example"
            headers = await auth_headers(client)
            response = await create(client, headers, 5, extra={"Origin": "https://app.example"})
            exposed = response.headers["access-control-expose-headers"].lower()
            for name in (
                "location",
                "upload-offset",
                "upload-expires",
                "document-id",
                "tus-resumable",
            ):
                assert name in exposed
            other = await create(client, headers, 5, extra={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    default = await create_plain_options(start_server, make_settings)
    assert "access-control-allow-origin" not in default


async def create_plain_options(start_server, make_settings) -> dict[str, str]:
    with start_server(make_settings()) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            response = await client.options(
                "/api/uploads",
                headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            )
            return dict(response.headers)


def test_b64_helper_matches_the_specification_example() -> None:
    assert b64("world_domination_plan.pdf") == "d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg=="


async def test_a_stalled_chunk_is_ended_keeping_what_arrived(
    client: httpx.AsyncClient, headers: dict[str, str], monkeypatch
) -> None:
    from instashare.uploads import controllers

    monkeypatch.setattr(controllers, "BODY_STALL_SECONDS", 0.5)
    url = await created(client, headers, 10)
    host, port = str(client.base_url.host), int(client.base_url.port or 80)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"PATCH {url} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {headers['Authorization']}\r\n"
            "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
            "Upload-Offset: 0\r\nContent-Length: 10\r\n\r\n0123"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    assert b" 408 " in status_line
    assert await offset_of(client, headers, url) == 4
