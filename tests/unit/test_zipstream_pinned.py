"""Single-document layouts stay byte-identical across releases."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from tests.support.zips import WHEN

from instashare.zipstream import ZipEntryInfo, build_layout

# Digests of the literal segments (ranges as "<offset+length>") of single-document layouts as
# served since the first release. The documents' ETags do not hash these bytes, so a change here
# would splice different bytes into downloads resumed across a deployment.
PINNED_LAYOUTS = {
    "small-deflated": (
        ZipEntryInfo(0x1234ABCD, 1000, 600, 57, 800, 8),
        "report.pdf",
        WHEN,
        "929eae5dc9a77b6c308e0873df029871",
        736,
    ),
    "non-ascii": (
        ZipEntryInfo(0xDEADBEEF, 10, 12, 40, 100, 8),
        "Überweisung März € 2025.txt",
        WHEN,
        "48854791e79f2af191abbcf11232221a",
        190,
    ),
    "stored-empty": (
        ZipEntryInfo(0, 0, 0, 0, 0, 0),
        "empty",
        datetime(1975, 1, 1, tzinfo=UTC),
        "24decec4de8b689366a92071632998b3",
        126,
    ),
    "zip64-sizes": (
        ZipEntryInfo(0xCAFEBABE, 5 << 30, (4 << 30) + 7, 61, 5 << 30, 8),
        "big.bin",
        datetime(2200, 1, 1, tzinfo=UTC),
        "4198f10e5d58f554df9d0218066381a5",
        4294967531,
    ),
    "zip64-directory-offset": (
        ZipEntryInfo(0xCAFEBABE, (4 << 30) - 2, (4 << 30) - 3, 61, 5 << 30, 8),
        "near.bin",
        WHEN,
        "0a4097c6437518aee3ac3604acb20f87",
        4294967501,
    ),
}


@pytest.mark.parametrize("case", sorted(PINNED_LAYOUTS))
def test_single_document_layouts_stay_byte_identical(case: str) -> None:
    info, name, modified, digest, size = PINNED_LAYOUTS[case]
    layout = build_layout(info, name, modified=modified)
    hasher = hashlib.sha256()
    for segment in layout.segments:
        if isinstance(segment, bytes):
            hasher.update(segment)
        else:
            hasher.update(f"<{segment.offset}+{segment.length}>".encode())
    assert (hasher.hexdigest()[:32], layout.size) == (digest, size)
