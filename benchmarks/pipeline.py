"""Time many small uploads from the first request until every document is `ready` (compressed).

    uv run python -m benchmarks.pipeline [--count 1000] [--workers 2] [--concurrency 4]
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
import os
import random
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.cpu_meter import CpuMeter, CpuUse, print_cpu
from benchmarks.generated_text import Sample, make_files
from benchmarks.support import (
    InstaShareServer,
    add_database_url_base_argument,
    plain_dsn,
    terminate_as_exit,
)
from benchmarks.upload_traffic import (
    POLL_SECONDS,
    Progress,
    api_client,
    print_uploads,
    status_total,
    upload_all,
    verify_downloads,
    watch,
)
from benchmarks.workers import Workers

WORKER_READY_TIMEOUT = 60.0
APP_DEFAULT_CONCURRENCY = 2  # Settings.worker_concurrency


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
                print(f"worker log tail:\n{workers.log_tail()}")
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
            print(f"worker log tail:\n{workers.log_tail()}")
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
        prog="python -m benchmarks.pipeline",
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
    add_database_url_base_argument(parser)
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
