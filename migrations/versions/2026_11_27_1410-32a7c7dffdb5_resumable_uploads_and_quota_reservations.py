"""resumable uploads and quota reservations

Revision ID: 32a7c7dffdb5
Revises: 968a0a17bd75
Create Date: 2026-11-27 13:45:45.080836+00:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "32a7c7dffdb5"
down_revision: str | None = "968a0a17bd75"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Expand only: a new table and a new column with a constant default (no table rewrite);
    # code that does not know uploads keeps working against this schema.
    op.create_table(
        "upload",
        sa.Column("id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("owner_id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("document_id", advanced_alchemy.types.GUID(length=16), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("upload_offset", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("upload_metadata", sa.Text(), nullable=True),
        sa.Column("sha256_state", sa.LargeBinary(), nullable=True),
        sa.Column("multipart_id", sa.Text(), nullable=True),
        sa.Column(
            "parts", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("expires_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("completed_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "char_length(content_type) <= 255", name=op.f("ck_upload_content_type_length")
        ),
        sa.CheckConstraint("char_length(name) <= 255", name=op.f("ck_upload_name_length")),
        sa.CheckConstraint(
            "upload_offset >= 0 AND upload_offset <= length", name=op.f("ck_upload_offset_in_range")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["user_account.id"],
            name=op.f("fk_upload_owner_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload")),
        sa.UniqueConstraint("document_id", name=op.f("uq_upload_document_id")),
    )
    op.create_index("ix_upload_expires_at", "upload", ["expires_at"], unique=False)
    op.create_index(op.f("ix_upload_owner_id"), "upload", ["owner_id"], unique=False)
    # Quota reserved by unfinished uploads; existing accounts have none.
    op.add_column(
        "user_account",
        sa.Column("bytes_reserved", sa.BigInteger(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    # Unfinished uploads are lost with their table; their stored bytes stay until removed by
    # hand (uploads/ under the storage root, S3 multipart uploads by a lifecycle rule).
    op.drop_column("user_account", "bytes_reserved")
    op.drop_index(op.f("ix_upload_owner_id"), table_name="upload")
    op.drop_index("ix_upload_expires_at", table_name="upload")
    op.drop_table("upload")
