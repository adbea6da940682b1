"""Compare instashare.zipstream.write_zip with Info-ZIP `zip -6` on a mixed file.

    uv run python -m benchmarks.compress [--mib 200] [--level 3] [--chunk-mib 8] [--seed 1234]

The input is 75% log-like text (compresses ~3.5x on its own) and 25% random bytes, interleaved
in 1 MiB blocks, generated from a fixed seed in a temporary directory that is removed afterwards.
Targets: write_zip >= 5x faster than `zip -6`, output at most 6% larger.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.generated_text import made_up_words
from instashare.zipstream import DEFAULT_LEVEL, write_zip

MIB = 1 << 20
RANDOM_EVERY = 4  # every 4th 1 MiB block is random: 25% incompressible
TARGET_SPEEDUP = 5.0
TARGET_SIZE_RATIO = 1.06


def generate(path: Path, mib: int, seed: int) -> None:
    """Write `mib` MiB of mixed data, one 1 MiB block at a time (constant memory)."""
    rng = random.Random(seed)
    # Log lines of made-up words: ~3-4x with deflate, as real log text.
    words, word_weights = made_up_words(rng, 3000)
    levels = ["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"]
    routes = ["/api/v1/files", "/api/v1/files/{id}", "/api/v1/login", "/healthz", "/download"]

    def text_block() -> bytes:
        lines: list[str] = []
        size = 0
        while size < MIB:
            line = (
                f"2024-03-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z "
                f"{rng.choice(levels)} {rng.choice(routes)} status=200 "
                f"user={rng.randint(1, 500)} "
                + " ".join(rng.choices(words, cum_weights=word_weights, k=rng.randint(4, 16)))
                + "\n"
            )
            lines.append(line)
            size += len(line)
        return "".join(lines).encode()[:MIB]

    with path.open("wb") as f:
        for i in range(mib):
            f.write(rng.randbytes(MIB) if i % RANDOM_EVERY == RANDOM_EVERY - 1 else text_block())


async def run_write_zip(source: Path, target: Path, level: int, chunk: int) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        with source.open("rb") as f:
            # Read in a worker thread as an async server would; keeps the comparison honest.
            while data := await asyncio.to_thread(f.read, chunk):
                yield data

    with target.open("wb") as out:

        async def write(piece: bytes) -> None:
            out.write(piece)

        await write_zip(chunks(), source.name, write, modified=datetime.now(UTC), level=level)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compress", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--mib", type=int, default=200, help="input size in MiB (default 200)")
    parser.add_argument("--level", type=int, default=DEFAULT_LEVEL, help="ISA-L level 0-3")
    parser.add_argument("--chunk-mib", type=int, default=8, help="input chunk size in MiB")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    zip_bin = shutil.which("zip")
    if zip_bin is None:
        print("Info-ZIP `zip` not found on PATH", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="instashare-bench-") as tmp:
        source = Path(tmp) / "input.bin"
        t0 = time.perf_counter()
        generate(source, args.mib, args.seed)
        size = source.stat().st_size
        print(
            f"input: {size / MIB:.0f} MiB ({100 // RANDOM_EVERY}% random, rest log-like text), "
            f"generated in {time.perf_counter() - t0:.1f}s"
        )

        zip_out = Path(tmp) / "zip6.zip"
        t0 = time.perf_counter()
        subprocess.run([zip_bin, "-6", "-q", "-j", str(zip_out), str(source)], check=True)
        zip_time = time.perf_counter() - t0
        zip_size = zip_out.stat().st_size
        zip_out.unlink()

        ours_out = Path(tmp) / "write_zip.zip"
        t0 = time.perf_counter()
        asyncio.run(run_write_zip(source, ours_out, args.level, args.chunk_mib * MIB))
        ours_time = time.perf_counter() - t0
        ours_size = ours_out.stat().st_size
        with zipfile.ZipFile(ours_out) as zf:  # untimed sanity check: CRC over everything
            ok = zf.testzip() is None and zf.infolist()[0].file_size == size

        speedup = zip_time / ours_time
        size_ratio = ours_size / zip_size
        rows = [
            ("zip -6", zip_time, zip_size),
            (f"write_zip (isal level {args.level})", ours_time, ours_size),
        ]
        print(f"{'':30} {'wall s':>8} {'MB/s':>8} {'output bytes':>14} {'ratio':>7}")
        for label, seconds, out_size in rows:
            print(
                f"{label:30} {seconds:8.2f} {size / seconds / 1e6:8.1f} "
                f"{out_size:14,d} {size / out_size:6.2f}x"
            )
        print(
            f"speedup: {speedup:.1f}x (target >= {TARGET_SPEEDUP:.0f}x)   "
            f"size vs zip -6: {(size_ratio - 1) * 100:+.2f}% "
            f"(target <= +{(TARGET_SIZE_RATIO - 1) * 100:.0f}%)   "
            f"write_zip output verified: {ok}"
        )
        met = speedup >= TARGET_SPEEDUP and size_ratio <= TARGET_SIZE_RATIO
        print("RESULT:", "targets met" if met else "targets NOT met")
        # A missed target is a figure, not a failure; a wrong archive is.
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
