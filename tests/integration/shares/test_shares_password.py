"""Passwords: unlocking, what an unlock token opens (and stops opening), and throttling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
from tests.support.api import auth_headers
from tests.support.documents import uploaded
from tests.support.shares import create_share, link_path, unlock

from instashare.config import Settings

PASSWORD = "open sesame"


async def test_a_locked_share_shows_nothing_until_unlocked(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers, b"secret bytes", filename="secret.txt")
    share = await create_share(client, headers, [document["id"]], password=PASSWORD, title="Locked")
    path = link_path(share)

    locked = (await client.get(path)).json()
    assert locked["password_required"] is True
    assert locked["files"] == []
    assert locked["total_size"] == 0
    assert locked["title"] == "Locked"
    page = await client.get(path, headers={"Accept": "text/html"})
    assert "secret.txt" not in page.text
    for route in ("/download", f"/files/{document['id']}"):
        refused = await client.get(f"{path}{route}")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "password" in refused.json()["detail"]

    response = await client.post(f"{path}/unlock", json={"password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 3600
    assert body["token_type"] == "bearer"
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    # The scheme is case-insensitive, as for account tokens.
    lower = {"Authorization": f"bearer {body['access_token']}"}

    unlocked = (await client.get(path, headers=bearer)).json()
    assert unlocked["password_required"] is False
    assert [f["name"] for f in unlocked["files"]] == ["secret.txt"]
    assert unlocked["total_size"] == len(b"secret bytes")
    assert (await client.get(f"{path}/download", headers=lower)).status_code == 200
    one = await client.get(f"{path}/files/{document['id']}", headers=bearer)
    assert one.status_code == 200


async def test_wrong_passwords_are_401_and_never_read_from_the_url(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]], password=PASSWORD)
    path = link_path(share)
    wrong = await client.post(f"{path}/unlock", json={"password": "not the password"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "wrong password for this share"
    # In the query string it is not even looked at: the body is what counts.
    in_url = await client.post(f"{path}/unlock?password={PASSWORD}", json={"password": ""})
    assert in_url.status_code == 401
    assert (await client.post(f"{path}/unlock", json={})).status_code == 400
    too_long = await client.post(f"{path}/unlock", json={"password": "x" * 129})
    assert too_long.status_code == 400


async def test_unlock_without_a_password_is_400(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]])
    response = await client.post(f"{link_path(share)}/unlock", json={"password": "anything"})
    assert response.status_code == 400
    assert "no password" in response.json()["detail"]


async def test_unlock_tokens_die_with_rotation_and_password_changes(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]], password=PASSWORD)
    path = f"/api/shares/{share['id']}"

    bearer = await unlock(client, share, PASSWORD)
    await client.patch(path, headers=headers, json={"password": "another password"})
    assert (await client.get(f"{link_path(share)}/download", headers=bearer)).status_code == 401
    assert (await client.get(link_path(share), headers=bearer)).json()["password_required"]

    bearer = await unlock(client, share, "another password")
    assert (await client.get(f"{link_path(share)}/download", headers=bearer)).status_code == 200
    rotated = (await client.post(f"{path}/rotate", headers=headers)).json()
    assert (await client.get(f"{link_path(rotated)}/download", headers=bearer)).status_code == 401

    # Without a password, the link is enough (a stale token is ignored).
    await client.patch(path, headers=headers, json={"password": None})
    assert (await client.get(f"{link_path(rotated)}/download", headers=bearer)).status_code == 200


async def test_unlock_tokens_and_account_tokens_never_stand_in_for_each_other(
    client: httpx.AsyncClient, headers: dict[str, str], ready
) -> None:
    document = await ready(headers)
    share = await create_share(client, headers, [document["id"]], password=PASSWORD)
    other = await create_share(client, headers, [document["id"]], password=PASSWORD)
    bearer = await unlock(client, share, PASSWORD)

    assert (await client.get("/api/auth/me", headers=bearer)).status_code == 401
    assert (await client.get("/api/shares", headers=bearer)).status_code == 401
    # The owner's own account token does not unlock the share's link.
    assert (await client.get(f"{link_path(share)}/download", headers=headers)).status_code == 401
    # A token is for its share alone.
    assert (await client.get(f"{link_path(other)}/download", headers=bearer)).status_code == 401
    tampered = {"Authorization": bearer["Authorization"][:-2] + "xx"}
    assert (await client.get(f"{link_path(share)}/download", headers=tampered)).status_code == 401


async def test_wrong_passwords_are_throttled_per_share_whatever_the_address(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
    compressor,
) -> None:
    # Behind a trusted proxy, each request seems to come from another address; it must not help.
    settings = make_settings(
        trust_forwarded_headers=True, share_unlock_max_attempts=3, share_unlock_window_seconds=600
    )
    with start_server(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            headers = await auth_headers(http)
            document = await uploaded(http, headers)
            share = await create_share(http, headers, [document["id"]], password=PASSWORD)
            other = await create_share(http, headers, [document["id"]], password=PASSWORD)
            path = f"{link_path(share)}/unlock"

            def from_address(n: int) -> dict[str, str]:
                return {"X-Forwarded-For": f"198.51.{n}.{n}"}

            answers = [
                await http.post(path, json={"password": f"guess {n}"}, headers=from_address(n))
                for n in range(3)
            ]
            assert [a.status_code for a in answers] == [401, 401, 401]
            blocked = await http.post(path, json={"password": "guess 4"}, headers=from_address(9))
            assert blocked.status_code == 429
            assert 500 < int(blocked.headers["retry-after"]) <= 600
            assert "try again" in blocked.json()["detail"]
            # Even the right password waits: the window is the share's, not the guesser's.
            right = await http.post(path, json={"password": PASSWORD}, headers=from_address(7))
            assert right.status_code == 429
            # Another share is not affected.
            elsewhere = await http.post(f"{link_path(other)}/unlock", json={"password": PASSWORD})
            assert elsewhere.status_code == 200


async def test_parallel_guesses_cannot_exceed_the_limit(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    settings = make_settings(share_unlock_max_attempts=4)
    with start_server(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            headers = await auth_headers(http)
            document = await uploaded(http, headers)
            share = await create_share(http, headers, [document["id"]], password=PASSWORD)
            path = f"{link_path(share)}/unlock"
            answers = await asyncio.gather(
                *[http.post(path, json={"password": f"guess {n}"}) for n in range(12)]
            )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [401] * 4 + [429] * 8


async def test_a_right_password_does_not_use_up_the_budget(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    settings = make_settings(share_unlock_max_attempts=2)
    with start_server(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            headers = await auth_headers(http)
            document = await uploaded(http, headers)
            share = await create_share(http, headers, [document["id"]], password=PASSWORD)
            path = f"{link_path(share)}/unlock"
            for _ in range(5):
                assert (await http.post(path, json={"password": PASSWORD})).status_code == 200
            assert (await http.post(path, json={"password": "wrong one"})).status_code == 401
            assert (await http.post(path, json={"password": PASSWORD})).status_code == 200
