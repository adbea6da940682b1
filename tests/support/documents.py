"""Uploading through the API as a client does, and looking at what was left behind."""

from __future__ import annotations

from pathlib import Path

import httpx


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
