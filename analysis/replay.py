"""Replaying a run at earlier as-of dates: when would weekly runs have flagged each ring?

:func:`first_flagged` re-runs the analysis on the same workspace at weekly
as-of dates. The workspace knows which as-of its tables hold, so nothing needs
restoring afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd

from .findings import Findings
from .pipeline import analyse
from .queries import records_by_ring
from .store import FOLDER
from .workspace import Workspace

__all__ = ["first_flagged"]


def first_flagged(con: Workspace, findings: Findings, *, step_days: int = 7,
                  daily: pd.DataFrame | None = None, progress=None,
                  keep: Path | str | None = None) -> pd.DataFrame:
    """When each flagged ring started, and when weekly runs would first have flagged it.

    The analysis is replayed on the same workspace at as-of dates every
    ``step_days`` days, from the first day any flagged ring harvested up to the
    run's own as-of date (or its last event). A ring counts as flagged on a date
    when a ring flagged as of that date holds any of its accounts.

    Columns: ring_id, started (first day by which the ring had read 1 % of its
    untied records, or its first event), first_flagged (as-of date; NaT when never within the data),
    days_to_flag (never negative), flagged_early (flagged before its harvest was visible).

    ``keep`` (the output folder the findings were kept in, ``open_findings(out=keep)``):
    the table is kept beside them in ``keep/.ringscope/replay.pickle`` and read from there
    while the kept findings, the flagged rings and their members and ``step_days`` are the
    same, so the weekly replays run once per analysis.
    """
    if keep is not None:
        tag = _replay_key(keep, findings, step_days)
        kept = _kept_replay(keep, tag)
        if kept is not None:
            return kept
        out = first_flagged(con, findings, step_days=step_days, daily=daily,
                            progress=progress)
        if tag is not None:
            _keep_replay(keep, tag, out)
        return out
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




def _replay_key(keep, findings: Findings, step_days: int) -> str | None:
    """A digest of what the replay depends on: the kept findings' key, the flagged rings
    (after tracking: a dismissed ring is not replayed) and their members, ``step_days``."""
    try:
        kept = json.loads((Path(keep) / FOLDER / "key.json").read_text())
    except (OSError, ValueError):
        return None
    kept.pop("saved_at", None)
    m = findings.rings.members
    rings = {r: sorted(m.loc[m["ring_id"] == r, "account_id"].astype(str))
             for r in findings.flagged["ring_id"]}
    blob = json.dumps({"findings": kept, "flagged": rings, "step_days": int(step_days),
                       "as_of": findings.params.as_of}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _kept_replay(keep, tag: str | None) -> pd.DataFrame | None:
    if tag is None:
        return None
    try:
        with open(Path(keep) / FOLDER / "replay.pickle", "rb") as fh:
            kept = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    return kept["table"].copy() if kept.get("key") == tag else None


def _keep_replay(keep, tag: str, table: pd.DataFrame) -> None:
    path = Path(keep) / FOLDER / "replay.pickle"
    tmp = path.with_name(f".replay.pickle.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        pickle.dump({"key": tag, "table": table}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
