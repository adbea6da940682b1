"""A share's ZIP: one entry per ready document, built around each document's stored data."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from instashare.documents.downloads import ArchivedDocument, archive_entry
from instashare.documents.models import DocumentStatus
from instashare.zipstream import ArchiveLayout, build_archive

# Bumped whenever the same documents would be laid out differently, so ETags change with it.
_LAYOUT_VERSION = "share-zip-1"
DEFAULT_ARCHIVE_NAME = "share"


@dataclass(frozen=True)
class ShareArchive:
    layout: ArchiveLayout
    etag: str
    filename: str


def entry_names(names: Sequence[str]) -> list[str]:
    """The names as given, except that a repeat becomes ``name (2).ext``, ``name (3).ext``...

    Repeats are found ignoring case, since Windows and macOS would extract ``Report.pdf`` and
    ``report.pdf`` onto the same file.
    """
    taken: set[str] = set()
    unique: list[str] = []
    for name in names:
        candidate = name
        number = 1
        while candidate.casefold() in taken:
            number += 1
            candidate = _numbered(name, number)
        taken.add(candidate.casefold())
        unique.append(candidate)
    return unique


def _numbered(name: str, number: int) -> str:
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dot file such as ".env"
        return f"{name} ({number})"
    return f"{stem} ({number}).{extension}"


def archive_filename(title: str | None) -> str:
    """The download's file name: the share's title, made safe for a file system, plus .zip."""
    name = (title or "").replace("/", "-").replace("\\", "-").strip(" .")
    return f"{name or DEFAULT_ARCHIVE_NAME}.zip"


class ShareFile(ArchivedDocument, Protocol):
    @property
    def status(self) -> DocumentStatus: ...


def share_archive(documents: Sequence[ShareFile], title: str | None) -> ShareArchive | None:
    """The ZIP of the share's ready documents, in the share's order; None when none is ready."""
    ready = [document for document in documents if document.status == DocumentStatus.READY]
    if not ready:
        return None
    names = entry_names([document.name for document in ready])
    fingerprint = hashlib.sha256(_LAYOUT_VERSION.encode())
    # Everything that shapes the bytes: which documents, their stored data and their names.
    for document, name in zip(ready, names, strict=True):
        part = f"|{document.id}|{document.sha256}|{document.archive_key}|{name}"
        fingerprint.update(part.encode())
    etag = '"' + fingerprint.hexdigest()[:32] + '"'
    layout = _recent_layouts.get(etag)
    if layout is not None:
        _recent_layouts.move_to_end(etag)
    else:
        entries = [archive_entry(d, name) for d, name in zip(ready, names, strict=True)]
        layout = build_archive(entries)
        _remember(etag, layout)
    return ShareArchive(layout=layout, etag=etag, filename=archive_filename(title))


# The layouts of the archives served last, by ETag (which covers everything in them): a client
# fetching one archive in many ranges would otherwise have every entry laid out each time.
# A thousand-entry layout takes a few hundred KB.
_recent_layouts: OrderedDict[str, ArchiveLayout] = OrderedDict()
RECENT_LAYOUTS = 16


def _remember(etag: str, layout: ArchiveLayout) -> None:
    _recent_layouts[etag] = layout
    while len(_recent_layouts) > RECENT_LAYOUTS:
        _recent_layouts.popitem(last=False)
