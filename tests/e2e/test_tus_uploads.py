"""Resumable uploads against real `instashare serve` processes, on local storage and on S3.

Standard clients (tuspy; tus-js-client under Node) upload unmodified; connections are cut mid
chunk and the server is killed with SIGKILL mid-upload, and the uploads continue to exact bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import queue
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from tests.conftest import S3_BUCKET
from tests.s3_server import MotoS3
from tests.support.database import scratch_database
from tests.support.documents import unzip_single
from tests.support.ports import free_port
from tests.support.processes import ROOT, Process, start_instashare, wait_until_serving
from tests.support.tus import TUS, sha256_checksum
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from instashare.config import Settings
from instashare.db import session_maker
from instashare.storage import Storage
from instashare.uploads.jobs import sweep_uploads

pytestmark = pytest.mark.timeout(600)
MIB = 1 << 20
QUOTA = 100 * MIB
TUS_JS = ROOT / "tests" / "e2e" / "tus_js"


@dataclass
class TusServer:
    """`instashare serve` (with its workers) on one storage; can be killed and started again."""

    kind: str
    env: dict[str, str]
    settings: Settings
    workdir: Path
    leftovers: Callable[[], list[str]]
    port: int = field(default_factory=free_port)
    process: Process | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = self.workdir / f"serve-{self.starts}.log"
        self.process = start_instashare(["serve", "--port", str(self.port)], self.env, log)
        wait_until_serving(f"{self.base}/health", self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self) -> None:
        """A clean stop and start: before a test kills the process, the coverage the earlier
        tests measured in it is written out (a killed process writes nothing)."""
        self.stop()
        self.start()

    def account(self) -> dict[str, str]:
        credentials = {"email": f"tus-{uuid4().hex[:10]}@example.com", "password": "x" * 12}
        assert httpx.post(f"{self.base}/api/auth/register", json=credentials).status_code == 201
        token = httpx.post(f"{self.base}/api/auth/login", json=credentials).json()["access_token"]
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module", params=["file", "s3"])
def server(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TusServer]:
    workdir = tmp_path_factory.mktemp(f"tus-{request.param}")
    storage_env: dict[str, str]
    if request.param == "file":
        root = workdir / "storage"
        storage_env = {"STORAGE_URL": root.as_uri()}

        def leftovers() -> list[str]:
            scratch = root / "uploads"
            return sorted(str(p) for p in scratch.rglob("*") if p.is_file())
    else:
        moto: MotoS3 = request.getfixturevalue("moto")
        prefix = f"tus-{uuid4().hex}"
        storage_env = {
            "STORAGE_URL": f"s3://{S3_BUCKET}/{prefix}",
            "S3_ENDPOINT_URL": moto.endpoint,
            "S3_REGION": moto.region,
            "S3_ACCESS_KEY_ID": moto.access_key_id,
            "S3_SECRET_ACCESS_KEY": moto.secret_access_key,
        }
        s3 = moto.client()

        def leftovers() -> list[str]:
            listed = s3.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"{prefix}/uploads/")
            objects = [item["Key"] for item in listed.get("Contents", [])]
            return objects + moto.incomplete_uploads(S3_BUCKET, f"{prefix}/")

    with scratch_database(database_url) as url:
        env = {
            "DATABASE_URL": url,
            "INSTASHARE_ENV": "test",
            "USER_QUOTA_BYTES": str(QUOTA),
            "AUTH_RATE_LIMIT_PER_MINUTE": "100000",
            "WORKER_CONCURRENCY": "2",
            "WORKER_SHUTDOWN_GRACE_SECONDS": "0",
            "LOG_JSON": "true",
            "PYTHONUNBUFFERED": "1",
            **storage_env,
        }
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            **{key.lower(): value for key, value in env.items()},
        )
        handle = TusServer(request.param, env, settings, workdir, leftovers)
        handle.start()
        try:
            yield handle
        finally:
            handle.stop()


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def uploader(server: TusServer, headers: dict[str, str], data: bytes, **options):
    tus = tus_client.TusClient(f"{server.base}/api/uploads", headers=headers)
    options.setdefault("chunk_size", 5 * MIB)
    options.setdefault("metadata", {"filename": "big.bin", "filetype": "application/octet-stream"})
    return tus.uploader(file_stream=io.BytesIO(data), **options)


def head(server: TusServer, headers: dict[str, str], url: str) -> httpx.Response:
    return httpx.head(
        url if url.startswith("http") else server.base + url, headers={**headers, **TUS}
    )


def assert_document_holds(
    server: TusServer, headers: dict[str, str], document_id: str, data: bytes
) -> None:
    """Compressed by the server's workers, downloaded as a ZIP: exactly ``data``."""
    path = f"{server.base}/api/documents/{document_id}"
    deadline = time.monotonic() + 180
    while (document := httpx.get(path, headers=headers).json())["status"] != "ready":
        assert document["status"] in {"pending", "processing"}, document
        assert time.monotonic() < deadline, "the document was not compressed in time"
        time.sleep(0.3)
    assert document["sha256"] == hashlib.sha256(data).hexdigest()
    assert document["size"] == len(data)
    download = httpx.get(f"{path}/download", headers=headers, timeout=120)
    assert download.status_code == 200
    assert unzip_single(download.content)[1] == data


def test_tuspy_uploads_64_mib_in_5_mib_chunks_exactly(server: TusServer) -> None:
    headers = server.account()
    data = random_bytes(64 * MIB, seed=1)
    upload = uploader(server, headers, data, upload_checksum=True)
    upload.upload()
    answer = head(server, headers, upload.url)
    assert answer.headers["upload-offset"] == str(len(data))
    assert_document_holds(server, headers, answer.headers["document-id"], data)
    assert server.leftovers() == []


def test_a_connection_cut_mid_chunk_keeps_what_arrived_and_the_upload_resumes(
    server: TusServer,
) -> None:
    headers = server.account()
    data = random_bytes(17 * MIB + 5, seed=2)
    created = httpx.post(
        f"{server.base}/api/uploads",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": "filename Y3V0LmJpbg==",
        },
    )
    url = created.headers["location"]
    sent = 6 * MIB + 12345
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        request = (
            f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {headers['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {8 * MIB}\r\n\r\n"
        ).encode()
        connection.sendall(request + data[:sent])
    # The server keeps what arrived before the connection dropped.
    deadline = time.monotonic() + 30
    while (offset := int(head(server, headers, url).headers["upload-offset"])) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert 0 < offset <= sent
    resumed = uploader(server, headers, data, url=server.base + url)
    assert resumed.offset == offset
    resumed.upload()
    assert_document_holds(server, headers, head(server, headers, url).headers["document-id"], data)
    assert server.leftovers() == []


def test_kill_9_mid_upload_then_the_same_client_resumes_after_a_restart(
    server: TusServer,
) -> None:
    server.restart()
    headers = server.account()
    data = random_bytes(23 * MIB + 7, seed=3)
    upload = uploader(server, headers, data, upload_checksum=True)
    upload.upload(stop_at=15 * MIB)
    assert upload.offset == 15 * MIB
    path = upload.url.removeprefix(server.base)
    # A chunk is arriving when the process dies.
    connection = socket.create_connection(("127.0.0.1", server.port))
    connection.sendall(
        (
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {headers['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
            "Content-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {15 * MIB}\r\nContent-Length: {5 * MIB}\r\n\r\n"
        ).encode()
        + data[15 * MIB : 18 * MIB]
    )
    time.sleep(1.0)
    server.kill()
    connection.close()
    server.start()
    # Only checkpointed bytes count; the dead request's bytes are ignored (and overwritten).
    assert int(head(server, headers, upload.url).headers["upload-offset"]) == 15 * MIB
    upload.offset = upload.get_offset()
    upload.upload()
    answer = head(server, headers, upload.url)
    assert answer.headers["upload-offset"] == str(len(data))
    assert_document_holds(server, headers, answer.headers["document-id"], data)
    assert server.leftovers() == []


def test_a_chunk_with_a_wrong_checksum_is_refused_and_sent_again(server: TusServer) -> None:
    headers = server.account()
    data = random_bytes(9 * MIB + 100, seed=4)  # over one S3 part: a part goes out mid-chunk
    created = httpx.post(
        f"{server.base}/api/uploads",
        headers={
            **headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": "filename eA==",
        },
    )
    url = server.base + created.headers["location"]
    chunk = {
        **headers,
        **TUS,
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0",
    }
    damaged = data[:-1] + b"\x00"
    refused = httpx.patch(
        url,
        headers={**chunk, "Upload-Checksum": sha256_checksum(data)},
        content=damaged,
        timeout=60,
    )
    assert refused.status_code == 460
    assert int(head(server, headers, url).headers["upload-offset"]) == 0
    if server.kind == "s3":
        assert server.leftovers() == []  # the part sent for the refused chunk was not kept
    accepted = httpx.patch(
        url, headers={**chunk, "Upload-Checksum": sha256_checksum(data)}, content=data, timeout=60
    )
    assert accepted.status_code == 204
    assert_document_holds(server, headers, accepted.headers["document-id"], data)


def test_two_parallel_uploads_against_a_quota_that_fits_one(server: TusServer) -> None:
    headers = server.account()
    data = random_bytes(60 * MIB, seed=5)
    outcomes: list[object] = []

    def run() -> None:
        try:
            upload = uploader(server, headers, data)
            upload.upload()
            outcomes.append(head(server, headers, upload.url).headers["document-id"])
        except TusCommunicationError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    errors = [o for o in outcomes if isinstance(o, TusCommunicationError)]
    documents = [o for o in outcomes if isinstance(o, str)]
    assert len(errors) == 1, outcomes
    assert len(documents) == 1, outcomes
    assert errors[0].status_code == 413
    listed = httpx.get(f"{server.base}/api/documents", headers=headers).json()
    assert [item["id"] for item in listed["items"]] == documents


def test_termination_and_expiry_leave_nothing_behind(server: TusServer) -> None:
    headers = server.account()
    data = random_bytes(12 * MIB, seed=6)

    def partial_upload() -> str:
        upload = uploader(server, headers, data)
        upload.upload(stop_at=10 * MIB)  # S3: one part and a tail object
        assert server.leftovers() != []
        return str(upload.url)

    terminated = partial_upload()
    assert httpx.delete(terminated, headers={**headers, **TUS}).status_code == 204
    assert head(server, headers, terminated).status_code == 404
    assert server.leftovers() == []

    expired = partial_upload()
    upload_id = UUID(expired.rsplit("/", 1)[1])

    async def expire_now() -> int:
        engine = create_async_engine(server.settings.database_url, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("UPDATE upload SET expires_at = now() WHERE id = :id"), {"id": upload_id}
                )
            storage = Storage.from_settings(server.settings.storage_settings())
            context = {
                "settings": server.settings,
                "engine": engine,
                "sessions": session_maker(engine),
                "storage": storage,
                "queue": None,
            }
            try:
                return await sweep_uploads(context)  # type: ignore[arg-type]
            finally:
                await storage.close()
        finally:
            await engine.dispose()

    assert asyncio.run(expire_now()) >= 1
    assert head(server, headers, expired).status_code == 404
    assert server.leftovers() == []
    # Both reservations were released: the whole quota can be reserved again.
    whole = httpx.post(
        f"{server.base}/api/uploads",
        headers={**headers, **TUS, "Upload-Length": str(QUOTA), "Upload-Metadata": "filename eA=="},
    )
    assert whole.status_code == 201


@pytest.fixture(scope="session")
def tus_js() -> Path:
    """tus-js-client as pinned in package-lock.json. Missing Node or npm fails the test: the
    check that a standard browser-side client works must not silently disappear."""
    npm, node = shutil.which("npm"), shutil.which("node")
    assert npm, "npm is needed for the tus-js-client test"
    assert node, "Node.js is needed for the tus-js-client test"
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=TUS_JS,
        check=True,
        timeout=300,
    )
    return Path(node)


def test_tus_js_client_uploads_and_resumes_after_a_server_crash(
    server: TusServer, tus_js: Path, tmp_path: Path
) -> None:
    server.restart()
    headers = server.account()
    data = random_bytes(21 * MIB + 3, seed=7)
    source = tmp_path / "from-node.bin"
    source.write_bytes(data)
    token = headers["Authorization"].removeprefix("Bearer ")
    node = subprocess.Popen(
        [str(tus_js), "upload.mjs", f"{server.base}/api/uploads", token, str(source)],
        cwd=TUS_JS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in node.stdout], daemon=True).start()  # type: ignore[union-attr]
    crashed = False
    result: dict[str, object] = {}
    deadline = time.monotonic() + 240
    while not result:
        assert time.monotonic() < deadline, "tus-js-client did not finish"
        try:
            event = json.loads(lines.get(timeout=1))
        except queue.Empty:
            assert node.poll() is None, node.stderr.read()  # type: ignore[union-attr]
            continue
        if not crashed and event.get("progress", 0) >= 7 * MIB:
            server.kill()  # in the middle of the second chunk
            crashed = True
            server.start()
        if event.get("done"):
            result = event
    assert node.wait(timeout=30) == 0
    assert crashed
    assert_document_holds(server, headers, str(result["documentId"]), data)
    assert server.leftovers() == []
