"""Early warning: replay an export at weekly as-of dates and measure days to flag.

The export is read and validated once; each as-of date then re-runs only the
steps that depend on it (aggregation over the events up to that day, graph,
communities, signals, rings) on the same DuckDB workspace. Reading and
validating the events, the costliest step on a large export, is paid once.

A planted ring counts as **flagged** in a run when some flagged ring of that
run has at least half of its members from the planted ring: an alert that
points an analyst at it.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from ..findings import flagged_rings
from ..load import load_export
from ..params import RunParams
from ..pipeline import analyse
from ..workspace import open_workspace
from .evaluate import at_least_half, read_labels

__all__ = ["replay", "alerts_for", "first_harvest_from_truth"]


def first_harvest_from_truth(truth_path: Path | str | None) -> dict[str, datetime]:
    """Each planted ring's first harvesting event, from a truth.json (if given)."""
    if not truth_path or not Path(truth_path).exists():
        return {}
    truth = json.loads(Path(truth_path).read_text())
    rings = truth.get("rings", truth) if isinstance(truth, dict) else truth
    out = {}
    for r in rings:
        ts = r.get("first_harvest_ts") or r.get("first_harvest")
        if ts:
            out[str(r["ring_id"])] = pd.Timestamp(ts).tz_localize(None) if pd.Timestamp(
                ts).tzinfo is None else pd.Timestamp(ts).tz_convert(None)
    return out


def alerts_for(findings, labels: pd.DataFrame) -> tuple[set[str], int]:
    """Planted rings that a run's flagged rings point at, and its false-alert ring count."""
    rings, members = findings.rings.rings, findings.rings.members
    if rings.empty:
        return set(), 0
    flagged = set(flagged_rings(rings)["ring_id"])
    planted = dict(zip(labels["account_id"].astype(str), labels["ring_id"].astype(str)))
    hit, false_alerts = set(), 0
    for _, grp in members[members["ring_id"].isin(flagged)].groupby("ring_id"):
        owners = grp["account_id"].astype(str).map(planted).dropna()
        if not at_least_half(len(owners), len(grp)):
            false_alerts += 1
            continue
        top = owners.value_counts()
        if at_least_half(top.iloc[0], len(grp)):
            hit.add(top.index[0])
    return hit, false_alerts


def replay(export_dir: Path | str, labels_path: Path | str, *, truth: Path | str | None = None,
           seed: int = 7, step_days: int = 7, params: RunParams | None = None,
           out: Path | str | None = None, weekly: bool = True) -> pd.DataFrame:
    """Replay weekly as-of dates; one row per planted ring with its days to flag.

    Also runs, for each planted ring with a known first harvest, the as-of date
    14 days after it (``flagged_at_14d``; None when that day is past the export's
    end). Without ``weekly`` only those runs are made (no days to flag). The per-run table (as-of date,
    flagged rings, false alerts) is written beside the result when ``out`` is set.
    """
    labels = read_labels(labels_path)
    starts = first_harvest_from_truth(truth)
    base = params or RunParams(seed=seed)
    with tempfile.TemporaryDirectory(prefix="ringscope-replay-") as tmp:
        con = open_workspace(Path(tmp) / "workspace.duckdb", memory_limit=base.memory_limit)
        load_export(export_dir, con, Path(tmp) / "rejects", max_reject_rate=base.max_reject_rate)
        lo, hi = con.execute("SELECT min(ts), max(ts) FROM ev").fetchone()
        if lo is None:
            raise ValueError(f"{export_dir}: the export has no usable events to replay")
        day = lo.date() + timedelta(days=step_days - 1)
        dates: list[date] = []
        while day < hi.date():
            dates.append(day)
            day += timedelta(days=step_days)
        dates.append(hi.date())
        if not weekly:
            dates = []
        weekly_dates = set(dates)
        for start in starts.values():
            if (start + timedelta(days=14)).date() <= hi.date():
                dates.append((start + timedelta(days=14)).date())
        runs, first_flag = [], {}
        flagged_at: dict[date, set[str]] = {}
        for as_of in sorted(set(dates)):
            p = RunParams(**{**base.__dict__, "as_of": as_of.isoformat(), "seed": seed})
            findings = analyse(con, p)
            hit, false_alerts = alerts_for(findings, labels)
            flagged_at[as_of] = hit
            weekly = as_of in weekly_dates
            runs.append({"as_of": as_of.isoformat(), "weekly": weekly,
                         "flagged_rings": len(findings.flagged),
                         "false_alerts": false_alerts, "planted_rings_flagged": len(hit)})
            for r in hit:
                if weekly:
                    first_flag.setdefault(r, as_of)
        con.close()
    scen = (labels.drop_duplicates("ring_id").set_index("ring_id")["scenario"]
            if "scenario" in labels else pd.Series(dtype=str))
    rows = []
    for ring in sorted(labels["ring_id"].astype(str).unique()):
        start = starts.get(ring)
        flag = first_flag.get(ring)
        end_of_flag_day = datetime.combine(flag, datetime.min.time()) + timedelta(days=1) \
            if flag else None
        days = (end_of_flag_day - start).days if (flag and start is not None) else None
        at14 = None
        if start is not None and (start + timedelta(days=14)).date() in flagged_at:
            at14 = ring in flagged_at[(start + timedelta(days=14)).date()]
        rows.append({"ring_id": ring, "scenario": scen.get(ring, ""),
                     "first_harvest": start.isoformat() if start is not None else "",
                     "first_flagged_as_of": flag.isoformat() if flag else "never",
                     "days_to_flag": days, "flagged_at_14d": at14})
    table = pd.DataFrame(rows)
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        pd.DataFrame(runs).to_csv(out.with_name(out.stem + "_runs.csv"), index=False)
    table.attrs["runs"] = pd.DataFrame(runs)
    return table
