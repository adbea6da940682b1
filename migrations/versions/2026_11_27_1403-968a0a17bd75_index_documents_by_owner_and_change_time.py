"""index documents by owner and change time

Revision ID: 968a0a17bd75
Revises: 36bee1424f13
Create Date: 2026-11-27 14:03:07.542504+00:00
"""

from collections.abc import Sequence

from alembic import op

from instashare.migration_safety import outside_transaction

revision: str = "968a0a17bd75"
down_revision: str | None = "36bee1424f13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The document table can be large: build the index without blocking writes to it, outside
    # a transaction (which CONCURRENTLY requires), alone in this revision.
    with outside_transaction(op.get_context()) as concurrently:
        # An interrupted build leaves an invalid index behind that IF NOT EXISTS would keep.
        op.drop_index(
            "ix_document_owner_id_changed_at",
            table_name="document",
            postgresql_concurrently=concurrently,
            if_exists=True,
        )
        op.create_index(
            "ix_document_owner_id_changed_at",
            "document",
            ["owner_id", "changed_at"],
            unique=False,
            postgresql_concurrently=concurrently,
            if_not_exists=True,
        )


def downgrade() -> None:
    with outside_transaction(op.get_context()) as concurrently:
        op.drop_index(
            "ix_document_owner_id_changed_at",
            table_name="document",
            postgresql_concurrently=concurrently,
            if_exists=True,
        )
