"""Download a share's ZIP and compare it with a single-document download of the same bytes.

    uv run python -m benchmarks.share_zip [--small-count 1000] [--small-kib 32]
                                          [--large-count 4] [--large-mib 256] [--runs 3]
                                          [--database-url-base URL]

Starts `instashare serve --no-worker` on a private database and a temporary storage directory,
plus one `instashare worker` process to compress the uploads. Two sets of files, of random
(incompressible) bytes from a fixed seed, each uploaded twice, as the set and as one document
holding their concatenation:

  small: `--small-count` files of `--small-kib` KiB, shared as one link;
  large: `--large-count` files of `--large-mib` MiB, shared as one link.

Once every document is ready, a fresh `instashare serve --no-worker` process is started on the
same database and storage, so that the memory the uploads left behind does not count, and each
set is downloaded from it `--runs` times both ways, interleaved:
`GET /s/{token}/download` (the share's ZIP, one entry per file) and
`GET /api/documents/{id}/download` (the single document's ZIP, the same bytes in one entry).
The client streams and discards the body, counting bytes. For every download it prints wall
time, throughput (MB/s, 10^6 bytes) and the server's peak RSS during it (VmHWM, reset just
before; sampled VmRSS if the kernel refuses the reset). The small share's ZIP is unzipped once
and checked entry by entry. Targets: share throughput >= 0.8x the single download's (median of
the runs), server peak RSS < 150 MiB. Exit status 1 only if something was wrong (an upload
refused, a document failed, a wrong ZIP), never because of a figure.
Everything (processes, database, files) is removed afterwards, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import random
import secrets
import statistics
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
from tests.support.ports import free_port
from tests.support.processes import start_instashare, wait_until_serving

from benchmarks.support import (
    MIB,
    InstaShareServer,
    add_database_url_base_argument,
    mib,
    proc_status,
    reset_peak_rss,
    terminate_as_exit,
)
from benchmarks.upload import RssSampler

TARGET_RATIO = 0.8
TARGET_PEAK_RSS = 150 * MIB
BLOCK = MIB
TIMEOUT = httpx.Timeout(connect=10, read=600, write=600, pool=600)


@dataclass(frozen=True)
class FileSpec:
    name: str
    size: int
    seed: int

    def blocks(self) -> Iterator[bytes]:
        rng = random.Random(self.seed)
        left = self.size
        while left:
            block = rng.randbytes(min(BLOCK, left))
            left -= len(block)
            yield block


@dataclass
class Measured:
    label: str
    seconds: float
    size: int
    peak_rss: int

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6


def multipart(name: str, parts: Iterator[bytes]) -> tuple[dict[str, str], Iterator[bytes]]:
    boundary = f"bench-{secrets.token_hex(12)}"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail_bytes = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from parts
        yield tail_bytes

    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body()


async def upload(http: httpx.AsyncClient, token: str, name: str, parts: Iterator[bytes]) -> str:
    headers, body = multipart(name, parts)

    async def stream() -> AsyncIterator[bytes]:
        for piece in body:
            yield piece

    response = await http.post(
        "/api/documents",
        content=stream(),
        headers={**headers, "Authorization": f"Bearer {token}"},
    )
    if response.status_code != 202:
        raise RuntimeError(f"upload of {name} answered {response.status_code}: {response.text}")
    return str(response.json()["id"])


async def upload_set(
    http: httpx.AsyncClient, token: str, files: list[FileSpec], concurrency: int = 8
) -> tuple[list[str], str]:
    """Each file as a document (in order), then their concatenation as one more."""
    limit = asyncio.Semaphore(concurrency)

    async def one(spec: FileSpec) -> str:
        async with limit:
            return await upload(http, token, spec.name, spec.blocks())

    ids = await asyncio.gather(*[one(spec) for spec in files])
    concatenated = (block for spec in files for block in spec.blocks())
    single = await upload(http, token, f"all-{len(files)}.bin", concatenated)
    return list(ids), single


async def wait_ready(http: httpx.AsyncClient, token: str, expected: int, timeout: float) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout
    while True:
        failed = await http.get("/api/documents?status=failed&limit=1", headers=headers)
        if failed.json()["total"]:
            raise RuntimeError(f"{failed.json()['total']} document(s) failed to compress")
        ready = await http.get("/api/documents?status=ready&limit=1", headers=headers)
        if ready.json()["total"] >= expected:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {ready.json()['total']}/{expected} ready after {timeout}s")
        await asyncio.sleep(0.5)


async def share_link(http: httpx.AsyncClient, token: str, ids: list[str], title: str) -> str:
    response = await http.post(
        "/api/shares",
        json={"document_ids": ids, "title": title},
        headers={"Authorization": f"Bearer {token}"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"creating the share answered {response.status_code}: {response.text}")
    return str(httpx.URL(response.json()["url"]).path)


async def measure(
    http: httpx.AsyncClient, label: str, path: str, pid: int, headers: dict[str, str]
) -> Measured:
    hwm_reset = reset_peak_rss(pid)
    size = 0
    with RssSampler(pid) as sampler:
        started = time.perf_counter()
        async with http.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"{label} answered {response.status_code}")
            expected = int(response.headers["content-length"])
            async for chunk in response.aiter_raw(BLOCK):
                size += len(chunk)
        seconds = time.perf_counter() - started
    if size != expected:
        raise RuntimeError(f"{label}: {size} bytes received, {expected} announced")
    after = proc_status(pid)["VmHWM"]
    return Measured(label, seconds, size, after if hwm_reset else max(sampler.peak, after))


async def verify_small_share(http: httpx.AsyncClient, path: str, files: list[FileSpec]) -> None:
    archive = zipfile.ZipFile(io.BytesIO((await http.get(path)).content))
    names = archive.namelist()
    if names != [spec.name for spec in files]:
        raise RuntimeError("the share's ZIP does not hold the files in order")
    for spec in files:
        if archive.read(spec.name) != b"".join(spec.blocks()):
            raise RuntimeError(f"{spec.name} differs in the share's ZIP")


def report(results: list[Measured]) -> tuple[float, float]:
    for result in results:
        print(
            f"    {result.label:8} {result.size / MIB:9.1f} MiB  {result.seconds:7.3f} s  "
            f"{result.mb_per_s:8.1f} MB/s  server peak RSS {mib(result.peak_rss)}"
        )
    share = statistics.median(r.mb_per_s for r in results if r.label == "share")
    single = statistics.median(r.mb_per_s for r in results if r.label == "single")
    return share, single


@contextlib.contextmanager
def fresh_server(server: InstaShareServer) -> Iterator[tuple[str, int]]:
    """Another API process on the same database and storage: (base URL, pid)."""
    port = free_port()
    log = server.workdir / "fresh-server.log"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"]
    process = start_instashare(args, server.environment(), log, die_with_parent=True)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{base_url}/health", process, timeout=90)
        yield base_url, process.pid
    finally:
        process.stop()


@dataclass
class Prepared:
    token: str
    small: list[FileSpec]
    sets: list[tuple[str, str, str, int, float]]  # name, share link, single document id, files, MiB


async def prepare(args: argparse.Namespace, server: InstaShareServer) -> Prepared:
    _, token = server.register_and_login(f"share-{secrets.token_hex(4)}@bench.example")
    small = [
        FileSpec(f"small-{i:04d}.bin", args.small_kib * 1024, seed=i)
        for i in range(args.small_count)
    ]
    large = [
        FileSpec(f"large-{i}.bin", args.large_mib * MIB, seed=10_000 + i)
        for i in range(args.large_count)
    ]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as http:
        started = time.perf_counter()
        small_ids, small_single = await upload_set(http, token, small)
        large_ids, large_single = await upload_set(http, token, large, concurrency=2)
        total = len(small_ids) + len(large_ids) + 2
        await wait_ready(http, token, total, timeout=args.timeout)
        print(f"uploaded and compressed {total} documents in {time.perf_counter() - started:.1f} s")
        small_link = await share_link(http, token, small_ids, "small files")
        large_link = await share_link(http, token, large_ids, "large files")
    return Prepared(
        token,
        small,
        [
            ("small", small_link, small_single, len(small), args.small_kib / 1024),
            ("large", large_link, large_single, len(large), args.large_mib),
        ],
    )


async def compare(args: argparse.Namespace, prepared: Prepared, base_url: str, pid: int) -> bool:
    """Download every set both ways; True when the targets are met."""
    bearer = {"Authorization": f"Bearer {prepared.token}"}
    met = True
    peaks: list[tuple[str, int]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as http:
        idle = proc_status(pid)["VmRSS"]
        print(f"fresh API process (pid {pid}): RSS {mib(idle)} before any download")
        await verify_small_share(http, f"{prepared.sets[0][1]}/download", prepared.small)
        print("small share's ZIP verified entry by entry")
        for name, link, single, count, each_mib in prepared.sets:
            print(f"{name}: {count} files of {each_mib:g} MiB, {args.runs} run(s) each way")
            results: list[Measured] = []
            for _ in range(args.runs):
                single_path = f"/api/documents/{single}/download"
                results.append(await measure(http, "single", single_path, pid, bearer))
                results.append(await measure(http, "share", f"{link}/download", pid, {}))
            share_rate, single_rate = report(results)
            ratio = share_rate / single_rate
            ratio_met = ratio >= TARGET_RATIO
            met = met and ratio_met
            peaks += [(r.label, r.peak_rss) for r in results]
            print(
                f"  median: share {share_rate:.1f} MB/s, single {single_rate:.1f} MB/s, "
                f"ratio {ratio:.2f}x (target >= {TARGET_RATIO}x: "
                f"{'met' if ratio_met else 'NOT met'})"
            )
    peak = max(peak for _, peak in peaks)
    rss_met = peak < TARGET_PEAK_RSS
    for kind in ("single", "share"):
        kind_peak = max(peak for label, peak in peaks if label == kind)
        print(f"server peak RSS during {kind} downloads {mib(kind_peak)}")
    print(
        f"server peak RSS over all downloads {mib(peak)}, {mib(peak - idle)} above its idle RSS "
        f"(target < {mib(TARGET_PEAK_RSS)}: {'met' if rss_met else 'NOT met'})"
    )
    return met and rss_met


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--small-kib", type=int, default=32)
    parser.add_argument("--large-count", type=int, default=4)
    parser.add_argument("--large-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for ready")
    add_database_url_base_argument(parser)
    args = parser.parse_args()
    if min(args.small_count, args.small_kib, args.large_count, args.large_mib, args.runs) < 1:
        parser.error("every count and size must be positive")

    ok = True
    with terminate_as_exit(), InstaShareServer(args.database_url_base, "sharezip") as server:
        worker_log = server.workdir / "worker.log"
        worker = start_instashare(
            ["worker"], server.environment(), worker_log, die_with_parent=True
        )
        try:
            prepared = asyncio.run(prepare(args, server))
        except RuntimeError as exc:
            print(f"failed: {exc}\nserver log:\n{server.log_tail()}\nworker:\n{worker.tail()}")
            return 1
        finally:
            with contextlib.suppress(Exception):
                worker.stop()
        with fresh_server(server) as (base_url, pid):
            try:
                met = asyncio.run(compare(args, prepared, base_url, pid))
            except RuntimeError as exc:
                print(f"failed: {exc}")
                ok = False
            else:
                print("RESULT:", "targets met" if met else "targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
