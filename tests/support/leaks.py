"""Where a secret must never be: everything a queue stores, and every file under a folder."""

from __future__ import annotations

from pathlib import Path

import psycopg

from midprobe.runner.queue.url import SqliteLocation, parse_queue_url


def queue_contents(url: str) -> bytes:
    """Every byte a queue keeps: a SQLite database's files, or every row of every table of PostgreSQL's schema."""
    location = parse_queue_url(url)
    if isinstance(location, SqliteLocation):
        database = Path(location.path)
        return b"".join(path.read_bytes() for path in database.parent.glob(f"{database.name}*"))
    with psycopg.connect(url, connect_timeout=5) as connection:
        tables = [
            str(row[0])
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        ]
        rows = [
            str(row[0])
            for table in tables
            for row in connection.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608  (names from the catalogue)
        ]
    assert "ecc_agent" in tables
    return "\n".join(rows).encode()


def tree_contents(folder: Path) -> bytes:
    """Every file under ``folder``, read whole (its names too)."""
    return b"".join(
        str(path).encode() + (path.read_bytes() if path.is_file() else b"")
        for path in sorted(folder.rglob("*"))
    )
