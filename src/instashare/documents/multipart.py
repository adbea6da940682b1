"""A streaming ``multipart/form-data`` reader: parts arrive as they are parsed, never spooled.

Litestar's own form parsing writes each file part to a temporary file before the handler runs;
for multi-gigabyte uploads we parse the request stream ourselves with python-multipart's push
parser and hand the file's bytes to storage as they arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header


class MalformedMultipartError(ValueError):
    """The body is not the multipart/form-data its headers announce."""


@dataclass
class PartStart:
    field_name: str
    filename: str | None
    content_type: str | None


@dataclass
class PartData:
    data: bytes


@dataclass
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str) -> bytes:
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        raise MalformedMultipartError("the request body must be multipart/form-data")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise MalformedMultipartError("the multipart/form-data boundary is missing or invalid")
    return boundary


@dataclass
class _Collector:
    """Turns python-multipart's callbacks into a list of events for one fed chunk."""

    events: list[Event] = field(default_factory=list)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_bytes: int = 0
    finished: bool = False

    def on_part_begin(self) -> None:
        self.headers = {}
        self.header_bytes = 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self.headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise MalformedMultipartError("a part has no form-data Content-Disposition name")
        filename = options.get(b"filename")
        content_type = self.headers.get(b"content-type")
        self.events.append(
            PartStart(
                field_name=options[b"name"].decode("utf-8", "replace"),
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
                content_type=content_type.decode("latin-1").strip() if content_type else None,
            )
        )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self.events.append(PartData(bytes(data[start:end])))

    def on_part_end(self) -> None:
        self.events.append(PartEnd())

    def on_end(self) -> None:
        self.finished = True

    def _count(self, size: int) -> None:
        # Part headers are tiny in practice; refuse a body that streams endless header bytes.
        self.header_bytes += size
        if self.header_bytes > 16 * 1024:
            raise MalformedMultipartError("multipart part headers are too large")


async def parse_multipart(body: AsyncIterator[bytes], content_type: str) -> AsyncIterator[Event]:
    """Yield part events in order while reading ``body``; memory stays at one chunk."""
    collector = _Collector()
    parser = MultipartParser(
        boundary_of(content_type),
        callbacks={
            "on_part_begin": collector.on_part_begin,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_end": collector.on_end,
        },
    )
    async for chunk in body:
        if not chunk:
            continue
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise MalformedMultipartError(f"malformed multipart body: {exc}") from exc
        for event in collector.events:
            yield event
        collector.events.clear()
    if not collector.finished:
        raise MalformedMultipartError("the multipart body ended before its closing boundary")
