"""What a document may be called (API.md: 1-255 characters after trimming, no control
characters, no ``/`` or ``\\``), and the default name derived from an uploaded file name."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

MAX_NAME_LENGTH = 255
_CONTENT_TYPE = re.compile(r"^[\w!#$&^.+-]+/[\w!#$&^.+-]+( *;[ \x21-\x7e]*)?$")
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class InvalidNameError(ValueError):
    pass


def _is_control(character: str) -> bool:
    return unicodedata.category(character) in {"Cc", "Cf", "Zl", "Zp"}


def validate_name(raw: str) -> str:
    """The trimmed name, or InvalidNameError saying what is wrong with it."""
    name = raw.strip()
    if not name:
        raise InvalidNameError("a name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"a name must be at most {MAX_NAME_LENGTH} characters")
    if any(_is_control(c) for c in name):
        raise InvalidNameError("a name must not contain control characters")
    if "/" in name or "\\" in name:
        raise InvalidNameError("a name must not contain '/' or '\\'")
    if name in {".", ".."}:
        raise InvalidNameError("a name must not be '.' or '..'")
    return name


def name_from_filename(filename: str) -> str:
    """The uploaded file's base name (browsers on Windows may send a full path)."""
    base = re.split(r"[\\/]", filename)[-1]
    base = "".join(c for c in base if not _is_control(c)).strip()
    if len(base) > MAX_NAME_LENGTH:
        _, dot, extension = base.rpartition(".")
        keep = extension if dot and len(extension) < 16 else ""
        base = base[: MAX_NAME_LENGTH - len(keep) - len(dot)] + (dot if keep else "") + keep
    return validate_name(base)


def content_type_for(declared: str | None, name: str) -> str:
    """The declared type when it is specific and well-formed, otherwise a guess from the name."""
    if declared:
        declared = declared.strip()
        if (
            declared.lower() != DEFAULT_CONTENT_TYPE
            and len(declared) <= MAX_NAME_LENGTH
            and _CONTENT_TYPE.match(declared)
        ):
            return declared
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE
