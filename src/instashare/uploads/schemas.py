"""What the tus routes declare in the OpenAPI document: error bodies and protocol headers.

tus requests and answers carry no JSON of their own (their data travels in headers); errors
have the API's usual body.
"""

from __future__ import annotations

from litestar.datastructures import ResponseHeader
from litestar.openapi import ResponseSpec
from msgspec import Struct


class UploadError(Struct):
    status_code: int
    detail: str


_ERRORS = {
    400: "malformed tus headers (Upload-Length, Upload-Offset, Upload-Metadata, Upload-Checksum)",
    401: "missing or invalid bearer token",
    404: "no such upload of yours (or it expired or was terminated)",
    409: "Upload-Offset differs from the upload's offset",
    410: "the upload's stored bytes were lost; start a new upload",
    412: "Tus-Resumable missing or not 1.0.0 (the answer carries Tus-Version)",
    413: "over MAX_UPLOAD_BYTES, the remaining quota, or the upload's length",
    415: "a chunk not sent as application/offset+octet-stream",
    423: "another request is writing to this upload; retry",
    405: "X-HTTP-Method-Override names no method an upload answers",
    460: "the chunk does not match Upload-Checksum; it was discarded",
}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    return {
        code: ResponseSpec(data_container=UploadError, description=_ERRORS[code]) for code in codes
    }


def no_body(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=None, description=description, generate_examples=False)


def headers(*names: str) -> list[ResponseHeader]:
    return [ResponseHeader(name=name, documentation_only=True) for name in names]
