"""CPU seconds used during a benchmark phase: the API process, the workers, the client and the
rest of the machine (mostly PostgreSQL)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.support import cpu_seconds, machine_busy_seconds


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


@dataclass
class CpuUse:
    """CPU seconds used during a phase, by who."""

    server: float = 0.0
    workers: float = 0.0
    client: float = 0.0
    machine: float = 0.0

    @property
    def other(self) -> float:
        return max(0.0, self.machine - self.server - self.workers - self.client)


class CpuMeter:
    def __init__(self, server_pid: int, worker_pids: Callable[[], list[int]]) -> None:
        self.server_pid, self.worker_pids = server_pid, worker_pids
        self.start = self._read()

    def _read(self) -> CpuUse:
        return CpuUse(
            server=_cpu_or_zero(self.server_pid),
            workers=sum(_cpu_or_zero(pid) for pid in self.worker_pids()),
            client=time.process_time(),
            machine=machine_busy_seconds(),
        )

    def restart(self) -> None:
        self.start = self._read()

    def used(self) -> CpuUse:
        now = self._read()
        return CpuUse(
            server=now.server - self.start.server,
            workers=now.workers - self.start.workers,
            client=now.client - self.start.client,
            machine=now.machine - self.start.machine,
        )


def print_cpu(cpu: CpuUse, seconds: float, documents: int) -> None:
    cores = os.cpu_count() or 1
    print(
        f"    CPU in cores: server {cpu.server / seconds:.2f}, "
        f"workers {cpu.workers / seconds:.2f}, client {cpu.client / seconds:.2f}, "
        f"other (PostgreSQL, system) {cpu.other / seconds:.2f}; "
        f"machine busy {cpu.machine / seconds:.2f} of {cores}"
    )
    per = 1000 / max(documents, 1)
    print(
        f"    CPU per document: server {cpu.server * per:.1f} ms, workers "
        f"{cpu.workers * per:.1f} ms, client {cpu.client * per:.1f} ms, other "
        f"{cpu.other * per:.1f} ms; machine {cpu.machine * per:.1f} ms"
    )
