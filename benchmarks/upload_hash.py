"""How to get the SHA-256 of a resumable upload: keep the hash state, or hash once at the end.

    uv run python -m benchmarks.upload_hash [--size-mib 256] [--chunk-mib 8]

No server, no database. A file of random bytes arrives in `--chunk-mib` chunks, as PATCHes do:

  (a) state kept between chunks: for every chunk the saved rehashes state is restored, updated
      with the chunk and saved again, as each PATCH does (instashare.uploads.hashing);
  (b) hashed once at completion: the chunks are only stored, then the complete file is read back
      through Storage.read (local storage; the page cache is warm, the best case for (b)) and
      hashed with hashlib, as the fallback does.

Plain hashlib over the chunks as they arrive (no state kept, not resumable) is the reference.
Prints CPU and wall seconds per variant, and what (b) adds to the last request of the upload.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from instashare.storage import Storage, StorageSettings
from instashare.uploads.hashing import UploadHash, hash_stored

MIB = 1 << 20


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, size: int, work: Callable[[], str]) -> tuple[str, float]:
    cpu0, wall0 = cpu(), time.perf_counter()
    digest = work()
    cpu_s, wall = cpu() - cpu0, time.perf_counter() - wall0
    print(
        f"  {label:44} wall {wall:6.3f} s  CPU {cpu_s:6.3f} s  "
        f"{size / wall / 1e6:7.0f} MB/s  sha256 {digest[:12]}..."
    )
    return digest, wall


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upload_hash", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--chunk-mib", type=int, default=8)
    args = parser.parse_args()
    size, chunk = args.size_mib * MIB, args.chunk_mib * MIB
    data = os.urandom(size)
    chunks = [data[i : i + chunk] for i in range(0, size, chunk)]
    print(f"{args.size_mib} MiB in {len(chunks)} chunks of {args.chunk_mib} MiB")

    def reference() -> str:
        digest = hashlib.sha256()
        for piece in chunks:
            digest.update(piece)
        return digest.hexdigest()

    def state_kept() -> str:
        state: bytes | None = None
        offset = 0
        for piece in chunks:
            hasher = UploadHash.resume(state, offset)
            hasher.update(piece)
            state = hasher.state()
            offset += len(piece)
        return UploadHash.resume(state, offset).hexdigest() or ""

    expected, _ = timed("hashlib as chunks arrive (reference)", size, reference)
    kept, _ = timed("(a) rehashes, state restored+saved per chunk", size, state_kept)
    with tempfile.TemporaryDirectory(prefix="instashare-bench-hash-") as tmp:
        storage = Storage.from_settings(StorageSettings(url=Path(tmp).as_uri()))
        (Path(tmp) / "originals").mkdir()
        (Path(tmp) / "originals" / "file").write_bytes(data)
        read_back, wall_b = timed(
            "(b) read back + hashlib at completion",
            size,
            lambda: asyncio.run(hash_stored(storage, "originals/file")),
        )
    ok = expected == kept == read_back
    print(f"  digests agree: {ok}")
    print(
        f"  (b) adds {wall_b:.3f} s to the request that completes a {args.size_mib} MiB upload "
        f"({wall_b / args.size_mib * 1024:.2f} s per GiB) on warm local storage; on S3 it is a "
        "full GET of the object on top"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
