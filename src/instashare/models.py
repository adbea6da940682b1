"""Every table of the service, imported in one place so Alembic sees the whole metadata."""

from instashare.accounts.models import User
from instashare.db import Base, metadata
from instashare.documents.models import Document, DocumentStatus
from instashare.ratelimit import KeyValueEntry
from instashare.uploads.models import Upload

__all__ = ["Base", "Document", "DocumentStatus", "KeyValueEntry", "Upload", "User", "metadata"]
