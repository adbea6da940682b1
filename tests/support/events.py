"""Reading a server-sent event stream as a browser's EventSource does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """Each event (or comment-only block) of the stream, as it arrives."""
    current = Event()
    touched = False
    async for line in response.aiter_lines():
        if not line:
            if touched:
                yield current
            current, touched = Event(), False
            continue
        touched = True
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            current.comments.append(value)
        elif name == "event":
            current.event = value
        elif name == "data":
            current.data = f"{current.data}\n{value}" if current.data else value
        elif name == "id":
            current.id = value


async def next_event(
    stream: AsyncIterator[Event], kind: str, timeout: float = 20.0, **fields: Any
) -> Event:
    """The next event of type ``kind`` whose JSON data has ``fields``, skipping the others."""
    async with asyncio.timeout(timeout):
        async for event in stream:
            if event.event != kind:
                continue
            data = event.json()
            if all(data.get(key) == value for key, value in fields.items()):
                return event
    raise AssertionError(f"the stream ended before a {kind} event with {fields}")
