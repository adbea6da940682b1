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
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_for_health(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited early"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy")


def test_serve_creates_and_migrates_the_database_then_serves(
    database_url: str, tmp_path: Path
) -> None:
    name = f"instashare_serve_{uuid.uuid4().hex[:8]}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "STORAGE_URL": tmp_path.as_uri(),
        "INSTASHARE_ENV": "test",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "instashare", "serve", "--port", str(port), "--no-worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, process)
        assert httpx.get(f"{base}/health").json()["checks"]["database"] == "ok"
        schema = httpx.get(f"{base}/schema/openapi.json")
        assert schema.status_code == 200
        assert "/api/auth/login" in schema.json()["paths"]
        current = subprocess.run(
            [sys.executable, "-m", "alembic", "current"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "(head)" in current.stdout
    finally:
        process.terminate()
        process.wait(timeout=30)
        drop_database(database_url, name)


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
