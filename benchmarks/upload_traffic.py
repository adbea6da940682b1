"""Many small uploads through the API, and polling the totals until every document settled."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from benchmarks.generated_text import Sample
from benchmarks.support import percentile
from benchmarks.workers import Workers

POLL_SECONDS = 0.2


@dataclass
class Progress:
    """Shared between the uploading and the polling coroutines of one phase."""

    expected: int
    uploaded: int = 0
    upload_errors: list[str] = field(default_factory=list)
    uploads_done: bool = False
    ids: dict[int, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    first_sent: float = 0.0
    last_answered: float = 0.0


@dataclass
class Watch:
    ready: int = 0
    failed: int = 0
    first_ready_at: float | None = None
    done_at: float | None = None
    failed_errors: list[str] = field(default_factory=list)


async def upload_all(
    client: httpx.AsyncClient,
    files: list[Sample],
    concurrency: int,
    progress: Progress,
    deadline: float,
) -> None:
    indexes = iter(range(len(files)))
    progress.first_sent = time.perf_counter()

    async def one_connection() -> None:
        for index in indexes:
            if time.perf_counter() > deadline:
                progress.upload_errors.append(f"{files[index].name}: not sent (timeout)")
                continue
            sample = files[index]
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/api/documents",
                    files={"file": (sample.name, sample.data, sample.content_type)},
                )
            except httpx.HTTPError as exc:
                progress.upload_errors.append(f"{sample.name}: {exc!r}")
                continue
            progress.latencies.append(time.perf_counter() - started)
            body = response.json() if response.status_code == 202 else {}
            if body.get("sha256") != sample.sha256 or body.get("size") != len(sample.data):
                progress.upload_errors.append(
                    f"{sample.name}: HTTP {response.status_code} {response.text[:200]}"
                )
                continue
            progress.ids[index] = str(body["id"])
            progress.uploaded += 1

    try:
        await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    finally:
        progress.last_answered = time.perf_counter()
        progress.uploads_done = True


async def status_total(client: httpx.AsyncClient, status: str) -> int:
    response = await client.get("/api/documents", params={"status": status, "limit": 1})
    response.raise_for_status()
    return int(response.json()["total"])


async def watch(
    client: httpx.AsyncClient,
    label: str,
    progress: Progress,
    started: float,
    deadline: float,
    progress_every: float,
    workers: Workers | None,
    on_first_ready: Callable[[], None] | None = None,
) -> Watch:
    """Poll the ready and failed totals until every accepted upload is one or the other."""
    result = Watch()
    next_print = started + progress_every
    while True:
        if workers is not None:
            workers.check_alive()
        result.ready = await status_total(client, "ready")
        result.failed = await status_total(client, "failed")
        now = time.perf_counter()
        if result.first_ready_at is None and result.ready:
            result.first_ready_at = now
            if on_first_ready is not None:
                on_first_ready()
        settled = result.ready + result.failed
        finished = progress.uploads_done and settled >= progress.uploaded
        if now >= next_print or finished:
            waiting = progress.uploaded - settled
            print(
                f"    [{label}] {now - started:6.1f} s: uploaded {progress.uploaded:>5}/"
                f"{progress.expected}, ready {result.ready:>5}, failed {result.failed}, "
                f"pending or processing {waiting}"
            )
            next_print = now + progress_every
        if finished:
            result.done_at = now
            break
        if now >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    if result.failed:
        response = await client.get("/api/documents", params={"status": "failed", "limit": 5})
        result.failed_errors = [f"{d['name']}: {d['error']}" for d in response.json()["items"]]
    return result


def api_client(base_url: str, token: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(60.0, connect=10.0),
    )


def print_uploads(progress: Progress) -> float:
    seconds = progress.last_answered - progress.first_sent
    latencies = sorted(progress.latencies)
    print(
        f"    upload phase: {progress.uploaded} accepted in {seconds:.2f} s = "
        f"{progress.uploaded / seconds:.1f} uploads/s; latency p50 "
        f"{percentile(latencies, 0.5) * 1e3:.1f} ms, p99 {percentile(latencies, 0.99) * 1e3:.1f} "
        f"ms, max {(latencies[-1] if latencies else float('nan')) * 1e3:.1f} ms"
    )
    for error in progress.upload_errors[:5]:
        print(f"    upload refused: {error}")
    return seconds


async def verify_downloads(base_url: str, samples: list[tuple[str, str, Sample]]) -> int:
    """Download, unzip and compare; returns how many were wrong."""
    wrong = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for token, document_id, sample in samples:
            response = await client.get(
                f"/api/documents/{document_id}/download",
                headers={"Authorization": f"Bearer {token}"},
            )
            problem = None
            if response.status_code != 200:
                problem = f"HTTP {response.status_code} {response.text[:200]}"
            else:
                try:
                    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
                        names = archive.namelist()
                        if names != [sample.name]:
                            problem = f"entries {names}"
                        elif archive.read(sample.name) != sample.data:
                            problem = "content differs"
                except zipfile.BadZipFile as exc:
                    problem = f"not a ZIP: {exc}"
            if problem:
                wrong += 1
                print(f"    {sample.name} ({document_id}): {problem}")
    return wrong
