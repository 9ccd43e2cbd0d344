"""caseloads

Caseloads: each client is on one staff member's caseload (`client.case_manager_id`). Existing
clients go to whoever created them, when that user still works in the client's agency; the
others stay unassigned for a supervisor to place.

SQLite: the column is added in place (ALTER TABLE ... ADD COLUMN ... REFERENCES), never by a
batch "move and copy", which would drop `client` while consents and referrals point at it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 16:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

BACKFILL = """
UPDATE client SET case_manager_id = created_by
WHERE case_manager_id IS NULL AND created_by IN (
    SELECT app_user.id FROM app_user WHERE app_user.agency_id = client.agency_id)
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite names no constraint added inline, like the reflection Alembic compares with.
        op.add_column('client', sa.Column('case_manager_id', sa.Integer(),
                                          sa.ForeignKey('app_user.id'), nullable=True),
                      inline_references=True)
    else:
        op.add_column('client', sa.Column('case_manager_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_client_case_manager_id_app_user'), 'client',
                              'app_user', ['case_manager_id'], ['id'])
    op.create_index(op.f('ix_client_case_manager_id'), 'client', ['case_manager_id'],
                    unique=False)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index(op.f('ix_client_case_manager_id'), table_name='client')
    if op.get_bind().dialect.name == "sqlite":
        # In place too (SQLite 3.35+): a copy-and-move would drop `client` under its consents.
        op.execute("ALTER TABLE client DROP COLUMN case_manager_id")
    else:
        op.drop_constraint(op.f('fk_client_case_manager_id_app_user'), 'client',
                           type_='foreignkey')
        op.drop_column('client', 'case_manager_id')
