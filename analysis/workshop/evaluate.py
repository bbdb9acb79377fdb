"""Scoring a run's flagged rings against planted labels.

Labels come from a file (``account_id, ring_id``), never from the generator,
so a run is judged exactly as it would run on a real export.

* account precision / recall: members of flagged rings against planted accounts;
* a planted ring is **found** when at least half its accounts are flagged;
* a **false-alert ring** is a flagged ring less than half of whose members are planted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ..findings import flagged_rings, is_flagged

__all__ = ["Evaluation", "at_least_half", "evaluate", "evaluate_frames", "evaluate_verdicts",
           "read_labels"]


def at_least_half(part: int, whole: int) -> bool:
    """The one rule behind "found" and "points at": ``part`` is at least half of ``whole``.

    A planted ring is found when at least half its accounts are flagged; a flagged
    ring is a false alert when fewer than half its members are planted.

    >>> at_least_half(2, 4), at_least_half(1, 3), at_least_half(0, 0)
    (True, False, True)
    """
    return 2 * int(part) >= int(whole)


@dataclass
class Evaluation:
    precision: float
    recall: float
    flagged_accounts: int
    planted_accounts: int
    rings_planted: int
    rings_found: int
    flagged_rings: int
    false_alert_rings: int
    missed: list[str] = field(default_factory=list)
    per_ring: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [
            f"account precision {self.precision:.3f}  recall {self.recall:.3f}  "
            f"({self.flagged_accounts} flagged, {self.planted_accounts} planted)",
            f"rings found {self.rings_found} of {self.rings_planted}; "
            f"false-alert rings {self.false_alert_rings} of {self.flagged_rings} flagged",
        ]
        for r in self.per_ring:
            out.append(f"  {r['ring_id']}{' (' + r['scenario'] + ')' if r.get('scenario') else ''}"
                       f": {r['flagged']}/{r['accounts']} accounts flagged"
                       f"{'' if r['found'] else '  MISSED'}")
        return out


def read_labels(path: Path | str) -> pd.DataFrame:
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    labels.columns = [c.strip().lower() for c in labels.columns]
    missing = {"account_id", "ring_id"} - set(labels.columns)
    if missing:
        raise ValueError(f"{path}: labels need columns account_id, ring_id "
                         f"(missing {', '.join(sorted(missing))})")
    return labels


def _unneutralise(ids: pd.Series) -> pd.Series:
    """Undo the apostrophe that CSV output puts before formula-like ids.

    >>> _unneutralise(pd.Series(["'=x", "a1", "'b"])).tolist()
    ['=x', 'a1', "'b"]
    """
    ids = ids.astype(str)
    formula = ids.str.len().gt(1) & ids.str.startswith("'") & ids.str[1:2].isin(
        ["=", "+", "-", "@", "\t", "\r"])
    return ids.where(~formula, ids.str[1:])


def evaluate_frames(rings: pd.DataFrame, members: pd.DataFrame,
                    labels: pd.DataFrame) -> Evaluation:
    """Evaluate rings/members frames (as written to rings.csv / ring_members.csv)."""
    flagged_ids = set(flagged_rings(rings)["ring_id"].astype(str))
    members = members.assign(account_id=_unneutralise(members["account_id"]))
    m = members[members["ring_id"].astype(str).isin(flagged_ids)]
    flagged = set(m["account_id"].astype(str))
    planted = set(labels["account_id"].astype(str))
    tp = len(flagged & planted)
    precision = tp / len(flagged) if flagged else (1.0 if not planted else 0.0)
    recall = tp / len(planted) if planted else 1.0
    per_ring, missed = [], []
    for rid, grp in labels.groupby("ring_id", sort=True):
        acc = set(grp["account_id"])
        hit = len(acc & flagged)
        found = at_least_half(hit, len(acc))
        scen = grp["scenario"].iloc[0] if "scenario" in grp else ""
        per_ring.append({"ring_id": rid, "scenario": scen, "accounts": len(acc), "flagged": hit,
                         "found": found})
        if not found:
            missed.append(str(rid))
    false_alerts = 0
    for _, grp in m.groupby("ring_id"):
        acc = set(grp["account_id"].astype(str))
        if not at_least_half(len(acc & planted), len(acc)):
            false_alerts += 1
    return Evaluation(
        precision=round(precision, 4), recall=round(recall, 4), flagged_accounts=len(flagged),
        planted_accounts=len(planted), rings_planted=len(per_ring),
        rings_found=sum(r["found"] for r in per_ring), flagged_rings=len(flagged_ids),
        false_alert_rings=false_alerts, missed=missed, per_ring=per_ring)


def evaluate(out_dir: Path | str, labels_path: Path | str) -> Evaluation:
    """Evaluate the outputs of a run in ``out_dir`` against a labels file."""
    out_dir = Path(out_dir)
    rings = pd.read_csv(out_dir / "rings.csv", dtype={"ring_id": str})
    members = pd.read_csv(out_dir / "ring_members.csv", dtype=str, keep_default_na=False)
    return evaluate_frames(rings, members, read_labels(labels_path))


def evaluate_verdicts(out_dir: Path | str, cases_path: Path | str) -> dict:
    """Score a run against the analysts' own verdicts (the cases file as labels).

    Rings are tied to verdicts by ``ring_key`` (the run must be tracked). A
    confirmed ring is a true ring, a dismissed one a false alert; monitoring
    rings are not scored. ``precision``: confirmed among the decided rings the run
    flags; ``recall``: confirmed rings of the run that it flags. A dismissed ring
    flagged again (it grew materially) counts against precision: the analyst
    decides anew.
    """
    from ..tracking import read_cases

    rings = pd.read_csv(Path(out_dir) / "rings.csv", dtype=str, keep_default_na=False)
    if "ring_key" not in rings:
        raise ValueError(f"{out_dir}: rings.csv has no ring_key (run made before ring tracking)")
    cases = read_cases(cases_path).set_index("ring_key")["verdict"]
    rings = rings.assign(verdict=rings["ring_key"].map(cases).fillna(""),
                         flag=is_flagged(rings).to_numpy())
    conf = rings[rings["verdict"] == "confirmed"]
    dism = rings[rings["verdict"] == "dismissed"]
    tp, fp = int(conf["flag"].sum()), int(dism["flag"].sum())
    return {"decided": int(len(conf) + len(dism)), "confirmed": int(len(conf)),
            "dismissed": int(len(dism)), "confirmed_flagged": tp, "dismissed_flagged": fp,
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / len(conf) if len(conf) else None,
            "not_in_run": sorted(set(cases.index) - set(rings["ring_key"]))}
