"""Load `GET /api/documents` of a real InstaShare server holding 100,000 documents per user.

    uv run python benchmarks/list.py [--documents 100000] [--concurrency 32] [--duration 10]
                                     [--warmup 2] [--requests N] [--explain]
                                     [--database-url-base URL]

Starts `instashare serve --no-worker` (one process) on a private database, registers two users and
seeds `--documents` rows for each straight into the `document` table with generate_series (the
two users' rows interleaved in time, as if both uploaded all along; mixed statuses, sizes, names),
then VACUUM ANALYZE. Then, with `--concurrency` keep-alive connections, it loads in turn:

  GET /health                                  trivial route, no authentication (baseline)
  GET /api/auth/me                             trivial authenticated route (baseline)
  GET /api/documents?limit=50                  first page
  GET /api/documents?limit=50&offset=N-50      last page (offset 99950 by default)

each for `--duration` seconds (or `--requests` requests) after `--warmup` seconds, and prints
requests/s, p50/p90/p99/max latency and where the CPU went. The load comes from `wrk` when it is
installed, otherwise from a lean asyncio HTTP/1.1 client in this process (not the server's).
Targets: first page p99 < 50 ms; last page not far behind (p99 within 2x of the first page).
Everything (server, database, files) is removed afterwards, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import (
    DEFAULT_DATABASE_URL_BASE,
    InstaShareServer,
    cpu_seconds,
    http_json,
    plain_dsn,
    terminate_as_exit,
)

TARGET_FIRST_PAGE_P99_MS = 50.0
TARGET_DEEP_OVER_FIRST_P99 = 2.0
PAGE = 50

SEED_SQL = """
INSERT INTO document (
    id, owner_id, name, status, size, content_type, sha256, original_key, archive_key,
    compressed_size, compressed_at, error, created_at, updated_at
)
SELECT
    id, owner_id, name, status, size, content_type, sha256,
    'originals/' || id,
    CASE WHEN status = 'ready' THEN 'archives/' || id END,
    CASE WHEN status = 'ready' THEN greatest(size * (20 + k % 80) / 100, 22) END,
    CASE WHEN status = 'ready' THEN created_at + make_interval(secs => 1 + size / 300000000.0) END,
    CASE WHEN status = 'failed' THEN 'compression failed: the stored original is unreadable' END,
    created_at,
    CASE WHEN status IN ('ready', 'failed') THEN created_at + interval '3 seconds'
         ELSE created_at END
FROM (
    SELECT
        gen_random_uuid() AS id,
        CASE WHEN i % 2 = 0 THEN $1::uuid ELSE $2::uuid END AS owner_id,
        (ARRAY['invoice', 'holiday photo', 'backup', 'meeting notes', 'scan', 'draft',
               'dataset', 'slides', 'contract', 'Übersicht'])[1 + (i * 7) % 10]
            || ' ' || (i / 2) || (ARRAY['.pdf', '.jpg', '.tar', '.txt', '.png', '.docx',
                                        '.csv', '.pptx', '.pdf', '.xlsx'])[1 + (i * 7) % 10]
            AS name,
        CASE WHEN (i * 7919) % 20 < 16 THEN 'ready'
             WHEN (i * 7919) % 20 < 18 THEN 'pending'
             WHEN (i * 7919) % 20 < 19 THEN 'processing'
             ELSE 'failed' END AS status,
        (1 + floor(random() * random() * 500000000))::bigint AS size,
        (ARRAY['application/pdf', 'image/jpeg', 'application/x-tar', 'text/plain', 'image/png',
               'application/octet-stream'])[1 + i % 6] AS content_type,
        md5(i::text) || md5((i * 31)::text) AS sha256,
        -- both users upload all along: 2 * $3 rows over about 2 * $3 * 13 seconds, in order
        now() - make_interval(secs => (2 * $3 - i) * 13 + random() * 12) AS created_at,
        i AS k
    FROM generate_series(1, 2 * $3) AS i
) AS rows
ORDER BY rows.created_at
"""


# ---------------------------------------------------------------------------------------------
# Seeding


async def seed(dsn: str, emails: list[str], per_user: int) -> list[str]:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        ids = []
        for email in emails:
            owner = await connection.fetchval(
                "SELECT id FROM user_account WHERE lower(email) = lower($1)", email
            )
            if owner is None:
                raise RuntimeError(f"no user_account row for {email}")
            ids.append(owner)
        await connection.execute(SEED_SQL, ids[0], ids[1], per_user)
        # The service keeps per-owner totals beside each insert; rows seeded in bulk need the
        # same bookkeeping.
        await connection.execute(
            """
            UPDATE user_account AS u
            SET document_count = t.documents, bytes_used = t.bytes
            FROM (SELECT owner_id, count(*) AS documents, sum(size) AS bytes
                  FROM document GROUP BY owner_id) AS t
            WHERE t.owner_id = u.id
            """
        )
        await connection.execute("VACUUM ANALYZE document")
        return [str(owner) for owner in ids]
    finally:
        await connection.close()


async def explain(dsn: str, owner: str, offsets: list[int]) -> None:
    """EXPLAIN ANALYZE of statements shaped like the app's (one page, then its count)."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        statements = [
            (
                f"page offset {offset}",
                "SELECT * FROM document WHERE owner_id = $1 "
                f"ORDER BY created_at DESC, id DESC LIMIT {PAGE} OFFSET {offset}",
            )
            for offset in offsets
        ]
        statements.append(("count", "SELECT count(*) FROM document WHERE owner_id = $1"))
        for label, sql in statements:
            rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", owner)
            print(f"EXPLAIN ANALYZE ({label}): {sql}")
            for row in rows:
                print(f"    {row[0]}")
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# Load


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


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / ticks, sum(values[:8]) / ticks


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
    stats.machine_busy = (busy1[0] - busy0[0]) / stats.seconds
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


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--documents", type=int, default=100_000, help="documents per user")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per route")
    parser.add_argument(
        "--requests", type=int, default=None, help="requests per route instead of --duration"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument(
        "--client", choices=["auto", "wrk", "asyncio"], default="auto", help="load generator"
    )
    parser.add_argument(
        "--explain", action="store_true", help="also print EXPLAIN ANALYZE of the page queries"
    )
    parser.add_argument(
        "--database-url-base",
        default=DEFAULT_DATABASE_URL_BASE,
        help="PostgreSQL server URL without a database; a bench database is created and dropped",
    )
    args = parser.parse_args()
    if args.documents < PAGE or args.concurrency < 1 or args.duration <= 0:
        parser.error(f"--documents must be >= {PAGE}, --concurrency and --duration positive")
    if args.requests is not None and args.requests < 1:
        parser.error("--requests must be positive")
    wrk = shutil.which("wrk")
    if args.client == "wrk" and not wrk:
        parser.error("wrk is not installed")
    use_wrk = args.client == "wrk" or (args.client == "auto" and wrk is not None)
    if use_wrk and args.requests:
        parser.error("--requests needs the asyncio client (wrk runs for a duration)")

    deep = args.documents - PAGE
    with terminate_as_exit(), InstaShareServer(args.database_url_base, "list") as server:
        suffix = secrets.token_hex(4)
        emails = [f"list-a-{suffix}@bench.example", f"list-b-{suffix}@bench.example"]
        _, token = server.register_and_login(emails[0])
        server.register_and_login(emails[1])
        dsn = plain_dsn(server.database_url)
        t0 = time.perf_counter()
        owners = asyncio.run(seed(dsn, emails, args.documents))
        print(
            f"seeded {args.documents:,} documents for each of 2 users "
            f"(+ VACUUM ANALYZE) in {time.perf_counter() - t0:.1f} s"
        )
        routes = [
            ("GET /health", "/health", None),
            ("GET /api/auth/me", "/api/auth/me", token),
            (f"GET /api/documents?limit={PAGE}", f"/api/documents?limit={PAGE}", token),
            (
                f"GET /api/documents?limit={PAGE}&offset={deep}",
                f"/api/documents?limit={PAGE}&offset={deep}",
                token,
            ),
        ]
        for label, path, auth in routes:  # correctness, once, before any load
            status, body = http_json("GET", f"{server.base_url}{path}", token=auth)
            if status != 200:
                raise RuntimeError(f"{label} answered {status}: {body}")
            if "documents" in path:
                items = body["items"]
                newest_first = all(
                    a["created_at"] >= b["created_at"] for a, b in itertools.pairwise(items)
                )
                print(
                    f"check {label}: {len(items)} items, total {body['total']:,}, "
                    f"newest first: {newest_first}"
                )
                if len(items) != PAGE or body["total"] != args.documents:
                    raise RuntimeError(f"{label}: unexpected page {len(items)}/{body['total']}")
        if args.explain:
            asyncio.run(explain(dsn, owners[0], [0, deep]))

        with tempfile.TemporaryDirectory(prefix="instashare-bench-wrk-") as workdir:
            client: AsyncioClient | WrkClient
            if use_wrk:
                client = WrkClient("127.0.0.1", server.port, args.concurrency, Path(workdir))
            else:
                client = AsyncioClient("127.0.0.1", server.port, args.concurrency)
            amount = f"{args.requests} requests" if args.requests else f"{args.duration:g} s"
            print(
                f"load: {client.name}; {args.concurrency} connections, {amount} per route "
                f"after {args.warmup:g} s warm-up; server pid {server.pid}, {os.cpu_count()} CPUs"
            )
            results = {}
            for label, path, auth in routes:
                stats = measure(client, label, path, auth, server.pid, args)
                print_stats(stats)
                results[path.split("?")[0] + ("#deep" if "offset" in path else "")] = stats

        health = results["/health"]
        me = results["/api/auth/me"]
        first = results["/api/documents"]
        last = results["/api/documents#deep"]
        print("summary:")
        first_met = first.p99 < TARGET_FIRST_PAGE_P99_MS
        deep_ratio = last.p99 / first.p99
        deep_met = deep_ratio <= TARGET_DEEP_OVER_FIRST_P99
        print(
            f"  first page p99 {first.p99:.1f} ms "
            f"(target < {TARGET_FIRST_PAGE_P99_MS:.0f} ms: {'met' if first_met else 'NOT met'})"
        )
        print(
            f"  last page (offset {deep}) p99 {last.p99:.1f} ms = {deep_ratio:.2f}x the first page "
            f"(target <= {TARGET_DEEP_OVER_FIRST_P99:.0f}x: {'met' if deep_met else 'NOT met'})"
        )
        print(
            f"  throughput vs GET /health: first page {first.rps / health.rps:.2f}x, "
            f"last page {last.rps / health.rps:.2f}x"
        )
        print(
            f"  throughput vs GET /api/auth/me: first page {first.rps / me.rps:.2f}x, "
            f"last page {last.rps / me.rps:.2f}x"
        )
        errors = sum(s.errors for s in results.values())
        print(f"  errors: {errors}")
        print(
            "RESULT:", "targets met" if first_met and deep_met and not errors else "targets NOT met"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
