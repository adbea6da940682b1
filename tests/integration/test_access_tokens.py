"""Access tokens: only the Bearer scheme, and revocation seen by every API process at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support.api import eventually_unauthorized, login, register, unique_email

from instashare.accounts.principals import announce_change
from instashare.config import Settings
from instashare.models import User


@pytest.fixture
def two_api_processes(
    settings: Settings, start_server: Callable[[Settings], AbstractContextManager[str]]
) -> Iterator[tuple[str, str]]:
    """Two servers on one database, as behind a load balancer."""
    with ExitStack() as stack:
        yield (
            stack.enter_context(start_server(settings)),
            stack.enter_context(start_server(settings)),
        )


async def signed_in(client: httpx.AsyncClient) -> tuple[UUID, str]:
    email = unique_email()
    user = await register(client, email)
    return UUID(str(user["id"])), await login(client, email)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic {token}",
        "Whatever {token}",
        "Token {token}",
        "{token}",
        "Bearer",
        "Bearer  x {token}",
    ],
)
async def test_only_the_bearer_scheme_authenticates(
    client: httpx.AsyncClient, authorization: str
) -> None:
    _, token = await signed_in(client)
    response = await client.get(
        "/api/auth/me", headers={"Authorization": authorization.format(token=token)}
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["status_code"] == 401


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_scheme_is_case_insensitive(client: httpx.AsyncClient, scheme: str) -> None:
    _, token = await signed_in(client)
    response = await client.get("/api/auth/me", headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200, response.text


async def test_a_token_in_a_cookie_does_not_authenticate(client: httpx.AsyncClient) -> None:
    # A cookie rides along with any cross-site form post; only the header may carry a token.
    _, token = await signed_in(client)
    response = await client.get("/api/auth/me", headers={"Cookie": f"token={token}"})
    assert response.status_code == 401


async def bump_token_version(engine: AsyncEngine, user_id: UUID, *, announce: bool) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(User).where(User.id == user_id).values(token_version=User.token_version + 1)
        )
        if announce:
            await announce_change(connection, user_id)


async def test_a_revoked_token_is_refused_by_every_process(
    two_api_processes: tuple[str, str], engine: AsyncEngine
) -> None:
    first_url, second_url = two_api_processes
    async with (
        httpx.AsyncClient(base_url=first_url) as first,
        httpx.AsyncClient(base_url=second_url) as second,
    ):
        user_id, token = await signed_in(first)
        headers = {"Authorization": f"Bearer {token}"}
        # Both processes know (and remember) the account.
        for api in (first, second):
            assert (await api.get("/api/auth/me", headers=headers)).status_code == 200
        await bump_token_version(engine, user_id, announce=True)
        for api in (first, second):
            assert (await eventually_unauthorized(api, headers)).status_code == 401
        # A token issued after the change works everywhere.
        fresh = {"Authorization": f"Bearer {await login(first, await email_of(engine, user_id))}"}
        for api in (first, second):
            assert (await api.get("/api/auth/me", headers=fresh)).status_code == 200


async def email_of(engine: AsyncEngine, user_id: UUID) -> str:
    async with engine.connect() as connection:
        email = await connection.scalar(
            text("SELECT email FROM user_account WHERE id = :id"), {"id": user_id}
        )
    return str(email)


async def test_a_process_trusts_what_it_read_until_a_change_is_announced(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Proof that the state is remembered (no read per request), hence why every change that
    # revokes tokens must be announced in its transaction.
    user_id, token = await signed_in(client)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    await bump_token_version(engine, user_id, announce=False)
    await asyncio.sleep(0.2)
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    await bump_token_version(engine, user_id, announce=True)
    assert (await eventually_unauthorized(client, headers)).status_code == 401


async def test_a_process_that_stopped_listening_forgets_what_it_read(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user_id, token = await signed_in(client)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    # Cut every listening connection: changes made now reach no process by notification.
    async with engine.begin() as connection:
        cut = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
        )
    assert cut >= 1
    await asyncio.sleep(0.5)
    await bump_token_version(engine, user_id, announce=False)
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
