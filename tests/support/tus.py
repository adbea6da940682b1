"""Speaking tus to the API by hand, for the tests that check each rule."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import httpx

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {"Content-Type": "application/offset+octet-stream"}


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def metadata(**values: str) -> str:
    return ",".join(f"{key} {b64(value)}" for key, value in values.items())


async def create(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    length: int,
    *,
    filename: str = "notes.txt",
    extra: dict[str, str] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    request_headers = {
        **headers,
        **TUS,
        "Upload-Length": str(length),
        "Upload-Metadata": metadata(filename=filename),
        **(extra or {}),
    }
    if body is not None:
        request_headers.update(CHUNK)
    return await client.post("/api/uploads", headers=request_headers, content=body)


async def created(client: httpx.AsyncClient, headers: dict[str, str], length: int, **kw) -> str:
    """The new upload's URL (a path)."""
    response = await create(client, headers, length, **kw)
    assert response.status_code == 201, response.text
    return str(response.headers["location"])


async def patch(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    url: str,
    offset: int,
    data: bytes,
    *,
    checksum: str | None = None,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    request_headers = {**headers, **TUS, **CHUNK, "Upload-Offset": str(offset), **(extra or {})}
    if checksum is not None:
        request_headers["Upload-Checksum"] = checksum
    return await client.patch(url, headers=request_headers, content=data)


async def offset_of(client: httpx.AsyncClient, headers: dict[str, str], url: str) -> int:
    response = await client.head(url, headers={**headers, **TUS})
    assert response.status_code == 200, response.status_code
    return int(response.headers["upload-offset"])


def sha256_checksum(data: bytes) -> str:
    return f"sha256 {b64(hashlib.sha256(data).digest())}"


def upload_files(root: Path) -> list[str]:
    """What unfinished uploads keep under a local storage root."""
    folder = root / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
