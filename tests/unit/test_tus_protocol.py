"""The tus header rules, checked against the examples of the tus 1.0.0 specification."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from instashare.uploads import protocol
from instashare.uploads.protocol import TusError


def error_of(call, *args) -> TusError:
    with pytest.raises(TusError) as caught:
        call(*args)
    return caught.value


def test_options_answer_names_version_extensions_and_limits() -> None:
    headers = protocol.options_headers(1073741824)
    # The specification's OPTIONS example, with the extensions this server offers.
    assert headers["Tus-Resumable"] == "1.0.0"
    assert headers["Tus-Version"] == "1.0.0"
    assert headers["Tus-Max-Size"] == "1073741824"
    assert headers["Tus-Extension"] == (
        "creation,creation-with-upload,termination,expiration,checksum"
    )
    assert headers["Tus-Checksum-Algorithm"] == "sha1,sha256"


@pytest.mark.parametrize("given", [{}, {"tus-resumable": "0.2.2"}, {"tus-resumable": "1.0"}])
def test_another_or_no_protocol_version_is_412_with_tus_version(given: dict[str, str]) -> None:
    error = error_of(protocol.check_tus_resumable, given)
    assert error.status_code == 412
    assert error.headers == {"Tus-Version": "1.0.0"}
    assert "1.0.0" in error.detail


def test_version_1_0_0_is_accepted() -> None:
    protocol.check_tus_resumable({"tus-resumable": "1.0.0"})


def test_upload_length_of_the_creation_example() -> None:
    assert protocol.parse_upload_length({"upload-length": "100"}) == 100
    assert protocol.parse_upload_length({"upload-length": "0"}) == 0


@pytest.mark.parametrize(
    ("given", "status"),
    [
        ({}, 400),
        ({"upload-length": "-1"}, 400),
        ({"upload-length": "1.5"}, 400),
        ({"upload-length": "ten"}, 400),
        ({"upload-length": ""}, 400),
        ({"upload-length": "+5"}, 400),
        ({"upload-length": "9" * 19}, 413),
        ({"upload-length": "9" * 5000}, 413),
        ({"upload-defer-length": "1"}, 400),
    ],
)
def test_bad_upload_length(given: dict[str, str], status: int) -> None:
    assert error_of(protocol.parse_upload_length, given).status_code == status


def test_upload_offset() -> None:
    assert protocol.parse_upload_offset({"upload-offset": "70"}) == 70
    for bad in ({}, {"upload-offset": "-3"}, {"upload-offset": "x"}, {"upload-offset": "9" * 30}):
        assert error_of(protocol.parse_upload_offset, bad).status_code == 400


def test_metadata_of_the_creation_example() -> None:
    metadata = protocol.parse_metadata(
        {"upload-metadata": "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"}
    )
    assert metadata.values == {"filename": b"world_domination_plan.pdf", "is_confidential": b""}
    assert metadata.text("filename") == "world_domination_plan.pdf"
    assert metadata.text("filetype") is None
    assert metadata.raw == "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"


def test_metadata_accepts_missing_padding_and_unicode_values() -> None:
    value = base64.b64encode("été.txt".encode()).decode().rstrip("=")
    metadata = protocol.parse_metadata(
        {"upload-metadata": f"name {value}, filetype dGV4dC9wbGFpbg"}
    )
    assert metadata.text("name") == "été.txt"
    assert metadata.text("filetype") == "text/plain"
    # Echoed in its canonical form, padding restored.
    assert (
        metadata.raw
        == f"name {base64.b64encode('été.txt'.encode()).decode()},filetype dGV4dC9wbGFpbg=="
    )


def test_absent_metadata() -> None:
    assert protocol.parse_metadata({}).values == {}
    assert protocol.parse_metadata({"upload-metadata": " "}).raw is None


@pytest.mark.parametrize(
    "raw",
    [
        "filename not*base64",
        "filename aGVsbG8=,filename aGVsbG8=",
        "file\x01name aGVsbG8=",
        ",filename aGVsbG8=",
        "filename a",
        "filename aGVsbG8=\r\nX-Injected: yes",
        "filename " + "QUFB" * 2000,
    ],
)
def test_bad_metadata_is_400(raw: str) -> None:
    assert error_of(protocol.parse_metadata, {"upload-metadata": raw}).status_code == 400


def test_metadata_value_that_is_not_utf8_text() -> None:
    metadata = protocol.parse_metadata({"upload-metadata": "name /w=="})
    with pytest.raises(TusError) as caught:
        metadata.text("name")
    assert caught.value.status_code == 400


def test_checksum_of_the_specification_example() -> None:
    checksum = protocol.parse_checksum({"upload-checksum": "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="})
    assert checksum is not None
    hasher = checksum.hasher()
    hasher.update(b"hello world")
    assert checksum.matches(hasher)
    other = checksum.hasher()
    other.update(b"hello world!")
    assert not checksum.matches(other)


def test_sha256_checksum() -> None:
    digest = base64.b64encode(hashlib.sha256(b"chunk").digest()).decode()
    checksum = protocol.parse_checksum({"upload-checksum": f"sha256 {digest}"})
    assert checksum is not None
    assert checksum.algorithm == "sha256"
    assert protocol.parse_checksum({}) is None


@pytest.mark.parametrize(
    "raw",
    [
        "md5 XUFAKrxLKna5cZ2REBfFkg==",
        "sha1 !!!",
        "sha1 aGVsbG8=",
        "SHA1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
    ],
)
def test_bad_checksum_is_400(raw: str) -> None:
    assert error_of(protocol.parse_checksum, {"upload-checksum": raw}).status_code == 400


def test_chunks_must_be_offset_octet_streams() -> None:
    protocol.check_chunk_content_type({"content-type": "application/offset+octet-stream"})
    for bad in ({}, {"content-type": "application/octet-stream"}, {"content-type": "text/plain"}):
        assert error_of(protocol.check_chunk_content_type, bad).status_code == 415


def test_creation_with_upload_is_recognised_by_its_content_type() -> None:
    assert protocol.carries_chunk({"content-type": "application/offset+octet-stream"})
    assert not protocol.carries_chunk({})
    assert not protocol.carries_chunk({"content-length": "0"})
    error = error_of(protocol.carries_chunk, {"content-type": "text/plain", "content-length": "5"})
    assert error.status_code == 415


def test_method_override() -> None:
    assert protocol.method_override("POST", {"x-http-method-override": "patch"}) == "PATCH"
    assert protocol.method_override("PATCH", {"x-http-method-override": "DELETE"}) == "DELETE"
    assert protocol.method_override("head", {}) == "HEAD"


def test_upload_expires_is_an_rfc_7231_date() -> None:
    when = datetime(2014, 6, 25, 16, 0, 0, 123456, tzinfo=UTC)
    assert protocol.format_expires(when) == "Wed, 25 Jun 2014 16:00:00 GMT"
    elsewhere = when.astimezone(timezone(timedelta(hours=2)))
    assert protocol.format_expires(elsewhere) == "Wed, 25 Jun 2014 16:00:00 GMT"
