"""Small helpers for talking to the API the way a client does."""

from __future__ import annotations

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
