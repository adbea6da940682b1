"""The client side of the tus run of `benchmarks.upload`: one file sent in fixed-size chunks.

InstaShare gets the tus requests a standard client sends (POST to create, then one PATCH per
chunk, each read from disk as it is sent); the baseline sink gets the same chunks as plain POSTs,
so both runs make as many requests of the same sizes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx

TUS = {"Tus-Resumable": "1.0.0"}


def _chunks(path: Path, chunk: int, block: int = 1 << 20) -> Iterator[tuple[int, int]]:
    """(offset, length) of every chunk of the file."""
    size = path.stat().st_size
    for offset in range(0, size, chunk):
        yield offset, min(chunk, size - offset)


def _body(path: Path, offset: int, length: int, block: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as source:
        source.seek(offset)
        left = length
        while left and (data := source.read(min(block, left))):
            left -= len(data)
            yield data


def send_to_instashare(
    client: httpx.Client, base_url: str, token: str, path: Path, chunk: int
) -> tuple[int, object]:
    """Create the upload and PATCH it chunk by chunk; returns the document as the API shows it."""
    auth = {"Authorization": f"Bearer {token}", **TUS}
    created = client.post(
        f"{base_url}/api/uploads",
        headers={
            **auth,
            "Upload-Length": str(path.stat().st_size),
            "Upload-Metadata": "filename " + base64.b64encode(path.name.encode()).decode(),
        },
    )
    if created.status_code != 201:
        return created.status_code, created.text[:500]
    url = base_url + created.headers["location"]
    answer = created
    for offset, length in _chunks(path, chunk):
        answer = client.patch(
            url,
            headers={
                **auth,
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(length),
                "Upload-Offset": str(offset),
            },
            content=_body(path, offset, length),
        )
        if answer.status_code != 204:
            return answer.status_code, answer.text[:500]
    document_id = answer.headers.get("document-id")
    if document_id is None:
        return answer.status_code, "the last PATCH carried no Document-Id"
    document = client.get(
        f"{base_url}/api/documents/{document_id}", headers={"Authorization": f"Bearer {token}"}
    )
    return answer.status_code, document.json()


def send_to_sink(client: httpx.Client, url: str, path: Path, chunk: int) -> tuple[int, object]:
    """The same chunks as plain POSTs to the baseline sink."""
    written = 0
    status = 0
    for offset, length in _chunks(path, chunk):
        response = client.post(
            url, headers={"Content-Length": str(length)}, content=_body(path, offset, length)
        )
        status = response.status_code
        if status != 201:
            return status, response.text[:500]
        written += int(response.json()["bytes"])
    return status, {"bytes": written}
