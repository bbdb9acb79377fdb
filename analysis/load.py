"""Export → validated tables.

The export's three tables are checked row by row against the contract
(:mod:`analysis.contract`) in a DuckDB workspace and split into accepted rows
and quarantined rows with a reason. The small ``partners`` and ``accounts``
tables are staged as text and checked there. The big ``events`` table is never
staged as text and never loaded into pandas: the file is read in two scans,
the first collecting each key column's distinct raw values (trimmed, checked
and numbered once per value, not once per event), the second writing the
compact typed table ``ev`` with integer keys, which every later step
aggregates with SQL. A third, numbered scan runs only when rows were rejected.

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
import io
import logging
import re
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from .contract import (
    ACCOUNT_TYPES,
    EVENT_TYPES,
    OPTIONAL_TABLES,
    REQUIRED_TABLES,
    SUFFIXES,
    TABLES,
    ExportError,
    TableSpec,
)
from .csvlines import FileScan, broken_id, scan_file
from .csvlines import account as account_lines
from .safe import neutralise_sql

__all__ = ["Export", "TableCount", "RejectRateError", "export_files", "export_fingerprints",
           "find_table", "load_export", "EVENT_REASONS"]

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
    #: Line accounting of each CSV table (:func:`analysis.csvlines.account`).
    lines: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The export's newest plausible time (UTC, ISO): later events are quarantined.
    horizon: str | None = None

    @property
    def n_events(self) -> int:
        return self.counts["events"].accepted


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def find_table(export_dir: Path, name: str, *, optional: bool = False) -> Path | None:
    """Return the one file holding table ``name`` in ``export_dir``.

    Raises :class:`ExportError` when the table is missing (None instead when
    ``optional``) or given twice. File names are matched case-insensitively.
    """
    if not export_dir.is_dir():
        raise ExportError(export_dir, "export folder not found")
    wanted = {name + s: s for s in SUFFIXES}
    found = sorted(p for p in export_dir.iterdir() if p.name.lower() in wanted)
    if not found:
        if optional:
            return None
        hint = ""
        if (export_dir / "export").is_dir():
            hint = f"; did you mean {export_dir / 'export'}?"
        raise ExportError(
            export_dir / f"{name}.csv",
            f"table '{name}' is missing (expected {name}.csv, {name}.csv.gz or {name}.parquet)"
            f"{hint}",
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ExportError(export_dir / found[0].name,
                          f"table '{name}' is given twice ({names}); keep exactly one")
    path = found[0]
    if not path.is_file():
        raise ExportError(path, f"not a regular file ({_file_kind(path)}); the table must be "
                                f"a plain file")
    return path


def _file_kind(path: Path) -> str:
    """What ``path`` is when it is not a regular file (never opened: a FIFO would block)."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a broken symbolic link"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket")]
    what = next((w for test, w in kinds if test(mode)), "not a plain file")
    return f"a symbolic link to {what}" if path.is_symlink() else what


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


def _source(con: duckdb.DuckDBPyConnection, path: Path, spec: TableSpec, *,
            typed: bool = False, scan: str = "stage") -> str:
    """A ``SELECT`` that reads the table file with the contract's column names.

    Text values come as read (VARCHAR). With ``typed``, a Parquet file's
    timestamp and number columns keep their types (no round trip through text);
    the events scans parse text themselves. ``scan`` says how a CSV is read:
    ``stage`` keeps structurally broken lines in DuckDB's ``reject_errors``
    (the first scan of a file), ``again`` skips the same lines silently, and
    ``numbered`` also numbers the rows (``source_row``) in file order.
    Raises :class:`ExportError` for an unreadable file, a missing column or a
    Parquet column of an impossible type.
    """
    qpath = _sql_str(str(path))
    if path.name.lower().endswith(".parquet"):
        try:
            schema = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{qpath}')").fetchall()
        except duckdb.Error as exc:
            raise _file_error(path, "unreadable Parquet file", exc) from None
        names = [r[0] for r in schema]
        types = {r[0]: str(r[1]).upper() for r in schema}
        # DuckDB renames a doubled column (ts, ts_1); the file's own names tell.
        _map_columns(path, _parquet_names(path, names), spec)
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
            if typ.startswith("TIMESTAMP") or typ == "DATE":
                expr = f"CAST({expr} AS TIMESTAMP)"  # in UTC; no offset means UTC
            if not (typed and col in _ALLOWED and typ not in _TEXT_TYPES):
                expr = f"CAST({expr} AS VARCHAR)"
            selects.append(f"{expr} AS {col}")
        number = "file_row_number + 1 AS source_row, " if scan in ("stage", "numbered") else ""
        return (f"SELECT {number}{', '.join(selects)} "
                f"FROM read_parquet('{qpath}', file_row_number = true)")

    header = _read_csv_header(path)
    positions = _map_columns(path, header, spec)
    cols = {f"c{i}": "VARCHAR" for i in range(len(header))}
    col_struct = "{" + ", ".join(f"'{k}': '{v}'" for k, v in cols.items()) + "}"
    selects = [
        (f"c{positions[c]} AS {c}" if c in positions else f"NULL::VARCHAR AS {c}")
        for c in spec.columns
    ]
    errors = "store_rejects = true" if scan == "stage" else "ignore_errors = true"
    reader = (f"read_csv('{qpath}', columns = {col_struct}, header = true, "
              f"auto_detect = false, delim = ',', quote = '\"', escape = '\"', "
              f"strict_mode = false, {errors}, max_line_size = {MAX_LINE_BYTES}, "
              f"compression = 'auto')")
    if scan == "numbered":
        # An empty OVER () numbers rows in the order the reader gives them: file order.
        return (f"SELECT row_number() OVER () AS source_row, {', '.join(selects)} "
                f"FROM {reader}")
    return f"SELECT {', '.join(selects)} FROM {reader}"


def _parquet_names(path: Path, fallback: list[str]) -> list[str]:
    """The top-level column names as the Parquet file itself holds them."""
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception:  # noqa: BLE001 - DuckDB read it; its names are the next best
        return fallback


def _broken_lines(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Keep the CSV records the last ``stage`` scan could not parse, one row per record.

    DuckDB numbers records from the header (line 1), so a broken record's data row
    is its ``line`` less one. ``byte_pos`` is where the record starts and
    ``multiline`` whether it spans lines (a quote gone wrong).
    """
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT (min(line) - 1)::BIGINT AS source_row, "
        f"any_value(csv_line) AS raw_line, "
        f"'unparseable CSV line ' || string_agg(DISTINCT lower(error_type), '; ') AS reason, "
        f"min(line_byte_position) AS byte_pos, "
        f"bool_or(contains(csv_line, chr(10)) OR contains(csv_line, chr(13))) AS multiline "
        f"FROM reject_errors GROUP BY line ORDER BY line"
    )


def _empty_broken(con: duckdb.DuckDBPyConnection, table: str) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {table} (source_row BIGINT, raw_line VARCHAR, "
                f"reason VARCHAR, byte_pos UBIGINT, multiline BOOLEAN)")


def _row_fix(n: str, broken: str) -> str:
    """SQL: the data row of the reader's ``n``-th parsed record, counting the broken ones
    before it (the reader numbers only the records it could parse)."""
    return (f"({n} + (SELECT count(*) FROM (SELECT source_row - row_number() OVER "
            f"(ORDER BY source_row) AS k FROM {broken}) b WHERE b.k < {n}))")


def _stage(con: duckdb.DuckDBPyConnection, path: Path, spec: TableSpec) -> tuple[str, int]:
    """Stage a small table file as ``raw_<name>`` (all VARCHAR, plus ``source_row``).

    Returns the staging view's name and the number of structurally broken CSV
    lines (quarantined separately in ``raw_<name>_broken``).
    """
    view = f"raw_{spec.name}"
    raw = f"{view}_t"
    broken = f"{view}_broken"
    _drop_staging(con, spec.name)
    is_csv = not path.name.lower().endswith(".parquet")
    if is_csv:
        con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    source = _source(con, path, spec)
    try:
        con.execute(f"CREATE TABLE {raw} AS {source}")
        if is_csv:
            _broken_lines(con, broken)
            # rowid follows insertion order, which DuckDB keeps in file order.
            con.execute(f"CREATE TABLE {raw}_n AS SELECT {_row_fix('r.n', broken)} "
                        f"AS source_row, r.* EXCLUDE (n) FROM (SELECT rowid + 1 AS n, * "
                        f"FROM {raw}) r")
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM {raw}_n")
        else:
            _empty_broken(con, broken)
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM {raw}")
    except duckdb.Error as exc:
        kind = "unreadable file" if is_csv else "unreadable Parquet file"
        raise _file_error(path, kind, exc) from None
    n_broken = con.execute(f"SELECT count(*) FROM {broken}").fetchone()[0]
    return view, int(n_broken)


def _drop_staging(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"DROP VIEW IF EXISTS raw_{name}; DROP TABLE IF EXISTS raw_{name}_t; "
                f"DROP TABLE IF EXISTS raw_{name}_t_n; DROP TABLE IF EXISTS raw_{name}_broken")


def _file_error(path: Path, what: str, exc: duckdb.Error) -> Exception:
    """An :class:`ExportError` for ``path``, unless DuckDB ran out of memory.

    Running out of memory says nothing about the file, so that error is passed
    on as it is (the CLI tells the user to raise ``--memory-limit``).
    """
    if isinstance(exc, duckdb.OutOfMemoryException):
        return exc
    return ExportError(path, f"{what} ({_first_line(exc)})")


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


#: ISO 8601 as the contract takes it: a date, optionally a time (seconds and fraction
#: optional) and an offset up to ±18:00 (RE2, for DuckDB). No names, no ``epoch``.
ISO_TS = (r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
          r"(Z|[+-](0\d|1[0-8])(:?[0-5]\d)?)?)?")
_TS = ("CASE WHEN regexp_full_match(trim(@c), '" + ISO_TS + "') "
       "THEN TRY_CAST(TRY_CAST(trim(@c) AS TIMESTAMPTZ) AS TIMESTAMP) END")


def _ts_expr(col: str) -> str:
    return _TS.replace("@c", col)


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


def _validate_relationships(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""
        CREATE OR REPLACE TABLE chk_relationships AS
        SELECT r.*, m.aid AS merchant, c.aid AS buyer,
          CASE
            WHEN nullif(trim(r.merchant_id), '') IS NULL THEN 'empty merchant_id'
            WHEN m.aid IS NULL THEN 'merchant_id not in accounts'
            WHEN m.account_type <> 'merchant' THEN 'merchant_id is not a merchant account'
            WHEN nullif(trim(r.customer_id), '') IS NULL THEN 'empty customer_id'
            WHEN c.aid IS NULL THEN 'customer_id not in accounts'
            WHEN {_ts_bad('r.first_order_at')} THEN 'bad first_order_at timestamp'
          END AS reason
        FROM raw_relationships r
        LEFT JOIN accounts m ON m.account_id = trim(r.merchant_id)
        LEFT JOIN accounts c ON c.account_id = trim(r.customer_id)
    """)
    # A duplicate pair is judged among rows that are otherwise valid; the first row is kept.
    con.execute("""
        UPDATE chk_relationships SET reason = 'duplicate merchant_id, customer_id (first row kept)'
        WHERE source_row IN (
            SELECT source_row FROM (
                SELECT source_row, row_number() OVER (PARTITION BY merchant, buyer
                                                      ORDER BY source_row) AS n
                FROM chk_relationships WHERE reason IS NULL) WHERE n > 1)
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE relationships AS
        SELECT merchant, buyer, {_ts_expr('first_order_at')} AS first_order_at
        FROM chk_relationships WHERE reason IS NULL ORDER BY source_row
    """)


def no_relationships(con: duckdb.DuckDBPyConnection) -> None:
    """The empty ``relationships`` table of an export that has none."""
    con.execute("CREATE OR REPLACE TABLE relationships "
                "(merchant INTEGER, buyer INTEGER, first_order_at TIMESTAMP)")


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


#: Why an events row is quarantined, by the code the events scan gives it (checked in order).
EVENT_REASONS = ("bad ts timestamp", "ts after the export's newest plausible time",
                 "empty account_id", "unknown event_type", "records is not an integer >= 0",
                 "ip is not an IPv4 or IPv6 address", "account_id not in accounts")
#: A dotted-quad IPv4 address (RE2); IPv6 is checked by :mod:`ipaddress`.
_IPV4 = (r"((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
         r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")
#: Grouping-set numbers of the distinct raw values collected by the first events scan.
_KEY_COLUMNS = ("account_id", "device_id", "ip", "target_id", "event_type")


def _events_keys(con: duckdb.DuckDBPyConnection, source: str,
                 columnar: bool = False) -> tuple[int, set[str]]:
    """First scan: every distinct raw key value, then dictionaries and raw → id maps.

    Trimming, lower-casing and looking up happen once per distinct value here,
    not once per event; the second scan joins the raw values to these maps.
    Returns the number of rows the scan read, and the key columns whose
    distinct raw values have distinct 64-bit hashes (also distinct from a
    missing value's): for those the second scan joins on the hash, a cheaper
    key than the string, and still exact, because every raw value it meets
    is one of these. A ``columnar`` file (Parquet) is read once per key column,
    each time that column alone, which costs less than one scan feeding five
    groupings; a CSV is parsed once.
    """
    if columnar:
        keys = " UNION ALL ".join(
            f"SELECT {', '.join(f'{d == c} AS is_{d}' for d in _KEY_COLUMNS)}, "
            f"{c} AS raw, count(*) AS n FROM ({source}) GROUP BY {c}" for c in _KEY_COLUMNS)
    else:
        cols = ", ".join(_KEY_COLUMNS)
        sets = ", ".join(f"({c})" for c in _KEY_COLUMNS)
        keys = (f"SELECT {', '.join(f'grouping({c}) = 0 AS is_{c}' for c in _KEY_COLUMNS)}, "
                f"coalesce({cols}) AS raw, count(*) AS n "
                f"FROM ({source}) GROUP BY GROUPING SETS ({sets})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE ev_keys AS {keys}")
    n_rows = con.execute("SELECT coalesce(sum(n), 0) FROM ev_keys WHERE is_account_id").fetchone()[0]
    con.execute("""
        CREATE OR REPLACE TEMP TABLE ev_keys_t AS
        SELECT *, nullif(trim(raw), '') AS k FROM ev_keys WHERE raw IS NOT NULL;""")
    _valid_ips(con)
    con.execute("""
        CREATE OR REPLACE TABLE devices AS
        SELECT (row_number() OVER (ORDER BY k) - 1)::INTEGER AS did, k AS device_id
        FROM (SELECT DISTINCT k FROM ev_keys_t WHERE is_device_id AND k IS NOT NULL);
        CREATE OR REPLACE TABLE ips AS
        SELECT (row_number() OVER (ORDER BY k) - 1)::INTEGER AS iid, k AS ip
        FROM (SELECT DISTINCT k FROM ev_keys_t WHERE is_ip AND k IS NOT NULL
              AND k IN (SELECT k FROM ip_ok));
        CREATE OR REPLACE TABLE targets AS
        SELECT aid AS tid, account_id AS target_id FROM accounts
        UNION ALL
        SELECT ((SELECT count(*) FROM accounts) + row_number() OVER (ORDER BY k) - 1)::INTEGER, k
        FROM (SELECT DISTINCT k FROM ev_keys_t WHERE is_target_id AND k IS NOT NULL)
        WHERE k NOT IN (SELECT account_id FROM accounts);
    """)
    codes = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(EVENT_TYPES))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE map_account AS
        SELECT t.raw, t.k IS NULL AS empty, a.aid FROM ev_keys_t t
        LEFT JOIN accounts a ON a.account_id = t.k WHERE t.is_account_id;
        CREATE OR REPLACE TEMP TABLE map_device AS
        SELECT t.raw, d.did FROM ev_keys_t t JOIN devices d ON d.device_id = t.k
        WHERE t.is_device_id;
        CREATE OR REPLACE TEMP TABLE map_ip AS
        SELECT t.raw, i.iid, (t.k IS NOT NULL AND i.iid IS NULL) AS bad_ip FROM ev_keys_t t
        LEFT JOIN ips i ON i.ip = t.k WHERE t.is_ip;
        CREATE OR REPLACE TEMP TABLE map_target AS
        SELECT t.raw, g.tid FROM ev_keys_t t JOIN targets g ON g.target_id = t.k
        WHERE t.is_target_id;
        CREATE OR REPLACE TEMP TABLE map_event_type AS
        SELECT raw, (CASE lower(k) {codes} END)::UTINYINT AS et FROM ev_keys_t
        WHERE is_event_type;
    """)
    hashed = set()
    for col in _KEY_COLUMNS:
        unique = con.execute(f"""
            SELECT count(DISTINCT hash(raw)) = count(*)
                   AND coalesce(bool_and(hash(raw) <> hash(NULL::VARCHAR)), TRUE)
            FROM ev_keys_t WHERE is_{col}""").fetchone()[0]
        if unique:
            hashed.add(col)
    for name in _MAPS.values():
        con.execute(f"ALTER TABLE {name} ADD COLUMN h UBIGINT; UPDATE {name} SET h = hash(raw)")
    con.execute("DROP TABLE ev_keys; DROP TABLE ev_keys_t; DROP TABLE ip_ok")
    return int(n_rows), hashed


def _valid_ips(con: duckdb.DuckDBPyConnection) -> None:
    """``ip_ok``: the distinct trimmed ip values that are IPv4 or IPv6 addresses."""
    import ipaddress

    import pyarrow as pa

    con.execute(f"""CREATE OR REPLACE TEMP TABLE ip_ok AS SELECT DISTINCT k FROM ev_keys_t
                    WHERE is_ip AND k IS NOT NULL AND regexp_full_match(k, '{_IPV4}')""")
    six = con.execute("""SELECT DISTINCT k FROM ev_keys_t WHERE is_ip AND k IS NOT NULL
                         AND contains(k, ':')""").fetchall()
    ok = []
    for (k,) in six:
        try:
            ipaddress.IPv6Address(k)
        except ValueError:
            continue
        ok.append(k)
    if ok:
        con.register("ip6_ok_arrow", pa.table({"k": pa.array(ok, pa.string())}))
        con.execute("INSERT INTO ip_ok SELECT k FROM ip6_ok_arrow")
        con.unregister("ip6_ok_arrow")


#: The raw → id map of each key column, and its alias in :func:`_checked_events`.
_MAPS = {"account_id": "map_account", "device_id": "map_device", "ip": "map_ip",
         "target_id": "map_target", "event_type": "map_event_type"}
_ALIAS = {"account_id": "ma", "device_id": "md", "ip": "mi", "target_id": "mt",
          "event_type": "me"}


def _checked_events(source: str, *, text_ts: bool, text_records: bool,
                    hashed: set[str] = frozenset(), horizon: str = _TS_MAX) -> str:
    """Second scan: each event's ids and values, and the code of what is wrong with it.

    ``bad`` is NULL for a valid row, else the 1-based index into
    :data:`EVENT_REASONS`. ``source`` is a :func:`_source` query; its own
    columns (and ``source_row`` when it numbers rows) pass through as ``r.*``.
    Key columns in ``hashed`` join their map on the hash (see :func:`_events_keys`).
    Events after ``horizon`` (the export's newest plausible time) are quarantined.
    """
    on = {c: (f"{_ALIAS[c]}.h = hash(r.{c})" if c in hashed else f"{_ALIAS[c]}.raw = r.{c}")
          for c in _KEY_COLUMNS}
    if text_ts:
        # The common UTC form is parsed by a fixed format; anything else (offsets,
        # spaces, fractions, dates alone) by the general cast, when it is ISO 8601.
        # (The fixed format would read DuckDB's special 'epoch': a digit must lead.)
        t = ("coalesce(CASE WHEN left(r.ts, 1) BETWEEN '0' AND '9' THEN "
             "try_strptime(r.ts, '%Y-%m-%dT%H:%M:%SZ') END, " + _ts_expr("r.ts") + ")")
    else:
        t = "r.ts"
    if text_records:
        # A plain integer: digits only (no sign, exponent, underscore or fraction).
        recd = ("CASE WHEN regexp_full_match(r.records, ' *[0-9]+ *') "
                "THEN TRY_CAST(trim(r.records) AS DOUBLE) END")
        blank = "(records IS NULL OR trim(records) = '')"
    else:
        recd, blank = "CAST(r.records AS DOUBLE)", "records IS NULL"
    return f"""
        WITH p AS (
            SELECT r.*, {t} AS t, {recd} AS recd, ma.empty, ma.aid, md.did, mi.iid, mi.bad_ip,
                   mt.tid, me.et
            FROM ({source}) r
            LEFT JOIN map_account ma ON {on['account_id']}
            LEFT JOIN map_device md ON {on['device_id']}
            LEFT JOIN map_ip mi ON {on['ip']}
            LEFT JOIN map_target mt ON {on['target_id']}
            LEFT JOIN map_event_type me ON {on['event_type']})
        SELECT p.*,
          CASE
            WHEN t IS NULL OR NOT isfinite(t) OR t < TIMESTAMP '{_TS_MIN}'
                 OR t >= TIMESTAMP '{_TS_MAX}' THEN 1
            WHEN t > TIMESTAMP '{horizon}' THEN 2
            WHEN empty IS NOT FALSE THEN 3
            WHEN et IS NULL THEN 4
            WHEN recd IS NULL AND NOT {blank} THEN 5
            WHEN recd IS NOT NULL AND (NOT isfinite(recd) OR recd < 0 OR recd <> floor(recd)
                 OR recd > 2e9) THEN 5
            WHEN bad_ip THEN 6
            WHEN aid IS NULL THEN 7
          END::UTINYINT AS bad,
          CASE WHEN recd IS NULL OR NOT isfinite(recd) OR recd > 2e9 THEN 1
               ELSE recd END::INTEGER AS rec
        FROM p"""


def _cap(rejected: int, rows: int, max_reject_rate: float) -> int | None:
    """How many rejects to keep: all, unless the limit is certainly exceeded; then just enough
    to exceed it (the first ones in file order).

    >>> _cap(3, 100, 0.05), _cap(9_000_000, 9_000_000, 0.05)
    (None, 450001)
    """
    if rows and rejected / rows > max_reject_rate:
        return min(rejected, int(max_reject_rate * rows) + 1)
    return None


def _data_horizon(con: duckdb.DuckDBPyConnection, n: int):
    """The newest plausible time by the data itself, or None.

    The newest events (at most one in a thousand) are implausible when a gap longer
    than a day, and longer than everything before them spans, separates them from
    the rest: a stray 2099 among months of 2020. Judged only from 1,000 events on.
    """
    from datetime import timedelta

    if n < 1000:
        return None
    k_max = max(1, n // 1000)
    top = [r[0] for r in con.execute(f"SELECT ts FROM ev ORDER BY ts DESC LIMIT {k_max + 1}")
           .fetchall()]
    oldest = con.execute("SELECT min(ts) FROM ev").fetchone()[0]
    best = None
    for k in range(1, min(k_max, len(top) - 1) + 1):
        gap = top[k - 1] - top[k]
        if gap > max(timedelta(days=1), top[k] - oldest):
            best = k
    return None if best is None else top[best]


def _load_events(con: duckdb.DuckDBPyConnection, path: Path, spec: TableSpec,
                 rejects_dir: Path, *, max_reject_rate: float, horizon: str,
                 scan: FileScan | None) -> dict:
    """Read and validate the events file without staging its text.

    Two scans of the file: the first collects distinct raw keys (dictionaries,
    raw → id maps), the second writes the compact ``ev`` table. Only when rows
    were rejected does a third, numbered scan collect them with their reasons
    (only as many as prove the reject limit exceeded, when it is).
    """
    is_csv = not path.name.lower().endswith(".parquet")
    if is_csv:
        con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    first = _source(con, path, spec, typed=True, scan="stage")
    try:
        types = {r[0]: str(r[1]).upper() for r in con.execute(f"DESCRIBE {first}").fetchall()}
        # How the scans read the rows: text or typed values, hash or string keys.
        how = {"text_ts": types["ts"] == "VARCHAR",
               "text_records": types["records"] == "VARCHAR"}
        n_read, how["hashed"] = _events_keys(con, first, columnar=not is_csv)
        if is_csv:
            _broken_lines(con, "ev_broken")
        else:
            _empty_broken(con, "ev_broken")
        n_broken = con.execute("SELECT count(*) FROM ev_broken").fetchone()[0]
        lines = _lines(con, path, scan, n_read + n_broken, "ev_broken", spec)
        # The maps are small and exact in size; the file's size is only estimated. Keep
        # the written join order so every join builds its hash table on the map.
        con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
        try:
            con.execute(f"""
                CREATE OR REPLACE TABLE ev AS
                SELECT aid, t AS ts, did, iid, et, tid, rec
                FROM ({_checked_events(_source(con, path, spec, typed=True, scan='again'),
                                       **how, horizon=horizon)})
                WHERE bad IS NULL
            """)
        finally:
            con.execute("RESET disabled_optimizers")
        accepted = con.execute("SELECT count(*) FROM ev").fetchone()[0]
        own = _data_horizon(con, accepted)
        if own is not None and str(own) < horizon:
            horizon = str(own)
            con.execute(f"DELETE FROM ev WHERE ts > TIMESTAMP '{horizon}'")
            accepted = con.execute("SELECT count(*) FROM ev").fetchone()[0]
        n_rows = n_read + int(n_broken)
        cap = _cap(n_rows - accepted, n_rows, max_reject_rate)
        limit = f"ORDER BY source_row LIMIT {cap}" if cap is not None else ""
        if accepted < n_read:
            numbered = _source(con, path, spec, typed=True, scan="numbered")
            reasons = " ".join(f"WHEN {i} THEN '{_sql_str(r)}'"
                               for i, r in enumerate(EVENT_REASONS, 1))
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE chk_events AS
                SELECT * FROM (
                  SELECT {_row_fix('c.source_row', 'ev_broken')} AS source_row,
                         {', '.join(f'CAST(c.{x} AS VARCHAR) AS {x}' for x in spec.columns)},
                         CASE c.bad {reasons} END AS reason
                  FROM ({_checked_events(numbered, **how, horizon=horizon)}) c
                  WHERE c.bad IS NOT NULL) {limit}
            """)
        else:
            con.execute(f"""CREATE OR REPLACE TEMP TABLE chk_events AS SELECT
                NULL::BIGINT AS source_row, {', '.join(f'NULL::VARCHAR AS {c}' for c in spec.columns)},
                NULL::VARCHAR AS reason WHERE false""")
    except duckdb.Error as exc:
        raise _file_error(path, "unreadable file", exc) from None
    _, kept, last = _write_rejects(con, spec, "chk_events", "ev_broken", rejects_dir, cap)
    n_rej = n_rows - int(accepted)
    reasons = dict(con.execute(
        "SELECT reason, count(*) FROM rej GROUP BY reason ORDER BY reason").fetchall())
    for t in ("chk_events", "ev_broken", "map_account", "map_device", "map_ip", "map_target",
              "map_event_type"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return {"count": TableCount(rows=n_rows, accepted=n_rows - n_rej, rejected=n_rej),
            "reasons": reasons, "kept": kept, "last_row": last, "lines": lines,
            "horizon": horizon}


#: Contract columns that are free text and may hold line breaks; no other column can.
FREE_TEXT = {"partners": ("name", "partner_type")}


def _lines(con: duckdb.DuckDBPyConnection, path: Path, scan: FileScan | None, records: int,
           broken: str, spec: TableSpec, rows: str | None = None) -> dict | None:
    """Line accounting of a CSV table (:func:`analysis.csvlines.account`).

    When records span lines, none may hold a line break in a column that is not free
    text (an id, a time, a type, a number): that is a stray quote swallowing lines.
    ``rows`` is a query of the parsed rows with ``source_row`` (default: a numbered
    scan of the file).
    """
    if scan is None or scan.lines is None:
        return None
    at = con.execute(f"SELECT min(byte_pos) FROM {broken} WHERE multiline").fetchone()[0]
    info = account_lines(path, scan, records, None if at is None else int(at))
    if info["lines_in_fields"]:
        cols = [c for c in spec.columns if c not in FREE_TEXT.get(spec.name, ())]
        if rows is None:
            rows = (f"SELECT {_row_fix('n.source_row', broken)} AS source_row, n.* EXCLUDE "
                    f"(source_row) FROM ({_source(con, path, spec, scan='numbered')}) n")
        cond = " OR ".join(f"regexp_matches(CAST({c} AS VARCHAR), '[\r\n]')" for c in cols)
        found = con.execute(f"SELECT source_row, {', '.join(cols)} FROM ({rows}) "
                            f"WHERE {cond} ORDER BY source_row LIMIT 1").fetchone()
        if found is not None:
            col = next(c for c, v in zip(cols, found[1:]) if v is not None
                       and ("\n" in str(v) or "\r" in str(v)))
            raise broken_id(path, info, int(found[0]), col)
    info.pop("multiline", None)
    return info


_VALIDATORS = {
    "partners": _validate_partners,
    "accounts": _validate_accounts,
    "relationships": _validate_relationships,
}


def _write_rejects(con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: str, broken: str,
                   rejects_dir: Path, limit: int | None = None) -> tuple[int, int, int | None]:
    """Write quarantined rows of one table, as read, with ``source_row`` and ``reason``.

    ``rows`` holds the rejected rows (``source_row``, the contract's columns as
    read, ``reason``); ``broken`` the CSV lines that could not be parsed.
    Leaves them in the temp table ``rej``. With ``limit`` only the first rows (in
    file order) are written. Returns (rows in ``rej``, rows written, last row written).
    """
    cols = ", ".join(f"{neutralise_sql('r.' + c)} AS {c}" for c in spec.columns)
    empty = ", ".join(f"NULL AS {c}" for c in spec.columns)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE rej AS
        SELECT r.source_row, {cols}, NULL::VARCHAR AS raw_line, r.reason FROM {rows} r
        UNION ALL
        SELECT source_row, {empty}, {neutralise_sql('raw_line')}, reason FROM {broken}
    """)
    n = con.execute("SELECT count(*) FROM rej").fetchone()[0]
    cut = f" LIMIT {int(limit)}" if limit is not None else ""
    rejects_dir.mkdir(parents=True, exist_ok=True)
    target = _sql_str(str(rejects_dir / f"{spec.name}.csv"))
    con.execute(f"COPY (SELECT * FROM rej ORDER BY source_row, reason{cut}) TO '{target}' "
                f"(HEADER, DELIMITER ',', QUOTE '\"', ESCAPE '\"')")
    kept, last = con.execute(f"SELECT count(*), max(source_row) FROM (SELECT source_row FROM rej "
                             f"ORDER BY source_row, reason{cut})").fetchone()
    return int(n), int(kept), (None if last is None else int(last))


class RejectRateError(ExportError):
    """More of a table's rows were rejected than ``--max-reject-rate`` allows (exit 2).

    The rejects written (all of them, or just the first ones that prove the limit
    exceeded) are in ``rejects/<table>.csv``; :meth:`kept_in` names the folder they
    were finally kept in.
    """

    def __init__(self, path: Path, table: str, rejected: int, rows: int, rate: float,
                 kept: int, last_row: int | None, where: str = "rejects"):
        self.table, self.rejected, self.rows, self.rate = table, rejected, rows, rate
        self.kept, self.last_row, self.where = kept, last_row, where
        self.file = Path(path)
        stopped = ""
        if kept < rejected:
            stopped = (f"quarantine stopped once the limit was certainly exceeded: the first "
                       f"{kept:,} rejected rows (up to data row {last_row:,}) are kept; ")
        super().__init__(path, f"{rejected:,} of {rows:,} rows rejected "
                               f"({rejected / rows:.1%} > --max-reject-rate {rate:.1%}); "
                               f"{stopped}see {where}/{table}.csv")

    def kept_in(self, folder: Path | str) -> RejectRateError:
        """The same error, naming the folder the rejects were kept in."""
        return RejectRateError(self.file, self.table, self.rejected, self.rows, self.rate,
                               self.kept, self.last_row, where=str(folder))

    def note(self) -> str:
        """The text of the NOTE.txt kept beside the rejects."""
        from datetime import datetime, timezone

        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (f"ringscope stopped at {when}: {self}\n\n"
                f"This folder holds the rows quarantined by that run, for review: "
                f"{self.table}.csv and any other table's rejects, each row as read with its "
                f"source_row (1-based data row) and reason. No findings were written.\n")


def _horizon(files: dict[str, Path]) -> str:
    """The newest plausible event time before the data is looked at: now, plus a day for
    clocks that disagree (an export cannot hold the future). File times are not used:
    archives and copies often carry made-up ones (1970, 1980)."""
    from datetime import datetime, timedelta, timezone

    when = datetime.now(timezone.utc) + timedelta(days=1)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def export_files(export_dir: Path) -> dict[str, Path]:
    """The file of each table of the export (required ones, then the optional ones present);
    :class:`ExportError` as :func:`find_table` raises it."""
    files = {name: find_table(export_dir, name) for name in REQUIRED_TABLES}
    for name in OPTIONAL_TABLES:
        if (path := find_table(export_dir, name, optional=True)) is not None:
            files[name] = path
    return files


def export_fingerprints(export_dir: Path | str) -> dict[str, dict[str, object]]:
    """Name, bytes and SHA-256 of each table's file, as ``run.json`` records them."""
    return {name: scan_file(path).fingerprint
            for name, path in export_files(Path(export_dir)).items()}


def load_export(export_dir: Path | str, con: duckdb.DuckDBPyConnection, rejects_dir: Path,
                *, max_reject_rate: float = 0.05, timer=None) -> Export:
    """Read and validate an export into ``con``; write quarantined rows to ``rejects_dir``.

    Raises :class:`ExportError` when the export cannot be used: a missing or
    doubled table, a missing column, an unreadable file, lines a broken quote would
    swallow, a Parquet column of an impossible type, or (:class:`RejectRateError`)
    more than ``max_reject_rate`` of a table's rows rejected. ``timer``, if given, is
    told when each table starts and is done (for progress).
    """
    export_dir = Path(export_dir)
    files = export_files(export_dir)
    export = Export(con=con, export_dir=export_dir, files=files, counts={},
                    horizon=_horizon(files))
    # Files are hashed and their lines counted in a thread while DuckDB reads
    # (hashlib and bytes.count let go of the GIL).
    with ThreadPoolExecutor(max_workers=1) as pool:
        scans = {name: pool.submit(scan_file, path) for name, path in files.items()}
        try:
            _load_tables(export, rejects_dir, max_reject_rate, timer, scans)
        finally:
            for f in scans.values():
                f.cancel()
        export.fingerprints = {name: f.result().fingerprint for name, f in scans.items()}
    return export


def _scan_of(scans, name: str) -> FileScan | None:
    try:
        return scans[name].result() if scans and name in scans else None
    except OSError as exc:
        raise ExportError(getattr(exc, "filename", None),
                          f"cannot read the file ({exc.strerror or exc})") from None


def _load_tables(export: Export, rejects_dir: Path, max_reject_rate: float, timer,
                 scans=None) -> None:
    con = export.con
    if "relationships" not in export.files:
        no_relationships(con)
    for name in (*REQUIRED_TABLES, *OPTIONAL_TABLES):
        if name not in export.files:
            continue
        spec, path = TABLES[name], export.files[name]
        if timer is not None:
            timer.starting(name)
        t0 = time.perf_counter()
        if name == "events":
            res = _load_events(con, path, spec, rejects_dir, max_reject_rate=max_reject_rate,
                               horizon=export.horizon, scan=_scan_of(scans, name))
            count, reasons, kept, last = res["count"], res["reasons"], res["kept"], res["last_row"]
            lines, export.horizon = res["lines"], res["horizon"]
        else:
            _, n_broken = _stage(con, path, spec)
            n_parsed = con.execute(f"SELECT count(*) FROM raw_{name}").fetchone()[0]
            lines = _lines(con, path, _scan_of(scans, name), n_parsed + n_broken,
                           f"raw_{name}_broken", spec, f"SELECT * FROM raw_{name}")
            try:
                _VALIDATORS[name](con)
            except duckdb.Error as exc:
                raise _file_error(path, "cannot validate table", exc) from None
            n_rows = n_parsed + n_broken
            n_bad = con.execute(f"SELECT count(*) FROM chk_{name} WHERE reason IS NOT NULL"
                                ).fetchone()[0] + n_broken
            n_rej, kept, last = _write_rejects(
                con, spec, f"(SELECT source_row, {', '.join(spec.columns)}, reason "
                           f"FROM chk_{name} WHERE reason IS NOT NULL)",
                f"raw_{name}_broken", rejects_dir, _cap(n_bad, n_rows, max_reject_rate))
            count = TableCount(rows=int(n_rows), accepted=int(n_rows) - n_rej, rejected=n_rej)
            reasons = dict(con.execute(
                "SELECT reason, count(*) FROM rej GROUP BY reason ORDER BY reason").fetchall())
            _drop_staging(con, name)
        export.counts[name] = count
        export.reject_reasons[name] = reasons
        if lines is not None:
            export.lines[name] = lines
        export.timings[f"load_{name}"] = round(time.perf_counter() - t0, 3)
        log.info("%s: %d rows, %d accepted, %d rejected", name, count.rows, count.accepted,
                 count.rejected)
        if count.rows and count.rejected / count.rows > max_reject_rate:
            raise RejectRateError(path, name, count.rejected, count.rows, max_reject_rate,
                                  kept, last)
        if timer is not None:
            timer.done(name)
