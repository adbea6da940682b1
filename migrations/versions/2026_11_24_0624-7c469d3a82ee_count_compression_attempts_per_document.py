"""count compression attempts per document

Revision ID: 7c469d3a82ee
Revises: 671422df6d8f
Create Date: 2026-11-24 06:24:34.397833+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c469d3a82ee"
down_revision: str | None = "671422df6d8f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Documents already there start with no attempts counted.
    op.add_column(
        "document", sa.Column("compress_attempts", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("document", "compress_attempts")
