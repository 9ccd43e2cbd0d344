"""edited records

A partial index per record table on the records that carry local edits (`local_edits IS NOT
NULL`), by source: every import merges those edits, and finding them read every record of the
source (six seconds of a 400k-service first import, with nothing to find).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 01:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TABLES = ("organization", "service", "location", "service_at_location")


def upgrade() -> None:
    for table in TABLES:
        edited = sa.text("local_edits IS NOT NULL")
        op.create_index(f"ix_{table}_edited", table, ["record_source"], unique=False,
                        sqlite_where=edited, postgresql_where=edited)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_edited", table_name=table)
