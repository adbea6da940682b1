"""The whole pipeline with real processes: an API server and separate worker processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from tests.support.api import auth_headers
from tests.support.database import scratch_database
from tests.support.documents import unzip_single, upload
from tests.support.ports import free_port
from tests.support.processes import Process, instashare, wait_until_serving

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def environment(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("e2e")
    with scratch_database(database_url) as url:
        yield {
            "DATABASE_URL": url,
            "STORAGE_URL": (root / "storage").as_uri(),
            "INSTASHARE_ENV": "test",
            "LOG_JSON": "true",
            "PYTHONUNBUFFERED": "1",
            "AUTH_RATE_LIMIT_PER_MINUTE": "100000",
            "WORKER_CONCURRENCY": "2",
            "COMPRESS_HEARTBEAT_SECONDS": "6",
            "COMPRESS_MAX_ATTEMPTS": "3",
            "COMPRESS_RETRY_DELAY_SECONDS": "1",
            "COMPRESS_RETRY_BACKOFF_MAX_SECONDS": "2",
            "WORKER_SHUTDOWN_GRACE_SECONDS": "0",
            "_ROOT": str(root),
        }


@pytest.fixture(scope="module")
def api(environment: dict) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = Path(environment["_ROOT"]) / "api.log"
    with instashare(["serve", "--port", str(port), "--no-worker"], environment, log) as server:
        wait_until_serving(f"{base}/health", server)
        yield base


@pytest.fixture
def worker(environment: dict, tmp_path: Path) -> Callable[[str], AbstractContextManager[Process]]:
    def start(name: str) -> AbstractContextManager[Process]:
        return instashare(["worker"], environment, tmp_path / f"{name}.log")

    return start


@pytest.fixture
async def client(api: str) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=api, timeout=120) as http:
        yield http


async def wait_for_status(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    document_id: str,
    statuses: set[str],
    timeout: float = 90,
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        document = (await client.get(f"/api/documents/{document_id}", headers=headers)).json()
        if document["status"] in statuses:
            return dict(document)
        if time.monotonic() > deadline:
            raise AssertionError(f"still {document['status']} after {timeout} s: {document}")
        await asyncio.sleep(0.05)


async def wait_for_log(process: Process, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log():
        assert process.popen.poll() is None, process.log()
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{process.log()}"
        await asyncio.sleep(0.1)


def compressed_events(*workers: Process) -> Counter[str]:
    counts: Counter[str] = Counter()
    for process in workers:
        for line in process.log().splitlines():
            if line.startswith("{") and '"compressed"' in line:
                event = json.loads(line)
                if event.get("event") == "compressed":
                    counts[event["document_id"]] += 1
    return counts


async def test_upload_becomes_ready_and_downloads_exactly(
    client: httpx.AsyncClient,
    worker: Callable[[str], AbstractContextManager[Process]],
) -> None:
    headers = await auth_headers(client)
    files = {
        "notes.txt": b"the quick brown fox jumps over the lazy dog\n" * 20_000,
        "noise.bin": os.urandom(3 * 1024 * 1024),
        "empty.dat": b"",
    }
    documents = {}
    for name, content in files.items():
        response = await upload(client, headers, content, filename=name)
        assert response.status_code == 202
        documents[name] = response.json()
    # Nothing compresses without a worker: downloads are refused with the status.
    early = await client.get(
        f"/api/documents/{documents['notes.txt']['id']}/download", headers=headers
    )
    assert early.status_code == 409
    assert early.json()["status"] == "pending"

    with worker("w1"):
        for name, content in files.items():
            ready = await wait_for_status(client, headers, documents[name]["id"], {"ready"})
            assert ready["compressed_size"] > 0
            response = await client.get(f"/api/documents/{ready['id']}/download", headers=headers)
            assert response.status_code == 200
            assert unzip_single(response.content) == (name, content)

        notes = documents["notes.txt"]["id"]
        await client.patch(
            f"/api/documents/{notes}", headers=headers, json={"name": "Ünïcode notes.txt"}
        )
        renamed = await client.get(f"/api/documents/{notes}/download", headers=headers)
        assert unzip_single(renamed.content) == ("Ünïcode notes.txt", files["notes.txt"])
        assert (
            "filename*=UTF-8''%C3%9Cn%C3%AFcode%20notes.txt.zip"
            in renamed.headers["content-disposition"]
        )
        listing = (
            await client.get("/api/documents", headers=headers, params={"status": "ready"})
        ).json()
        assert listing["total"] == 3


async def test_a_worker_killed_mid_job_loses_nothing(
    client: httpx.AsyncClient,
    worker: Callable[[str], AbstractContextManager[Process]],
) -> None:
    headers = await auth_headers(client)
    # Big and incompressible enough that the job is still running when the worker dies.
    content = os.urandom(64 * 1024 * 1024) * 6
    response = await upload(client, headers, content, filename="big.bin")
    assert response.status_code == 202
    document_id = response.json()["id"]
    with worker("doomed") as doomed:
        await wait_for_status(client, headers, document_id, {"processing"}, timeout=60)
        await asyncio.sleep(0.3)
        doomed.kill()
    assert (await client.get(f"/api/documents/{document_id}", headers=headers)).json()[
        "status"
    ] == "processing"
    killed_at = time.monotonic()
    with worker("rescuer") as rescuer:
        ready = await wait_for_status(client, headers, document_id, {"ready"}, timeout=120)
        print(f"ready {time.monotonic() - killed_at:.1f} s after kill -9")
    assert compressed_events(rescuer)[document_id] == 1, rescuer.log()
    download = await client.get(f"/api/documents/{document_id}/download", headers=headers)
    name, data = unzip_single(download.content)
    assert name == "big.bin"
    assert hashlib.sha256(data).hexdigest() == ready["sha256"]


async def test_two_workers_compress_fifty_uploads_exactly_once(
    client: httpx.AsyncClient,
    worker: Callable[[str], AbstractContextManager[Process]],
) -> None:
    headers = await auth_headers(client)
    contents = [f"document {i}\n".encode() * (1000 + i * 37) for i in range(50)]
    with worker("a") as first, worker("b") as second:
        # Both must be up before the work arrives, or the first could take it all.
        await wait_for_log(first, "workers starting")
        await wait_for_log(second, "workers starting")
        responses = await asyncio.gather(
            *(upload(client, headers, c, filename=f"doc-{i}.txt") for i, c in enumerate(contents))
        )
        assert all(r.status_code == 202 for r in responses)
        ids = [r.json()["id"] for r in responses]
        for document_id in ids:
            await wait_for_status(client, headers, document_id, {"ready"}, timeout=120)
        counts = compressed_events(first, second)
    assert {document_id: counts[document_id] for document_id in ids} == dict.fromkeys(ids, 1)
    # Both workers took part.
    assert compressed_events(first)
    assert compressed_events(second)
    for i in (0, 25, 49):
        download = await client.get(f"/api/documents/{ids[i]}/download", headers=headers)
        assert unzip_single(download.content) == (f"doc-{i}.txt", contents[i])


async def test_a_job_that_always_fails_ends_failed_with_its_error(
    client: httpx.AsyncClient,
    worker: Callable[[str], AbstractContextManager[Process]],
    environment: dict,
) -> None:
    headers = await auth_headers(client)
    response = await upload(client, headers, b"doomed bytes", filename="cursed.txt")
    document_id = response.json()["id"]
    # Make every read of the original fail with an I/O error (a symlink loop), before any
    # worker sees it.
    original = Path(environment["_ROOT"]) / "storage" / "originals" / document_id
    original.unlink()
    original.symlink_to(original)
    with worker("w") as process:
        failed = await wait_for_status(client, headers, document_id, {"failed"}, timeout=120)
    assert failed["error"].startswith("compression failed")
    attempts = [
        line
        for line in process.log().splitlines()
        if '"compression attempt failed"' in line and document_id in line
    ]
    assert len(attempts) == 3, process.log()
    refused = await client.get(f"/api/documents/{document_id}/download", headers=headers)
    assert refused.status_code == 409
    assert refused.json()["status"] == "failed"
    original.unlink()
