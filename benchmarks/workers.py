"""Separate `instashare worker` processes beside a benchmark's server."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

from tests.support.processes import Process, start_instashare

from benchmarks.support import STOP_TIMEOUT, InstaShareServer


class Workers:
    """`--workers` separate `instashare worker` processes on the server's database and storage."""

    def __init__(self, server: InstaShareServer, count: int) -> None:
        self.server, self.count = server, count
        self.processes: list[Process] = []
        self.log_paths = [server.workdir / f"worker-{i + 1}.log" for i in range(count)]

    def start(self) -> None:
        env = self.server.environment()
        for log_path in self.log_paths:
            worker = start_instashare(["worker"], env, log_path, die_with_parent=True)
            self.processes.append(worker)

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def log_tail(self) -> str:
        """The end of the first worker's log."""
        return self.processes[0].tail() if self.processes else ""

    def check_alive(self) -> None:
        for process in self.processes:
            if process.popen.poll() is not None:
                raise RuntimeError(
                    f"worker pid {process.pid} exited with {process.popen.returncode}:\n"
                    f"{process.tail()}"
                )

    def stop(self) -> None:
        # SIGTERM to all first: they shut down side by side, not one after the other.
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.popen.terminate()
        for process in self.processes:
            try:
                process.stop(STOP_TIMEOUT)
            except Exception as exc:
                print(f"cleanup warning: stopping worker {process.pid}: {exc!r}", file=sys.stderr)

    async def wait_until_listening(self, dsn: str, timeout: float) -> float | None:
        """Seconds until every worker waits for jobs (a LISTEN backend each); None on timeout.

        An idle SAQ worker process keeps one connection on LISTEN for new jobs; with a backlog
        it does not listen until the queue is empty, so this is only used on an empty queue.
        """
        import asyncpg

        started = time.perf_counter()
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            while time.perf_counter() - started < timeout:
                self.check_alive()
                listening = await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                )
                if listening >= self.count:
                    return time.perf_counter() - started
                await asyncio.sleep(0.1)
        finally:
            await connection.close()
        return None
