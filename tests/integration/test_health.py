from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
from tests.support.ports import free_port

from instashare.config import Settings


async def test_health_reports_every_dependency_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}


async def test_health_names_the_database_when_it_is_down(
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    closed_port = free_port()
    settings = make_settings(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/nothing"
    )
    with start_server(settings) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/health")
            # Every route that needs the database says so, instead of failing with a 500.
            login = await http.post(
                "/api/auth/login", json={"email": "a@example.com", "password": "whatever1"}
            )
            register = await http.post(
                "/api/auth/register",
                json={"email": "b@example.com", "password": "whatever12"},
            )
    for outage in (login, register):
        assert outage.status_code == 503, outage.text
        assert outage.json()["detail"] == "the database is unavailable; try again later"
    assert response.status_code == 503
    body = response.json()
    assert body["status_code"] == 503
    assert body["checks"] == {"database": "unavailable", "storage": "ok"}
    assert "database" in body["detail"]


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "InstaShare"
    assert "/health" in response.json()["paths"]
