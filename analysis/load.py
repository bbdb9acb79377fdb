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
import hashlib
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
from .safe import neutralise_sql

__all__ = ["Export", "TableCount", "export_files", "export_fingerprints", "find_table",
           "load_export"]

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
    found = sorted(p for p in export_dir.iterdir() if p.name.lower() in wanted and p.is_file())
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


def _broken_lines(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Keep the CSV lines the last ``stage`` scan could not parse, one row per line."""
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT min(line) AS source_row, "
        f"any_value(csv_line) AS raw_line, "
        f"'unparseable CSV line ' || string_agg(DISTINCT lower(error_type), '; ') AS reason "
        f"FROM reject_errors GROUP BY line ORDER BY line"
    )


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
            # rowid follows insertion order, which DuckDB keeps in file order.
            con.execute(f"CREATE VIEW {view} AS SELECT rowid + 1 AS source_row, * FROM {raw}")
            _broken_lines(con, broken)
        else:
            con.execute(f"CREATE TABLE {broken} "
                        f"(source_row BIGINT, raw_line VARCHAR, reason VARCHAR)")
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM {raw}")
    except duckdb.Error as exc:
        kind = "unreadable file" if is_csv else "unreadable Parquet file"
        raise _file_error(path, kind, exc) from None
    n_broken = con.execute(f"SELECT count(*) FROM {broken}").fetchone()[0]
    return view, int(n_broken)


def _drop_staging(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"DROP VIEW IF EXISTS raw_{name}; DROP TABLE IF EXISTS raw_{name}_t; "
                f"DROP TABLE IF EXISTS raw_{name}_broken")


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
EVENT_REASONS = ("bad ts timestamp", "empty account_id", "unknown event_type",
                 "records is not an integer >= 0", "account_id not in accounts")
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
        SELECT *, nullif(trim(raw), '') AS k FROM ev_keys WHERE raw IS NOT NULL;
        CREATE OR REPLACE TABLE devices AS
        SELECT (row_number() OVER (ORDER BY k) - 1)::INTEGER AS did, k AS device_id
        FROM (SELECT DISTINCT k FROM ev_keys_t WHERE is_device_id AND k IS NOT NULL);
        CREATE OR REPLACE TABLE ips AS
        SELECT (row_number() OVER (ORDER BY k) - 1)::INTEGER AS iid, k AS ip
        FROM (SELECT DISTINCT k FROM ev_keys_t WHERE is_ip AND k IS NOT NULL);
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
        SELECT t.raw, i.iid FROM ev_keys_t t JOIN ips i ON i.ip = t.k WHERE t.is_ip;
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
    con.execute("DROP TABLE ev_keys; DROP TABLE ev_keys_t")
    return int(n_rows), hashed


#: The raw → id map of each key column, and its alias in :func:`_checked_events`.
_MAPS = {"account_id": "map_account", "device_id": "map_device", "ip": "map_ip",
         "target_id": "map_target", "event_type": "map_event_type"}
_ALIAS = {"account_id": "ma", "device_id": "md", "ip": "mi", "target_id": "mt",
          "event_type": "me"}


def _checked_events(source: str, *, text_ts: bool, text_records: bool,
                    hashed: set[str] = frozenset()) -> str:
    """Second scan: each event's ids and values, and the code of what is wrong with it.

    ``bad`` is NULL for a valid row, else the 1-based index into
    :data:`EVENT_REASONS`. ``source`` is a :func:`_source` query; its own
    columns (and ``source_row`` when it numbers rows) pass through as ``r.*``.
    Key columns in ``hashed`` join their map on the hash (see :func:`_events_keys`).
    """
    on = {c: (f"{_ALIAS[c]}.h = hash(r.{c})" if c in hashed else f"{_ALIAS[c]}.raw = r.{c}")
          for c in _KEY_COLUMNS}
    if text_ts:
        # The common UTC form is parsed by a fixed format; anything else (offsets,
        # spaces, fractions, dates alone) by the general TIMESTAMPTZ cast.
        t = ("coalesce(try_strptime(r.ts, '%Y-%m-%dT%H:%M:%SZ'), "
             "TRY_CAST(TRY_CAST(trim(r.ts) AS TIMESTAMPTZ) AS TIMESTAMP))")
    else:
        t = "r.ts"
    if text_records:
        recd = "coalesce(TRY_CAST(r.records AS DOUBLE), TRY_CAST(trim(r.records) AS DOUBLE))"
        blank = "(records IS NULL OR trim(records) = '')"
    else:
        recd, blank = "CAST(r.records AS DOUBLE)", "records IS NULL"
    return f"""
        WITH p AS (
            SELECT r.*, {t} AS t, {recd} AS recd, ma.empty, ma.aid, md.did, mi.iid, mt.tid,
                   me.et
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
            WHEN empty IS NOT FALSE THEN 2
            WHEN et IS NULL THEN 3
            WHEN recd IS NULL AND NOT {blank} THEN 4
            WHEN recd IS NOT NULL AND (NOT isfinite(recd) OR recd < 0 OR recd <> floor(recd)
                 OR recd > 2e9) THEN 4
            WHEN aid IS NULL THEN 5
          END::UTINYINT AS bad,
          CASE WHEN recd IS NULL OR NOT isfinite(recd) OR recd > 2e9 THEN 1
               ELSE recd END::INTEGER AS rec
        FROM p"""


def _load_events(con: duckdb.DuckDBPyConnection, path: Path, spec: TableSpec,
                 rejects_dir: Path) -> tuple[TableCount, dict[str, int]]:
    """Read and validate the events file without staging its text.

    Two scans of the file: the first collects distinct raw keys (dictionaries,
    raw → id maps), the second writes the compact ``ev`` table. Only when rows
    were rejected does a third, numbered scan collect them with their reasons.
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
            con.execute("CREATE OR REPLACE TABLE ev_broken "
                        "(source_row BIGINT, raw_line VARCHAR, reason VARCHAR)")
        # The maps are small and exact in size; the file's size is only estimated. Keep
        # the written join order so every join builds its hash table on the map.
        con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
        try:
            con.execute(f"""
                CREATE OR REPLACE TABLE ev AS
                SELECT aid, t AS ts, did, iid, et, tid, rec
                FROM ({_checked_events(_source(con, path, spec, typed=True, scan='again'),
                                       **how)})
                WHERE bad IS NULL
            """)
        finally:
            con.execute("RESET disabled_optimizers")
        accepted = con.execute("SELECT count(*) FROM ev").fetchone()[0]
        if accepted < n_read:
            numbered = _source(con, path, spec, typed=True, scan="numbered")
            reasons = " ".join(f"WHEN {i} THEN '{r}'" for i, r in enumerate(EVENT_REASONS, 1))
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE chk_events AS
                SELECT source_row, {', '.join(f'CAST({c} AS VARCHAR) AS {c}' for c in spec.columns)},
                       CASE bad {reasons} END AS reason
                FROM ({_checked_events(numbered, **how)}) WHERE bad IS NOT NULL
            """)
        else:
            con.execute(f"""CREATE OR REPLACE TEMP TABLE chk_events AS SELECT
                NULL::BIGINT AS source_row, {', '.join(f'NULL::VARCHAR AS {c}' for c in spec.columns)},
                NULL::VARCHAR AS reason WHERE false""")
    except duckdb.Error as exc:
        raise _file_error(path, "unreadable file", exc) from None
    n_rej = _write_rejects(con, spec, "chk_events", "ev_broken", rejects_dir)
    n_broken = con.execute("SELECT count(*) FROM ev_broken").fetchone()[0]
    n_rows = n_read + int(n_broken)
    reasons = dict(con.execute(
        "SELECT reason, count(*) FROM rej GROUP BY reason ORDER BY reason").fetchall())
    for t in ("chk_events", "ev_broken", "map_account", "map_device", "map_ip", "map_target",
              "map_event_type"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return TableCount(rows=n_rows, accepted=n_rows - n_rej, rejected=n_rej), reasons


_VALIDATORS = {
    "partners": _validate_partners,
    "accounts": _validate_accounts,
    "relationships": _validate_relationships,
}


def _write_rejects(con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: str, broken: str,
                   rejects_dir: Path) -> int:
    """Write quarantined rows of one table, as read, with ``source_row`` and ``reason``.

    ``rows`` holds the rejected rows (``source_row``, the contract's columns as
    read, ``reason``); ``broken`` the CSV lines that could not be parsed.
    Leaves them in the temp table ``rej``.
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
    rejects_dir.mkdir(parents=True, exist_ok=True)
    target = _sql_str(str(rejects_dir / f"{spec.name}.csv"))
    con.execute(f"COPY (SELECT * FROM rej ORDER BY source_row, reason) TO '{target}' "
                f"(HEADER, DELIMITER ',', QUOTE '\"', ESCAPE '\"')")
    return int(n)


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
    return {name: _fingerprint(path) for name, path in export_files(Path(export_dir)).items()}


def load_export(export_dir: Path | str, con: duckdb.DuckDBPyConnection, rejects_dir: Path,
                *, max_reject_rate: float = 0.05, timer=None) -> Export:
    """Read and validate an export into ``con``; write quarantined rows to ``rejects_dir``.

    Raises :class:`ExportError` when the export cannot be used: a missing or
    doubled table, a missing column, an unreadable file, a Parquet column of an
    impossible type, or more than ``max_reject_rate`` of a table's rows rejected.
    ``timer``, if given, is told when each table starts and is done (for progress).
    """
    export_dir = Path(export_dir)
    files = export_files(export_dir)
    export = Export(con=con, export_dir=export_dir, files=files, counts={})
    # Fingerprints are hashed in a thread while DuckDB reads (hashlib lets go of the GIL).
    with ThreadPoolExecutor(max_workers=1) as pool:
        prints = {name: pool.submit(_fingerprint, path) for name, path in files.items()}
        _load_tables(export, rejects_dir, max_reject_rate, timer)
        export.fingerprints = {name: f.result() for name, f in prints.items()}
    return export


def _load_tables(export: Export, rejects_dir: Path, max_reject_rate: float, timer) -> None:
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
            count, reasons = _load_events(con, path, spec, rejects_dir)
        else:
            _, n_broken = _stage(con, path, spec)
            try:
                _VALIDATORS[name](con)
            except duckdb.Error as exc:
                raise _file_error(path, "cannot validate table", exc) from None
            n_rows = con.execute(f"SELECT count(*) FROM raw_{name}").fetchone()[0] + n_broken
            n_rej = _write_rejects(
                con, spec, f"(SELECT source_row, {', '.join(spec.columns)}, reason "
                           f"FROM chk_{name} WHERE reason IS NOT NULL)",
                f"raw_{name}_broken", rejects_dir)
            count = TableCount(rows=int(n_rows), accepted=int(n_rows) - n_rej, rejected=n_rej)
            reasons = dict(con.execute(
                "SELECT reason, count(*) FROM rej GROUP BY reason ORDER BY reason").fetchall())
            _drop_staging(con, name)
        export.counts[name] = count
        export.reject_reasons[name] = reasons
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
        if timer is not None:
            timer.done(name)
