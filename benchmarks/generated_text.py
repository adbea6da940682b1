"""Generated text-like data: reproducible from a seed, compressible as real text is.

A Zipf-ish vocabulary of made-up words with English-like letter frequencies: real text has a few
very common tokens and a long tail, which is what gives deflate its ~3-4x on logs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass

LETTERS = "etaoinshrdlucmfwypvbgkjqxz"
LETTER_FREQUENCIES = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1]


def made_up_words(rng: random.Random, count: int) -> tuple[list[str], list[float]]:
    """``count`` words of 2-9 letters and their cumulative weights (the n-th word 1/n)."""
    letter_weights = list(itertools.accumulate(LETTER_FREQUENCIES))
    words = [
        "".join(rng.choices(LETTERS, cum_weights=letter_weights, k=rng.randint(2, 9)))
        for _ in range(count)
    ]
    word_weights = list(itertools.accumulate(1 / (i + 1) for i in range(len(words))))
    return words, word_weights


@dataclass(frozen=True)
class Sample:
    name: str
    content_type: str
    data: bytes
    sha256: str


def make_files(count: int, min_bytes: int, max_bytes: int, seed: int) -> list[Sample]:
    """`count` distinct text-like files (logs, CSV, prose, JSON lines) of random sizes."""
    rng = random.Random(seed)
    words, word_weights = made_up_words(rng, 2000)

    def some_words(low: int, high: int) -> str:
        return " ".join(rng.choices(words, cum_weights=word_weights, k=rng.randint(low, high)))

    def log_line() -> str:
        level = rng.choice(["DEBUG", "INFO", "INFO", "WARN", "ERROR"])
        return (
            f"2024-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}Z {level} request_id={rng.getrandbits(32):08x} "
            f"{some_words(3, 12)}"
        )

    def csv_line() -> str:
        return (
            f"{rng.randint(1, 10**6)},{rng.choice(words)},{rng.uniform(0, 1000):.2f},"
            f"{rng.choice(['open', 'closed', 'pending'])},{some_words(1, 4)}"
        )

    def prose_line() -> str:
        return some_words(8, 30).capitalize() + "."

    def json_line() -> str:
        record = {"id": rng.randint(1, 10**9), "tag": rng.choice(words), "text": some_words(2, 8)}
        return json.dumps(record)

    styles = [
        ("log", "log", "text/plain", log_line),
        ("table", "csv", "text/csv", csv_line),
        ("notes", "txt", "text/plain", prose_line),
        ("events", "jsonl", "application/json", json_line),
    ]
    files = []
    for index in range(count):
        stem, extension, content_type, line = styles[index % len(styles)]
        size = rng.randint(min_bytes, max_bytes)
        parts: list[str] = []
        length = 0
        while length < size:
            parts.append(line())
            length += len(parts[-1]) + 1
        data = ("\n".join(parts) + "\n").encode()[:size]
        files.append(
            Sample(
                name=f"{stem}-{index:05d}.{extension}",
                content_type=content_type,
                data=data,
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    return files
