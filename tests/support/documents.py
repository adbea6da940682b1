"""Uploading through the API as a client does, and looking at what was left behind."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from instashare.models import Document


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    content: bytes = b"hello world\n",
    filename: str = "hello.txt",
    content_type: str | None = "text/plain",
    name: str | None = None,
) -> httpx.Response:
    files = {"file": (filename, content, content_type) if content_type else (filename, content)}
    data = {"name": name} if name is not None else None
    return await client.post("/api/documents", headers=headers, files=files, data=data)


async def uploaded(client: httpx.AsyncClient, headers: dict[str, str], **kwargs: object) -> dict:
    response = await upload(client, headers, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 202, response.text
    return dict(response.json())


def stored_objects(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def count_document_rows(engine: AsyncEngine) -> int:
    """Rows in the document table, everyone's: a refused upload must leave none anywhere."""
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(Document)) or 0)


def unzip_single(data: bytes) -> tuple[str, bytes]:
    """The name and bytes of the one entry of a valid ZIP archive."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        [entry] = archive.infolist()
        return entry.filename, archive.read(entry)
