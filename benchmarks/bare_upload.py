"""The upload baseline: a bare ASGI app that writes the raw request body to a file.

`benchmarks.upload` runs it in its own process, from the repository root:

    uv run python -m benchmarks.bare_upload --port 8123 --dir /tmp/somewhere

It imports nothing but uvicorn, so its process stays as lean as a server can be.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def bare_upload_app(target_dir: Path) -> Any:
    """Raw ASGI: POST -> body chunks appended to a new file as they arrive. No parsing, no hash."""
    counter = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal counter
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        size = 0
        if scope["method"] == "POST":
            counter += 1
            path = target_dir / f"body-{counter}"
            with path.open("wb") as out:
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    if chunk:
                        out.write(chunk)
                        size += len(chunk)
                    more = message.get("more_body", False)
        body = json.dumps({"bytes": size}).encode()
        status = 201 if scope["method"] == "POST" else 200
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def serve(port: int, directory: Path) -> None:
    import uvicorn

    # The same uvicorn options as `instashare serve` (instashare/cli.py), everything else default.
    uvicorn.run(
        bare_upload_app(directory),
        host="127.0.0.1",
        port=port,
        log_config=None,
        proxy_headers=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bare_upload", description="serve the upload baseline app"
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    arguments = parser.parse_args()
    serve(arguments.port, arguments.dir)
