"""Closed-loop HTTP load on one route, and where the CPU went meanwhile.

Two load generators with the same figures: `wrk` (a separate process, a Lua script for the
Authorization header) when it is installed, otherwise a lean asyncio HTTP/1.1 keep-alive client
in this process, one coroutine per connection, each sending its next request when the previous
answer arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.support import cpu_seconds, machine_busy_seconds, percentile


@dataclass
class Stats:
    label: str
    client: str
    seconds: float
    requests: int
    errors: int
    p50: float
    p90: float
    p99: float
    max: float
    statuses: dict[int, int] = field(default_factory=dict)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_busy: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class AsyncioClient:
    """Keep-alive HTTP/1.1 over asyncio streams; one coroutine per connection, closed loop."""

    name = "asyncio HTTP/1.1 keep-alive client (in the benchmark process)"

    def __init__(self, host: str, port: int, concurrency: int) -> None:
        self.host, self.port, self.concurrency = host, port, concurrency

    def run(
        self, path: str, token: str | None, seconds: float | None, requests: int | None
    ) -> tuple[list[float], dict[int, int], int, float]:
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if token:
            request += f"Authorization: Bearer {token}\r\n"
        raw = (request + "Accept: application/json\r\n\r\n").encode()
        try:
            import uvloop

            return uvloop.run(self._load(raw, seconds, requests))
        except ImportError:
            return asyncio.run(self._load(raw, seconds, requests))

    async def _load(
        self, raw: bytes, seconds: float | None, requests: int | None
    ) -> tuple[list[float], dict[int, int], int, float]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        failures = 0
        budget = [requests if requests is not None else -1]
        started = time.perf_counter()
        stop_at = started + seconds if seconds is not None else float("inf")

        async def connection() -> None:
            nonlocal failures
            reader = writer = None
            while time.perf_counter() < stop_at:
                if budget[0] == 0:
                    break
                budget[0] -= 1
                if writer is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                t0 = time.perf_counter()
                try:
                    writer.write(raw)
                    status, keep_alive = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    failures += 1
                    writer.close()
                    reader = writer = None
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if not keep_alive:
                    writer.close()
                    reader = writer = None
            if writer is not None:
                writer.close()

        await asyncio.gather(*(connection() for _ in range(self.concurrency)))
        return latencies, statuses, failures, time.perf_counter() - started


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
    if match:
        await reader.readexactly(int(match.group(1)))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        raise ValueError("response without a length")
    return status, keep_alive


WRK_SCRIPT = """
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.headers["Accept"] = "application/json"

done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d seconds=%f p50=%f p90=%f p99=%f max=%f "
    .. "non2xx=%d errors=%d\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    summary.errors.status, summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


class WrkClient:
    name = "wrk (separate process, Lua script for the Authorization header)"

    def __init__(self, host: str, port: int, concurrency: int, workdir: Path) -> None:
        self.base = f"http://{host}:{port}"
        self.concurrency = concurrency
        self.script = workdir / "bench.lua"
        self.script.write_text(WRK_SCRIPT)

    def run_stats(self, path: str, token: str | None, seconds: float) -> dict[str, float]:
        threads = max(1, min(2, self.concurrency))
        command = ["wrk", f"-t{threads}", f"-c{self.concurrency}", f"-d{max(1, round(seconds))}s"]
        command += ["--latency", "-s", str(self.script), f"{self.base}{path}"]
        output = subprocess.run(
            command,
            env={**os.environ, "BENCH_TOKEN": token or ""},
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
        match = re.search(r"^BENCH (.*)$", output, re.MULTILINE)
        if not match:
            raise RuntimeError(f"unexpected wrk output:\n{output}")
        return {key: float(value) for key, value in re.findall(r"(\w+)=([\d.]+)", match.group(1))}


def measure(
    client: AsyncioClient | WrkClient,
    label: str,
    path: str,
    token: str | None,
    server_pid: int,
    args: argparse.Namespace,
) -> Stats:
    if args.warmup > 0:
        if isinstance(client, WrkClient):
            client.run_stats(path, token, args.warmup)
        else:
            client.run(path, token, args.warmup, None)
    cpu0, own0, busy0 = cpu_seconds(server_pid), time.process_time(), machine_busy_seconds()
    if isinstance(client, WrkClient):
        # wrk runs for a duration; its own CPU is part of "other" below.
        figures = client.run_stats(path, token, args.duration)
        stats = Stats(
            label=label,
            client="wrk",
            seconds=figures["seconds"],
            requests=int(figures["requests"]),
            errors=int(figures["errors"] + figures["non2xx"]),
            p50=figures["p50"],
            p90=figures["p90"],
            p99=figures["p99"],
            max=figures["max"],
        )
    else:
        seconds = None if args.requests else args.duration
        latencies, statuses, failures, elapsed = client.run(path, token, seconds, args.requests)
        latencies.sort()
        non_ok = sum(count for status, count in statuses.items() if not 200 <= status < 300)
        stats = Stats(
            label=label,
            client="asyncio",
            seconds=elapsed,
            requests=len(latencies),
            errors=failures + non_ok,
            p50=percentile(latencies, 0.50) * 1e3,
            p90=percentile(latencies, 0.90) * 1e3,
            p99=percentile(latencies, 0.99) * 1e3,
            max=(latencies[-1] if latencies else float("nan")) * 1e3,
            statuses=statuses,
        )
    busy1 = machine_busy_seconds()
    stats.server_cpu = (cpu_seconds(server_pid) - cpu0) / stats.seconds
    stats.client_cpu = (time.process_time() - own0) / stats.seconds
    stats.machine_busy = (busy1 - busy0) / stats.seconds
    return stats


def print_stats(stats: Stats) -> None:
    other = max(0.0, stats.machine_busy - stats.server_cpu - stats.client_cpu)
    print(
        f"  {stats.label:44} {stats.rps:8.1f} req/s  p50 {stats.p50:7.2f} ms  "
        f"p90 {stats.p90:7.2f} ms  p99 {stats.p99:7.2f} ms  max {stats.max:7.2f} ms  "
        f"({stats.requests} requests, {stats.errors} errors)"
    )
    print(
        f"  {'':44} CPU in cores: server {stats.server_cpu:.2f}, client {stats.client_cpu:.2f}, "
        f"other (PostgreSQL, system) {other:.2f}, machine busy {stats.machine_busy:.2f} "
        f"of {os.cpu_count()}"
    )
