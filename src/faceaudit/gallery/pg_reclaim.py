"""Reclaiming erased rows on PostgreSQL: VACUUM (or VACUUM FULL) of the tables an erasure touches."""

from __future__ import annotations

import time
from typing import Any

from faceaudit import pgsql

ERASED_TABLES = ("subjects", "templates", "declared_attributes")
"""The gallery tables an erasure deletes from: reclaimed until no dead tuple is left in them."""
FORGETTING_TABLES = ("service_searches", "service_reviews")
"""Tables of the service, when it shares the database, that an erasure rewrites to keep only the pseudonym: their
old tuples are vacuumed (and rewritten by ``VACUUM FULL``) with the gallery's, best effort, since reviews by other
users of the service may leave new dead tuples at any time."""


def reclaim(pool: Any, *, vacuum: bool = False, wait_s: float = 0.0) -> bool:
    """VACUUM the tables an erasure touches, on a connection of ``pool`` (``VACUUM FULL`` when ``vacuum``: the
    table files are rewritten without the deleted tuples), retrying for at most ``wait_s`` seconds. False when
    dead tuples remain because another session's snapshot still sees them, or when ``VACUUM FULL`` could not get
    its lock."""
    import psycopg

    deadline = time.monotonic() + wait_s
    with pool.connection() as conn:  # VACUUM cannot run inside a transaction
        present = pgsql.table_names(conn)
        tables = ", ".join([*ERASED_TABLES, *(t for t in FORGETTING_TABLES if t in present)])
        conn.execute(f"SET lock_timeout = '{max(100, int(wait_s * 1000))}ms'")
        # this session's own pending table statistics (its deletes, when it was the writer) reach the shared
        # counts now, not after the VACUUM below, where they would count as dead tuples left
        conn.execute("SELECT pg_stat_force_next_flush()")
        try:
            if vacuum:  # rewrites the files; tuples a snapshot still sees are copied over ("recently dead")
                conn.execute(f"VACUUM FULL {tables}")
            while True:
                conn.execute(f"VACUUM {tables}")  # (after FULL too: it counts the dead tuples left)
                conn.execute("SELECT pg_stat_force_next_flush()")
                dead = conn.execute(
                    "SELECT COALESCE(SUM(n_dead_tup), 0) FROM pg_stat_user_tables "
                    "WHERE relname = ANY(%s) AND schemaname = current_schema()",
                    (list(ERASED_TABLES),),
                ).fetchone()[0]
                if int(dead) == 0:
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            conn.execute("RESET lock_timeout")
