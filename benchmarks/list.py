"""Load `GET /api/documents` of a real InstaShare server holding 100,000 documents per user.

    uv run python -m benchmarks.list [--documents 100000] [--concurrency 32] [--duration 10]
                                     [--warmup 2] [--requests N] [--client auto|wrk|asyncio]
                                     [--explain] [--database-url-base URL]

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
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.http_load import AsyncioClient, WrkClient, measure, print_stats
from benchmarks.support import (
    InstaShareServer,
    add_database_url_base_argument,
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


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.list",
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
    add_database_url_base_argument(parser)
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
