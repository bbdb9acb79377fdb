"""The run's DuckDB workspace: one object owns the connection and knows which
as-of its derived tables were built for.

The loader fills the workspace with the validated tables (``ev``, ``accounts``,
``partners``, the dictionaries). The aggregation plan then builds derived tables
(the tie tables ``profile_pairs``, ``comment_pairs``, …) for one as-of.
:class:`Workspace` records, for every derived table, the as-of it was built
for, so a query that needs them asks :meth:`Workspace.has_built` instead of
trusting whatever an earlier call left behind (see
:func:`analysis.aggregate.ensure_ties`).

A :class:`Workspace` is used like the DuckDB connection it wraps
(``ws.execute(...)``, ``ws.close()``).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

__all__ = ["Workspace", "open_workspace"]

_MISSING = object()


class Workspace:
    """A DuckDB connection plus the as-of each derived table was built for."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self._built: dict[str, object] = {}

    def __getattr__(self, name: str):
        # Everything else is the connection's own API (execute, close, sql, ...).
        return getattr(self.con, name)

    def mark_built(self, names, as_of_key) -> None:
        """Record that the tables ``names`` now hold what was built for ``as_of_key``."""
        for n in names:
            self._built[n] = as_of_key

    def has_built(self, names, as_of_key) -> bool:
        """Whether all of ``names`` were built for exactly ``as_of_key``."""
        return all(self._built.get(n, _MISSING) == as_of_key for n in names)


def open_workspace(path: Path | str | None = None, *, memory_limit: str = "3GB",
                   threads: int | None = None,
                   spill_dir: Path | str | None = None) -> Workspace:
    """Open a DuckDB workspace: in memory, or a file when ``path`` is given.

    Either way DuckDB keeps within ``memory_limit`` by spilling what does not fit
    (tables included) to ``spill_dir``: by default ``<path>.tmp`` beside a file,
    and DuckDB's own ``.tmp`` in the working folder for an in-memory workspace.
    A run keeps its workspace in memory with a spill folder of its own: nothing
    reads the workspace after the run, so writing its tables to a file is wasted.
    """
    con = duckdb.connect(str(path) if path else ":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")   # progress is the caller's own bar
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if spill_dir is None and path:
        spill_dir = Path(path).with_suffix(".tmp")
    if spill_dir is not None:
        con.execute(f"SET temp_directory = '{_sql_str(str(spill_dir))}'")
    return Workspace(con)


def _sql_str(value: str) -> str:
    return value.replace("'", "''")
