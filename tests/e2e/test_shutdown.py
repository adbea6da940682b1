"""Stopping idle processes: they hand nothing back, so they stop at once and quietly."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from tests.support.ports import free_port
from tests.support.processes import Process, instashare, wait_until_serving

# SAQ's words when tasks outlive the grace period; an idle process has no reason to say them.
GRACE_WARNING = "did not finish within the shutdown grace period"


def stop_and_wait(process: Process, signum: signal.Signals) -> int:
    process.popen.send_signal(signum)
    return process.popen.wait(timeout=60)


def wait_for_log(process: Process, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log():
        assert process.popen.poll() is None, process.log()
        assert time.monotonic() < deadline, process.log()
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_idle_worker_stops_without_waiting_out_the_grace_period(
    migrated_database_url: str, tmp_path: Path, signum: signal.Signals
) -> None:
    env = {
        "DATABASE_URL": migrated_database_url,
        "STORAGE_URL": (tmp_path / "storage").as_uri(),
        "INSTASHARE_ENV": "test",
    }
    with instashare(["worker"], env, tmp_path / "worker.log") as worker:
        wait_for_log(worker, "workers starting")
        time.sleep(3)  # connected and in its idle loops: waiting for jobs, timers sleeping
        assert stop_and_wait(worker, signum) == 0
    assert GRACE_WARNING not in worker.log()


def test_an_idle_server_with_workers_stops_quietly(
    migrated_database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "DATABASE_URL": migrated_database_url,
        "STORAGE_URL": (tmp_path / "storage").as_uri(),
        "INSTASHARE_ENV": "test",
    }
    with instashare(["serve", "--port", str(port)], env, tmp_path / "serve.log") as server:
        wait_until_serving(f"http://127.0.0.1:{port}/health", server)
        wait_for_log(server, "Worker starting")
        time.sleep(1)
        assert stop_and_wait(server, signal.SIGINT) == 0
    assert "Application shutdown complete" in server.log()
    assert GRACE_WARNING not in server.log()
