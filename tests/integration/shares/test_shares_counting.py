"""Counting real downloads: whole archives that reached a client, however many responses it took."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import time
import zipfile

import httpx
from tests.support.api import auth_headers
from tests.support.shares import create_share, link_path, settled_share

MIB = 1 << 20


def as_client(name: str) -> dict[str, str]:
    """Another client on the same network: its own user agent makes it another downloader."""
    return {"User-Agent": f"test-client/{name}"}


async def receipts(client: httpx.AsyncClient, headers: dict[str, str], share: dict) -> list[dict]:
    response = await client.get(f"/api/shares/{share['id']}/downloads?limit=100", headers=headers)
    assert response.status_code == 200
    return list(response.json()["items"])


async def settled_receipts(
    client: httpx.AsyncClient, headers: dict[str, str], share: dict, count: int
) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        items = await receipts(client, headers, share)
        if len(items) == count and all(item["bytes"] > 0 for item in items):
            return items
        assert time.monotonic() < deadline, items
        await asyncio.sleep(0.02)


async def test_a_partial_download_does_not_count_and_its_resumption_does(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers, os.urandom(200_000), filename="data.bin")
    share = await create_share(client, headers, [document["id"]])
    path = f"{link_path(share)}/download"
    me = as_client("resumer")

    head = await client.head(path, headers=me)
    size, etag = int(head.headers["content-length"]), head.headers["etag"]
    first = await client.get(path, headers={**me, "Range": "bytes=0-999"})
    assert first.status_code == 206
    [partial] = await settled_receipts(client, headers, share, 1)
    assert partial["completed"] is False
    assert partial["bytes"] == 1000
    assert (await client.get(f"/api/shares/{share['id']}", headers=headers)).json()[
        "download_count"
    ] == 0

    rest = await client.get(path, headers={**me, "Range": "bytes=1000-", "If-Range": etag})
    assert rest.status_code == 206
    archive = first.content + rest.content
    assert len(archive) == size
    assert zipfile.ZipFile(io.BytesIO(archive)).read("data.bin") is not None
    await settled_share(client, headers, share["id"], download_count=1)
    [receipt] = await receipts(client, headers, share)
    assert receipt["completed"] is True
    assert receipt["bytes"] == size
    assert receipt["client"] == "127.0.0.0/24"
    assert receipt["user_agent"] == "test-client/resumer"
    assert receipt["recipient"] is None
    assert receipt["document_id"] is None


async def test_resuming_after_a_cut_connection(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    content = os.urandom(24 * MIB)
    document = await ready(headers, content, filename="big.bin")
    share = await create_share(client, headers, [document["id"]])
    path = f"{link_path(share)}/download"
    me = as_client("cut")

    received = bytearray()
    async with client.stream("GET", path, headers=me) as response:
        assert response.status_code == 200
        size = int(response.headers["content-length"])
        etag = response.headers["etag"]
        async for chunk in response.aiter_raw():
            received += chunk
            if len(received) >= MIB:
                break  # leaving the block drops the connection mid-body
    [cut] = await settled_receipts(client, headers, share, 1)
    assert cut["completed"] is False
    # What the server handed to the connection: at least what arrived, far from everything.
    assert len(received) <= cut["bytes"] < size
    await asyncio.sleep(0.2)
    assert (await client.get(f"/api/shares/{share['id']}", headers=headers)).json()[
        "download_count"
    ] == 0

    rest = await client.get(
        path, headers={**me, "Range": f"bytes={len(received)}-", "If-Range": etag}
    )
    assert rest.status_code == 206
    archive = bytes(received) + rest.content
    assert len(archive) == size
    assert zipfile.ZipFile(io.BytesIO(archive)).read("big.bin") == content
    await settled_share(client, headers, share["id"], download_count=1)
    [receipt] = await receipts(client, headers, share)
    assert receipt["completed"] is True


async def test_parallel_pieces_of_one_client_count_once(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers, os.urandom(300_000), filename="parallel.bin")
    share = await create_share(client, headers, [document["id"]])
    path = f"{link_path(share)}/download"
    me = as_client("accelerator")
    size = int((await client.head(path, headers=me)).headers["content-length"])
    bounds = [0, size // 4, size // 2, 3 * size // 4, size]
    pieces = await asyncio.gather(
        *[
            client.get(path, headers={**me, "Range": f"bytes={a}-{b - 1}"})
            for a, b in itertools.pairwise(bounds)
        ]
    )
    assert all(piece.status_code == 206 for piece in pieces)
    await settled_share(client, headers, share["id"], download_count=1)
    await asyncio.sleep(0.3)  # nothing more is coming
    shown = (await client.get(f"/api/shares/{share['id']}", headers=headers)).json()
    assert shown["download_count"] == 1
    [receipt] = await receipts(client, headers, share)
    assert receipt["completed"] is True
    assert receipt["bytes"] == size


async def test_each_whole_download_counts_and_views_are_separate(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers, b"counted\n" * 100)
    share = await create_share(client, headers, [document["id"]])
    path = link_path(share)
    await client.get(path)
    for name in ("a", "a", "b"):
        assert (await client.get(f"{path}/download", headers=as_client(name))).status_code == 200
        await asyncio.sleep(0.05)
    shown = await settled_share(client, headers, share["id"], download_count=3)
    assert shown["view_count"] == 1
    # HEAD, 304 and a refused range leave no receipt.
    etag = (await client.head(f"{path}/download")).headers["etag"]
    await client.get(f"{path}/download", headers={"If-None-Match": etag})
    await client.get(f"{path}/download", headers={"Range": "bytes=999999999-"})
    items = await receipts(client, headers, share)
    assert len(items) == 3
    assert all(item["completed"] for item in items)
    assert items == sorted(items, key=lambda item: item["at"], reverse=True)


async def test_max_downloads_stops_new_downloads_but_lets_one_under_way_finish(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers, os.urandom(100_000), filename="limited.bin")
    share = await create_share(client, headers, [document["id"]], max_downloads=1)
    path = f"{link_path(share)}/download"
    slow, fast, late = as_client("slow"), as_client("fast"), as_client("late")

    assert (await client.get(link_path(share))).json()["downloads_left"] == 1
    started = await client.get(path, headers={**slow, "Range": "bytes=0-99"})
    assert started.status_code == 206
    await settled_receipts(client, headers, share, 1)
    assert (await client.get(path, headers=fast)).status_code == 200
    await settled_share(client, headers, share["id"], download_count=1)

    # Used up: new downloads, the page and unlocking all answer as a dead link.
    assert (await client.get(path, headers=late)).status_code == 404
    assert (await client.get(link_path(share), headers=late)).status_code == 404
    assert (await client.get(path, headers=fast)).status_code == 404
    # The download under way may go on to its end...
    rest = await client.get(path, headers={**slow, "Range": "bytes=100-"})
    assert rest.status_code == 206
    whole = started.content + rest.content
    assert zipfile.ZipFile(io.BytesIO(whole)).testzip() is None
    shown = await settled_share(client, headers, share["id"], download_count=2)
    # ...and then it is over for that client too.
    assert (await client.get(path, headers=slow)).status_code == 404

    # Raising the limit opens the link again.
    await client.patch(f"/api/shares/{share['id']}", headers=headers, json={"max_downloads": 3})
    assert (await client.get(link_path(share))).json()["downloads_left"] == 1
    assert shown["max_downloads"] == 1


async def test_single_files_count_as_downloads_too(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    first = await ready(headers, b"first", filename="1.txt")
    second = await ready(headers, b"second", filename="2.txt")
    share = await create_share(client, headers, [first["id"], second["id"]], max_downloads=1)
    path = link_path(share)
    assert (await client.get(f"{path}/files/{first['id']}")).status_code == 200
    await settled_share(client, headers, share["id"], download_count=1)
    assert (await client.get(f"{path}/files/{second['id']}")).status_code == 404
    assert (await client.get(f"{path}/download")).status_code == 404
    [receipt] = await receipts(client, headers, share)
    assert receipt["document_id"] == first["id"]


async def test_receipts_are_paged_and_only_the_owners(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    for name in "abc":
        await client.get(f"{link_path(share)}/download", headers=as_client(name))
    await settled_receipts(client, headers, share, 3)
    page = await client.get(
        f"/api/shares/{share['id']}/downloads?limit=2&offset=1", headers=headers
    )
    body = page.json()
    assert (body["total"], body["limit"], body["offset"], len(body["items"])) == (3, 2, 1, 2)
    assert [item["user_agent"] for item in body["items"]] == ["test-client/b", "test-client/a"]
    stranger = await auth_headers(client)
    answer = await client.get(f"/api/shares/{share['id']}/downloads", headers=stranger)
    assert answer.status_code == 404
