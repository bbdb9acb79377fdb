"""Export → validated tables.

The export's three tables are staged into a DuckDB workspace, checked row by
row against the contract (:mod:`analysis.contract`), and split into accepted
rows and quarantined rows with a reason. The big ``events`` table is never
loaded into pandas: it lives in DuckDB as a compact typed table ``ev`` with
integer keys, which every later step aggregates with SQL.

Tables in the workspace after :func:`load_export`:

``accounts``  aid, account_id, account_type, created_at, partner_id
``partners``  partner_id, name, partner_type, onboarded_at
``ev``        aid, ts, did, iid, et, tid, rec   (one row per accepted event)
``devices``   did, device_id
``ips``       iid, ip
``targets``   tid, target_id  (accounts first, then target ids not in accounts)
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from .contract import ACCOUNT_TYPES, EVENT_TYPES, SUFFIXES, TABLES, ExportError, TableSpec
from .safe import neutralise_sql

__all__ = ["Export", "TableCount", "find_table", "load_export", "open_workspace"]

log = logging.getLogger(__name__)

#: Longest CSV field accepted (bytes); longer lines are quarantined, not fatal.
MAX_LINE_BYTES = 64 * 1024 * 1024
_TS_MIN, _TS_MAX = "1970-01-01", "2100-01-01"


@dataclass
class TableCount:
    """Row accounting for one table: ``accepted + rejected == rows``."""

    rows: int = 0
    accepted: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "accepted": self.accepted, "rejected": self.rejected}


@dataclass
class Export:
    """A validated export held in a DuckDB workspace."""

    con: duckdb.DuckDBPyConnection
    export_dir: Path
    files: dict[str, Path]
    counts: dict[str, TableCount]
    fingerprints: dict[str, dict[str, object]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    reject_reasons: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return self.counts["events"].accepted


def open_workspace(path: Path | str | None = None, *, memory_limit: str = "3GB",
                   threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB workspace (a file when ``path`` is given, so big tables can spill)."""
    con = duckdb.connect(str(path) if path else ":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = true")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if path:
        tmp = Path(path).with_suffix(".tmp")
        con.execute(f"SET temp_directory = '{_sql_str(str(tmp))}'")
    return con


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def find_table(export_dir: Path, name: str) -> Path:
    """Return the one file holding table ``name`` in ``export_dir``.

    Raises :class:`ExportError` when the table is missing or given twice.
    File names are matched case-insensitively.
    """
    if not export_dir.is_dir():
        raise ExportError(export_dir, "export folder not found")
    wanted = {name + s: s for s in SUFFIXES}
    found = sorted(p for p in export_dir.iterdir() if p.name.lower() in wanted and p.is_file())
    if not found:
        raise ExportError(
            export_dir / f"{name}.csv",
            f"table '{name}' is missing (expected {name}.csv, {name}.csv.gz or {name}.parquet)",
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ExportError(export_dir / found[0].name,
                          f"table '{name}' is given twice ({names}); keep exactly one")
    return found[0]


def _fingerprint(path: Path) -> dict[str, object]:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": h.hexdigest()}


def _read_csv_header(path: Path) -> list[str]:
    """Read the header row of a CSV (plain or gzip) with Python's csv module."""
    try:
        if path.name.lower().endswith(".gz"):
            raw = gzip.open(path, "rb")
        else:
            raw = open(path, "rb")
        with raw:
            head = raw.read(1 << 20)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ExportError(path, f"unreadable file ({type(exc).__name__}: {exc})") from None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if not head.strip():
        raise ExportError(path, "file is empty (no header row)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The cut at 1 MiB may split a character; only the header matters.
        text = head[: exc.start].decode("utf-8")
        if "\n" not in text and len(head) - exc.start > 4:
            raise ExportError(path, "header row is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise ExportError(path, f"cannot read the header row ({exc})") from None
    if not header or all(not h.strip() for h in header):
        raise ExportError(path, "file has no header row")
    return header


def _map_columns(path: Path, header: list[str], spec: TableSpec) -> dict[str, int]:
    """Map contract columns to positions in ``header`` (case-insensitive, trimmed)."""
    positions: dict[str, int] = {}
    for i, h in enumerate(header):
        key = h.strip().lower()
        if key in spec.columns:
            if key in positions:
                raise ExportError(path, f"column '{key}' appears twice in the header")
            positions[key] = i
    missing = [c for c in spec.required if c not in positions]
    if missing:
        raise ExportError(path, f"missing required column{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(m) for m in missing)}")
    return positions


# Parquet types a contract column may have: the values are then validated row by row.
_TEXT_TYPES = ("VARCHAR",)
_INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
              "UINTEGER", "UBIGINT")
_TIME_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS",
               "TIMESTAMP_NS", "DATE")
_ALLOWED = {
    "ts": _TEXT_TYPES + _TIME_TYPES,
    "created_at": _TEXT_TYPES + _TIME_TYPES,
    "onboarded_at": _TEXT_TYPES + _TIME_TYPES,
    "records": _TEXT_TYPES + _INT_TYPES + ("FLOAT", "DOUBLE", "DECIMAL"),
}
_ID_TYPES = _TEXT_TYPES + _INT_TYPES


def _stage(con: duckdb.DuckDBPyConnection, path: Path, spec: TableSpec) -> tuple[str, int]:
    """Stage a table file as ``raw_<name>`` (all VARCHAR, plus ``source_row``).

    Returns the staging table name and the number of structurally broken CSV
    lines (quarantined separately in ``raw_<name>_broken``).
    """
    view = f"raw_{spec.name}"
    raw = f"{view}_t"
    broken = f"{view}_broken"
    _drop_staging(con, spec.name)
    qpath = _sql_str(str(path))
    if path.name.lower().endswith(".parquet"):
        try:
            schema = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{qpath}')").fetchall()
        except duckdb.Error as exc:
            raise ExportError(path, f"unreadable Parquet file ({_first_line(exc)})") from None
        names = [r[0] for r in schema]
        types = {r[0]: str(r[1]).upper() for r in schema}
        positions = _map_columns(path, names, spec)
        selects = []
        for col in spec.columns:
            if col not in positions:
                selects.append(f"NULL::VARCHAR AS {col}")
                continue
            src = names[positions[col]]
            typ = types[src]
            allowed = _ALLOWED.get(col, _ID_TYPES)
            if not any(typ == a or typ.startswith(a + "(") for a in allowed):
                raise ExportError(path, f"column '{col}' has type {typ}, expected "
                                        f"{' or '.join(sorted(set(allowed)))[:120]}")
            expr = _ident(src)
            if typ.startswith("TIMESTAMP"):
                expr = f"CAST({expr} AS TIMESTAMP)"  # in UTC; no offset means UTC
            selects.append(f"CAST({expr} AS VARCHAR) AS {col}")
        try:
            con.execute(
                f"CREATE TABLE {raw} AS SELECT file_row_number + 1 AS source_row, "
                f"{', '.join(selects)} FROM read_parquet('{qpath}', file_row_number = true)"
            )
        except duckdb.Error as exc:
            raise ExportError(path, f"unreadable Parquet file ({_first_line(exc)})") from None
        con.execute(f"CREATE TABLE {broken} (source_row BIGINT, raw_line VARCHAR, reason VARCHAR)")
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM {raw}")
        return view, 0

    header = _read_csv_header(path)
    positions = _map_columns(path, header, spec)
    cols = {f"c{i}": "VARCHAR" for i in range(len(header))}
    col_struct = "{" + ", ".join(f"'{k}': '{v}'" for k, v in cols.items()) + "}"
    selects = [
        (f"c{positions[c]} AS {c}" if c in positions else f"NULL::VARCHAR AS {c}")
        for c in spec.columns
    ]
    try:
        con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
        con.execute(
            f"CREATE TABLE {raw} AS SELECT {', '.join(selects)} FROM read_csv('{qpath}', "
            f"columns = {col_struct}, header = true, auto_detect = false, delim = ',', "
            f"quote = '\"', escape = '\"', strict_mode = false, store_rejects = true, "
            f"max_line_size = {MAX_LINE_BYTES}, compression = 'auto')"
        )
        # rowid follows insertion order, which DuckDB keeps in file order.
        con.execute(f"CREATE VIEW {view} AS SELECT rowid + 1 AS source_row, * FROM {raw}")
        con.execute(
            f"CREATE TABLE {broken} AS SELECT min(line) AS source_row, "
            f"any_value(csv_line) AS raw_line, "
            f"'unparseable CSV line ' || string_agg(DISTINCT lower(error_type), '; ') AS reason "
            f"FROM reject_errors GROUP BY line ORDER BY line"
        )
    except duckdb.Error as exc:
        raise ExportError(path, f"unreadable file ({_first_line(exc)})") from None
    n_broken = con.execute(f"SELECT count(*) FROM {broken}").fetchone()[0]
    return view, int(n_broken)


def _drop_staging(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"DROP VIEW IF EXISTS raw_{name}; DROP TABLE IF EXISTS raw_{name}_t; "
                f"DROP TABLE IF EXISTS raw_{name}_broken")


def _first_line(exc: BaseException) -> str:
    """The gist of a DuckDB error in one line, without values quoted from the data.

    >>> _first_line(ValueError("Conversion Error: Could not convert string 'a<b' to INT32\\nLINE 1"))
    'Conversion Error: Could not convert string … to INT32'
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # DuckDB messages may quote a raw row or value; keep the gist, not the data.
    text = text.split(" Original Line")[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", text)
    return text[:200]


_TS = "TRY_CAST(TRY_CAST(trim({c}) AS TIMESTAMPTZ) AS TIMESTAMP)"


def _ts_expr(col: str) -> str:
    return _TS.format(c=col)


def _ts_bad(col: str, *, allow_empty: bool = False) -> str:
    parsed = _ts_expr(col)
    bad = f"({parsed} IS NULL OR NOT isfinite({parsed}) OR {parsed} < TIMESTAMP '{_TS_MIN}' " \
          f"OR {parsed} >= TIMESTAMP '{_TS_MAX}')"
    if allow_empty:
        return f"(nullif(trim({col}), '') IS NOT NULL AND {bad})"
    return bad


def _validate_partners(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""
        CREATE OR REPLACE TABLE chk_partners AS
        SELECT r.*, trim(partner_id) AS k,
          CASE
            WHEN nullif(trim(partner_id), '') IS NULL THEN 'empty partner_id'
            WHEN {_ts_bad('onboarded_at', allow_empty=True)} THEN 'bad onboarded_at timestamp'
            WHEN row_number() OVER (PARTITION BY trim(partner_id) ORDER BY source_row) > 1
              THEN 'duplicate partner_id (first row kept)'
          END AS reason
        FROM raw_partners r
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE partners AS
        SELECT k AS partner_id, name, partner_type, {_ts_expr('onboarded_at')} AS onboarded_at
        FROM chk_partners WHERE reason IS NULL ORDER BY source_row
    """)


def _validate_accounts(con: duckdb.DuckDBPyConnection) -> None:
    types = ", ".join(f"'{t}'" for t in ACCOUNT_TYPES)
    con.execute(f"""
        CREATE OR REPLACE TABLE chk_accounts AS
        SELECT r.*, trim(account_id) AS k,
          CASE
            WHEN nullif(trim(account_id), '') IS NULL THEN 'empty account_id'
            WHEN lower(trim(account_type)) NOT IN ({types}) OR account_type IS NULL
              THEN 'unknown account_type'
            WHEN {_ts_bad('created_at')} THEN 'bad created_at timestamp'
            WHEN nullif(trim(partner_id), '') IS NOT NULL
                 AND trim(partner_id) NOT IN (SELECT partner_id FROM partners)
              THEN 'partner_id not in partners'
            WHEN row_number() OVER (PARTITION BY trim(account_id) ORDER BY source_row) > 1
              THEN 'duplicate account_id (first row kept)'
          END AS reason
        FROM raw_accounts r
    """)
    # A duplicate is judged among rows that are otherwise valid.
    con.execute("""
        UPDATE chk_accounts SET reason = NULL WHERE reason = 'duplicate account_id (first row kept)';
        UPDATE chk_accounts SET reason = 'duplicate account_id (first row kept)'
        WHERE source_row IN (
            SELECT source_row FROM (
                SELECT source_row, row_number() OVER (PARTITION BY k ORDER BY source_row) AS n
                FROM chk_accounts WHERE reason IS NULL) WHERE n > 1);
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE accounts AS
        SELECT (row_number() OVER (ORDER BY source_row) - 1)::INTEGER AS aid,
               k AS account_id, lower(trim(account_type)) AS account_type,
               {_ts_expr('created_at')} AS created_at,
               nullif(trim(partner_id), '') AS partner_id
        FROM chk_accounts WHERE reason IS NULL ORDER BY source_row
    """)


def _validate_events(con: duckdb.DuckDBPyConnection) -> None:
    ets = ", ".join(f"'{t}'" for t in EVENT_TYPES)
    # Each value is parsed once (timestamp parsing with offsets is the costly part).
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW events_checked AS
        WITH p AS (
            SELECT r.source_row, {_ts_expr('r.ts')} AS t,
                   nullif(trim(r.account_id), '') AS acc,
                   lower(trim(r.event_type)) AS event_type,
                   nullif(trim(r.records), '') AS rec_s,
                   TRY_CAST(nullif(trim(r.records), '') AS DOUBLE) AS recd,
                   r.device_id, r.ip, r.target_id
            FROM raw_events r)
        SELECT p.source_row, p.t, a.aid,
          CASE
            WHEN p.t IS NULL OR NOT isfinite(p.t) OR p.t < TIMESTAMP '{_TS_MIN}'
                 OR p.t >= TIMESTAMP '{_TS_MAX}' THEN 'bad ts timestamp'
            WHEN p.acc IS NULL THEN 'empty account_id'
            WHEN p.event_type IS NULL OR p.event_type NOT IN ({ets}) THEN 'unknown event_type'
            WHEN p.rec_s IS NOT NULL AND (p.recd IS NULL OR NOT isfinite(p.recd) OR p.recd < 0
                 OR p.recd <> floor(p.recd) OR p.recd > 2e9)
              THEN 'records is not an integer >= 0'
            WHEN a.aid IS NULL THEN 'account_id not in accounts'
          END AS reason,
          nullif(trim(p.device_id), '') AS device_id,
          nullif(trim(p.ip), '') AS ip,
          p.event_type,
          nullif(trim(p.target_id), '') AS target_id,
          CASE WHEN p.recd IS NULL OR NOT isfinite(p.recd) OR p.recd > 2e9 THEN 1
               ELSE p.recd END::INTEGER AS rec
        FROM p LEFT JOIN accounts a ON a.account_id = p.acc
    """)
    # Only the rejects are kept as a table; accepted rows go straight into ``ev``.
    con.execute("""
        CREATE OR REPLACE TABLE chk_events AS
        SELECT source_row, reason FROM events_checked WHERE reason IS NOT NULL
    """)
    # Dictionaries over every staged row (a rejected row's device only adds an unused key).
    con.execute("""
        CREATE OR REPLACE TABLE devices AS
        SELECT (row_number() OVER (ORDER BY device_id) - 1)::INTEGER AS did, device_id
        FROM (SELECT DISTINCT nullif(trim(device_id), '') AS device_id FROM raw_events)
        WHERE device_id IS NOT NULL;
        CREATE OR REPLACE TABLE ips AS
        SELECT (row_number() OVER (ORDER BY ip) - 1)::INTEGER AS iid, ip
        FROM (SELECT DISTINCT nullif(trim(ip), '') AS ip FROM raw_events) WHERE ip IS NOT NULL;
        CREATE OR REPLACE TABLE targets AS
        SELECT aid AS tid, account_id AS target_id FROM accounts
        UNION ALL
        SELECT ((SELECT count(*) FROM accounts) + row_number() OVER (ORDER BY target_id) - 1)::INTEGER,
               target_id
        FROM (SELECT DISTINCT nullif(trim(target_id), '') AS target_id FROM raw_events)
        WHERE target_id IS NOT NULL AND target_id NOT IN (SELECT account_id FROM accounts);
    """)
    codes = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(EVENT_TYPES))
    con.execute(f"""
        CREATE OR REPLACE TABLE ev AS
        SELECT c.aid, c.t AS ts, d.did, i.iid,
               (CASE c.event_type {codes} END)::UTINYINT AS et,
               g.tid, c.rec
        FROM events_checked c
        LEFT JOIN devices d ON d.device_id = c.device_id
        LEFT JOIN ips i ON i.ip = c.ip
        LEFT JOIN targets g ON g.target_id = c.target_id
        WHERE c.reason IS NULL
    """)
    con.execute("DROP VIEW events_checked")


_VALIDATORS = {
    "partners": _validate_partners,
    "accounts": _validate_accounts,
    "events": _validate_events,
}


def _write_rejects(con: duckdb.DuckDBPyConnection, spec: TableSpec, rejects_dir: Path) -> int:
    """Write quarantined rows of one table, as read, with ``source_row`` and ``reason``."""
    chk = f"chk_{spec.name}"
    cols = ", ".join(f"{neutralise_sql('r.' + c)} AS {c}" for c in spec.columns)
    empty = ", ".join(f"NULL AS {c}" for c in spec.columns)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE rej AS
        SELECT r.source_row, {cols}, NULL::VARCHAR AS raw_line, c.reason
        FROM {chk} c JOIN raw_{spec.name} r USING (source_row) WHERE c.reason IS NOT NULL
        UNION ALL
        SELECT source_row, {empty}, {neutralise_sql('raw_line')}, reason FROM raw_{spec.name}_broken
    """)
    n = con.execute("SELECT count(*) FROM rej").fetchone()[0]
    rejects_dir.mkdir(parents=True, exist_ok=True)
    target = _sql_str(str(rejects_dir / f"{spec.name}.csv"))
    con.execute(f"COPY (SELECT * FROM rej ORDER BY source_row, reason) TO '{target}' "
                f"(HEADER, DELIMITER ',', QUOTE '\"', ESCAPE '\"')")
    return int(n)


def load_export(export_dir: Path | str, con: duckdb.DuckDBPyConnection, rejects_dir: Path,
                *, max_reject_rate: float = 0.05) -> Export:
    """Read and validate an export into ``con``; write quarantined rows to ``rejects_dir``.

    Raises :class:`ExportError` when the export cannot be used: a missing or
    doubled table, a missing column, an unreadable file, a Parquet column of an
    impossible type, or more than ``max_reject_rate`` of a table's rows rejected.
    """
    export_dir = Path(export_dir)
    files = {name: find_table(export_dir, name) for name in ("partners", "accounts", "events")}
    export = Export(con=con, export_dir=export_dir, files=files, counts={})
    for name in ("partners", "accounts", "events"):
        spec, path = TABLES[name], files[name]
        t0 = time.perf_counter()
        export.fingerprints[name] = _fingerprint(path)
        _, n_broken = _stage(con, path, spec)
        try:
            _VALIDATORS[name](con)
        except duckdb.Error as exc:
            raise ExportError(path, f"cannot validate table ({_first_line(exc)})") from None
        n_rows = con.execute(f"SELECT count(*) FROM raw_{name}").fetchone()[0] + n_broken
        n_rej = _write_rejects(con, spec, rejects_dir)
        count = TableCount(rows=int(n_rows), accepted=int(n_rows) - n_rej, rejected=n_rej)
        export.counts[name] = count
        export.reject_reasons[name] = dict(con.execute(
            "SELECT reason, count(*) FROM rej GROUP BY reason ORDER BY reason").fetchall())
        export.timings[f"load_{name}"] = round(time.perf_counter() - t0, 3)
        log.info("%s: %d rows, %d accepted, %d rejected", name, count.rows, count.accepted,
                 count.rejected)
        if count.rows and count.rejected / count.rows > max_reject_rate:
            raise ExportError(
                path,
                f"{count.rejected} of {count.rows} rows rejected "
                f"({count.rejected / count.rows:.1%} > --max-reject-rate {max_reject_rate:.1%}); "
                f"see rejects/{name}.csv",
            )
    for name in ("partners", "accounts", "events"):
        _drop_staging(con, name)
    con.execute("DROP TABLE IF EXISTS chk_events")
    return export
