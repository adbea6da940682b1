"""carry a token version per account

Revision ID: b73818af6bca
Revises: 7c469d3a82ee
Create Date: 2026-11-27 13:48:10.371380+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b73818af6bca"
down_revision: str | None = "7c469d3a82ee"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL records it in the catalog without rewriting the table, and
    # every existing account starts at version 0, which its tokens (no "ver" claim) never match:
    # tokens issued before this revision must log in again once.
    op.add_column(
        "user_account", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("user_account", "token_version")
