"""Replaying a run at earlier as-of dates: when would weekly runs have flagged each ring?

:func:`first_flagged` re-runs the analysis on the same workspace at weekly
as-of dates. The workspace knows which as-of its tables hold, so nothing needs
restoring afterwards.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pandas as pd

from .findings import Findings
from .pipeline import analyse
from .queries import records_by_ring
from .workspace import Workspace

__all__ = ["first_flagged"]


def first_flagged(con: Workspace, findings: Findings, *, step_days: int = 7,
                  daily: pd.DataFrame | None = None, progress=None) -> pd.DataFrame:
    """When each flagged ring started, and when weekly runs would first have flagged it.

    The analysis is replayed on the same workspace at as-of dates every
    ``step_days`` days, from the first day any flagged ring harvested up to the
    run's own as-of date (or its last event). A ring counts as flagged on a date
    when a ring flagged as of that date holds any of its accounts.

    Columns: ring_id, started (first day by which the ring had read 1 % of its
    untied records, or its first event), first_flagged (as-of date; NaT when never within the data),
    days_to_flag (never negative), flagged_early (flagged before its harvest was visible).
    """
    flagged = findings.flagged
    cols = ["ring_id", "started", "first_flagged", "days_to_flag"]
    if flagged.empty:
        return pd.DataFrame(columns=cols + ["flagged_early"])
    if daily is None:
        daily = records_by_ring(con, findings, flagged_only=True)
    # The harvest starts when the ring's untied records pass 1 % of its total: a
    # member's stray untied read weeks before the crawl is not its start.
    d = daily.sort_values(["ring_id", "day"])
    cum = d.groupby("ring_id")["untied_records"].cumsum()
    tot = d.groupby("ring_id")["untied_records"].transform("sum")
    harvest = d[(tot > 0) & (cum >= 0.01 * tot)].groupby("ring_id")["day"].min()
    started = pd.Series({r.ring_id: harvest.get(r.ring_id, pd.Timestamp(r.first_seen))
                         for r in flagged.itertuples(index=False)})
    started = pd.to_datetime(started).dt.normalize()
    end = (pd.Timestamp(findings.params.as_of) if findings.params.as_of
           else pd.Timestamp(findings.aggregates.last_event).normalize())
    dates = []
    d = started.min() + timedelta(days=step_days - 1)
    while d < end:
        dates.append(d)
        d += timedelta(days=step_days)
    dates.append(end)
    members = findings.rings.members
    want = {rid: set(members.loc[members["ring_id"] == rid, "account_id"])
            for rid in flagged["ring_id"]}
    found: dict[str, pd.Timestamp] = {}
    # Replays run on the embedded engine, whatever engine the run itself used.
    local = {"engine": "duckdb"} if hasattr(findings.params, "engine") else {}
    bar = progress(total=len(dates)) if progress else None
    try:
        for d in dates:
            if len(found) == len(want):
                break
            if d == end:
                rids = [r for r in want if r not in found]
                for r in rids:
                    found[r] = d
                break
            f = analyse(con, replace(findings.params, as_of=d.date().isoformat(), **local))
            fm = f.rings.members.merge(f.flagged[["ring_id"]], on="ring_id")
            hit = set(fm["account_id"])
            for rid, accts in want.items():
                if rid not in found and accts & hit:
                    found[rid] = d
            if bar:
                bar.update(1)
    finally:
        if bar:
            # Runs skipped once every ring was found count as done: the bar ends at 100 %.
            bar.update(max(0, bar.total - bar.n))
            bar.close()
    out = pd.DataFrame({"ring_id": list(want)})
    out["started"] = out["ring_id"].map(started)
    out["first_flagged"] = pd.to_datetime(out["ring_id"].map(found))
    # A ring may be flagged (some of its accounts, by an earlier run) before its harvest
    # shows in its records: that is 0 days late, and ``flagged_early`` says so in words.
    delay = (out["first_flagged"] - out["started"]).dt.days
    out["flagged_early"] = delay < 0
    out["days_to_flag"] = delay.clip(lower=0)
    return out[cols + ["flagged_early"]]


