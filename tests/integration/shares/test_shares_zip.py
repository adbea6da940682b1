"""The share's ZIP and single files over the link: exact bytes, names, ranges, validators, HEAD."""

from __future__ import annotations

import io
import os
import random
import zipfile

import httpx
import pytest
from tests.support.documents import uploaded
from tests.support.shares import create_share, link_path


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()}


async def test_two_documents_unzip_to_their_exact_bytes_under_current_names(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    first_bytes = os.urandom(150_000) + b"text " * 20_000
    second_bytes = b"second file\n" * 3000
    first = await ready(headers, first_bytes, filename="first.bin")
    second = await ready(headers, second_bytes, filename="second.txt")
    share = await create_share(
        client, headers, [first["id"], second["id"]], title="Two: files / and more"
    )
    renamed = await client.patch(
        f"/api/documents/{second['id']}", headers=headers, json={"name": "Renamed résumé.txt"}
    )
    assert renamed.status_code == 200

    response = await client.get(f"{link_path(share)}/download")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"].startswith('"')
    assert response.headers["referrer-policy"] == "no-referrer"
    assert (
        response.headers["content-disposition"]
        == 'attachment; filename="Two: files - and more.zip"'
    )
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["first.bin", "Renamed résumé.txt"]
        assert archive.read("first.bin") == first_bytes
        assert archive.read("Renamed résumé.txt") == second_bytes
        assert archive.testzip() is None


async def test_repeated_names_are_numbered(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    documents = [
        await ready(headers, b"1", filename="report.pdf"),
        await ready(headers, b"2", filename="report.pdf"),
        await ready(headers, b"3", filename="Report.PDF"),
        await ready(headers, b"4", filename="notes"),
        await ready(headers, b"5", filename="notes"),
        await ready(headers, b"6", filename="report (2).pdf"),
    ]
    share = await create_share(client, headers, [d["id"] for d in documents])
    files = unzip((await client.get(f"{link_path(share)}/download")).content)
    assert files == {
        "report.pdf": b"1",
        "report (2).pdf": b"2",
        "Report (3).PDF": b"3",
        "notes": b"4",
        "notes (2)": b"5",
        "report (2) (2).pdf": b"6",
    }


async def test_only_ready_documents_are_in_the_zip_and_none_ready_is_409(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    pending = await uploaded(client, headers, content=b"later", filename="later.txt")
    share = await create_share(client, headers, [pending["id"]])
    response = await client.get(f"{link_path(share)}/download")
    assert response.status_code == 409
    assert "ready" in response.json()["detail"]
    single = await client.get(f"{link_path(share)}/files/{pending['id']}")
    assert single.status_code == 409
    assert single.json()["status"] == "pending"

    done = await ready(headers, b"now", filename="now.txt")
    await client.patch(
        f"/api/shares/{share['id']}",
        headers=headers,
        json={"document_ids": [pending["id"], done["id"]]},
    )
    assert unzip((await client.get(f"{link_path(share)}/download")).content) == {"now.txt": b"now"}


async def test_range_slices_rebuild_the_archive_exactly(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    documents = [
        await ready(headers, os.urandom(random.randint(1, 90_000)), filename=f"part{i}.bin")
        for i in range(4)
    ]
    share = await create_share(client, headers, [d["id"] for d in documents])
    path = f"{link_path(share)}/download"
    full = await client.get(path)
    size = len(full.content)
    etag = full.headers["etag"]
    rng = random.Random(42)
    cuts = sorted(rng.sample(range(1, size), 7))
    pieces = []
    for start, end in zip([0, *cuts], [*cuts, size], strict=True):
        response = await client.get(path, headers={"Range": f"bytes={start}-{end - 1}"})
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
        assert response.headers["content-length"] == str(end - start)
        assert response.headers["etag"] == etag
        pieces.append(response.content)
    assert b"".join(pieces) == full.content
    suffix = await client.get(path, headers={"Range": "bytes=-100"})
    assert suffix.content == full.content[-100:]
    outside = await client.get(path, headers={"Range": f"bytes={size}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{size}"


async def test_validators_and_head(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers, b"validated " * 1000, filename="v.txt")
    share = await create_share(client, headers, [document["id"]])
    path = f"{link_path(share)}/download"
    full = await client.get(path)
    etag = full.headers["etag"]

    head = await client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    assert head.headers["etag"] == etag
    assert head.headers["accept-ranges"] == "bytes"

    head_range = await client.head(path, headers={"Range": "bytes=10-19"})
    assert head_range.status_code == 206
    assert head_range.headers["content-length"] == "10"

    not_modified = await client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag

    same = await client.get(path, headers={"Range": "bytes=5-9", "If-Range": etag})
    assert same.status_code == 206
    assert same.content == full.content[5:10]
    stale = await client.get(path, headers={"Range": "bytes=5-9", "If-Range": '"old"'})
    assert stale.status_code == 200
    assert stale.content == full.content

    # A rename changes the bytes, so the ETag changes too (and a stale If-Range resumes nothing).
    await client.patch(f"/api/documents/{document['id']}", headers=headers, json={"name": "w"})
    renamed = await client.head(path)
    assert renamed.headers["etag"] != etag
    assert (await client.get(path, headers={"If-None-Match": etag})).status_code == 200


async def test_one_file_of_the_share(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    wanted = await ready(headers, b"just this one", filename="one.txt")
    other = await ready(headers, b"not this", filename="other.txt")
    outsider = await ready(headers, b"not shared", filename="outside.txt")
    share = await create_share(client, headers, [wanted["id"], other["id"]])
    response = await client.get(f"{link_path(share)}/files/{wanted['id']}")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="one.txt.zip"'
    assert unzip(response.content) == {"one.txt": b"just this one"}
    owners = await client.get(f"/api/documents/{wanted['id']}/download", headers=headers)
    assert owners.content == response.content  # as the owner's download
    assert owners.headers["etag"] == response.headers["etag"]

    head = await client.head(f"{link_path(share)}/files/{wanted['id']}")
    assert head.headers["content-length"] == str(len(response.content))
    part = await client.get(
        f"{link_path(share)}/files/{wanted['id']}", headers={"Range": "bytes=0-3"}
    )
    assert (part.status_code, part.content) == (206, response.content[:4])

    missing = await client.get(f"{link_path(share)}/files/{outsider['id']}")
    assert missing.status_code == 404
    assert (await client.get(f"{link_path(share)}/files/not-a-uuid")).status_code in (400, 404)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_downloads_are_read_only(
    client: httpx.AsyncClient, headers: dict[str, str], ready, method: str
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    response = await client.request(method, f"{link_path(share)}/download")
    assert response.status_code == 405
