"""Validated events → per-account activity and entity links (the heavy stage).

Everything here is SQL over the workspace's compact ``ev`` table, so it scales
with DuckDB, not with pandas: the results are one row per account and one row
per (account, device) and (account, IP) link.

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

__all__ = ["Aggregates", "aggregate", "as_of_bound", "daily_activity", "event_bounds"]

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


def _cut(bound: datetime | None) -> str:
    return f"ts < TIMESTAMP '{bound.isoformat(sep=' ')}'" if bound else "TRUE"


def aggregate(con: duckdb.DuckDBPyConnection, as_of: date | str | None = None) -> Aggregates:
    """Aggregate the workspace's events up to ``as_of`` (end of that day, UTC)."""
    bound = as_of_bound(as_of)
    cut = _cut(bound)
    o, p, c, cc = ET["order"], ET["view_profile"], ET["view_comments"], ET["coupon_claim"]
    con.execute(f"CREATE OR REPLACE TEMP VIEW e AS SELECT * FROM ev WHERE {cut}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE bought AS
        SELECT DISTINCT aid AS buyer, tid AS merchant FROM e WHERE et = {o} AND tid IS NOT NULL;
        CREATE OR REPLACE TEMP TABLE bought_partner AS
        SELECT DISTINCT b.buyer, m.partner_id FROM bought b
        JOIN accounts m ON m.aid = b.merchant WHERE m.partner_id IS NOT NULL;
    """)
    # Reads of profiles: per (reader, user) pair, tied or not.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE profile_pairs AS
        SELECT r.aid, r.tid, r.n, r.rec,
               (bp.buyer IS NOT NULL OR b.buyer IS NOT NULL) AS tied
        FROM (SELECT aid, tid, count(*) AS n, sum(rec) AS rec FROM e
              WHERE et = {p} GROUP BY aid, tid) r
        JOIN accounts ra ON ra.aid = r.aid
        LEFT JOIN bought_partner bp ON bp.buyer = r.tid AND bp.partner_id = ra.partner_id
        LEFT JOIN bought b ON b.buyer = r.tid AND b.merchant = r.aid
    """)
    # Comments of a merchant are tied for the merchant itself, its partner's staff, and
    # shoppers who looked at its items or ordered from it.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE shopped AS
        SELECT DISTINCT aid, tid FROM e WHERE et IN ({o}, {ET['view_item']}) AND tid IS NOT NULL;
        CREATE OR REPLACE TEMP TABLE comment_pairs AS
        SELECT r.aid, r.tid, r.n, r.rec,
               (r.tid = r.aid OR (ra.partner_id IS NOT NULL AND m.partner_id = ra.partner_id)
                OR s.aid IS NOT NULL) AS tied
        FROM (SELECT aid, tid, count(*) AS n, sum(rec) AS rec FROM e
              WHERE et = {c} GROUP BY aid, tid) r
        JOIN accounts ra ON ra.aid = r.aid
        LEFT JOIN accounts m ON m.aid = r.tid
        LEFT JOIN shopped s ON s.aid = r.aid AND s.tid = r.tid
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE timing AS
        WITH g AS (
            SELECT aid, epoch(ts - lag(ts) OVER (PARTITION BY aid ORDER BY ts)) AS gap FROM e
        )
        SELECT aid, count(gap) AS n_gaps,
               avg(gap) AS gap_mean, stddev_pop(gap) AS gap_sd,
               quantile_cont(gap, 0.5) AS gap_median
        FROM g WHERE gap IS NOT NULL AND gap < 86400 GROUP BY aid;
        CREATE OR REPLACE TEMP TABLE hours AS
        WITH h AS (SELECT aid, hour(ts) AS hr, count(*) AS n FROM e GROUP BY aid, hour(ts)),
        t AS (SELECT aid, sum(n) AS tot FROM h GROUP BY aid)
        SELECT h.aid, count(*) AS hours_active,
               -sum((h.n / t.tot) * ln(h.n / t.tot)) / ln(24) AS hour_entropy,
               max(h.n) / t.tot AS peak_hour_share
        FROM h JOIN t USING (aid) GROUP BY h.aid, t.tot;
    """)
    accounts = con.execute(f"""
        WITH act AS (
            SELECT aid, count(*) AS n_events, count(DISTINCT CAST(ts AS DATE)) AS active_days,
                   min(ts) AS first_seen, max(ts) AS last_seen,
                   count(*) FILTER (WHERE et IN {READ_CODES}) AS reads,
                   coalesce(sum(rec) FILTER (WHERE et IN {READ_CODES}), 0) AS records_read,
                   count(*) FILTER (WHERE et = {o}) AS orders,
                   count(*) FILTER (WHERE et = {cc}) AS coupon_claims,
                   count(*) FILTER (WHERE et = {ET['search']}) AS searches,
                   count(*) FILTER (WHERE et = {ET['login']}) AS logins,
                   count(DISTINCT did) AS n_devices, count(DISTINCT iid) AS n_ips
            FROM e GROUP BY aid),
        prof AS (
            SELECT aid, sum(n) AS profile_reads, sum(rec) AS profile_records,
                   count(*) AS users_read,
                   coalesce(sum(n) FILTER (WHERE NOT tied), 0) AS untied_reads,
                   coalesce(sum(rec) FILTER (WHERE NOT tied), 0) AS untied_profile_records,
                   count(*) FILTER (WHERE NOT tied) AS untied_users
            FROM profile_pairs GROUP BY aid),
        com AS (
            SELECT aid, sum(n) AS comment_reads, sum(rec) AS comment_records,
                   count(*) AS merchants_read,
                   coalesce(sum(rec) FILTER (WHERE NOT tied), 0) AS untied_comment_records,
                   count(*) FILTER (WHERE NOT tied) AS untied_merchants
            FROM comment_pairs GROUP BY aid),
        noorder AS (
            SELECT q.aid, count(*) AS coupon_no_order FROM e q
            LEFT JOIN bought b ON b.buyer = q.aid AND b.merchant = q.tid
            WHERE q.et = {cc} AND b.buyer IS NULL GROUP BY q.aid)
        SELECT a.aid, a.account_id, a.account_type, a.partner_id, a.created_at,
               coalesce(act.n_events, 0) AS n_events, coalesce(act.active_days, 0) AS active_days,
               act.first_seen, act.last_seen,
               coalesce(act.reads, 0) AS reads, coalesce(act.records_read, 0) AS records_read,
               coalesce(act.orders, 0) AS orders, coalesce(act.coupon_claims, 0) AS coupon_claims,
               coalesce(noorder.coupon_no_order, 0) AS coupon_no_order,
               coalesce(act.searches, 0) AS searches, coalesce(act.logins, 0) AS logins,
               coalesce(act.n_devices, 0) AS n_devices, coalesce(act.n_ips, 0) AS n_ips,
               coalesce(prof.profile_reads, 0) AS profile_reads,
               coalesce(prof.profile_records, 0) AS profile_records,
               coalesce(prof.users_read, 0) AS users_read,
               coalesce(prof.untied_reads, 0) AS untied_reads,
               coalesce(prof.untied_users, 0) AS untied_users,
               coalesce(com.comment_reads, 0) AS comment_reads,
               coalesce(com.comment_records, 0) AS comment_records,
               coalesce(com.merchants_read, 0) AS merchants_read,
               coalesce(com.untied_merchants, 0) AS untied_merchants,
               coalesce(prof.untied_profile_records, 0)
                 + coalesce(com.untied_comment_records, 0) AS untied_records,
               coalesce(timing.n_gaps, 0) AS n_gaps, timing.gap_mean, timing.gap_sd,
               timing.gap_median,
               coalesce(hours.hours_active, 0) AS hours_active, hours.hour_entropy,
               hours.peak_hour_share
        FROM accounts a
        LEFT JOIN act USING (aid) LEFT JOIN prof USING (aid) LEFT JOIN com USING (aid)
        LEFT JOIN noorder USING (aid) LEFT JOIN timing USING (aid) LEFT JOIN hours USING (aid)
        ORDER BY a.aid
    """).df()
    device_links = con.execute("""
        SELECT aid, did, count(*) AS n, min(ts) AS first_seen, max(ts) AS last_seen
        FROM e WHERE did IS NOT NULL GROUP BY aid, did ORDER BY aid, did
    """).df()
    ip_links = con.execute("""
        SELECT aid, iid, count(*) AS n, min(ts) AS first_seen, max(ts) AS last_seen
        FROM e WHERE iid IS NOT NULL GROUP BY aid, iid ORDER BY aid, iid
    """).df()
    coupons = con.execute(f"""
        SELECT q.aid, m.partner_id, count(*) AS claims FROM e q
        JOIN accounts m ON m.aid = q.tid
        WHERE q.et = {cc} AND m.partner_id IS NOT NULL
        GROUP BY q.aid, m.partner_id ORDER BY q.aid, m.partner_id
    """).df()
    partners = con.execute("SELECT * FROM partners ORDER BY partner_id").df()
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM e").fetchone()
    return Aggregates(accounts=accounts, device_links=device_links, ip_links=ip_links,
                      coupons=coupons, partners=partners, as_of=bound, first_event=lo,
                      last_event=hi)


def daily_activity(con: duckdb.DuckDBPyConnection, aids: list[int] | None = None,
                   as_of: date | str | None = None) -> pd.DataFrame:
    """Per account and day: events, profile reads, records read and untied reads.

    Restricted to ``aids`` when given (the members of the rings of interest).
    Call after :func:`aggregate` (it uses the tie tables that step built).
    """
    cut = _cut(as_of_bound(as_of))
    where = ""
    if aids is not None:
        con.execute("CREATE OR REPLACE TEMP TABLE sel AS SELECT unnest(?::INTEGER[]) AS aid",
                    [list(map(int, aids))])
        where = "AND aid IN (SELECT aid FROM sel)"
    p, c = ET["view_profile"], ET["view_comments"]
    return con.execute(f"""
        SELECT e.aid, CAST(e.ts AS DATE) AS day, count(*) AS events,
               count(*) FILTER (WHERE e.et = {p}) AS profile_reads,
               coalesce(sum(e.rec) FILTER (WHERE e.et IN {READ_CODES}), 0) AS records_read,
               count(*) FILTER (WHERE e.et = {p} AND NOT coalesce(pp.tied, FALSE)) AS untied_reads,
               coalesce(sum(e.rec) FILTER (WHERE (e.et = {p} AND NOT coalesce(pp.tied, FALSE))
                   OR (e.et = {c} AND NOT coalesce(cp.tied, FALSE))), 0) AS untied_records
        FROM ev e
        LEFT JOIN profile_pairs pp ON e.et = {p} AND pp.aid = e.aid AND pp.tid = e.tid
        LEFT JOIN comment_pairs cp ON e.et = {c} AND cp.aid = e.aid AND cp.tid = e.tid
        WHERE {cut} {where.replace('aid IN', 'e.aid IN')}
        GROUP BY e.aid, day ORDER BY e.aid, day
    """).df()
