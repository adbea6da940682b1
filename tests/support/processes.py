"""Real `instashare` processes (API server, workers) for end-to-end tests and benchmarks."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log().splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, as when a machine dies."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL if it is still running after ``timeout`` seconds."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()


def _terminate_with_parent(libc: ctypes.CDLL) -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(Exception):
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_process(
    args: list[str], env: dict[str, str], log_path: Path, *, die_with_parent: bool = False
) -> Process:
    """Start ``args`` in the repository root, ``env`` over this process's environment, output
    (stdout and stderr) into ``log_path``.

    ``die_with_parent`` (Linux): the child gets SIGTERM if this process dies without stopping it,
    and a session of its own, so a terminal's Ctrl-C reaches this process only, which stops the
    child itself. Only for single-threaded callers: code that runs between fork and exec is not
    safe while other threads run, and test runs have server threads.
    """
    preexec_fn: Callable[[], None] | None = None
    if die_with_parent:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here, not in the child
        preexec_fn = functools.partial(_terminate_with_parent, libc)

    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=die_with_parent,
            preexec_fn=preexec_fn,
        )
    return Process(popen, log_path)


def start_instashare(
    args: list[str], env: dict[str, str], log_path: Path, *, die_with_parent: bool = False
) -> Process:
    """``python -m instashare <args>`` with this interpreter (so in this environment)."""
    command = [sys.executable, "-m", "instashare", *args]
    return start_process(command, env, log_path, die_with_parent=die_with_parent)


@contextmanager
def instashare(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[Process]:
    """``python -m instashare <args>`` for the duration of the block."""
    process = start_instashare(args, env, log_path)
    try:
        yield process
    finally:
        process.stop()


def wait_until_serving(url: str, process: Process, timeout: float = 60) -> None:
    """Until ``url`` answers 200; fails at once when the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(
                f"the server exited with {process.popen.returncode} before serving:\n"
                f"{process.log()}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer {url} within {timeout:.0f} s:\n{process.log()}")
