"""400 answers for input the schemas cannot reject on their own, in the shape API.md gives."""

from __future__ import annotations

from litestar.exceptions import ValidationException


def invalid(key: str, message: str, *, detail: str | None = None) -> ValidationException:
    """A 400 naming the offending field in ``extra``."""
    return ValidationException(detail=detail or message, extra=[{"key": key, "message": message}])


def reject_control_characters(key: str, value: str | None) -> None:
    if value and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise invalid(
            key,
            "control characters are not allowed",
            detail=f"{key} must not contain control characters",
        )
