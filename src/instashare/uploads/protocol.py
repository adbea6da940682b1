"""The header rules of tus 1.0.0 (https://tus.io/protocols/resumable-upload), in one place.

Parsing turns request headers into checked values or raises :class:`TusError`, a client error
whose status the specification names (400, 409, 412, 413, 415, 460). Nothing here touches the
database or storage, so every rule is tested on its own against the specification's examples.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Final

from litestar.exceptions import ClientException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_412_PRECONDITION_FAILED,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
)

TUS_VERSION: Final = "1.0.0"
EXTENSIONS: Final = ("creation", "creation-with-upload", "termination", "expiration", "checksum")
CHECKSUM_ALGORITHMS: Final = ("sha1", "sha256")
CHUNK_CONTENT_TYPE: Final = "application/offset+octet-stream"
HTTP_460_CHECKSUM_MISMATCH: Final = 460
# Headers a browser client must be allowed to send and to read (CORS).
REQUEST_HEADERS: Final = (
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
    "Upload-Defer-Length",
    "X-HTTP-Method-Override",
    "Content-Type",
)
RESPONSE_HEADERS: Final = (
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Location",
    "Document-Id",
)
# Offsets and lengths are byte counts that PostgreSQL keeps as bigint.
_MAX_DIGITS: Final = 18
_DIGITS: Final = re.compile(r"[0-9]+")
# Metadata keys: printable ASCII without space and comma (the spec's separators).
_METADATA_KEY: Final = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# The raw header is echoed on HEAD; a bound keeps rows small and clients honest.
MAX_METADATA_BYTES: Final = 4096
_DIGEST_SIZES: Final = {"sha1": 20, "sha256": 32}


class TusError(ClientException):
    """A request that breaks a rule of the protocol; the status says which kind."""

    def __init__(
        self, status_code: int, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail=detail, status_code=status_code, headers=headers)


def options_headers(max_size: int) -> dict[str, str]:
    """What ``OPTIONS`` answers: the server's version, extensions and limits."""
    return {
        "Tus-Resumable": TUS_VERSION,
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }


def check_tus_resumable(headers: Mapping[str, str]) -> None:
    """Every request but OPTIONS names the protocol version it speaks; only 1.0.0 is served."""
    version = headers.get("tus-resumable")
    if version is None or version.strip() != TUS_VERSION:
        given = "no Tus-Resumable header" if version is None else f"Tus-Resumable {version!r}"
        raise TusError(
            HTTP_412_PRECONDITION_FAILED,
            f"{given}: this server speaks tus {TUS_VERSION}",
            headers={"Tus-Version": TUS_VERSION},
        )


def _byte_count(name: str, raw: str | None, *, too_large_status: int) -> int | None:
    if raw is None:
        return None
    value = raw.strip()
    if not _DIGITS.fullmatch(value):
        raise TusError(HTTP_400_BAD_REQUEST, f"{name} must be a non-negative integer")
    if len(value.lstrip("0")) > _MAX_DIGITS:
        raise TusError(too_large_status, f"{name} is too large")
    return int(value)


def parse_upload_length(headers: Mapping[str, str]) -> int:
    """``Upload-Length`` of a creation request; deferring the length is not offered."""
    if "upload-defer-length" in headers:
        raise TusError(
            HTTP_400_BAD_REQUEST,
            "Upload-Defer-Length is not supported: send Upload-Length with the file's size",
        )
    length = _byte_count(
        "Upload-Length",
        headers.get("upload-length"),
        too_large_status=HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )
    if length is None:
        raise TusError(HTTP_400_BAD_REQUEST, "Upload-Length is required")
    return length


def parse_upload_offset(headers: Mapping[str, str]) -> int:
    offset = _byte_count(
        "Upload-Offset", headers.get("upload-offset"), too_large_status=HTTP_400_BAD_REQUEST
    )
    if offset is None:
        raise TusError(HTTP_400_BAD_REQUEST, "Upload-Offset is required")
    return offset


def parse_content_length(headers: Mapping[str, str]) -> int | None:
    return _byte_count(
        "Content-Length",
        headers.get("content-length"),
        too_large_status=HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def check_chunk_content_type(headers: Mapping[str, str]) -> None:
    if _media_type(headers) != CHUNK_CONTENT_TYPE:
        raise TusError(
            HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"upload chunks must be sent as Content-Type: {CHUNK_CONTENT_TYPE}",
        )


def carries_chunk(headers: Mapping[str, str]) -> bool:
    """Whether a creation request brings its first bytes (creation-with-upload)."""
    if _media_type(headers) == CHUNK_CONTENT_TYPE:
        return True
    if parse_content_length(headers) or "transfer-encoding" in headers:
        check_chunk_content_type(headers)  # a body, but not of upload bytes: 415
    return False


@dataclass(frozen=True)
class Metadata:
    """``Upload-Metadata``: the decoded values, and the header as sent (echoed by HEAD)."""

    values: dict[str, bytes]
    raw: str | None

    def text(self, key: str) -> str | None:
        """A value as UTF-8 text, or None when absent; 400 when it is not text."""
        value = self.values.get(key)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TusError(
                HTTP_400_BAD_REQUEST, f"Upload-Metadata value {key!r} must be UTF-8 text"
            ) from exc


def parse_metadata(headers: Mapping[str, str]) -> Metadata:
    """Comma-separated ``key base64value`` pairs; the value (and its space) may be left out."""
    raw = headers.get("upload-metadata")
    if raw is None or not raw.strip():
        return Metadata({}, None)
    if len(raw.encode("latin-1", "replace")) > MAX_METADATA_BYTES:
        raise TusError(
            HTTP_400_BAD_REQUEST, f"Upload-Metadata must be at most {MAX_METADATA_BYTES} bytes"
        )
    values: dict[str, bytes] = {}
    for pair in raw.split(","):
        key, _, encoded = pair.strip().partition(" ")
        encoded = encoded.strip()
        if not _METADATA_KEY.fullmatch(key):
            raise TusError(
                HTTP_400_BAD_REQUEST,
                "Upload-Metadata keys must be non-empty ASCII without spaces or commas",
            )
        if key in values:
            raise TusError(HTTP_400_BAD_REQUEST, f"Upload-Metadata repeats the key {key!r}")
        values[key] = _decode_base64(encoded, f"Upload-Metadata value of {key!r}")
    # Rebuilt from checked parts, so that echoing it cannot smuggle anything into a header.
    echoed = ",".join(
        f"{key} {base64.b64encode(value).decode('ascii')}" if value else key
        for key, value in values.items()
    )
    return Metadata(values, echoed)


def _decode_base64(encoded: str, what: str) -> bytes:
    if not _BASE64.fullmatch(encoded):
        raise TusError(HTTP_400_BAD_REQUEST, f"{what} is not base64")
    try:
        # Padding is optional in what we accept; the alphabet is not.
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise TusError(HTTP_400_BAD_REQUEST, f"{what} is not base64") from exc


@dataclass(frozen=True)
class Checksum:
    """``Upload-Checksum``: the algorithm and the digest the chunk must have."""

    algorithm: str
    digest: bytes

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    def matches(self, hasher: hashlib._Hash) -> bool:
        return hmac.compare_digest(hasher.digest(), self.digest)


def parse_checksum(headers: Mapping[str, str]) -> Checksum | None:
    raw = headers.get("upload-checksum")
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise TusError(
            HTTP_400_BAD_REQUEST,
            f"unsupported checksum algorithm {algorithm!r}: use one of "
            f"{', '.join(CHECKSUM_ALGORITHMS)}",
        )
    digest = _decode_base64(encoded.strip(), "the Upload-Checksum digest")
    if len(digest) != _DIGEST_SIZES[algorithm]:
        raise TusError(
            HTTP_400_BAD_REQUEST, f"a {algorithm} digest is {_DIGEST_SIZES[algorithm]} bytes"
        )
    return Checksum(algorithm, digest)


def method_override(method: str, headers: Mapping[str, str]) -> str:
    """The method a request stands for: ``X-HTTP-Method-Override`` wins over the actual one."""
    override = headers.get("x-http-method-override")
    return override.strip().upper() if override else method.upper()


def format_expires(when: datetime) -> str:
    """An RFC 7231 HTTP date, as ``Upload-Expires`` must be: ``Wed, 25 Jun 2014 16:00:00 GMT``."""
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)
