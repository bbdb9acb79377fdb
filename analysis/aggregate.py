"""Validated events → per-account activity and entity links (the heavy stage).

Everything here is SQL over the workspace's compact ``ev`` table, so it scales
with the SQL engine, not with pandas: the results are one row per account and
one row per (account, device) and (account, IP) link. The SQL is written once,
as :func:`plan`, in DuckDB's dialect; :func:`aggregate` runs it in DuckDB and
:mod:`analysis.spark` runs the same plan on Apache Spark after transpiling it
with sqlglot (``--engine spark``).

A profile read is **tied** when the user read has ordered (up to the as-of
moment) from a merchant tied to the reader: the reader itself when it is a
merchant, or any merchant served by the reader's partner. A read of a
merchant's comments is tied for that merchant, its partner's staff, and anyone
who viewed its items or ordered from it (a shopper reading reviews). Reads that
are not tied are reads of users with no business relationship to the reader:
the harvest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd

from .contract import EVENT_TYPES
from .workspace import Workspace

__all__ = ["Aggregates", "SCHEMAS", "Step", "aggregate", "as_of_bound", "assemble", "conform",
           "daily_activity", "ensure_ties", "event_bounds", "plan", "run_duckdb"]

log = logging.getLogger(__name__)

ET = {name: i for i, name in enumerate(EVENT_TYPES)}
READ_CODES = f"({ET['search']}, {ET['view_comments']}, {ET['view_profile']})"


@dataclass
class Aggregates:
    """The aggregated export, small enough for pandas.

    ``accounts``      one row per account: identity and activity features
    ``device_links``  aid, did, n, first_seen, last_seen
    ``ip_links``      aid, iid, n, first_seen, last_seen
    ``coupons``       aid, partner_id (of the merchant), claims
    ``coupon_pairs``  aid, mid (merchant), claims: coupons claimed at a merchant the
                      account never ordered from, for accounts that did so at three or
                      more merchants (who a spree of claims went to; see
                      :func:`analysis.rings.promotion_shares`)
    ``partners``      the partners table
    ``as_of``         the moment events were cut at (exclusive), or None
    """

    accounts: pd.DataFrame
    device_links: pd.DataFrame
    ip_links: pd.DataFrame
    coupons: pd.DataFrame
    partners: pd.DataFrame
    as_of: datetime | None
    first_event: datetime | None
    last_event: datetime | None
    coupon_pairs: pd.DataFrame | None = None


def as_of_bound(as_of: date | str | None) -> datetime | None:
    """End of the as-of day (exclusive bound), or None for no cut.

    >>> as_of_bound("2020-03-01")
    datetime.datetime(2020, 3, 2, 0, 0)
    """
    if as_of is None:
        return None
    if isinstance(as_of, str):
        as_of = date.fromisoformat(as_of)
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    return datetime(as_of.year, as_of.month, as_of.day) + timedelta(days=1)


def event_bounds(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    """First and last event timestamp in the workspace."""
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM ev").fetchone()
    return lo, hi


def _cut(bound: datetime | None, column: str = "ts") -> str:
    return f"{column} < TIMESTAMP '{bound.isoformat(sep=' ')}'" if bound else "TRUE"


@dataclass(frozen=True)
class Step:
    """One statement of the heavy stage, written once for every engine.

    ``sql`` is a single ``SELECT`` in DuckDB's dialect, restricted to what Spark
    SQL can run after :mod:`sqlglot` transpiles it (see
    :func:`analysis.spark.to_spark_sql`). ``kind`` says what an engine does
    with it: ``view`` and ``table`` name an intermediate relation later steps
    read (a table is materialised, a view is not); ``result`` comes back to
    pandas (account-level tables only: never the events).
    """

    name: str
    kind: str
    sql: str


#: A user read by at most this many accounts is no popular profile: reaching them counts
#: in full; a user read by more counts ``COLD_READERS / readers`` (see ``untied_reach``).
COLD_READERS = 10

#: Events per chunk of the gap computation (see :func:`plan`).
GAP_CHUNK_EVENTS = 8_000_000


def plan(as_of: date | str | None = None, gap_chunks: int = 1) -> list[Step]:
    """The heavy stage as an ordered list of statements over ``ev``, ``accounts``, ``partners``.

    Both engines run exactly this list: DuckDB as temp views/tables
    (:func:`aggregate`), Spark as temp views of the transpiled SQL
    (:func:`analysis.spark.aggregate_spark`). ``gap_chunks`` splits the gaps
    between an account's events (a window sorted per account) into that many
    slices of accounts (``aid % gap_chunks``) joined by UNION ALL: the same
    result, but each slice's sort fits in memory, which keeps DuckDB's time
    linear in the events (13 s → 8 s at 54M events). Spark partitions by
    itself and runs it as one.

    >>> [s.name for s in plan() if s.kind == "result"]
    ['accounts', 'device_links', 'ip_links', 'coupons', 'coupon_pairs', 'partners', 'bounds']
    """
    cut = _cut(as_of_bound(as_of))
    history_cut = _cut(as_of_bound(as_of), "first_order_at")
    o, p, c, cc = ET["order"], ET["view_profile"], ET["view_comments"], ET["coupon_claim"]
    steps = [
        Step("e", "view", f"SELECT * FROM ev WHERE {cut}"),
        # Who ordered from whom: the export's orders, and the platform's order history
        # (the optional ``relationships`` table) for ties from before the export window.
        Step("bought", "table", f"""
            SELECT aid AS buyer, tid AS merchant FROM e WHERE et = {o} AND tid IS NOT NULL
            UNION
            SELECT buyer, merchant FROM relationships WHERE {history_cut}
        """),
        Step("bought_partner", "table", """
            SELECT DISTINCT b.buyer, m.partner_id FROM bought b
            JOIN accounts m ON m.aid = b.merchant WHERE m.partner_id IS NOT NULL
        """),
        # Reads of profiles: per (reader, user) pair, tied or not.
        # ``returned``: the reader came back to the user on a later day (an honest reader's
        # clientele is read again; a sweep reads each user once). ``first_day``: the day it
        # first read the user (a workforce meets new callers every working day; a sweep
        # reaches its strangers in a burst; a crew begins its sweep together, see
        # ``stranger_onset``, the first day an account read a stranger).
        Step("profile_pairs", "table", f"""
            SELECT r.aid, r.tid, r.n, r.rec,
                   (bp.buyer IS NOT NULL OR b.buyer IS NOT NULL) AS tied,
                   (CAST(r.t1 AS DATE) > CAST(r.t0 AS DATE)) AS returned,
                   CAST(r.t0 AS DATE) AS first_day
            FROM (SELECT aid, tid, count(*) AS n, sum(rec) AS rec, min(ts) AS t0, max(ts) AS t1
                  FROM e WHERE et = {p} GROUP BY aid, tid) r
            JOIN accounts ra ON ra.aid = r.aid
            LEFT JOIN bought_partner bp ON bp.buyer = r.tid AND bp.partner_id = ra.partner_id
            LEFT JOIN bought b ON b.buyer = r.tid AND b.merchant = r.aid
        """),
        # Comments of a merchant are tied for the merchant itself, its partner's staff, and
        # shoppers who looked at its items or ordered from it.
        Step("shopped", "table", f"""
            SELECT aid, tid FROM e
            WHERE et IN ({o}, {ET['view_item']}) AND tid IS NOT NULL
            UNION
            SELECT buyer, merchant FROM relationships WHERE {history_cut}
        """),
        Step("comment_pairs", "table", f"""
            SELECT r.aid, r.tid, r.n, r.rec,
                   (r.tid = r.aid OR (ra.partner_id IS NOT NULL AND m.partner_id = ra.partner_id)
                    OR s.aid IS NOT NULL) AS tied
            FROM (SELECT aid, tid, count(*) AS n, sum(rec) AS rec FROM e
                  WHERE et = {c} GROUP BY aid, tid) r
            JOIN accounts ra ON ra.aid = r.aid
            LEFT JOIN accounts m ON m.aid = r.tid
            LEFT JOIN shopped s ON s.aid = r.aid AND s.tid = r.tid
        """),
        # Gaps between an account's events in seconds: a difference of epoch microseconds
        # (portable; DuckDB's epoch(interval) has no Spark twin). median = quantile_cont 0.5.
        Step("timing", "table", "\nUNION ALL\n".join(
            f"""
            SELECT aid, count(gap) AS n_gaps,
                   avg(gap) AS gap_mean, stddev_pop(gap) AS gap_sd,
                   median(gap) AS gap_median
            FROM (SELECT aid, (epoch_us(ts) - epoch_us(lag(ts) OVER (PARTITION BY aid
                                                                     ORDER BY ts))) / 1000000
                             AS gap
                  FROM e {f"WHERE aid % {gap_chunks} = {k}" if gap_chunks > 1 else ""}) g
            WHERE gap IS NOT NULL AND gap < 86400 GROUP BY aid""" for k in range(gap_chunks))),
        Step("hours", "table", """
            WITH h AS (SELECT aid, hour(ts) AS hr, count(*) AS n FROM e GROUP BY aid, hour(ts)),
            t AS (SELECT aid, sum(n) AS tot FROM h GROUP BY aid)
            SELECT h.aid, count(*) AS hours_active,
                   -sum((h.n / t.tot) * ln(h.n / t.tot)) / ln(24) AS hour_entropy,
                   max(h.n) / t.tot AS peak_hour_share
            FROM h JOIN t ON t.aid = h.aid GROUP BY h.aid, t.tot
        """),
        # Per (account, device) and (account, IP): the graph's links. Counting an account's
        # links here is much cheaper than count(DISTINCT ...) over the events.
        Step("dev_links", "table", """
            SELECT aid, did, count(*) AS n, min(ts) AS first_seen, max(ts) AS last_seen
            FROM e WHERE did IS NOT NULL GROUP BY aid, did
        """),
        Step("ip_links_t", "table", """
            SELECT aid, iid, count(*) AS n, min(ts) AS first_seen, max(ts) AS last_seen
            FROM e WHERE iid IS NOT NULL GROUP BY aid, iid
        """),
        # How many accounts read each user's profile: a crawler's targets are cold users
        # few others read; a heavy honest reader's are popular profiles read by hundreds.
        Step("target_readers", "table", """
            SELECT tid, count(*) AS readers FROM profile_pairs GROUP BY tid
        """),
        Step("days", "table", """
            SELECT aid, count(*) AS active_days
            FROM (SELECT DISTINCT aid, CAST(ts AS DATE) AS day FROM e) GROUP BY aid
        """),
        Step("accounts", "result", f"""
            WITH act AS (
                SELECT aid, count(*) AS n_events, min(ts) AS first_seen, max(ts) AS last_seen,
                       count(*) FILTER (WHERE et IN {READ_CODES}) AS reads,
                       coalesce(sum(rec) FILTER (WHERE et IN {READ_CODES}), 0) AS records_read,
                       count(*) FILTER (WHERE et = {o}) AS orders,
                       count(*) FILTER (WHERE et = {cc}) AS coupon_claims,
                       count(*) FILTER (WHERE et = {ET['search']}) AS searches,
                       count(*) FILTER (WHERE et = {ET['login']}) AS logins
                FROM e GROUP BY aid),
            devs AS (SELECT aid, count(*) AS n_devices FROM dev_links GROUP BY aid),
            ipn AS (SELECT aid, count(*) AS n_ips FROM ip_links_t GROUP BY aid),
            prof AS (
                SELECT aid, sum(n) AS profile_reads, sum(rec) AS profile_records,
                       count(*) AS users_read,
                       coalesce(sum(n) FILTER (WHERE NOT tied), 0) AS untied_reads,
                       coalesce(sum(rec) FILTER (WHERE NOT tied), 0) AS untied_profile_records,
                       count(*) FILTER (WHERE NOT tied) AS untied_users,
                       count(*) FILTER (WHERE tied) AS tied_users,
                       count(*) FILTER (WHERE tied AND returned) AS tied_returned,
                       count(*) FILTER (WHERE NOT tied AND returned) AS untied_returned,
                       count(DISTINCT CASE WHEN NOT tied THEN first_day END) AS stranger_days,
                       CAST(min(CASE WHEN NOT tied THEN first_day END) AS TIMESTAMP)
                         AS stranger_onset,
                       coalesce(sum(least(1.0, {COLD_READERS}.0 / CAST(tr.readers AS DOUBLE))) FILTER (WHERE NOT tied), 0)
                         AS untied_reach,
                       coalesce(sum(least(1.0, {COLD_READERS}.0 / CAST(tr.readers AS DOUBLE))) FILTER (WHERE NOT tied AND returned), 0)
                         AS untied_reach_returned
                FROM profile_pairs pp JOIN target_readers tr ON tr.tid = pp.tid GROUP BY aid),
            com AS (
                SELECT aid, sum(n) AS comment_reads, sum(rec) AS comment_records,
                       count(*) AS merchants_read,
                       coalesce(sum(rec) FILTER (WHERE NOT tied), 0) AS untied_comment_records,
                       count(*) FILTER (WHERE NOT tied) AS untied_merchants,
                       coalesce(sum(n) FILTER (WHERE NOT tied), 0) AS untied_comment_reads
                FROM comment_pairs GROUP BY aid),
            noorder AS (
                SELECT q.aid, count(*) AS coupon_no_order,
                       count(DISTINCT q.tid) AS coupon_merchants FROM e q
                LEFT JOIN bought b ON b.buyer = q.aid AND b.merchant = q.tid
                WHERE q.et = {cc} AND b.buyer IS NULL GROUP BY q.aid)
            SELECT a.aid, a.account_id, a.account_type, a.partner_id, a.created_at,
                   coalesce(act.n_events, 0) AS n_events,
                   coalesce(days.active_days, 0) AS active_days,
                   act.first_seen, act.last_seen,
                   coalesce(act.reads, 0) AS reads, coalesce(act.records_read, 0) AS records_read,
                   coalesce(act.orders, 0) AS orders,
                   coalesce(act.coupon_claims, 0) AS coupon_claims,
                   coalesce(noorder.coupon_no_order, 0) AS coupon_no_order,
                   coalesce(noorder.coupon_merchants, 0) AS coupon_merchants,
                   coalesce(act.searches, 0) AS searches, coalesce(act.logins, 0) AS logins,
                   coalesce(devs.n_devices, 0) AS n_devices, coalesce(ipn.n_ips, 0) AS n_ips,
                   coalesce(prof.profile_reads, 0) AS profile_reads,
                   coalesce(prof.profile_records, 0) AS profile_records,
                   coalesce(prof.users_read, 0) AS users_read,
                   coalesce(prof.untied_reads, 0) AS untied_reads,
                   coalesce(prof.untied_users, 0) AS untied_users,
                   coalesce(prof.tied_users, 0) AS tied_users,
                   coalesce(prof.tied_returned, 0) AS tied_returned,
                   coalesce(prof.untied_returned, 0) AS untied_returned,
                   coalesce(prof.stranger_days, 0) AS stranger_days,
                   prof.stranger_onset,
                   coalesce(prof.untied_reach, 0) AS untied_reach,
                   coalesce(prof.untied_reach_returned, 0) AS untied_reach_returned,
                   coalesce(com.comment_reads, 0) AS comment_reads,
                   coalesce(com.comment_records, 0) AS comment_records,
                   coalesce(com.merchants_read, 0) AS merchants_read,
                   coalesce(com.untied_merchants, 0) AS untied_merchants,
                   coalesce(com.untied_comment_reads, 0) AS untied_comment_reads,
                   coalesce(prof.untied_profile_records, 0)
                     + coalesce(com.untied_comment_records, 0) AS untied_records,
                   coalesce(timing.n_gaps, 0) AS n_gaps, timing.gap_mean, timing.gap_sd,
                   timing.gap_median,
                   coalesce(hours.hours_active, 0) AS hours_active, hours.hour_entropy,
                   hours.peak_hour_share
            FROM accounts a
            LEFT JOIN act ON act.aid = a.aid LEFT JOIN prof ON prof.aid = a.aid
            LEFT JOIN com ON com.aid = a.aid LEFT JOIN noorder ON noorder.aid = a.aid
            LEFT JOIN timing ON timing.aid = a.aid LEFT JOIN hours ON hours.aid = a.aid
            LEFT JOIN days ON days.aid = a.aid LEFT JOIN devs ON devs.aid = a.aid
            LEFT JOIN ipn ON ipn.aid = a.aid
            ORDER BY a.aid
        """),
        Step("device_links", "result", "SELECT * FROM dev_links ORDER BY aid, did"),
        Step("ip_links", "result", "SELECT * FROM ip_links_t ORDER BY aid, iid"),
        Step("coupons", "result", f"""
            SELECT q.aid, m.partner_id, count(*) AS claims FROM e q
            JOIN accounts m ON m.aid = q.tid
            WHERE q.et = {cc} AND m.partner_id IS NOT NULL
            GROUP BY q.aid, m.partner_id ORDER BY q.aid, m.partner_id
        """),
        # Never-ordered-from merchants whose coupons an account claimed, for accounts with
        # three or more: whether a burst of claimers came for one promotion or sprayed
        # claims over many shops.
        Step("coupon_pairs", "result", f"""
            WITH pairs AS (
                SELECT q.aid, q.tid AS mid, count(*) AS claims FROM e q
                LEFT JOIN bought b ON b.buyer = q.aid AND b.merchant = q.tid
                WHERE q.et = {cc} AND q.tid IS NOT NULL AND b.buyer IS NULL
                GROUP BY q.aid, q.tid)
            SELECT aid, mid, claims FROM pairs
            WHERE aid IN (SELECT aid FROM pairs GROUP BY aid HAVING count(*) >= 3)
            ORDER BY aid, mid
        """),
        Step("partners", "result", """
            SELECT partner_id, name, partner_type, onboarded_at FROM partners ORDER BY partner_id
        """),
        Step("bounds", "result", "SELECT min(ts) AS first_event, max(ts) AS last_event FROM e"),
    ]
    return [Step(s.name, s.kind, "\n".join(line.strip() for line in s.sql.strip().splitlines()))
            for s in steps]


_TIE_STEPS = ("e", "bought", "bought_partner", "profile_pairs", "shopped", "comment_pairs")
_STR = pd.Series(["x"]).dtype   # the installed pandas' string dtype (object before pandas 3)
_TS = "datetime64[us]"
_I32, _I64, _F64 = "int32", "int64", "float64"
#: Column types of the result tables, the same whichever engine computed them (DuckDB's
#: own types: sums of INTEGER come back as HUGEINT → float64, counts as BIGINT).
SCHEMAS: dict[str, dict[str, object]] = {
    "accounts": {
        "aid": _I32, "account_id": _STR, "account_type": _STR, "partner_id": _STR,
        "created_at": _TS, "n_events": _I64, "active_days": _I64, "first_seen": _TS,
        "last_seen": _TS, "reads": _I64, "records_read": _F64, "orders": _I64,
        "coupon_claims": _I64, "coupon_no_order": _I64, "coupon_merchants": _I64, "searches": _I64, "logins": _I64,
        "n_devices": _I64, "n_ips": _I64, "profile_reads": _F64, "profile_records": _F64,
        "users_read": _I64, "untied_reads": _F64, "untied_users": _I64, "tied_users": _I64,
        "tied_returned": _I64, "untied_returned": _I64, "stranger_days": _I64,
        "stranger_onset": _TS,
        "untied_reach": _F64,
        "untied_reach_returned": _F64, "comment_reads": _F64,
        "comment_records": _F64, "merchants_read": _I64, "untied_merchants": _I64,
        "untied_comment_reads": _F64,
        "untied_records": _F64, "n_gaps": _I64, "gap_mean": _F64, "gap_sd": _F64,
        "gap_median": _F64, "hours_active": _I64, "hour_entropy": _F64,
        "peak_hour_share": _F64,
    },
    "device_links": {"aid": _I32, "did": _I32, "n": _I64, "first_seen": _TS, "last_seen": _TS},
    "ip_links": {"aid": _I32, "iid": _I32, "n": _I64, "first_seen": _TS, "last_seen": _TS},
    "coupons": {"aid": _I32, "partner_id": _STR, "claims": _I64},
    "coupon_pairs": {"aid": _I32, "mid": _I32, "claims": _I64},
    "partners": {"partner_id": _STR, "name": _STR, "partner_type": _STR, "onboarded_at": _TS},
}


def conform(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Give result table ``name`` its declared columns and types (a no-op for DuckDB's own)."""
    schema = SCHEMAS[name]
    if list(df.columns) != list(schema):
        raise ValueError(f"aggregate {name}: columns {list(df.columns)} != {list(schema)}")
    out = {}
    for col, dtype in schema.items():
        s = df[col]
        if dtype is _STR and len(s) == 0:
            s = s.astype(object)        # what DuckDB gives for an empty text column
        elif s.dtype != dtype:
            if dtype == _TS:
                s = pd.to_datetime(s).astype(_TS)
            else:
                s = s.astype(dtype)
        out[col] = s
    return pd.DataFrame(out, index=pd.RangeIndex(len(df)))


def assemble(results: dict[str, pd.DataFrame], bound: datetime | None) -> Aggregates:
    """Build :class:`Aggregates` from the ``result`` steps of :func:`plan` (any engine)."""
    def ts(v):
        return None if v is None or pd.isna(v) else pd.Timestamp(v).to_pydatetime()

    b = results["bounds"]
    lo, hi = (ts(b["first_event"].iloc[0]), ts(b["last_event"].iloc[0])) if len(b) else (None,
                                                                                         None)
    t = {k: conform(k, results[k]) for k in SCHEMAS}
    return Aggregates(accounts=t["accounts"], device_links=t["device_links"],
                      ip_links=t["ip_links"], coupons=t["coupons"], partners=t["partners"],
                      coupon_pairs=t["coupon_pairs"],
                      as_of=bound, first_event=lo, last_event=hi)


def run_duckdb(con: duckdb.DuckDBPyConnection, steps: list[Step]) -> dict[str, pd.DataFrame]:
    """Run ``steps`` in DuckDB: views and temp tables, results as DataFrames."""
    results = {}
    for s in steps:
        if s.kind == "view":
            con.execute(f"CREATE OR REPLACE TEMP VIEW {s.name} AS {s.sql}")
        elif s.kind == "table":
            con.execute(f"CREATE OR REPLACE TEMP TABLE {s.name} AS {s.sql}")
        else:
            results[s.name] = con.execute(s.sql).df()
    return results


def _as_of_key(as_of: date | str | None) -> str | None:
    bound = as_of_bound(as_of)
    return None if bound is None else bound.isoformat()


def aggregate(con: Workspace, as_of: date | str | None = None) -> Aggregates:
    """Aggregate the workspace's events up to ``as_of`` (end of that day, UTC), in DuckDB.

    Runs :func:`plan`; the workspace records that its derived tables (the tie
    tables ``profile_pairs``, ``comment_pairs``, …) now hold this as-of.
    """
    n_events = con.execute("SELECT count(*) FROM ev").fetchone()[0]
    chunks = max(1, -(-int(n_events) // GAP_CHUNK_EVENTS))
    steps = plan(as_of, gap_chunks=chunks)
    agg = assemble(run_duckdb(con, steps), as_of_bound(as_of))
    con.mark_built([st.name for st in steps if st.kind != "result"], _as_of_key(as_of))
    return agg


def ensure_ties(con: Workspace, as_of: date | str | None = None) -> None:
    """Make sure the tie tables hold exactly ``as_of`` (built here when they do not)."""
    key = _as_of_key(as_of)
    if not con.has_built(_TIE_STEPS, key):
        run_duckdb(con, [s for s in plan(as_of) if s.name in _TIE_STEPS])
        con.mark_built(_TIE_STEPS, key)


def daily_activity(con: Workspace, aids: list[int] | None = None,
                   as_of: date | str | None = None) -> pd.DataFrame:
    """Per account and day: events, profile reads, records read and untied reads.

    Restricted to ``aids`` when given (the members of the rings of interest).
    Uses the workspace's tie tables for ``as_of`` (built first when the workspace
    holds none for it, as after a Spark run or an aggregation at another as-of).
    """
    cut = _cut(as_of_bound(as_of))
    ensure_ties(con, as_of)
    where = ""
    if aids is not None:
        con.execute("CREATE OR REPLACE TEMP TABLE sel AS SELECT unnest(?::INTEGER[]) AS aid",
                    [list(map(int, aids))])
        where = "AND aid IN (SELECT aid FROM sel)"
    p, c = ET["view_profile"], ET["view_comments"]
    # The per-account figures' own rule (``plan``'s ``accounts`` step), so the days add up
    # to them: a profile read counts when it names a user, and a read is untied only when
    # its pair is known to be untied (``tied IS FALSE``). A comment read whose tie is unknown
    # (NULL: a reader with a partner on a merchant with none) is not counted as harvested,
    # exactly as in ``untied_records``; ``coalesce(tied, FALSE)`` here once made a ring's
    # days add up to more than its ``records_harvested``.
    return con.execute(f"""
        SELECT e.aid, CAST(e.ts AS DATE) AS day, count(*) AS events,
               count(*) FILTER (WHERE e.et = {p} AND e.tid IS NOT NULL) AS profile_reads,
               coalesce(sum(e.rec) FILTER (WHERE e.et IN {READ_CODES}), 0) AS records_read,
               count(*) FILTER (WHERE e.et = {p} AND pp.tied IS FALSE) AS untied_reads,
               coalesce(sum(e.rec) FILTER (WHERE (e.et = {p} AND pp.tied IS FALSE)
                   OR (e.et = {c} AND cp.tied IS FALSE)), 0) AS untied_records
        FROM ev e
        LEFT JOIN profile_pairs pp ON e.et = {p} AND pp.aid = e.aid AND pp.tid = e.tid
        LEFT JOIN comment_pairs cp ON e.et = {c} AND cp.aid = e.aid AND cp.tid = e.tid
        WHERE {cut} {where.replace('aid IN', 'e.aid IN')}
        GROUP BY e.aid, day ORDER BY e.aid, day
    """).df()
