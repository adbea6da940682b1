"""Every table of the service, imported in one place so Alembic sees the whole metadata."""

from instashare.accounts.models import User
from instashare.db import Base, metadata
from instashare.documents.models import Document, DocumentStatus
from instashare.ratelimit import KeyValueEntry
from instashare.shares.models import Share, ShareDocument, ShareDownload, ShareRecipient
from instashare.throttle import ThrottleCounter
from instashare.uploads.models import Upload

__all__ = [
    "Base",
    "Document",
    "DocumentStatus",
    "KeyValueEntry",
    "Share",
    "ShareDocument",
    "ShareDownload",
    "ShareRecipient",
    "ThrottleCounter",
    "Upload",
    "User",
    "metadata",
]
