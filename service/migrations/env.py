"""Alembic environment: one metadata for SQLite and PostgreSQL, batch mode for SQLite."""

from alembic import context
from sqlalchemy import create_engine

import service.models  # noqa: F401  (registers every table on the metadata)
from service.directory.tables import metadata

config = context.config


def _include_name(name, type_, parent_names) -> bool:  # noqa: ANN001
    """The search index's tables belong to the search backend, not to the migrations."""
    return not (type_ == "table" and name and ("search_" in name or name.startswith("sqlite_")))


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=_include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _run(connection)


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
