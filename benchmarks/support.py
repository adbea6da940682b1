"""Shared helpers of the benchmarks: a real `instashare serve` process, its cleanup, /proc figures.

`InstaShareServer` starts `python -m instashare serve --no-worker` on a free port against a
private database (created and migrated by `serve` itself) and a temporary storage directory; on
exit it stops the process, drops the database and removes the directory, whatever happened.

Starting processes, picking ports and dropping databases are the test suite's helpers
(`tests.support`), so the benchmarks and the end-to-end tests run InstaShare the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from sqlalchemy.engine import make_url
from tests.support.database import drop_database
from tests.support.ports import free_port
from tests.support.processes import Process, start_instashare, wait_until_serving

DEFAULT_DATABASE_URL_BASE = "postgresql+asyncpg://postgres@127.0.0.1:5432"
MIB = 1 << 20
GIB = 1 << 30
STOP_TIMEOUT = 15.0  # seconds a process gets to exit after SIGTERM before SIGKILL


# ---------------------------------------------------------------------------------------------
# Figures from /proc (Linux)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM (and friends) of a process in bytes, from /proc/<pid>/status."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key.startswith("Vm") and rest.strip().endswith("kB"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed so far by a process."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Figures


def mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB"


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values; NaN when there are none."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


# ---------------------------------------------------------------------------------------------
# Small HTTP calls (setup only; the measured traffic uses its own clients)


def http_json(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return exc.code, json.loads(payload)
        except ValueError:
            return exc.code, payload.decode(errors="replace")


def add_database_url_base_argument(parser: argparse.ArgumentParser) -> None:
    """``--database-url-base``: the server on which `InstaShareServer` makes its database."""
    parser.add_argument(
        "--database-url-base",
        default=DEFAULT_DATABASE_URL_BASE,
        help="PostgreSQL server URL without a database; a bench database is created and dropped",
    )


def plain_dsn(database_url: str) -> str:
    """The asyncpg/libpq form of a SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


# ---------------------------------------------------------------------------------------------
# Servers under test


class ServerProcess:
    """A server subprocess on a free port, with a scratch directory removed by ``close``."""

    def __init__(self, label: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"instashare-bench-{label}-"))
        self.log_path = self.workdir / "server.log"
        self.process: Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def log_tail(self) -> str:
        return self.process.tail() if self.process is not None else ""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class InstaShareServer(ServerProcess):
    """`python -m instashare serve --no-worker` on a free port, a private DB and storage dir."""

    def __init__(
        self, database_url_base: str, label: str, extra_env: dict[str, str] | None = None
    ) -> None:
        server = make_url(database_url_base)
        if server.database:
            raise ValueError("--database-url-base must name no database (it adds its own)")
        super().__init__(label)
        self.database_url_base = server.render_as_string(hide_password=False)
        self.database = f"instashare_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
        self.database_url = server.set(database=self.database).render_as_string(hide_password=False)
        self.extra_env = extra_env or {}
        self.storage_dir = self.workdir / "storage"

    def environment(self) -> dict[str, str]:
        """The settings of the server, over this process's environment; its workers' too."""
        return {
            "DATABASE_URL": self.database_url,
            "STORAGE_URL": self.storage_dir.as_uri(),
            "INSTASHARE_ENV": "development",
            "MAX_UPLOAD_BYTES": str(8 * GIB),
            "USER_QUOTA_BYTES": str(1024 * GIB),
            "AUTH_RATE_LIMIT_PER_MINUTE": "100000",
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "false",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def start(self) -> None:
        self.storage_dir.mkdir(parents=True)
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--no-worker"]
        self.process = start_instashare(
            args, self.environment(), self.log_path, die_with_parent=True
        )
        # Creating the database and running the migrations happens before the port opens.
        wait_until_serving(f"{self.base_url}/health", self.process, timeout=90)

    def close(self) -> None:
        errors: list[str] = []
        if self.process is not None:
            try:
                self.process.stop(STOP_TIMEOUT)
            except Exception as exc:
                errors.append(f"stopping the server: {exc!r}")
        try:
            drop_database(self.database_url_base, self.database)
        except Exception as exc:
            errors.append(f"dropping database {self.database}: {exc!r}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        for error in errors:
            print(f"cleanup warning: {error}", file=sys.stderr)

    def register_and_login(self, email: str, password: str = "bench-password-1") -> tuple[str, str]:
        """Create an account and log in; returns (user id, bearer token)."""
        status, user = http_json(
            "POST",
            f"{self.base_url}/api/auth/register",
            {"email": email, "password": password, "full_name": "Bench User"},
        )
        if status != 201:
            raise RuntimeError(f"register answered {status}: {user}")
        status, token = http_json(
            "POST", f"{self.base_url}/api/auth/login", {"email": email, "password": password}
        )
        if status not in (200, 201):
            raise RuntimeError(f"login answered {status}: {token}")
        return str(user["id"]), str(token["access_token"])


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into SystemExit, so `finally` blocks clean up on `kill` too."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
