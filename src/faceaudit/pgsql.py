"""PostgreSQL connections for the shared stores: URL detection, clear errors, and psycopg's connection pool.

psycopg (3) and psycopg_pool are optional (``pip install 'faceaudit[postgres]'``); they are imported only when
a ``postgresql://`` URL is used. Passwords never appear in messages: URLs are shown with the password masked.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from faceaudit.errors import FaceAuditError, UsageError

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

URL_SCHEMES = ("postgresql://", "postgres://")


class DatabaseUnavailableError(FaceAuditError):
    """The PostgreSQL server could not be reached or refused the login."""

    exit_code = 4


def is_pg_url(db: str | os.PathLike | None) -> bool:
    """Whether ``--db`` names a PostgreSQL database (a ``postgresql://`` URL) rather than an SQLite file."""
    return isinstance(db, str) and db.startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"^(postgres(?:ql)?://[^:/@]+):[^@]*@", r"\1:***@", url)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise UsageError(
            "a postgresql:// database needs psycopg: pip install 'faceaudit[postgres]'"
        ) from None
    return psycopg


def connect(url: str, *, autocommit: bool = True, application_name: str = "faceaudit") -> psycopg.Connection:
    """One connection (autocommit by default: callers open transactions with ``conn.transaction()``)."""
    psycopg = _psycopg()
    try:
        return psycopg.connect(
            url, autocommit=autocommit, application_name=application_name, connect_timeout=10
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"{redact(url)}: cannot connect ({_first_line(exc)})") from None


def table_names(conn: psycopg.Connection) -> set[str]:
    """The tables of the connection's current schema."""
    return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 8, application_name: str = "faceaudit"
) -> psycopg_pool.ConnectionPool:
    """An open psycopg connection pool of autocommit connections; fails fast with a clear error."""
    psycopg = _psycopg()
    try:
        from psycopg_pool import ConnectionPool
    except ImportError:
        raise UsageError(
            "a postgresql:// database needs psycopg_pool: pip install 'faceaudit[postgres]'"
        ) from None
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True, "application_name": application_name, "connect_timeout": 10},
        open=False,
        name="faceaudit",
    )
    try:
        pool.open(wait=True, timeout=15)
    except Exception as exc:  # psycopg_pool.PoolTimeout hides the cause; ask the server once for a clear one
        pool.close()
        try:
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.OperationalError as cause:
            raise DatabaseUnavailableError(f"{redact(url)}: cannot connect ({_first_line(cause)})") from None
        raise DatabaseUnavailableError(f"{redact(url)}: cannot open a connection pool ({exc})") from None
    return pool


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
