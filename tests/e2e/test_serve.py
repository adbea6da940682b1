"""`instashare serve` as a real process: creates the database, migrates it, serves."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url
from tests.support.database import drop_database
from tests.support.ports import free_port
from tests.support.processes import ROOT, Process, instashare, wait_until_serving


def test_serve_creates_and_migrates_the_database_then_serves_with_workers(
    database_url: str, tmp_path: Path
) -> None:
    name = f"instashare_serve_{uuid.uuid4().hex[:8]}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    port = free_port()
    env = {
        "DATABASE_URL": url,
        "STORAGE_URL": (tmp_path / "storage").as_uri(),
        "INSTASHARE_ENV": "test",
    }
    log = tmp_path / "serve.log"
    try:
        with instashare(["serve", "--port", str(port)], env, log) as process:
            serve_and_compress(f"http://127.0.0.1:{port}", process, env)
    finally:
        drop_database(database_url, name)


def serve_and_compress(base: str, process: Process, env: dict[str, str]) -> None:
    wait_until_serving(f"{base}/health", process)
    assert httpx.get(f"{base}/health").json()["checks"]["database"] == "ok"
    schema = httpx.get(f"{base}/schema/openapi.json")
    assert schema.status_code == 200
    assert "/api/auth/login" in schema.json()["paths"]
    # One command is a whole service: its in-process workers compress uploads.
    email = f"serve-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "correct horse battery"}
    assert httpx.post(f"{base}/api/auth/register", json=credentials).status_code == 201
    token = httpx.post(f"{base}/api/auth/login", json=credentials).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(
        f"{base}/api/documents", headers=headers, files={"file": ("a.txt", b"a" * 5000)}
    ).json()
    deadline = time.monotonic() + 60
    while (
        httpx.get(f"{base}/api/documents/{created['id']}", headers=headers).json()["status"]
        != "ready"
    ):
        assert time.monotonic() < deadline, "the in-process workers did not compress"
        time.sleep(0.2)
    current = subprocess.run(
        [sys.executable, "-m", "alembic", "current"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "(head)" in current.stdout


def test_production_refuses_the_development_secret(tmp_path: Path) -> None:
    env = {**os.environ, "INSTASHARE_ENV": "production", "SECRET_KEY": "too-short"}
    result = subprocess.run(
        [sys.executable, "-m", "instashare", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr
