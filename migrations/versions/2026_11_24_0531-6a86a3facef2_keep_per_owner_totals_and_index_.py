"""keep per-owner totals and index listings by id

Revision ID: 6a86a3facef2
Revises: a7715b6d3369
Create Date: 2026-11-24 05:31:27.060957+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6a86a3facef2"
down_revision: str | None = "a7715b6d3369"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The new index first, so listings are never left without one.
    op.create_index(
        "ix_document_owner_id_created_at_id",
        "document",
        ["owner_id", "created_at", "id"],
        unique=False,
    )
    op.drop_index(op.f("ix_document_owner_id_created_at"), table_name="document")
    op.add_column(
        "user_account",
        sa.Column("document_count", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "user_account", sa.Column("bytes_used", sa.BigInteger(), server_default="0", nullable=False)
    )
    # Existing accounts start from what they already store.
    op.execute(
        """
        UPDATE user_account AS u
        SET document_count = totals.documents, bytes_used = totals.bytes
        FROM (
            SELECT owner_id, count(*) AS documents, coalesce(sum(size), 0) AS bytes
            FROM document GROUP BY owner_id
        ) AS totals
        WHERE totals.owner_id = u.id
        """
    )


def downgrade() -> None:
    op.drop_column("user_account", "bytes_used")
    op.drop_column("user_account", "document_count")
    op.create_index(
        op.f("ix_document_owner_id_created_at"),
        "document",
        ["owner_id", "created_at"],
        unique=False,
    )
    op.drop_index("ix_document_owner_id_created_at_id", table_name="document")
