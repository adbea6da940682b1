"""track compressed archives and job claims

Revision ID: 671422df6d8f
Revises: 6a86a3facef2
Create Date: 2026-11-24 05:13:59.908488+00:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "671422df6d8f"
down_revision: str | None = "6a86a3facef2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No data to backfill: no document could be ready before compression existed.
    op.add_column("document", sa.Column("archive_crc32", sa.BigInteger(), nullable=True))
    op.add_column("document", sa.Column("archive_data_offset", sa.BigInteger(), nullable=True))
    op.add_column("document", sa.Column("archive_data_size", sa.BigInteger(), nullable=True))
    op.add_column(
        "document", sa.Column("claim_token", advanced_alchemy.types.GUID(length=16), nullable=True)
    )
    op.add_column(
        "document",
        sa.Column(
            "lease_expires_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=True
        ),
    )
    op.create_index(
        "ix_document_unfinished_updated_at",
        "document",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'processing')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_document_unfinished_updated_at",
        table_name="document",
        postgresql_where=sa.text("status IN ('pending', 'processing')"),
    )
    op.drop_column("document", "lease_expires_at")
    op.drop_column("document", "claim_token")
    op.drop_column("document", "archive_data_size")
    op.drop_column("document", "archive_data_offset")
    op.drop_column("document", "archive_crc32")
