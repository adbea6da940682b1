"""announce document changes to live status streams

Revision ID: 36bee1424f13
Revises: b73818af6bca
Create Date: 2026-11-27 14:01:58.418913+00:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "36bee1424f13"
down_revision: str | None = "b73818af6bca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every change an owner can see, whoever makes it (an API process, a worker, an operator's SQL),
# is stamped with the database's clock and announced on this channel when it commits; a rolled
# back change announces nothing. documents/events.py listens and streams it to GET /api/events.
ANNOUNCE_FUNCTION = """
CREATE OR REPLACE FUNCTION document_announce_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify(
            'instashare_document_changed', OLD.owner_id::text || ' ' || OLD.id::text || ' deleted'
        );
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT'
       OR (NEW.name, NEW.status, NEW.size, NEW.compressed_size, NEW.error)
          IS DISTINCT FROM (OLD.name, OLD.status, OLD.size, OLD.compressed_size, OLD.error) THEN
        NEW.changed_at := clock_timestamp();
        PERFORM pg_notify(
            'instashare_document_changed', NEW.owner_id::text || ' ' || NEW.id::text || ' changed'
        );
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    # Nullable, no default: a catalog change only, whatever the size of the table.
    op.add_column(
        "document",
        sa.Column("changed_at", advanced_alchemy.types.DateTimeUTC(timezone=True), nullable=True),
    )
    op.execute(ANNOUNCE_FUNCTION)
    op.execute(
        "CREATE TRIGGER document_announce_change BEFORE INSERT OR UPDATE ON document"
        " FOR EACH ROW EXECUTE FUNCTION document_announce_change()"
    )
    op.execute(
        "CREATE TRIGGER document_announce_delete AFTER DELETE ON document"
        " FOR EACH ROW EXECUTE FUNCTION document_announce_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER document_announce_delete ON document")
    op.execute("DROP TRIGGER document_announce_change ON document")
    op.execute("DROP FUNCTION document_announce_change()")
    op.drop_column("document", "changed_at")
