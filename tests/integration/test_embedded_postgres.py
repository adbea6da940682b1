"""The private cluster used when no database is configured: started from the machine's binaries."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from tests.support.ports import free_port

from instashare.database_setup import EmbeddedPostgres, create_database_if_missing, upgrade_to_head

pytestmark = pytest.mark.skipif(
    not EmbeddedPostgres.available(), reason="no PostgreSQL server binaries on this machine"
)


def test_private_cluster_starts_creates_and_migrates_a_database() -> None:
    root = Path(tempfile.mkdtemp(prefix="instashare-pg-"))
    os.chmod(root, 0o755)  # the postgres account must reach it when we run as root
    cluster = EmbeddedPostgres(data_dir=root / "pg" / "data", port=free_port())
    previous = os.environ.get("DATABASE_URL")
    try:
        cluster.start()
        url = cluster.url.rsplit("/", 1)[0] + "/instashare"
        assert create_database_if_missing(url) is True
        assert create_database_if_missing(url) is False
        upgrade_to_head(url)
        # Starting again over the same directory reuses the cluster.
        cluster.stop()
        cluster.start()
    finally:
        cluster.stop()
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
    assert (root / "pg" / "data" / "PG_VERSION").exists()
