"""Time many small uploads from the first request until every document is `ready` (compressed).

    uv run python benchmarks/pipeline.py [--count 1000] [--workers 2] [--concurrency 4]
                                         [--client-concurrency 16] [--timeout 600] [--verify 10]
                                         [--skip-baseline] [--database-url-base URL]

Starts `instashare serve --no-worker` on a private database and a temporary storage directory,
and `--workers` separate `instashare worker` processes (WORKER_CONCURRENCY=`--concurrency`
each). `--count` text-like files of 1-20 KiB (fixed seed) are uploaded with
`--client-concurrency` connections, and `GET /api/documents?status=ready&limit=1` (and
`status=failed`) is polled until every document is ready or failed. Three phases, each with its
own user:

  1. ingest only: the uploads while no worker runs (what the API alone sustains);
  2. compress only: the workers start and drain that backlog (what the workers alone sustain);
  3. pipeline: the same uploads again with the workers running - the headline figure: time from
     the first upload to the last document ready.

`--skip-baseline` runs phase 3 only. Afterwards a random sample of documents is downloaded and
unzipped and must hold exactly the uploaded bytes. Exit status 1 on a refused upload, a failed
document, a wrong download or documents not ready within `--timeout`; never because of a figure.
Everything (processes, database, files) is removed afterwards, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import itertools
import json
import math
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import (
    DEFAULT_DATABASE_URL_BASE,
    InstaShareServer,
    cpu_seconds,
    plain_dsn,
    start_process,
    stop_process,
    tail,
    terminate_as_exit,
)

POLL_SECONDS = 0.2
WORKER_READY_TIMEOUT = 60.0
APP_DEFAULT_CONCURRENCY = 2  # Settings.worker_concurrency


# ---------------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class Sample:
    name: str
    content_type: str
    data: bytes
    sha256: str


def make_files(count: int, min_bytes: int, max_bytes: int, seed: int) -> list[Sample]:
    """`count` distinct text-like files (logs, CSV, prose, JSON lines) of random sizes."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    letter_weights = list(
        itertools.accumulate([12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2] + [1] * 9)
    )
    words = [
        "".join(rng.choices(letters, cum_weights=letter_weights, k=rng.randint(2, 9)))
        for _ in range(2000)
    ]
    word_weights = list(itertools.accumulate(1 / (i + 1) for i in range(len(words))))

    def some_words(low: int, high: int) -> str:
        return " ".join(rng.choices(words, cum_weights=word_weights, k=rng.randint(low, high)))

    def log_line() -> str:
        level = rng.choice(["DEBUG", "INFO", "INFO", "WARN", "ERROR"])
        return (
            f"2024-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}Z {level} request_id={rng.getrandbits(32):08x} "
            f"{some_words(3, 12)}"
        )

    def csv_line() -> str:
        return (
            f"{rng.randint(1, 10**6)},{rng.choice(words)},{rng.uniform(0, 1000):.2f},"
            f"{rng.choice(['open', 'closed', 'pending'])},{some_words(1, 4)}"
        )

    def prose_line() -> str:
        return some_words(8, 30).capitalize() + "."

    def json_line() -> str:
        record = {"id": rng.randint(1, 10**9), "tag": rng.choice(words), "text": some_words(2, 8)}
        return json.dumps(record)

    styles = [
        ("log", "log", "text/plain", log_line),
        ("table", "csv", "text/csv", csv_line),
        ("notes", "txt", "text/plain", prose_line),
        ("events", "jsonl", "application/json", json_line),
    ]
    files = []
    for index in range(count):
        stem, extension, content_type, line = styles[index % len(styles)]
        size = rng.randint(min_bytes, max_bytes)
        parts: list[str] = []
        length = 0
        while length < size:
            parts.append(line())
            length += len(parts[-1]) + 1
        data = ("\n".join(parts) + "\n").encode()[:size]
        files.append(
            Sample(
                name=f"{stem}-{index:05d}.{extension}",
                content_type=content_type,
                data=data,
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    return files


# ---------------------------------------------------------------------------------------------
# CPU accounting


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


@dataclass
class CpuUse:
    """CPU seconds used during a phase, by who."""

    server: float = 0.0
    workers: float = 0.0
    client: float = 0.0
    machine: float = 0.0

    @property
    def other(self) -> float:
        return max(0.0, self.machine - self.server - self.workers - self.client)


class CpuMeter:
    def __init__(self, server_pid: int, worker_pids: Callable[[], list[int]]) -> None:
        self.server_pid, self.worker_pids = server_pid, worker_pids
        self.start = self._read()

    def _read(self) -> CpuUse:
        return CpuUse(
            server=_cpu_or_zero(self.server_pid),
            workers=sum(_cpu_or_zero(pid) for pid in self.worker_pids()),
            client=time.process_time(),
            machine=machine_busy_seconds(),
        )

    def restart(self) -> None:
        self.start = self._read()

    def used(self) -> CpuUse:
        now = self._read()
        return CpuUse(
            server=now.server - self.start.server,
            workers=now.workers - self.start.workers,
            client=now.client - self.start.client,
            machine=now.machine - self.start.machine,
        )


def print_cpu(cpu: CpuUse, seconds: float, documents: int) -> None:
    cores = os.cpu_count() or 1
    print(
        f"    CPU in cores: server {cpu.server / seconds:.2f}, "
        f"workers {cpu.workers / seconds:.2f}, client {cpu.client / seconds:.2f}, "
        f"other (PostgreSQL, system) {cpu.other / seconds:.2f}; "
        f"machine busy {cpu.machine / seconds:.2f} of {cores}"
    )
    per = 1000 / max(documents, 1)
    print(
        f"    CPU per document: server {cpu.server * per:.1f} ms, workers "
        f"{cpu.workers * per:.1f} ms, client {cpu.client * per:.1f} ms, other "
        f"{cpu.other * per:.1f} ms; machine {cpu.machine * per:.1f} ms"
    )


# ---------------------------------------------------------------------------------------------
# Workers


class Workers:
    """`--workers` separate `instashare worker` processes on the server's database and storage."""

    def __init__(self, server: InstaShareServer, count: int) -> None:
        self.server, self.count = server, count
        self.processes: list[subprocess.Popen[bytes]] = []
        self.log_paths = [server.workdir / f"worker-{i + 1}.log" for i in range(count)]

    def start(self) -> None:
        args = [sys.executable, "-m", "instashare", "worker"]
        env = self.server.environment()
        for log_path in self.log_paths:
            self.processes.append(start_process(args, env, log_path))

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def check_alive(self) -> None:
        for process, log_path in zip(self.processes, self.log_paths, strict=False):
            if process.poll() is not None:
                raise RuntimeError(
                    f"worker pid {process.pid} exited with {process.returncode}:\n{tail(log_path)}"
                )

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.terminate()
        for process in self.processes:
            try:
                stop_process(process)
            except Exception as exc:
                print(f"cleanup warning: stopping worker {process.pid}: {exc!r}", file=sys.stderr)

    async def wait_until_listening(self, dsn: str, timeout: float) -> float | None:
        """Seconds until every worker waits for jobs (a LISTEN backend each); None on timeout.

        An idle SAQ worker process keeps one connection on LISTEN for new jobs; with a backlog
        it does not listen until the queue is empty, so this is only used on an empty queue.
        """
        import asyncpg

        started = time.perf_counter()
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            while time.perf_counter() - started < timeout:
                self.check_alive()
                listening = await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                )
                if listening >= self.count:
                    return time.perf_counter() - started
                await asyncio.sleep(0.1)
        finally:
            await connection.close()
        return None


# ---------------------------------------------------------------------------------------------
# Uploading and watching


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


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


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


# ---------------------------------------------------------------------------------------------
# Phases


@dataclass
class PhaseResult:
    ok: bool
    upload_seconds: float = 0.0
    settle_seconds: float | None = None  # pipeline: first upload -> all ready
    cpu: CpuUse | None = None
    ids: dict[int, str] = field(default_factory=dict)


async def ingest_only(
    server: InstaShareServer, token: str, files: list[Sample], args: argparse.Namespace
) -> PhaseResult:
    print(f"phase 1, ingest only: {len(files)} uploads, no worker running")
    meter = CpuMeter(server.pid, list)
    progress = Progress(expected=len(files))
    async with api_client(server.base_url, token, args.client_concurrency) as client:
        await upload_all(
            client, files, args.client_concurrency, progress, time.perf_counter() + args.timeout
        )
        seconds = print_uploads(progress)
        cpu = meter.used()
        ready = await status_total(client, "ready")
    print_cpu(cpu, seconds, progress.uploaded)
    print(f"    documents ready after the phase: {ready} (expected 0: no worker ran)")
    return PhaseResult(
        ok=not progress.upload_errors, upload_seconds=seconds, cpu=cpu, ids=progress.ids
    )


async def compress_only(
    server: InstaShareServer,
    token: str,
    workers: Workers,
    backlog: int,
    args: argparse.Namespace,
) -> PhaseResult:
    print(
        f"phase 2, compress only: {args.workers} worker process(es) start on a backlog of {backlog}"
    )
    progress = Progress(expected=backlog, uploaded=backlog, uploads_done=True)
    async with api_client(server.base_url, token, 2) as client:
        meter = CpuMeter(server.pid, workers.pids)
        started = time.perf_counter()
        workers.start()
        result = await watch(
            client,
            "compress",
            progress,
            started,
            started + args.timeout,
            args.progress_every,
            workers,
            on_first_ready=meter.restart,  # leave the workers' startup out of the CPU figures
        )
        cpu = meter.used()
    if result.done_at is None or result.first_ready_at is None:
        print(f"    NOT all ready within {args.timeout:.0f} s: {result.ready} ready")
        return PhaseResult(ok=False)
    startup = result.first_ready_at - started
    draining = result.done_at - result.first_ready_at
    print(
        f"    workers started -> first document ready: {startup:.2f} s (process start, imports, "
        "connecting)"
    )
    print(
        f"    first -> last document ready: {draining:.2f} s = "
        f"{max(backlog - 1, 1) / draining:.1f} documents/s compressed"
    )
    print(f"    failed: {result.failed}")
    for error in result.failed_errors:
        print(f"    failed: {error}")
    print_cpu(cpu, draining, backlog)
    return PhaseResult(ok=result.failed == 0, settle_seconds=draining, cpu=cpu)


async def pipeline(
    server: InstaShareServer,
    token: str,
    workers: Workers,
    files: list[Sample],
    args: argparse.Namespace,
) -> PhaseResult:
    print(f"phase 3, pipeline: {len(files)} uploads while {args.workers} worker process(es) run")
    waited = await workers.wait_until_listening(
        plain_dsn(server.database_url), WORKER_READY_TIMEOUT
    )
    if waited is None:
        print("    warning: could not see every worker waiting for jobs; starting anyway")
    progress = Progress(expected=len(files))
    async with (
        api_client(server.base_url, token, args.client_concurrency) as uploads,
        api_client(server.base_url, token, 2) as polls,
    ):
        meter = CpuMeter(server.pid, workers.pids)
        started = time.perf_counter()
        deadline = started + args.timeout
        uploading = asyncio.create_task(
            upload_all(uploads, files, args.client_concurrency, progress, deadline)
        )
        try:
            result = await watch(
                polls, "pipeline", progress, started, deadline, args.progress_every, workers
            )
        finally:
            if not uploading.done():
                uploading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await uploading
        cpu = meter.used()
    upload_seconds = print_uploads(progress)
    ok = not progress.upload_errors
    if result.done_at is None:
        print(
            f"    NOT all ready within {args.timeout:.0f} s: {result.ready} ready, "
            f"{result.failed} failed of {progress.uploaded}"
        )
        return PhaseResult(ok=False, upload_seconds=upload_seconds, ids=progress.ids)
    total = result.done_at - progress.first_sent
    after = result.done_at - progress.last_answered
    first = (result.first_ready_at or result.done_at) - progress.first_sent
    print(f"    first upload -> first document ready: {first:.2f} s")
    print(f"    first upload -> all {progress.uploaded} ready: {total:.2f} s")
    print(f"    last upload answered -> all ready: {after:.2f} s")
    print(
        f"    documents ready per second overall: {result.ready / total:.1f}; wall time per "
        f"document: {total / max(progress.uploaded, 1) * 1e3:.1f} ms"
    )
    print(f"    failed: {result.failed}")
    for error in result.failed_errors:
        print(f"    failed: {error}")
    print_cpu(cpu, total, progress.uploaded)
    return PhaseResult(
        ok=ok and result.failed == 0,
        upload_seconds=upload_seconds,
        settle_seconds=total,
        cpu=cpu,
        ids=progress.ids,
    )


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


# ---------------------------------------------------------------------------------------------


async def run(server: InstaShareServer, files: list[Sample], args: argparse.Namespace) -> bool:
    workers = Workers(server, args.workers)
    ok = True
    downloadable: list[tuple[str, str, Sample]] = []
    baseline_upload = baseline_drain = None
    try:
        if not args.skip_baseline:
            _, token_a = server.register_and_login(f"ingest-{secrets.token_hex(4)}@bench.example")
            ingest = await ingest_only(server, token_a, files, args)
            ok &= ingest.ok
            baseline_upload = ingest.upload_seconds
            drain = await compress_only(server, token_a, workers, len(ingest.ids), args)
            ok &= drain.ok
            baseline_drain = drain.settle_seconds
            if not drain.ok:
                print(f"worker log tail:\n{tail(workers.log_paths[0])}")
                return False
            downloadable += [(token_a, i, files[n]) for n, i in ingest.ids.items()]
        else:
            workers.start()
        _, token_b = server.register_and_login(f"pipeline-{secrets.token_hex(4)}@bench.example")
        result = await pipeline(server, token_b, workers, files, args)
        ok &= result.ok
        if result.settle_seconds is not None:
            downloadable += [(token_b, i, files[n]) for n, i in result.ids.items()]
        else:
            print(f"worker log tail:\n{tail(workers.log_paths[0])}")
    finally:
        workers.stop()
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for path in [server.log_path, *workers.log_paths]:
                with contextlib.suppress(OSError):
                    shutil.copy(path, args.keep_logs / path.name)

    if args.verify and downloadable:
        sample = random.Random(args.seed + 1).sample(
            downloadable, min(args.verify, len(downloadable))
        )
        wrong = await verify_downloads(server.base_url, sample)
        print(
            f"downloads verified: {len(sample) - wrong}/{len(sample)} random documents unzip to "
            "exactly the uploaded bytes under the uploaded name"
        )
        ok &= wrong == 0

    print("summary:")
    if result.settle_seconds is not None:
        print(
            f"  pipeline: {len(result.ids)} uploads -> all ready in "
            f"{result.settle_seconds:.2f} s ({len(result.ids) / result.settle_seconds:.1f} "
            f"documents/s, {result.settle_seconds / max(len(result.ids), 1) * 1e3:.1f} ms wall "
            "per document)"
        )
    if baseline_upload is not None and baseline_drain is not None:
        sequential = baseline_upload + baseline_drain
        print(
            f"  reference: ingest alone {baseline_upload:.2f} s + compression alone "
            f"{baseline_drain:.2f} s = {sequential:.2f} s one after the other"
        )
        if result.settle_seconds is not None:
            print(
                f"  pipeline / (ingest + compression one after the other) = "
                f"{result.settle_seconds / sequential:.2f} (below 1: overlapping them paid off; "
                f"the floor is the slower of the two, "
                f"{max(baseline_upload, baseline_drain) / sequential:.2f})"
            )
    print("RESULT:", "all documents ready and verified" if ok else "something went WRONG")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=1000, help="uploads per phase")
    parser.add_argument("--workers", type=int, default=2, help="`instashare worker` processes")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="WORKER_CONCURRENCY: jobs per worker process"
    )
    parser.add_argument(
        "--client-concurrency", type=int, default=16, help="uploads in flight at once"
    )
    parser.add_argument("--min-kib", type=int, default=1, help="smallest file")
    parser.add_argument("--max-kib", type=int, default=20, help="largest file")
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds per phase before giving up"
    )
    parser.add_argument("--progress-every", type=float, default=5, help="seconds between lines")
    parser.add_argument("--verify", type=int, default=10, help="documents to download and check")
    parser.add_argument("--seed", type=int, default=1, help="of the generated files")
    parser.add_argument("--skip-baseline", action="store_true", help="run the pipeline phase only")
    parser.add_argument(
        "--log-level", default="WARNING", help="LOG_LEVEL of the server and the workers"
    )
    parser.add_argument(
        "--keep-logs", type=Path, help="copy the server and worker logs into this directory"
    )
    parser.add_argument(
        "--database-url-base",
        default=DEFAULT_DATABASE_URL_BASE,
        help="PostgreSQL server URL without a database; a bench database is created and dropped",
    )
    args = parser.parse_args()
    if min(args.count, args.workers, args.concurrency, args.client_concurrency) < 1:
        parser.error("--count, --workers, --concurrency and --client-concurrency must be >= 1")
    if not 1 <= args.min_kib <= args.max_kib:
        parser.error("need 1 <= --min-kib <= --max-kib")

    started = time.perf_counter()
    files = make_files(args.count, args.min_kib * 1024, args.max_kib * 1024, args.seed)
    total = sum(len(f.data) for f in files)
    print(
        f"files: {len(files)} text-like files (logs, CSV, prose, JSON lines), "
        f"{args.min_kib}-{args.max_kib} KiB, {total / len(files) / 1024:.1f} KiB on average, "
        f"{total / 2**20:.1f} MiB in all, seed {args.seed}, generated in "
        f"{time.perf_counter() - started:.1f} s"
    )
    print(
        f"setup: 1 API process (serve --no-worker) + {args.workers} worker process(es) with "
        f"WORKER_CONCURRENCY={args.concurrency} (application default {APP_DEFAULT_CONCURRENCY}) "
        f"= {args.workers * args.concurrency} jobs at once; client: httpx, "
        f"{args.client_concurrency} uploads in flight; {os.cpu_count()} CPU cores; "
        f"LOG_LEVEL={args.log_level}"
    )
    print(
        f"polling GET /api/documents?status=ready|failed&limit=1 every {POLL_SECONDS} s; "
        f"each phase gives up after {args.timeout:.0f} s"
    )
    with (
        terminate_as_exit(),
        InstaShareServer(
            args.database_url_base,
            "pipeline",
            extra_env={"WORKER_CONCURRENCY": str(args.concurrency), "LOG_LEVEL": args.log_level},
        ) as server,
    ):
        print(f"server: pid {server.pid}, {server.base_url}, database {server.database}")
        ok = asyncio.run(run(server, files, args))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
