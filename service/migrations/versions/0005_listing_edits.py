"""listing edits

Partner and admin edits of listings (service.directory.listing_edits): who proposed or made
each one, when, on which service or location (and organization), the fields' old and new
values, and its status (pending approval, applied, rejected, reverted).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 16:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('listing_edit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('entity_type', sa.String(length=16), nullable=False),
    sa.Column('service_id', sa.String(length=36), nullable=True),
    sa.Column('location_id', sa.String(length=36), nullable=True),
    sa.Column('organization_id', sa.String(length=36), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('reverted_by', sa.Integer(), nullable=True),
    sa.Column('reverted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revert_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("(entity_type = 'service' AND service_id IS NOT NULL) OR (entity_type = 'location' AND location_id IS NOT NULL)", name=op.f('ck_listing_edit_entity')),
    sa.CheckConstraint("status IN ('pending', 'applied', 'rejected', 'reverted')", name=op.f('ck_listing_edit_status')),
    sa.ForeignKeyConstraint(['created_by'], ['app_user.id'], name=op.f('fk_listing_edit_created_by_app_user')),
    sa.ForeignKeyConstraint(['decided_by'], ['app_user.id'], name=op.f('fk_listing_edit_decided_by_app_user')),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_listing_edit_location_id_location')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_listing_edit_organization_id_organization')),
    sa.ForeignKeyConstraint(['reverted_by'], ['app_user.id'], name=op.f('fk_listing_edit_reverted_by_app_user')),
    sa.ForeignKeyConstraint(['service_id'], ['service.id'], name=op.f('fk_listing_edit_service_id_service')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_listing_edit'))
    )
    with op.batch_alter_table('listing_edit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_listing_edit_location_id'), ['location_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_listing_edit_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_listing_edit_service_id'), ['service_id'], unique=False)
        batch_op.create_index('ix_listing_edit_status_created_at', ['status', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('listing_edit', schema=None) as batch_op:
        batch_op.drop_index('ix_listing_edit_status_created_at')
        batch_op.drop_index(batch_op.f('ix_listing_edit_service_id'))
        batch_op.drop_index(batch_op.f('ix_listing_edit_organization_id'))
        batch_op.drop_index(batch_op.f('ix_listing_edit_location_id'))

    op.drop_table('listing_edit')
