"""notifications

The notification outbox (one row per message to one user, written in the same transaction as
the change it announces; the SMTP sender marks it sent or records the error and the next try),
and an optional email address on each user, where their notifications go.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 16:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=320), nullable=True))

    op.create_table('notification',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('recipient_user_id', sa.Integer(), nullable=False),
    sa.Column('recipient_address', sa.String(length=320), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('referral_sent', 'referral_answered', 'follow_up_due')", name=op.f('ck_notification_kind')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_notification_attempts')),
    sa.ForeignKeyConstraint(['recipient_user_id'], ['app_user.id'], name=op.f('fk_notification_recipient_user_id_app_user'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['referral_id'], ['referral.id'], name=op.f('fk_notification_referral_id_referral')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification'))
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index('ix_notification_pending', ['sent_at', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_recipient_user_id'), ['recipient_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_referral_id'), ['referral_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_referral_id'))
        batch_op.drop_index(batch_op.f('ix_notification_recipient_user_id'))
        batch_op.drop_index('ix_notification_pending')

    op.drop_table('notification')
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.drop_column('email')
