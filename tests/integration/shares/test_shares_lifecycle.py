"""What happens to shares over time: deleted documents, expiry and its sweep, deleted accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import login, register, unique_email
from tests.support.shares import create_share, link_path

from instashare.config import Settings
from instashare.models import Share, ShareDownload, ThrottleCounter, User
from instashare.shares.jobs import JOBS, sweep_shares
from instashare.worker.runner import JOB_SETS


async def test_deleting_a_document_removes_it_from_its_shares(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    kept = await ready(headers, b"kept", filename="kept.txt")
    gone = await ready(headers, b"gone", filename="gone.txt")
    share = await create_share(client, headers, [gone["id"], kept["id"]])
    assert (await client.delete(f"/api/documents/{gone['id']}", headers=headers)).status_code == 204

    shown = (await client.get(f"/api/shares/{share['id']}", headers=headers)).json()
    assert shown["document_ids"] == [kept["id"]]
    files = (await client.get(link_path(share))).json()["files"]
    assert [f["name"] for f in files] == ["kept.txt"]

    await client.delete(f"/api/documents/{kept['id']}", headers=headers)
    emptied = (await client.get(f"/api/shares/{share['id']}", headers=headers)).json()
    assert emptied["document_ids"] == []
    assert (await client.get(link_path(share))).status_code == 404
    # Adding a document brings the link back: the share was empty, not revoked.
    fresh = await ready(headers, b"fresh", filename="fresh.txt")
    await client.patch(
        f"/api/shares/{share['id']}", headers=headers, json={"document_ids": [fresh["id"]]}
    )
    assert (await client.get(link_path(share))).status_code == 200


async def set_expiry(engine: AsyncEngine, share_id: str, when: datetime) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(Share).where(Share.id == UUID(share_id)).values(expires_at=when)
        )


async def exists(engine: AsyncEngine, share_id: str) -> bool:
    async with engine.connect() as connection:
        found = await connection.scalar(select(Share.id).where(Share.id == UUID(share_id)))
    return found is not None


def job_context(engine: AsyncEngine, settings: Settings) -> Any:
    return {"engine": engine, "settings": settings}


async def test_expired_shares_are_swept_after_the_grace_period(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    ready,
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    document = await ready(headers)
    long_gone = await create_share(client, headers, [document["id"]])
    recently = await create_share(client, headers, [document["id"]])
    alive = await create_share(client, headers, [document["id"]], expires_in=3600)
    await client.get(f"{link_path(long_gone)}/download")
    grace = timedelta(days=settings.share_sweep_grace_days)
    now = datetime.now(UTC)
    await set_expiry(engine, long_gone["id"], now - grace - timedelta(minutes=1))
    await set_expiry(engine, recently["id"], now - timedelta(minutes=1))

    # Expired but within the grace period: dead link, but the owner can still revive it.
    assert (await client.get(link_path(recently))).status_code == 404
    outcome = await sweep_shares(job_context(engine, settings))
    assert outcome["expired_shares"] >= 1
    assert not await exists(engine, long_gone["id"])
    assert await exists(engine, recently["id"])
    assert await exists(engine, alive["id"])
    async with engine.connect() as connection:
        orphans = await connection.scalar(
            select(func.count())
            .select_from(ShareDownload)
            .where(ShareDownload.share_id == UUID(long_gone["id"]))
        )
    assert orphans == 0  # receipts go with their share

    revived = await client.patch(
        f"/api/shares/{recently['id']}", headers=headers, json={"expires_in": 600}
    )
    assert revived.status_code == 200
    assert (await client.get(link_path(recently))).status_code == 200


async def test_the_sweep_closes_stale_partial_downloads_and_old_throttle_windows(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    ready,
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    document = await ready(headers, b"x" * 5000)
    share = await create_share(client, headers, [document["id"]], max_downloads=1)
    path = f"{link_path(share)}/download"
    me = {"User-Agent": "stale-client"}
    assert (await client.get(path, headers={**me, "Range": "bytes=0-9"})).status_code == 206
    assert (await client.get(path, headers={"User-Agent": "finisher"})).status_code == 200
    # Long idle: the partial download can no longer be resumed past the limit.
    window = timedelta(hours=settings.share_resume_window_hours)
    async with engine.begin() as connection:
        await connection.execute(
            update(ShareDownload)
            .where(ShareDownload.share_id == UUID(share["id"]), ShareDownload.completed.is_(False))
            .values(updated_at=datetime.now(UTC) - window - timedelta(minutes=1))
        )
        await connection.execute(
            ThrottleCounter.__table__.insert().values(
                key="test:old", hits=3, window_ends_at=datetime.now(UTC) - timedelta(days=1)
            )
        )
    outcome = await sweep_shares(job_context(engine, settings))
    assert outcome["stale_downloads"] >= 1
    assert outcome["throttle_counters"] >= 1
    async with engine.connect() as connection:
        still_open = await connection.scalar(
            select(func.count())
            .select_from(ShareDownload)
            .where(ShareDownload.share_id == UUID(share["id"]), ShareDownload.is_open)
        )
    assert still_open == 0
    assert (await client.get(path, headers={**me, "Range": "bytes=10-"})).status_code == 404


def test_the_sweep_runs_periodically_in_the_workers() -> None:
    assert JOBS in JOB_SETS
    assert [cron.function for cron in JOBS.cron_jobs] == [sweep_shares]


async def test_deleting_an_account_removes_its_shares(
    client: httpx.AsyncClient, ready, engine: AsyncEngine
) -> None:
    email = unique_email("leaver")
    user = await register(client, email)
    headers = {"Authorization": f"Bearer {await login(client, email)}"}
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    # The account's removal itself comes with the administration routes; the database already
    # takes the account's shares (and their links) with it.
    async with engine.begin() as connection:
        await connection.execute(delete(User).where(User.id == UUID(str(user["id"]))))
    assert not await exists(engine, share["id"])
    assert (await client.get(link_path(share))).status_code == 404
