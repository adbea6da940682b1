"""Uploading documents: what is stored, the names, and every way an upload is refused."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import auth_headers
from tests.support.documents import count_document_rows, stored_objects, upload, uploaded

from instashare.config import Settings


async def test_upload_returns_202_with_location_and_the_document(
    client: httpx.AsyncClient, headers: dict[str, str], storage_root: Path
) -> None:
    content = os.urandom(300_000)
    response = await upload(client, headers, content, filename="photo.png", content_type=None)
    assert response.status_code == 202, response.text
    document = response.json()
    assert response.headers["location"] == f"/api/documents/{document['id']}"
    assert UUID(document["id"]).version == 7
    assert document["name"] == "photo.png"
    assert document["status"] == "pending"
    assert document["size"] == len(content)
    assert document["sha256"] == hashlib.sha256(content).hexdigest()
    assert document["content_type"] == "image/png"
    assert document["compressed_size"] is None
    assert document["compressed_at"] is None
    assert document["error"] is None
    assert (storage_root / "originals" / document["id"]).read_bytes() == content

    fetched = await client.get(f"/api/documents/{document['id']}", headers=headers)
    assert fetched.status_code == 200
    assert fetched.json() == document


@pytest.mark.parametrize(
    ("filename", "name", "expected"),
    [
        ("C:\\Users\\ada\\report.pdf", None, "report.pdf"),
        ("../../etc/passwd", None, "passwd"),
        ("  spaced.txt  ", None, "spaced.txt"),
        ("x.bin", "  Quarterly report  ", "Quarterly report"),
        ("x.bin", "résumé 📄.txt", "résumé 📄.txt"),
    ],
)
async def test_names_default_to_the_base_name_or_take_the_name_field(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    filename: str,
    name: str | None,
    expected: str,
) -> None:
    document = await uploaded(client, headers, filename=filename, name=name)
    assert document["name"] == expected


@pytest.mark.parametrize(
    ("filename", "name", "fragment"),
    [
        ("a.txt", "", "empty"),
        ("a.txt", "   ", "empty"),
        ("a.txt", "a/b", "'/'"),
        ("a.txt", "a\\b", "'/'"),
        ("a.txt", "bell\x07", "control"),
        ("a.txt", "n" * 256, "255"),
        ("", None, "file"),
    ],
)
async def test_bad_names_are_400_and_leave_nothing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    storage_root: Path,
    filename: str,
    name: str | None,
    fragment: str,
) -> None:
    before = stored_objects(storage_root)
    response = await upload(client, headers, filename=filename, name=name)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"]
    assert stored_objects(storage_root) == before


async def test_content_type_is_taken_from_the_upload_or_guessed(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    declared = await uploaded(client, headers, filename="data", content_type="application/json")
    guessed = await uploaded(
        client, headers, filename="page.html", content_type="application/octet-stream"
    )
    unknown = await uploaded(client, headers, filename="blob", content_type=None)
    assert declared["content_type"] == "application/json"
    assert guessed["content_type"] == "text/html"
    assert unknown["content_type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not multipart at all", "application/octet-stream"),
        (
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
            "multipart/form-data; boundary=xyz",
        ),
        (b"garbage", "multipart/form-data"),
        (
            b'--xyz\r\nContent-Disposition: form-data; name="other"\r\n\r\nabc\r\n--xyz--\r\n',
            "multipart/form-data; boundary=xyz",
        ),
    ],
)
async def test_malformed_uploads_are_400_and_leave_nothing(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    storage_root: Path,
    body: bytes,
    content_type: str,
) -> None:
    before = stored_objects(storage_root)
    response = await client.post(
        "/api/documents", content=body, headers={**headers, "Content-Type": content_type}
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"]
    assert stored_objects(storage_root) == before


async def test_two_files_in_one_upload_are_refused(
    client: httpx.AsyncClient, headers: dict[str, str], storage_root: Path
) -> None:
    before = stored_objects(storage_root)
    response = await client.post(
        "/api/documents",
        headers=headers,
        files=[("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))],
    )
    assert response.status_code == 400
    assert stored_objects(storage_root) == before


async def test_uploads_over_the_size_limit_are_413_and_leave_nothing(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
    storage_root: Path,
    engine: AsyncEngine,
) -> None:
    with start_server(make_settings(max_upload_bytes=100_000)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            headers = await auth_headers(http)
            before_objects = stored_objects(storage_root)
            before_rows = await count_document_rows(engine)

            exact = await upload(http, headers, b"x" * 100_000)
            assert exact.status_code == 202

            # Content-Length announces too much: refused before reading the body.
            early = await upload(http, headers, b"x" * 300_000)
            assert early.status_code == 413
            assert "maximum size of 100000 bytes" in early.json()["detail"]

            # Streamed without Content-Length: refused the moment the limit is passed.
            async def chunks() -> AsyncIterator[bytes]:
                yield (
                    b'--b\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n\r\n'
                )
                for _ in range(20):
                    yield b"y" * 10_000
                yield b"\r\n--b--\r\n"

            streamed = await http.post(
                "/api/documents",
                content=chunks(),
                headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
            )
            assert streamed.status_code == 413
            assert stored_objects(storage_root) == before_objects | {
                f"originals/{exact.json()['id']}"
            }
            assert await count_document_rows(engine) == before_rows + 1


async def test_the_owners_quota_is_enforced_even_for_concurrent_uploads(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
    storage_root: Path,
) -> None:
    with start_server(make_settings(user_quota_bytes=250_000)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            headers = await auth_headers(http)
            first = await upload(http, headers, b"a" * 200_000)
            assert first.status_code == 202
            over = await upload(http, headers, b"b" * 60_000)
            assert over.status_code == 413
            assert "quota" in over.json()["detail"]

            other = await auth_headers(http)
            before = stored_objects(storage_root)
            results = await asyncio.gather(
                *(upload(http, other, bytes([i]) * 100_000) for i in range(5))
            )
            codes = sorted(r.status_code for r in results)
            assert codes == [202, 202, 413, 413, 413]
            listing = (await http.get("/api/documents", headers=other)).json()
            assert listing["total"] == 2
            assert len(stored_objects(storage_root) - before) == 2


async def test_a_client_that_disconnects_mid_upload_leaves_nothing(
    server_url: str,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    storage_root: Path,
    engine: AsyncEngine,
) -> None:
    before_objects = stored_objects(storage_root)
    before_rows = await count_document_rows(engine)
    host, port = server_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    head = (
        "POST /api/documents HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Authorization: {headers['Authorization']}\r\n"
        "Content-Type: multipart/form-data; boundary=cut\r\n"
        "Content-Length: 50000000\r\n\r\n"
        '--cut\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n'
    )
    writer.write(head.encode() + b"z" * 3_000_000)
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()
    await writer.wait_closed()
    for _ in range(50):
        await asyncio.sleep(0.1)
        if stored_objects(storage_root) == before_objects:
            break
    assert stored_objects(storage_root) == before_objects
    assert await count_document_rows(engine) == before_rows
    # The server is fine afterwards.
    assert (await client.get("/health")).status_code == 200


async def test_twenty_concurrent_uploads_all_land_intact(
    client: httpx.AsyncClient, headers: dict[str, str], storage_root: Path
) -> None:
    contents = [os.urandom(50_000 + i * 1000) for i in range(20)]
    responses = await asyncio.gather(
        *(upload(client, headers, c, filename=f"f{i}.bin") for i, c in enumerate(contents))
    )
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    for content, response in zip(contents, responses, strict=True):
        document = response.json()
        assert document["sha256"] == hashlib.sha256(content).hexdigest()
        assert (storage_root / "originals" / document["id"]).read_bytes() == content


async def test_storage_outage_is_503_and_leaves_no_row(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
    tmp_path: Path,
    engine: AsyncEngine,
) -> None:
    root = tmp_path / "storage"
    root.mkdir()
    with start_server(make_settings(storage_url=root.as_uri())) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            headers = await auth_headers(http)
            before = await count_document_rows(engine)
            root.rmdir()
            root.write_bytes(b"not a directory any more")
            response = await upload(http, headers)
            assert response.status_code == 503, response.text
            assert response.json()["detail"] == "storage is unavailable; try again later"
            assert await count_document_rows(engine) == before
