"""Writing values from an export safely: CSV cells that cannot act as formulas.

Values in an export are written by the very people under investigation. Every
CSV the tool writes goes through :func:`write_csv`, which neutralises cells a
spreadsheet would run as a formula (OWASP "CSV injection"): a cell starting
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
apostrophe, so it shows as text and the evidence stays readable.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd

__all__ = ["neutralise", "neutralise_sql", "write_csv", "FORMULA_PREFIXES"]

FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """Return ``value`` made inert for spreadsheets.

    Examples
    --------
    >>> neutralise("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> neutralise("a0001"), neutralise(-3), neutralise(None)
    ('a0001', -3, None)
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_sql(column: str) -> str:
    """SQL (DuckDB) expression that neutralises a VARCHAR column, as :func:`neutralise`.

    >>> neutralise_sql('"name"')
    'CASE WHEN regexp_matches("name", \\'^[=+\\\\-@\\t\\r]\\') THEN \\'\\'\\'\\' || "name" ELSE "name" END'
    """
    return (
        f"CASE WHEN regexp_matches({column}, '^[=+\\-@\t\r]') "
        f"THEN '''' || {column} ELSE {column} END"
    )


def write_csv(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write ``frame`` to ``path`` as UTF-8 CSV with every text cell neutralised.

    Numbers are left as numbers; booleans are written ``true``/``false``.
    Output is deterministic: the same frame gives the same bytes.
    """
    path = Path(path)
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_bool_dtype(series):
            out[col] = series.map({True: "true", False: "false"})
        elif pd.api.types.is_float_dtype(series):
            out[col] = series.round(6)
        elif not pd.api.types.is_numeric_dtype(series):
            out[col] = series.map(neutralise)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    out.to_csv(tmp, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    os.replace(tmp, path)
    return path
