"""Small helpers for talking to the API the way a client does."""

from __future__ import annotations

import asyncio
import uuid

import httpx

PASSWORD = "correct horse battery"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> dict[str, object]:
    response = await client.post(
        "/api/auth/register", json={"email": email or unique_email(), "password": password}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["access_token"])


async def auth_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """A fresh account's bearer header."""
    email = unique_email()
    await register(client, email)
    return {"Authorization": f"Bearer {await login(client, email)}"}


async def eventually_unauthorized(
    client: httpx.AsyncClient, headers: dict[str, str], within: float = 5.0
) -> httpx.Response:
    """``GET /api/auth/me`` until it answers 401, for changes announced to other processes.

    The announcement reaches every process when the change commits, so this normally answers
    on the first try; the deadline only absorbs the delivery of the notification.
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await client.get("/api/auth/me", headers=headers)
        if response.status_code == 401 or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.02)
