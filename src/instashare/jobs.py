"""Background jobs."""

from __future__ import annotations

import sys

from instashare.config import Settings


def run_workers(settings: Settings) -> int:
    print("instashare worker: nothing to do yet: no background jobs are defined", file=sys.stderr)
    return 0
