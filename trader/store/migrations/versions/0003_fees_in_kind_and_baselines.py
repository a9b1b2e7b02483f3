"""Fees charged in kind on fills, and each gateway's account baseline.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server defaults only fill the rows already there (every one a cash fee); the
    # declared schema has none, so they are dropped again right after
    with op.batch_alter_table("fills") as batch:
        batch.add_column(sa.Column("fee_asset", sa.String(length=16), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("fee_quantity", sa.Float(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("fee_in_instrument", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("fills") as batch:
        batch.alter_column("fee_asset", server_default=None)
        batch.alter_column("fee_quantity", server_default=None)
        batch.alter_column("fee_in_instrument", server_default=None)
    op.create_table(
        "account_baselines",
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("balances", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("gateway"),
    )


def downgrade() -> None:
    op.drop_table("account_baselines")
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("fee_in_instrument")
        batch.drop_column("fee_quantity")
        batch.drop_column("fee_asset")
