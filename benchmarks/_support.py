"""Shared helpers of the HTTP benchmarks: a real `instashare serve` process and its cleanup.

`InstaShareServer` starts `python -m instashare serve --no-worker` on a free port against a
private database (created and migrated by `serve` itself) and a temporary storage directory; on
exit it stops the process, drops the database and removes the directory, whatever happened.

Run as a script, this module is also the bare streaming server of the upload baseline:

    python benchmarks/_support.py bare-upload-server --port 8123 --dir /tmp/somewhere
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL_BASE = "postgresql+asyncpg://postgres@127.0.0.1:5432"
MIB = 1 << 20
GIB = 1 << 30


# ---------------------------------------------------------------------------------------------
# Processes and memory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM the child if the benchmark itself is killed (no orphaned servers)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()  # a terminal's Ctrl-C reaches the benchmark only; it stops the child itself


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    finally:
        log.close()


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


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


def mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB"


def wait_until_serving(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server exited with {process.returncode} before serving:\n{tail(log)}"
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {url} within {timeout:.0f}s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


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


# ---------------------------------------------------------------------------------------------
# Database


def _split_url(url: str) -> tuple[str, str]:
    """`postgresql+asyncpg://user@host:port[/db]` -> (`postgresql://user@host:port`, db)."""
    plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    scheme, _, rest = plain.partition("://")
    authority, _, database = rest.partition("/")
    return f"{scheme}://{authority}", database.split("?")[0]


def drop_database(database_url_base: str, name: str) -> None:
    import asyncpg

    server, _ = _split_url(database_url_base)

    async def drop() -> None:
        connection = await asyncpg.connect(f"{server}/postgres", timeout=10)
        try:
            quoted = '"' + name.replace('"', '""') + '"'
            await connection.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        finally:
            await connection.close()

    asyncio.run(drop())


def plain_dsn(database_url: str) -> str:
    """The asyncpg/libpq form of a SQLAlchemy URL."""
    server, database = _split_url(database_url)
    return f"{server}/{database}"


# ---------------------------------------------------------------------------------------------
# The InstaShare server under test


class _ServerProcess:
    """A server subprocess on a free port, with a scratch directory removed by ``close``."""

    def __init__(self, label: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"instashare-bench-{label}-"))
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class InstaShareServer(_ServerProcess):
    """`python -m instashare serve --no-worker` on a free port, a private DB and storage dir."""

    def __init__(
        self, database_url_base: str, label: str, extra_env: dict[str, str] | None = None
    ) -> None:
        super().__init__(label)
        self.database_url_base = database_url_base.rstrip("/")
        _, path_db = _split_url(self.database_url_base)
        if path_db:
            raise ValueError("--database-url-base must name no database (it adds its own)")
        self.database = f"instashare_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
        self.database_url = f"{self.database_url_base}/{self.database}"
        self.extra_env = extra_env or {}
        self.storage_dir = self.workdir / "storage"

    def environment(self) -> dict[str, str]:
        """The environment of the server; other `instashare` processes on it (workers) too."""
        return {
            **os.environ,
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
        env = self.environment()
        args = [sys.executable, "-m", "instashare", "serve", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--no-worker"]
        self.process = start_process(args, env, self.log_path)
        # Creating the database and running the migrations happens before the port opens.
        wait_until_serving(f"{self.base_url}/health", self.process, self.log_path, timeout=90)

    def close(self) -> None:
        errors: list[str] = []
        if self.process is not None:
            try:
                stop_process(self.process)
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

    def log_tail(self) -> str:
        return tail(self.log_path)


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


# ---------------------------------------------------------------------------------------------
# The upload baseline: a bare ASGI app that writes the raw request body to a file


def bare_upload_app(target_dir: Path) -> Any:
    """Raw ASGI: POST -> body chunks appended to a new file as they arrive. No parsing, no hash."""
    counter = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal counter
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        size = 0
        if scope["method"] == "POST":
            counter += 1
            path = target_dir / f"body-{counter}"
            with path.open("wb") as out:
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    if chunk:
                        out.write(chunk)
                        size += len(chunk)
                    more = message.get("more_body", False)
        body = json.dumps({"bytes": size}).encode()
        status = 201 if scope["method"] == "POST" else 200
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class BareUploadServer(_ServerProcess):
    """The baseline app in its own process, served by uvicorn with `instashare serve`'s settings."""

    def __init__(self, label: str = "bare") -> None:
        super().__init__(label)

    def start(self) -> None:
        (self.workdir / "bodies").mkdir()
        args = [sys.executable, str(Path(__file__).resolve()), "bare-upload-server"]
        args += ["--port", str(self.port), "--dir", str(self.workdir / "bodies")]
        self.process = start_process(args, {**os.environ}, self.log_path)
        wait_until_serving(f"{self.base_url}/", self.process, self.log_path, timeout=30)

    def close(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def clear_bodies(self) -> None:
        for path in (self.workdir / "bodies").iterdir():
            path.unlink()


def _serve_bare(port: int, directory: Path) -> None:
    import uvicorn

    # The same uvicorn options as `instashare serve` (instashare/cli.py), everything else default.
    uvicorn.run(
        bare_upload_app(directory),
        host="127.0.0.1",
        port=port,
        log_config=None,
        proxy_headers=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="helper processes of the benchmarks")
    commands = parser.add_subparsers(dest="command", required=True)
    bare = commands.add_parser("bare-upload-server", help="serve the upload baseline app")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--dir", type=Path, required=True)
    arguments = parser.parse_args()
    _serve_bare(arguments.port, arguments.dir)
