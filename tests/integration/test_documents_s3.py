"""The documents API with S3 storage: a local S3 server over real HTTP."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from uuid import uuid4

import httpx
from tests.conftest import S3_BUCKET
from tests.s3_server import MotoS3
from tests.support.api import auth_headers
from tests.support.documents import upload

from instashare.config import Settings


async def test_upload_rename_delete_on_s3(
    moto: MotoS3,
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    prefix = f"api-{uuid4().hex}"
    settings = make_settings(
        storage_url=f"s3://{S3_BUCKET}/{prefix}",
        s3_endpoint_url=moto.endpoint,
        s3_region=moto.region,
        s3_access_key_id=moto.access_key_id,
        s3_secret_access_key=moto.secret_access_key,
        max_upload_bytes=12 * 1024 * 1024,
    )
    s3 = moto.client()

    def keys() -> set[str]:
        listed = s3.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"{prefix}/")
        return {item["Key"].removeprefix(f"{prefix}/") for item in listed.get("Contents", [])}

    content = os.urandom(11 * 1024 * 1024)  # several multipart parts
    with start_server(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            health = await http.get("/health")
            assert health.json()["checks"]["storage"] == "ok"
            headers = await auth_headers(http)
            response = await upload(http, headers, content, filename="big.bin")
            assert response.status_code == 202, response.text
            document = response.json()
            assert document["sha256"] == hashlib.sha256(content).hexdigest()
            key = f"originals/{document['id']}"
            assert keys() == {key}
            stored = s3.get_object(Bucket=S3_BUCKET, Key=f"{prefix}/{key}")["Body"].read()
            assert stored == content

            too_big = await upload(http, headers, content + content[: 2 * 1024 * 1024])
            assert too_big.status_code == 413
            assert keys() == {key}
            assert moto.incomplete_uploads(S3_BUCKET, f"{prefix}/") == []

            renamed = await http.patch(
                f"/api/documents/{document['id']}", headers=headers, json={"name": "new.bin"}
            )
            assert renamed.json()["name"] == "new.bin"
            deleted = await http.delete(f"/api/documents/{document['id']}", headers=headers)
            assert deleted.status_code == 204
            assert keys() == set()
