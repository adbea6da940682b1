from __future__ import annotations

import pytest

from instashare.http_ranges import (
    ByteRange,
    RangeNotSatisfiableError,
    content_disposition,
    if_range_allows,
    none_match,
    parse_range,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 100)),
        ("bytes=100-", ByteRange(100, 1000)),
        ("bytes=-100", ByteRange(900, 1000)),
        ("bytes=-5000", ByteRange(0, 1000)),
        ("bytes=990-5000", ByteRange(990, 1000)),
        ("bytes=999-999", ByteRange(999, 1000)),
        (" BYTES = 5 - 9 ", ByteRange(5, 10)),
        (None, None),
        ("", None),
        ("bytes=0-1,5-6", None),  # multiple ranges: send it all
        ("items=0-5", None),
        ("bytes=abc", None),
        ("bytes=-", None),
        ("bytes=9-5", None),  # invalid: ignored, not unsatisfiable
        ("bytes=" + "9" * 5000 + "-", None),  # absurd: ignored, never a 500
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiableError):
        parse_range(header, 1000)


def test_nothing_is_satisfiable_in_an_empty_representation() -> None:
    with pytest.raises(RangeNotSatisfiableError):
        parse_range("bytes=-10", 0)


def test_content_range_and_length() -> None:
    part = ByteRange(10, 20)
    assert part.length == 10
    assert part.content_range(100) == "bytes 10-19/100"


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ("*", True),
        ('"abcd"', False),
        ("", False),
        (None, False),
    ],
)
def test_if_none_match_uses_weak_comparison(header: str | None, matches: bool) -> None:
    assert none_match(header, '"abc"') is matches


def test_if_range_needs_the_exact_strong_tag() -> None:
    assert if_range_allows(None, '"abc"')
    assert if_range_allows('"abc"', '"abc"')
    assert not if_range_allows('"old"', '"abc"')
    assert not if_range_allows('W/"abc"', 'W/"abc"')
    assert not if_range_allows("Wed, 21 Oct 2015 07:28:00 GMT", '"abc"')


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf.zip", 'attachment; filename="report.pdf.zip"'),
        (
            "résumé.zip",
            "attachment; filename=\"resume.zip\"; filename*=UTF-8''r%C3%A9sum%C3%A9.zip",
        ),
        (
            'say "hi"; ok.zip',
            'attachment; filename="say _hi__ ok.zip"; '
            "filename*=UTF-8''say%20%22hi%22%3B%20ok.zip",
        ),
        ("日本.zip", "attachment; filename=\".zip\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.zip"),
    ],
)
def test_content_disposition(name: str, expected: str) -> None:
    assert content_disposition(name) == expected
