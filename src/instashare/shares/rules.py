"""What a share may hold: checked before anything is written, each with a 400 naming the field."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from litestar.exceptions import ValidationException

from instashare.accounts.services import normalize_email
from instashare.validation import invalid

# Line breaks and tabs belong in a message; other control characters do not.
_MESSAGE_WHITESPACE = frozenset("\n\r\t")


def _has_control(value: str, allowed: frozenset[str] = frozenset()) -> bool:
    return any(
        unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} and c not in allowed for c in value
    )


def clean_title(raw: str | None) -> str | None:
    title = raw.strip() if raw else None
    if title and _has_control(title):
        raise invalid("title", "control characters are not allowed")
    return title or None


def clean_message(raw: str | None) -> str | None:
    message = raw.strip() if raw else None
    if message and _has_control(message, _MESSAGE_WHITESPACE):
        raise invalid("message", "control characters other than line breaks are not allowed")
    return message or None


def check_document_ids(document_ids: Sequence[UUID]) -> None:
    if len(set(document_ids)) != len(document_ids):
        raise invalid("document_ids", "a document may appear only once")


def clean_recipients(emails: Sequence[str]) -> list[str]:
    """Normalized as at registration, so a recipient matches the account they have or will have."""
    cleaned: list[str] = []
    for index, email in enumerate(emails):
        try:
            cleaned.append(normalize_email(email))
        except ValidationException as exc:
            reason = exc.extra[0]["message"] if isinstance(exc.extra, list) and exc.extra else ""
            raise invalid(
                f"recipients[{index}]", reason, detail=f"recipients[{index}]: {exc.detail}"
            ) from exc
    # The same person twice is one recipient.
    return sorted(set(cleaned))


def resolve_expiry(
    expires_at: datetime | None,
    expires_in: int | None,
    *,
    now: datetime,
    max_expiry: timedelta,
) -> datetime | None:
    """The expiry asked for: absolute or relative (not both), in the future, within the limit."""
    if expires_at is not None and expires_in is not None:
        raise invalid("expires_in", "send expires_at or expires_in, not both")
    if expires_in is not None:
        if expires_in > max_expiry.total_seconds():
            raise _too_far("expires_in", max_expiry)
        return now + timedelta(seconds=expires_in)
    if expires_at is None:
        return None
    if expires_at.tzinfo is None or expires_at.utcoffset() is None:
        raise invalid("expires_at", "give the time with its UTC offset, e.g. 2030-01-31T12:00:00Z")
    if expires_at <= now:
        raise invalid("expires_at", "the expiry must be in the future")
    if expires_at > now + max_expiry:
        raise _too_far("expires_at", max_expiry)
    return expires_at


def _too_far(key: str, max_expiry: timedelta) -> ValidationException:
    return invalid(key, f"a share may expire at most {max_expiry.days} days from now")
