"""add shares, their documents, recipients, downloads and throttle counters

Revision ID: b2eeadcef1c7
Revises: 32a7c7dffdb5
Create Date: 2026-11-27 13:43:01.443908+00:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b2eeadcef1c7"
down_revision: str | None = "32a7c7dffdb5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # New tables only (expand): nothing existing is rewritten. Creating the foreign keys briefly
    # takes SHARE ROW EXCLUSIVE on user_account and document; the new tables are empty, so the
    # indexes below are built instantly inside the same transaction.
    op.create_table(
        "throttle_counter",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column(
            "window_ends_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_throttle_counter")),
    )
    op.create_index(
        op.f("ix_throttle_counter_window_ends_at"),
        "throttle_counter",
        ["window_ends_at"],
        unique=False,
    )
    op.create_table(
        "share",
        sa.Column("id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("owner_id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("link_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("max_downloads", sa.BigInteger(), nullable=True),
        sa.Column("download_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("view_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["user_account.id"],
            name=op.f("fk_share_owner_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share")),
    )
    op.create_index(
        "ix_share_expires_at",
        "share",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_share_owner_id_created_at_id", "share", ["owner_id", "created_at", "id"], unique=False
    )
    op.create_table(
        "share_document",
        sa.Column("share_id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("document_id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
            name=op.f("fk_share_document_document_id_document"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["share_id"],
            ["share.id"],
            name=op.f("fk_share_document_share_id_share"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("share_id", "document_id", name=op.f("pk_share_document")),
    )
    op.create_index(
        op.f("ix_share_document_document_id"), "share_document", ["document_id"], unique=False
    )
    op.create_table(
        "share_download",
        sa.Column("id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("share_id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("document_id", advanced_alchemy.types.GUID(length=16), nullable=True),
        sa.Column("client_key", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("archive_size", sa.BigInteger(), nullable=False),
        sa.Column(
            "delivered",
            postgresql.INT8MULTIRANGE(),
            server_default=sa.text("'{}'::int8multirange"),
            nullable=False,
        ),
        sa.Column("bytes_sent", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("completed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("completed_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("is_open", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_id"],
            ["share.id"],
            name=op.f("fk_share_download_share_id_share"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_download")),
    )
    op.create_index(
        "ix_share_download_open_updated_at",
        "share_download",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text("is_open"),
    )
    op.create_index(
        "ix_share_download_share_id_created_at",
        "share_download",
        ["share_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "uq_share_download_open",
        "share_download",
        ["share_id", "client_key", "etag"],
        unique=True,
        postgresql_where=sa.text("is_open"),
    )
    op.create_table(
        "share_recipient",
        sa.Column("share_id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_id"],
            ["share.id"],
            name=op.f("fk_share_recipient_share_id_share"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("share_id", "email", name=op.f("pk_share_recipient")),
    )
    op.create_index(op.f("ix_share_recipient_email"), "share_recipient", ["email"], unique=False)


def downgrade() -> None:
    # Their indexes go with the tables.
    op.drop_table("share_recipient")
    op.drop_table("share_download")
    op.drop_table("share_document")
    op.drop_table("share")
    op.drop_table("throttle_counter")
