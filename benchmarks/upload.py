"""Upload one large file through a real InstaShare server and compare with a bare streaming server.

    uv run python -m benchmarks.upload [--size-mib 1024] [--runs 3] [--chunk-kib 1024]
                                       [--mode both|multipart|tus] [--tus-size-mib 256]
                                       [--tus-chunk-mib 8] [--skip-baseline]
                                       [--database-url-base URL]

A file of random bytes is generated in a temporary directory (its sha256 computed on the way).
It is then POSTed as `multipart/form-data` (field `file`), streamed from disk by the client with a
Content-Length, to

  1. a bare raw-ASGI app (benchmarks/bare_upload.py) under uvicorn (same uvicorn settings as
     `instashare serve`) that appends the body chunks to a file: no parsing, no hashing - the
     baseline;
  2. `instashare serve --no-worker` on a private database and a temporary storage directory.

Both servers run side by side; each gets `--runs` uploads, interleaved, with dirty pages written
out (`sync`) before each. For every upload it prints wall time, throughput, server and client CPU
time, and the server's RSS before the upload and its peak during it (VmHWM from /proc, reset just
before the upload). InstaShare must answer 202 with the file's size and sha256. Targets: peak RSS
< 150 MiB, median throughput >= 0.5x the baseline's.

The tus run (`--mode tus`, or both) sends a `--tus-size-mib` file as a resumable upload: POST to
create it, then one PATCH per `--tus-chunk-mib` chunk (benchmarks/tus_upload.py); the baseline
sink gets the same chunks as plain POSTs. The document must end with the file's size and sha256.
Same figures and targets.
Everything (servers, database, files) is removed afterwards, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.support.processes import start_process, wait_until_serving

from benchmarks import tus_upload
from benchmarks.support import (
    MIB,
    STOP_TIMEOUT,
    InstaShareServer,
    ServerProcess,
    add_database_url_base_argument,
    cpu_seconds,
    mib,
    proc_status,
    reset_peak_rss,
    terminate_as_exit,
)

TARGET_PEAK_RSS = 150 * MIB
TARGET_THROUGHPUT_RATIO = 0.5
FILE_NAME = "bench-upload.bin"


@dataclass
class Result:
    label: str
    status: int
    body: object
    seconds: float
    size: int
    rss_before: int
    hwm_startup: int
    peak_rss: int
    peak_is_hwm: bool
    server_cpu: float
    client_cpu: float

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6


class BareUploadServer(ServerProcess):
    """The baseline app (benchmarks.bare_upload) in its own process, served by uvicorn with
    `instashare serve`'s settings."""

    def __init__(self, label: str = "bare") -> None:
        super().__init__(label)

    def start(self) -> None:
        (self.workdir / "bodies").mkdir()
        args = [sys.executable, "-m", "benchmarks.bare_upload"]
        args += ["--port", str(self.port), "--dir", str(self.workdir / "bodies")]
        self.process = start_process(args, {}, self.log_path, die_with_parent=True)
        wait_until_serving(f"{self.base_url}/", self.process, timeout=30)

    def close(self) -> None:
        if self.process is not None:
            self.process.stop(STOP_TIMEOUT)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def clear_bodies(self) -> None:
        for path in (self.workdir / "bodies").iterdir():
            path.unlink()


def generate(path: Path, size: int) -> str:
    """Write `size` random bytes (1 MiB blocks; constant memory) and return their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(MIB, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


class Multipart:
    """The framing of a one-file form; the file's bytes are read from disk while sending."""

    def __init__(self, path: Path, chunk: int) -> None:
        self.path = path
        self.chunk = chunk
        self.boundary = f"instashare-bench-{secrets.token_hex(12)}"
        self.head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{FILE_NAME}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.length = len(self.head) + path.stat().st_size + len(self.tail)

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(self.length),
        }

    def body(self) -> Iterator[bytes]:
        yield self.head
        with self.path.open("rb") as source:
            while block := source.read(self.chunk):
                yield block
        yield self.tail


class RssSampler:
    """Polls VmRSS; the fallback peak when the kernel refuses to reset VmHWM."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            except (OSError, KeyError):
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def upload(label: str, url: str, pid: int, form: Multipart, token: str | None) -> Result:
    headers = form.headers
    if token:
        headers["Authorization"] = f"Bearer {token}"

    def send(client: httpx.Client) -> tuple[int, object]:
        response = client.post(url, content=form.body(), headers=headers)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text[:500]

    return measured(label, pid, form.path.stat().st_size, send)


def measured(
    label: str, pid: int, size: int, send: Callable[[httpx.Client], tuple[int, object]]
) -> Result:
    """Time ``send`` and take the server's CPU and memory figures around it."""
    before = proc_status(pid)
    hwm_reset = reset_peak_rss(pid)
    timeout = httpx.Timeout(connect=10, read=600, write=600, pool=10)
    with httpx.Client(timeout=timeout) as client, RssSampler(pid) as sampler:
        cpu0, client0 = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        status, body = send(client)
        seconds = time.perf_counter() - started
        cpu1, client1 = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
    after = proc_status(pid)
    return Result(
        label=label,
        status=status,
        body=body,
        seconds=seconds,
        size=size,
        rss_before=before["VmRSS"],
        hwm_startup=before["VmHWM"],
        peak_rss=after["VmHWM"] if hwm_reset else max(sampler.peak, after["VmHWM"]),
        peak_is_hwm=hwm_reset,
        server_cpu=cpu1 - cpu0,
        client_cpu=(client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime),
    )


def print_result(result: Result) -> None:
    peak_kind = "VmHWM" if result.peak_is_hwm else "sampled VmRSS (VmHWM reset refused)"
    print(
        f"  {result.label:10} HTTP {result.status}  {result.seconds:7.2f} s  "
        f"{result.mb_per_s:7.1f} MB/s  server CPU {result.server_cpu:6.2f} s "
        f"({result.server_cpu / result.seconds * 100:3.0f}% of a core)  "
        f"client CPU {result.client_cpu:5.2f} s"
    )
    print(
        f"  {'':10} server RSS before {mib(result.rss_before)} "
        f"(VmHWM so far {mib(result.hwm_startup)}), peak during upload {mib(result.peak_rss)} "
        f"[{peak_kind}], delta {mib(result.peak_rss - result.rss_before)}"
    )


def summarize(title: str, ours: list[Result], baseline: list[Result]) -> bool:
    """Print the medians against the targets; whether every target was met."""
    print(f"summary ({title}):")
    peak = max(r.peak_rss for r in ours)
    rate = statistics.median(r.mb_per_s for r in ours)
    met = peak < TARGET_PEAK_RSS
    print(
        f"  InstaShare throughput {rate:.1f} MB/s, peak RSS {mib(peak)} "
        f"(target < {mib(TARGET_PEAK_RSS)}: {'met' if met else 'NOT met'})"
    )
    if baseline:
        base_rate = statistics.median(r.mb_per_s for r in baseline)
        ratio = rate / base_rate
        ratio_met = ratio >= TARGET_THROUGHPUT_RATIO
        met = met and ratio_met
        print(
            f"  baseline throughput {base_rate:.1f} MB/s, peak RSS "
            f"{mib(max(r.peak_rss for r in baseline))}"
        )
        print(
            f"  throughput ratio InstaShare/baseline {ratio:.2f}x "
            f"(target >= {TARGET_THROUGHPUT_RATIO}x: {'met' if ratio_met else 'NOT met'})"
        )
    return met


def verify(result: Result, size: int, sha256: str, status: int) -> bool:
    body = result.body if isinstance(result.body, dict) else {}
    verified = result.status == status and body.get("sha256") == sha256 and body.get("size") == size
    print(
        f"  {'':10} answer: HTTP {result.status}, sha256 "
        f"{'matches' if body.get('sha256') == sha256 else 'DIFFERS'}, size "
        f"{body.get('size')!r} -> {'verified' if verified else 'NOT VERIFIED'}"
    )
    if not verified:
        print(f"  answer body: {result.body}")
    return verified


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.upload",
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the multipart file")
    parser.add_argument(
        "--runs", type=int, default=3, help="uploads per server, interleaved; the median is used"
    )
    parser.add_argument("--chunk-kib", type=int, default=1024, help="client read/send block")
    parser.add_argument("--mode", choices=["both", "multipart", "tus"], default="both")
    parser.add_argument("--tus-size-mib", type=int, default=256, help="size of the tus upload")
    parser.add_argument("--tus-chunk-mib", type=int, default=8, help="bytes per tus PATCH")
    add_database_url_base_argument(parser)
    parser.add_argument("--skip-baseline", action="store_true", help="measure InstaShare only")
    args = parser.parse_args()
    sizes = (args.size_mib, args.runs, args.chunk_kib, args.tus_size_mib, args.tus_chunk_mib)
    if min(sizes) < 1:
        parser.error("sizes, chunks and --runs must be positive")

    with terminate_as_exit(), tempfile.TemporaryDirectory(prefix="instashare-bench-upload-") as tmp:
        files: dict[str, tuple[Path, str]] = {}
        wanted = {"multipart": args.size_mib, "tus": args.tus_size_mib}
        for mode, size_mib in wanted.items():
            if args.mode not in ("both", mode):
                continue
            path = Path(tmp) / mode / FILE_NAME
            path.parent.mkdir()
            t0 = time.perf_counter()
            files[mode] = (path, generate(path, size_mib * MIB))
            print(
                f"{mode} file: {size_mib} MiB of random bytes, sha256 {files[mode][1][:16]}..., "
                f"generated in {time.perf_counter() - t0:.1f} s"
            )
        ok = True
        met = True
        with contextlib.ExitStack() as stack:
            bare = None if args.skip_baseline else stack.enter_context(BareUploadServer())
            server = stack.enter_context(InstaShareServer(args.database_url_base, "upload"))
            _, token = server.register_and_login(f"upload-{secrets.token_hex(4)}@bench.example")
            print(
                f"servers: baseline pid {bare.pid if bare else '-'}, InstaShare pid {server.pid}; "
                f"{args.runs} run(s) each, interleaved, sync before each"
            )
            auth = {"Authorization": f"Bearer {token}"}
            if "multipart" in files:
                path, sha256 = files["multipart"]
                form = Multipart(path, args.chunk_kib * 1024)
                print(
                    f"multipart: httpx, body streamed from disk in {args.chunk_kib} KiB blocks, "
                    f"Content-Length {form.length:,}"
                )
                ours, baseline = [], []
                url = f"{server.base_url}/api/documents"
                for run in range(1, args.runs + 1):
                    print(f"multipart run {run}:")
                    if bare is not None:
                        os.sync()
                        result = upload("baseline", f"{bare.base_url}/upload", bare.pid, form, None)
                        print_result(result)
                        written = (
                            result.body.get("bytes") if isinstance(result.body, dict) else None
                        )
                        if result.status != 201 or written != form.length:
                            print(f"  baseline answered {result.status}: {result.body}")
                            ok = False
                        baseline.append(result)
                        bare.clear_bodies()
                    os.sync()
                    result = upload("instashare", url, server.pid, form, token)
                    print_result(result)
                    if not verify(result, path.stat().st_size, sha256, 202):
                        print(f"  server log:\n{server.log_tail()}")
                        ok = False
                    ours.append(result)
                    if isinstance(result.body, dict) and "id" in result.body:
                        httpx.delete(f"{url}/{result.body['id']}", headers=auth)
                met = summarize("multipart", ours, baseline) and met
            if "tus" in files:
                path, sha256 = files["tus"]
                chunk = args.tus_chunk_mib * MIB
                size = path.stat().st_size
                print(f"tus: httpx, POST then one PATCH per {args.tus_chunk_mib} MiB, from disk")
                ours, baseline = [], []
                for run in range(1, args.runs + 1):
                    print(f"tus run {run}:")
                    if bare is not None:
                        os.sync()
                        sink = f"{bare.base_url}/upload"
                        result = measured(
                            "baseline",
                            bare.pid,
                            size,
                            lambda c, sink=sink: tus_upload.send_to_sink(c, sink, path, chunk),
                        )
                        print_result(result)
                        written = (
                            result.body.get("bytes") if isinstance(result.body, dict) else None
                        )
                        if result.status != 201 or written != size:
                            print(f"  baseline answered {result.status}: {result.body}")
                            ok = False
                        baseline.append(result)
                        bare.clear_bodies()
                    os.sync()
                    result = measured(
                        "instashare",
                        server.pid,
                        size,
                        lambda c: tus_upload.send_to_instashare(
                            c, server.base_url, token, path, chunk
                        ),
                    )
                    print_result(result)
                    if not verify(result, size, sha256, 204):
                        print(f"  server log:\n{server.log_tail()}")
                        ok = False
                    ours.append(result)
                    if isinstance(result.body, dict) and "id" in result.body:
                        httpx.delete(
                            f"{server.base_url}/api/documents/{result.body['id']}", headers=auth
                        )
                met = summarize("tus", ours, baseline) and met
        print(f"  uploads verified (size, sha256): {ok}")
        print("RESULT:", "targets met" if met and ok else "targets NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
