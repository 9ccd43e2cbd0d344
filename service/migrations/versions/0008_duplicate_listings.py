"""duplicate listings

Two partial indexes on the few services listed as duplicates of another (`duplicate_of IS NOT
NULL`): by the listing they duplicate, for the search documents of kept listings (which list
the categories of the listings merged into them: without it, each batch of a rebuild, and each
edit's reindexing, read every service or every category link), and by source, for the count an
import reports (a second's read of every service of a 400k-service source).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 08:20:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    listed = sa.text("duplicate_of IS NOT NULL")
    op.create_index("ix_service_duplicate_of", "service", ["duplicate_of"], unique=False,
                    sqlite_where=listed, postgresql_where=listed)
    op.create_index("ix_service_duplicates", "service", ["record_source"], unique=False,
                    sqlite_where=listed, postgresql_where=listed)


def downgrade() -> None:
    op.drop_index("ix_service_duplicates", table_name="service")
    op.drop_index("ix_service_duplicate_of", table_name="service")
