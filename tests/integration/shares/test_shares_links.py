"""The secret link: what it shows, that every dead link looks the same, and that no copy of the
database (nor of anything else but the secret key) lets anyone rebuild one."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import login, register, unique_email
from tests.support.documents import uploaded
from tests.support.shares import create_share, link_path, settled_share, token_of, unlock

from instashare.config import Settings
from instashare.models import Share


async def test_the_link_shows_the_files_as_json(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    first = await ready(headers, b"a" * 1000, filename="a.txt")
    second = await ready(headers, b"b" * 2500, filename="b.txt")
    pending = await uploaded(client, headers, content=b"c" * 10, filename="c.txt")
    share = await create_share(
        client,
        headers,
        [second["id"], first["id"], pending["id"]],
        title="Reports",
        message="Q3",
        max_downloads=5,
        expires_in=7200,
    )
    response = await client.get(link_path(share), headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body == {
        "title": "Reports",
        "message": "Q3",
        "expires_at": share["expires_at"],
        "password_required": False,
        "downloads_left": 5,
        "files": [
            {"id": second["id"], "name": "b.txt", "size": 2500, "status": "ready"},
            {"id": first["id"], "name": "a.txt", "size": 1000, "status": "ready"},
            {"id": pending["id"], "name": "c.txt", "size": 10, "status": "pending"},
        ],
        "total_size": 3510,
    }
    # curl's default Accept (*/*) gets JSON too.
    assert (await client.get(link_path(share), headers={"Accept": "*/*"})).json() == body


async def test_each_view_is_counted(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    for _ in range(3):
        assert (await client.get(link_path(share))).status_code == 200
    await client.get(link_path(share), headers={"Accept": "text/html"})
    owner_view = await client.get(f"/api/shares/{share['id']}", headers=headers)
    assert owner_view.json()["view_count"] == 4
    assert owner_view.json()["download_count"] == 0


async def test_browsers_get_a_page_with_everything_escaped(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers, b"x", filename="<img src=x onerror=alert(1)>.txt")
    share = await create_share(
        client, headers, [document["id"]], title="<script>alert('t')</script>", message="a & b"
    )
    response = await client.get(
        link_path(share), headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    page = response.text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;" in page
    assert "<img" not in page
    assert "a &amp; b" in page
    assert f'href="{link_path(share)}/download"' in page
    assert f'href="{link_path(share)}/files/{document["id"]}"' in page


def dead_link_cases() -> list[str]:
    return ["unknown", "malformed", "tampered", "rotated", "revoked", "expired", "emptied", "used"]


@pytest.mark.parametrize("locked", [False, True], ids=["open", "password"])
@pytest.mark.parametrize("case", dead_link_cases())
async def test_every_dead_link_gives_the_same_404(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    ready,
    engine: AsyncEngine,
    case: str,
    locked: bool,
) -> None:
    document = await ready(headers)
    password = {"password": "the share password"} if locked else {}
    share = await create_share(client, headers, [document["id"]], max_downloads=1, **password)
    path = link_path(share)
    token = token_of(share)
    if case == "unknown":
        raw = base64.urlsafe_b64decode(token)
        path = "/s/" + base64.urlsafe_b64encode(bytes(16) + raw[16:]).decode()
    elif case == "malformed":
        path = "/s/not-a-token"
    elif case == "tampered":
        raw = bytearray(base64.urlsafe_b64decode(token))
        raw[-1] ^= 1
        path = "/s/" + base64.urlsafe_b64encode(bytes(raw)).decode()
    elif case == "rotated":
        await client.post(f"/api/shares/{share['id']}/rotate", headers=headers)
    elif case == "revoked":
        await client.delete(f"/api/shares/{share['id']}", headers=headers)
    elif case == "expired":
        async with engine.begin() as connection:
            await connection.execute(
                update(Share)
                .where(Share.id == share["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    elif case == "emptied":
        await client.delete(f"/api/documents/{document['id']}", headers=headers)
    elif case == "used":
        bearer = await unlock(client, share, password["password"]) if locked else {}
        assert (await client.get(f"{path}/download", headers=bearer)).status_code == 200
        await settled_share(client, headers, share["id"], download_count=1)

    answers = [
        await client.get(path),
        await client.get(path, headers={"Accept": "text/html"}),
        await client.get(f"{path}/download"),
        await client.head(f"{path}/download"),
        await client.get(f"{path}/files/{document['id']}"),
        await client.post(f"{path}/unlock", json={"password": "whatever it is"}),
    ]
    expected = {
        "status_code": 404,
        "detail": "this link does not exist or is no longer available",
    }
    for answer in answers:
        assert answer.status_code == 404, (case, answer.request.url, answer.text)
        if answer.request.method != "HEAD":
            assert answer.json() == expected
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["content-length"] == str(len(answer.content))


async def every_stored_value(engine: AsyncEngine) -> bytes:
    """The content of every text, bytea and JSON column of every table, as one blob."""
    async with engine.connect() as connection:
        columns = (
            await connection.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type IN "
                    "('text', 'character varying', 'bytea', 'json', 'jsonb', 'USER-DEFINED')"
                )
            )
        ).all()
        found: list[bytes] = []
        for table, column, data_type in columns:
            cast = "" if data_type in ("text", "character varying", "bytea") else "::text"
            query = f'SELECT "{column}"{cast} FROM "{table}" WHERE "{column}" IS NOT NULL'
            for (value,) in await connection.execute(text(query)):
                found.append(value if isinstance(value, bytes) else str(value).encode())
                if isinstance(value, bytes):  # and as pg_dump would write it
                    found.append(value.hex().encode())
    return b"\n".join(found)


def pg_dump(settings: Settings) -> bytes | None:
    """A data-only dump, when this machine's pg_dump can talk to the server."""
    url = make_url(settings.database_url)
    if shutil.which("pg_dump") is None:
        return None
    where = ["-h", str(url.host), "-p", str(url.port or 5432), "-U", str(url.username)]
    result = subprocess.run(
        ["pg_dump", "--data-only", *where, str(url.database)],
        capture_output=True,
        check=False,
        timeout=120,
    )
    return result.stdout if result.returncode == 0 else None  # e.g. an older pg_dump


async def test_a_dump_of_the_database_holds_no_working_link(
    client: httpx.AsyncClient, headers: dict[str, str], ready, settings: Settings, engine
) -> None:
    document = await ready(headers)
    share = await create_share(
        client, headers, [document["id"]], title="dump check", password="dump password"
    )
    token = token_of(share)
    raw = base64.urlsafe_b64decode(token)
    unlock = await client.post(f"{link_path(share)}/unlock", json={"password": "dump password"})
    access_token = unlock.json()["access_token"]
    await client.get(
        f"{link_path(share)}/download", headers={"Authorization": f"Bearer {access_token}"}
    )

    copies = [await every_stored_value(engine)]
    dumped = pg_dump(settings)
    if dumped is not None:
        copies.append(dumped)
    for copy in copies:
        assert b"dump check" in copy  # the share itself is in there
        # Neither the token, nor its secret part in any encoding, nor the password, nor the
        # unlock token appears anywhere.
        for secret in (
            token.encode(),
            raw[16:].hex().encode(),
            base64.b64encode(raw[16:]).rstrip(b"="),
            base64.urlsafe_b64encode(raw[16:]).rstrip(b"="),
            b"dump password",
            access_token.encode(),
        ):
            assert secret not in copy, secret


async def test_a_new_secret_key_kills_every_link(
    client: httpx.AsyncClient,
    ready,
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    email = unique_email("owner")
    await register(client, email)
    headers = {"Authorization": f"Bearer {await login(client, email)}"}
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    other = make_settings(secret_key="another secret key, at least thirty-two bytes long")
    with start_server(other) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            assert (await http.get(link_path(share))).status_code == 404
            # The owner (logged in again: old access tokens die too) sees another link.
            fresh = {"Authorization": f"Bearer {await login(http, email)}"}
            seen = (await http.get(f"/api/shares/{share['id']}", headers=fresh)).json()
            assert seen["url"] != share["url"]
            assert (await http.get(link_path(seen))).status_code == 200
    assert (await client.get(link_path(share))).status_code == 200
