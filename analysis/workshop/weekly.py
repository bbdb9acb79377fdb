"""Weekly replay of ring keys: do rings keep their identity from one week to the next?

:func:`weekly_keys` runs the tool on one export at weekly as-of dates, each run
with the one before as its previous run (``run --previous``), and measures:

* per week: of the flagged rings whose members overlap a ring of the previous
  run by Jaccard ≥ 0.5, the share that kept that ring's key (a ring overlapping
  two by exactly 0.5, the merge of two single accounts, keeps one of the two);
  and how many keys two rings share (must be 0);
* per ring over its life: how often its key changed. With ``labels`` (planted
  rings) a ring is a planted ring, followed through the flagged ring that points
  at it each week (at least half of that ring's members are planted in it);
  without, a ring is a chain of best overlaps ≥ 0.5 from week to week.

By default the export is read once and each week re-runs the steps from the
aggregates on, then :func:`analysis.tracking.follow` with the previous week's
ledger and communities held in memory: the same functions ``run --previous``
calls, without writing and re-reading the output folders. ``use_cli=True``
runs :func:`analysis.pipeline.run` for each week into ``work/`` instead.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..load import load_export
from ..params import RunParams
from ..pipeline import analyse, run
from ..tracking import Previous, export_identity, follow, load_previous
from ..workspace import open_workspace
from .evaluate import at_least_half, read_labels

__all__ = ["WeeklyKeys", "weekly_keys", "weekly_dates"]


@dataclass
class WeeklyKeys:
    """``weeks``: as_of, flagged, eligible (flagged rings overlapping a previous ring by
    Jaccard ≥ 0.5), kept (of those, with that ring's key), survival (kept / eligible),
    shared_keys (keys held by two rings or more). ``rings``: ring (planted ring or
    chain), weeks (present), keys (distinct), key_changes. ``summary``: totals."""

    weeks: pd.DataFrame
    rings: pd.DataFrame
    summary: dict = field(default_factory=dict)


def weekly_dates(con, step_days: int = 7) -> list[str]:
    """Weekly as-of dates over an export's events: a week after the first, up to the last."""
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM ev").fetchone()
    if lo is None:
        return []
    day, out = lo.date() + pd.Timedelta(days=step_days - 1), []
    while day < hi.date():
        out.append(day.isoformat())
        day += pd.Timedelta(days=step_days)
    out.append(hi.date().isoformat())
    return out


def _jac(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if (a | b) else 0.0


def _week_table(keys: pd.DataFrame) -> pd.DataFrame:
    """This run's rings from a key ledger: ring_key, flagged, members (sets)."""
    k = keys[keys["present"].astype(bool)]
    return pd.DataFrame({"ring_key": k["ring_key"].astype(str).to_numpy(),
                         "flagged": k["flagged"].astype(bool).to_numpy(),
                         "members": [frozenset(m) for m in k["members"]]})


def weekly_keys(export_dir: str | Path, as_of_dates: list[str] | None = None, *,
                params: RunParams | None = None, labels: str | Path | None = None,
                use_cli: bool = False, work: str | Path | None = None,
                min_jaccard: float = 0.5) -> WeeklyKeys:
    """Run the tool at weekly as-of dates with ``--previous`` chaining; measure key survival.

    Parameters
    ----------
    export_dir : the export folder
    as_of_dates : "YYYY-MM-DD" dates in order (None: weekly from the first event)
    params : run parameters (as_of and previous are set per week)
    labels : a labels.csv (account_id, ring_id) to follow planted rings by
    use_cli : run :func:`analysis.pipeline.run` per week into ``work`` (default: in memory)
    min_jaccard : the overlap from which a ring must keep its key (0.5)

    Examples
    --------
    ``weekly_keys("data/demo/export", labels="data/demo/labels.csv").summary``
    gives ``survival`` (share of eligible rings keeping their key over all weeks),
    ``shared_keys`` and ``median_key_changes``.
    """
    base = params or RunParams()
    tables: list[tuple[str, pd.DataFrame]] = []
    with tempfile.TemporaryDirectory(prefix="ringscope-weekly-") as tmp:
        root = Path(work) if work else Path(tmp)
        if use_cli:
            prev_out = None
            for d in as_of_dates or []:
                out = root / f"run-{d}"
                run(export_dir, out, replace(base, as_of=d, previous=str(prev_out) if prev_out
                                             else None, handoff=()))
                prev = load_previous(out)
                tables.append((d, _week_table(prev.keys)))
                prev_out = out
        else:
            con = open_workspace(root / "workspace.duckdb", memory_limit=base.memory_limit)
            try:
                load_export(export_dir, con, root / "rejects",
                            max_reject_rate=base.max_reject_rate)
                identity = export_identity(con, base.tracking.sketch_size)
                prev = None
                for d in as_of_dates or weekly_dates(con):
                    p = replace(base, as_of=d, previous=None, cases=None, handoff=())
                    f = analyse(con, p, initial_communities=prev.communities if prev else None)
                    f = follow(f, prev, None, identity=identity, params=base.tracking)
                    g = f.graph
                    comm = pd.DataFrame({"kind": g.nodes["kind"].astype(str).to_numpy(),
                                         "key": g.nodes["key"].astype(str).to_numpy(),
                                         "community": f.communities.reindex(g.nodes["node"])
                                         .to_numpy()})
                    prev = Previous(folder=None, keys=f.tracking.keys,
                                    last_key=f.tracking.last_key, as_of=d, identity=identity,
                                    communities=comm)
                    tables.append((d, _week_table(f.tracking.keys)))
            finally:
                con.close()
    weeks = []
    for t, (d, cur) in enumerate(tables):
        flagged = cur[cur["flagged"]]
        shared = int((cur["ring_key"].value_counts() > 1).sum())
        eligible = kept = 0
        if t:
            before = tables[t - 1][1]
            for r in flagged.itertuples(index=False):
                # The keys it may keep: of the previous rings it overlaps by min_jaccard or
                # more. Only two rings of 0.5 each (a merge) give two; it keeps one of them.
                near = {p.ring_key for p in before.itertuples(index=False)
                        if _jac(r.members, p.members) >= min_jaccard}
                if near:
                    eligible += 1
                    kept += r.ring_key in near
        weeks.append({"as_of": d, "flagged": int(len(flagged)), "eligible": eligible,
                      "kept": kept, "survival": kept / eligible if eligible else np.nan,
                      "shared_keys": shared})
    weeks_df = pd.DataFrame(weeks, columns=["as_of", "flagged", "eligible", "kept", "survival",
                                            "shared_keys"])
    rings = _lives(tables, labels, min_jaccard)
    elig = int(weeks_df["eligible"].sum())
    summary = {"weeks": len(tables), "eligible": elig, "kept": int(weeks_df["kept"].sum()),
               "survival": (float(weeks_df["kept"].sum()) / elig) if elig else None,
               "shared_keys": int(weeks_df["shared_keys"].sum()),
               "median_key_changes": (float(rings["key_changes"].median()) if len(rings)
                                      else None),
               "max_key_changes": int(rings["key_changes"].max()) if len(rings) else None}
    return WeeklyKeys(weeks=weeks_df, rings=rings, summary=summary)


def _lives(tables, labels, min_jaccard) -> pd.DataFrame:
    """Per ring over its life: weeks present, distinct keys, key changes."""
    seq: dict[str, list[str]] = {}
    if labels is not None:
        lab = read_labels(labels)
        owner = dict(zip(lab["account_id"].astype(str), lab["ring_id"].astype(str)))
        for _, cur in tables:
            best: dict[str, tuple[int, str]] = {}
            for r in cur[cur["flagged"]].itertuples(index=False):
                owners = pd.Series([owner.get(a) for a in r.members]).dropna()
                if owners.empty:
                    continue
                top = owners.value_counts()
                if at_least_half(top.iloc[0], len(r.members)):
                    ring, n = top.index[0], int(top.iloc[0])
                    if n > best.get(ring, (0, ""))[0]:
                        best[ring] = (n, r.ring_key)
            for ring, (_, key) in best.items():
                seq.setdefault(ring, []).append(key)
    else:
        chains: dict[str, str] = {}     # this week's ring key -> chain id
        for t, (_, cur) in enumerate(tables):
            flagged = cur[cur["flagged"]]
            nxt: dict[str, str] = {}
            before = tables[t - 1][1] if t else None
            for r in flagged.itertuples(index=False):
                chain = None
                if before is not None:
                    j, key = max(((_jac(r.members, p.members), p.ring_key)
                                  for p in before.itertuples(index=False)), default=(0.0, None))
                    if j >= min_jaccard and key in chains:
                        chain = chains[key]
                chain = chain or f"chain-{t}-{r.ring_key}"
                nxt[r.ring_key] = chain
                seq.setdefault(chain, []).append(r.ring_key)
            chains = nxt
    rows = [{"ring": ring, "weeks": len(keys), "keys": len(set(keys)),
             "key_changes": int(sum(a != b for a, b in zip(keys, keys[1:])))}
            for ring, keys in sorted(seq.items())]
    return pd.DataFrame(rows, columns=["ring", "weeks", "keys", "key_changes"])
