"""A local S3 (moto's standalone server) reached over real HTTP, for tests.

Plain helpers, no pytest fixtures, so any conftest or test module can wrap them:

    with moto_s3_server() as s3:
        s3.create_bucket("instashare-test")
        settings = StorageSettings(url="s3://instashare-test", **s3.storage_options())
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

import boto3  # type: ignore[import-untyped]
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # moto accepts any credentials


class S3StorageOptions(TypedDict):
    """The S3 fields of ``instashare.storage.StorageSettings``."""

    s3_endpoint: str
    s3_region: str
    s3_access_key_id: str
    s3_secret_access_key: str


@dataclass(frozen=True)
class MotoS3:
    endpoint: str
    region: str = REGION
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY

    def client(self) -> Any:
        """A boto3 S3 client, for what obstore cannot do (buckets, listing multipart uploads)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def storage_options(self) -> S3StorageOptions:
        """The S3 fields of ``instashare.storage.StorageSettings`` for this server."""
        return {
            "s3_endpoint": self.endpoint,
            "s3_region": self.region,
            "s3_access_key_id": self.access_key_id,
            "s3_secret_access_key": self.secret_access_key,
        }

    def incomplete_uploads(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys of multipart uploads started but neither completed nor aborted."""
        response = self.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return [upload["Key"] for upload in response.get("Uploads", [])]


@contextmanager
def moto_s3_server() -> Iterator[MotoS3]:
    """Run moto's S3 on 127.0.0.1, on a port picked by the OS, for the duration of the block."""
    # werkzeug logs every request at INFO; that drowns test output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoS3(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()
