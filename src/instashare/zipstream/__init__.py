"""ZIP archives: streaming compression, and rename-without-recompression.

Every upload is compressed once, as it streams in, into a one-entry ZIP that is kept in object
storage. Downloads must carry the document's *current* name, which may differ from the name it
had when it was compressed. The entry name lives only in the headers around the deflate data, so
a download is assembled from freshly generated headers plus a byte range of the stored object:
renaming a document never touches the stored object and never recompresses anything.

* :mod:`.writer`: :func:`write_zip` compresses an async byte stream into a ZIP written through an
  append-only sink, in constant memory, and returns the :class:`ZipEntryInfo` needed later.
* :mod:`.layout`: :func:`build_layout` describes a new archive (a different name and time) as
  bytes to emit and ranges of the stored object to copy, :func:`build_archive` the same for many
  entries from many stored objects (a share's ZIP); :func:`iter_layout` streams any byte range
  of either.
* :mod:`.records`: the binary records both of them write.
"""

from instashare.zipstream.layout import (
    READ_AHEAD_MAX_BYTES,
    ArchiveEntry,
    ArchiveLayout,
    ReadBatch,
    ReadRange,
    StoredDataError,
    StoredRange,
    build_archive,
    build_layout,
    iter_layout,
)
from instashare.zipstream.records import (
    METHOD_DEFLATED,
    METHOD_STORED,
    ZIP64_COUNT_LIMIT,
    ZIP64_LIMIT,
)
from instashare.zipstream.writer import DEFAULT_LEVEL, WRITE_SIZE, ZipEntryInfo, write_zip

__all__ = [
    "DEFAULT_LEVEL",
    "METHOD_DEFLATED",
    "METHOD_STORED",
    "READ_AHEAD_MAX_BYTES",
    "WRITE_SIZE",
    "ZIP64_COUNT_LIMIT",
    "ZIP64_LIMIT",
    "ArchiveEntry",
    "ArchiveLayout",
    "ReadBatch",
    "ReadRange",
    "StoredDataError",
    "StoredRange",
    "ZipEntryInfo",
    "build_archive",
    "build_layout",
    "iter_layout",
    "write_zip",
]
