from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import (
    PASSWORD,
    auth_headers,
    eventually_unauthorized,
    login,
    register,
    unique_email,
)

from instashare.config import Settings


def assert_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert "Traceback" not in response.text
    return dict(body)


async def test_register_login_and_me(client: httpx.AsyncClient) -> None:
    email = unique_email()
    response = await client.post(
        "/api/auth/register",
        json={"email": f"  {email.upper()} ", "password": PASSWORD, "full_name": "Ada Lovelace"},
    )
    assert response.status_code == 201
    user = response.json()
    assert set(user) == {"id", "email", "full_name", "created_at"}
    assert user["email"] == email
    assert user["full_name"] == "Ada Lovelace"
    assert "+00:00" in user["created_at"] or user["created_at"].endswith("Z")

    login_response = await client.post(
        "/api/auth/login", json={"email": email.upper(), "password": PASSWORD}
    )
    assert login_response.status_code in (200, 201)
    token = login_response.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 3600

    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == user


async def test_login_with_the_oauth2_password_form(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    response = await client.post(
        "/api/auth/login", data={"username": email, "password": PASSWORD, "grant_type": "password"}
    )
    assert response.status_code in (200, 201)
    token = response.json()["access_token"]
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["email"] == email


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email()
    await register(client, email)
    wrong = await client.post("/api/auth/login", json={"email": email, "password": "not it!!"})
    unknown = await client.post(
        "/api/auth/login", json={"email": unique_email(), "password": PASSWORD}
    )
    malformed = await client.post(
        "/api/auth/login", json={"email": "not-an-email", "password": PASSWORD}
    )
    for response in (wrong, unknown, malformed):
        body = assert_error(response, 401)
        assert body["detail"] == "incorrect email or password"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_duplicate_email_is_a_conflict_whatever_the_case(client: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(client, email)
    response = await client.post(
        "/api/auth/register", json={"email": email.upper(), "password": PASSWORD}
    )
    assert "already exists" in str(assert_error(response, 409)["detail"])


async def test_concurrent_duplicate_registrations_create_one_account(
    client: httpx.AsyncClient,
) -> None:
    email = unique_email()
    responses = await asyncio.gather(
        *(
            client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
            for _ in range(8)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 7


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"email": "nobody", "password": PASSWORD}, "email"),
        ({"email": "a@b", "password": PASSWORD}, "email"),
        ({"email": unique_email(), "password": "short"}, "password"),
        ({"email": unique_email(), "password": "x" * 129}, "password"),
        ({"email": unique_email()}, "password"),
        ({"password": PASSWORD}, "email"),
        ({"email": 12, "password": PASSWORD}, "email"),
        ({"email": unique_email(), "password": ["list"]}, "password"),
        ({"email": "x" * 100_000 + "@example.com", "password": PASSWORD}, "email"),
        ({"email": unique_email(), "password": PASSWORD, "full_name": "n" * 256}, "full_name"),
        ({"email": unique_email(), "password": PASSWORD, "is_admin": True}, "is_admin"),
        ({"email": unique_email(), "password": PASSWORD, "full_name": "nul\x00"}, "full_name"),
    ],
)
async def test_register_rejects_bad_input(
    client: httpx.AsyncClient, body: dict[str, object], fragment: str
) -> None:
    response = await client.post("/api/auth/register", json=body)
    error = assert_error(response, 400)
    assert fragment in json.dumps(error)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b"null", b'"string"', b"\xff\xfe\x00", b'{"email": "\xff@x.org"}'],
)
async def test_malformed_bodies_are_400(client: httpx.AsyncClient, content: bytes) -> None:
    for path in ("/api/auth/register", "/api/auth/login"):
        response = await client.post(
            path, content=content, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400)


async def test_login_form_missing_fields_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/login", data={"username": unique_email()})
    assert_error(response, 400)


async def test_me_requires_a_valid_token(client: httpx.AsyncClient) -> None:
    headers = await auth_headers(client)
    token = headers["Authorization"].split()[1]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "00000000-0000-7000-8000-000000000000"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    bad_tokens = {
        "missing": None,
        "garbage": "Bearer not-a-token",
        "tampered": f"Bearer {header}.{forged_payload}.{signature}",
        "bad signature": f"Bearer {header}.{payload}.{signature[:-4]}AAAA",
    }
    for label, value in bad_tokens.items():
        response = await client.get(
            "/api/auth/me", headers={"Authorization": value} if value else {}
        )
        assert response.status_code == 401, label
        assert response.headers["www-authenticate"] == "Bearer", label
        assert_error(response, 401)


async def test_expired_token_is_rejected(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    with start_server(make_settings(access_token_ttl_seconds=1)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            email = unique_email()
            await register(http, email)
            token = await login(http, email)
            headers = {"Authorization": f"Bearer {token}"}
            assert (await http.get("/api/auth/me", headers=headers)).status_code == 200
            time.sleep(2.1)
            expired = await http.get("/api/auth/me", headers=headers)
    assert_error(expired, 401)


async def test_token_of_a_deactivated_user_stops_working(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    from sqlalchemy import update

    from instashare.accounts.principals import announce_change
    from instashare.models import User

    email = unique_email()
    user = await register(client, email)
    token = await login(client, email)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.email == email).values(is_active=False))
        await announce_change(connection, UUID(str(user["id"])))
    me = await eventually_unauthorized(client, headers)
    assert_error(me, 401)
    relogin = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert_error(relogin, 401)


@pytest.fixture
async def fresh_rate_limits(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM key_value_store"))


@pytest.mark.usefixtures("fresh_rate_limits")
async def test_register_and_login_are_rate_limited_per_client(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    with start_server(make_settings(auth_rate_limit_per_minute=12)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            email = unique_email()
            await register(http, email)
            codes = []
            for _ in range(15):
                response = await http.post(
                    "/api/auth/login", json={"email": email, "password": "wrong password"}
                )
                codes.append(response.status_code)
            assert codes[:12] == [401] * 12
            assert codes[12:] == [429] * 3
            assert int(response.headers["retry-after"]) >= 1
            assert_error(response, 429)
            # Registration has a budget of its own; other routes are not limited.
            assert (
                await http.post(
                    "/api/auth/register", json={"email": unique_email(), "password": PASSWORD}
                )
            ).status_code == 201
            assert (await http.get("/health")).status_code == 200


@pytest.mark.usefixtures("fresh_rate_limits")
async def test_forwarded_address_is_used_only_behind_a_trusted_proxy(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    async def attempts(url: str, addresses: list[str]) -> list[int]:
        async with httpx.AsyncClient(base_url=url) as http:
            return [
                (
                    await http.post(
                        "/api/auth/login",
                        json={"email": unique_email(), "password": PASSWORD},
                        headers={"X-Forwarded-For": address},
                    )
                ).status_code
                for address in addresses
            ]

    spoofed = [f"10.0.0.{i}" for i in range(12)]
    with start_server(make_settings(auth_rate_limit_per_minute=10)) as url:
        # Untrusted: every attempt counts against the connection's address whatever the header.
        assert (await attempts(url, spoofed)).count(429) == 2
    with start_server(
        make_settings(auth_rate_limit_per_minute=10, trust_forwarded_headers=True)
    ) as url:
        assert 429 not in await attempts(url, spoofed)
