"""index documents by owner and change time

Revision ID: 968a0a17bd75
Revises: 36bee1424f13
Create Date: 2026-11-27 14:03:07.542504+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "968a0a17bd75"
down_revision: str | None = "36bee1424f13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The document table can be large: build the index without blocking writes to it, outside
    # a transaction (which CONCURRENTLY requires). A build that fails leaves an INVALID index
    # behind; drop it (DROP INDEX CONCURRENTLY ix_document_owner_id_changed_at) and upgrade again.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_document_owner_id_changed_at",
            "document",
            ["owner_id", "changed_at"],
            unique=False,
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_document_owner_id_changed_at", table_name="document", postgresql_concurrently=True
        )
