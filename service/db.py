"""Database engines and transactions for SQLite (embedded) and PostgreSQL (scale-out).

One rule everywhere: a unit of work opens a transaction, services only `flush()`, and the owner
(`Database.session()` here, the request dependency in `service.deps`, the indexer's apply step)
commits on success and rolls back on error. SQLite runs in WAL mode with foreign keys on and a
busy timeout; its writers take `BEGIN IMMEDIATE`, because a deferred transaction that later
upgrades to a write lock fails at once with SQLITE_BUSY whatever the busy timeout says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for the lock
DEFAULT_CACHE_KIB = -65536  # SQLite page cache per connection: 64 MiB (negative: KiB)


class _NoResultRows(logging.Filter):
    """SQLAlchemy's engine logger writes every result row at DEBUG ("Row (...)"), which would
    put client names in the logs whatever `hide_parameters` says: those records are dropped;
    statements (without values) still log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(("Row ", "Col ")))


logging.getLogger("sqlalchemy.engine.Engine").addFilter(_NoResultRows())


def is_sqlite(engine: Engine) -> bool:
    """True for the embedded backend."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine with the pragmas and transaction behaviour this project relies on.

    `hide_parameters`: statement logs and errors never show bound values (client names, dates
    of birth), even when SQL logging is turned on. SQLite waits up to `BUSY_TIMEOUT` seconds
    for another writer's lock (the URL's `?timeout=` overrides it), then answers "database is
    locked", which the API turns into a 503 with Retry-After (`service.errors`).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        timeout = float(parsed.query.get("timeout", BUSY_TIMEOUT))
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": timeout, "check_same_thread": False},
            pool_size=8, max_overflow=16, hide_parameters=True,
        )
        _configure_sqlite(engine, busy_timeout_ms=int(timeout * 1000))
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         hide_parameters=True)


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size={DEFAULT_CACHE_KIB}")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.execute("PRAGMA mmap_size=1073741824")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        if conn.get_execution_options().get("sqlite_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """An engine and its session factory; built by the app's lifespan and by the CLI."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        session = self.sessions()
        try:
            if write:
                session.connection(execution_options={"sqlite_write": True})
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration (safe to call on every start)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", self.url)
        with self.engine.connect() as connection:
            if not self.is_sqlite:
                # Several app workers may start at once: one migrates, the others wait.
                connection.execute(text("SELECT pg_advisory_lock(7215)"))
                connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                if not self.is_sqlite:
                    connection.execute(text("SELECT pg_advisory_unlock(7215)"))
                    connection.commit()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
