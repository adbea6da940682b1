"""add account credentials and rate limit store

Revision ID: a7715b6d3369
Revises: e4fd178835f3
Create Date: 2026-11-24 04:58:17.776826+00:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "a7715b6d3369"
down_revision: str | None = "e4fd178835f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_value_store",
        sa.Column("id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_value_store")),
        sa.UniqueConstraint("key", "namespace", name="uq_key_value_store_key_namespace"),
    )
    op.create_index(
        op.f("ix_key_value_store_expires_at"), "key_value_store", ["expires_at"], unique=False
    )
    # Accounts created before passwords existed get an unusable hash (no argon2 hash matches
    # "!"), so the column can be NOT NULL at once; the default is then dropped.
    op.add_column(
        "user_account",
        sa.Column("hashed_password", sa.String(length=255), server_default="!", nullable=False),
    )
    op.alter_column("user_account", "hashed_password", server_default=None)
    op.add_column(
        "user_account",
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("user_account", "is_active")
    op.drop_column("user_account", "hashed_password")
    op.drop_index(op.f("ix_key_value_store_expires_at"), table_name="key_value_store")
    op.drop_table("key_value_store")
