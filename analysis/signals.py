"""Aggregates + graph → behaviour signals per account, against the population.

Every signal is measured against the export's own population, never against
fixed numbers: a **baseline** is a high quantile (by default the 95th
percentile) of the same measure over all active accounts, and a signal's
**ratio** is the account's value over that baseline. "10× the baseline" then
means "ten times what 95 % of this platform's accounts do", whatever the
platform's size or habits.

Signals
-------
harm (what a harvest leaves behind)
    ``untied_users``   distinct users whose profile was read with no business tie
    ``untied_records`` user records read (profiles and comments) with no tie
    ``untied_share``   share of profile reads that had no tie
support (how rings operate)
    ``device_share``   most accounts seen on one of the account's devices (emulators)
    ``ip_share``       most accounts seen on one of its non-hub IPs
    ``pacing``         regularity of its activity (1 / coefficient of variation of gaps)
    ``round_clock``    spread of its activity over the 24 hours (normalised entropy)
    ``coupon_no_order`` coupon claims at merchants it never ordered from
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .aggregate import Aggregates
from .graph import EntityGraph

__all__ = ["Baselines", "account_signals", "BASELINE_QUANTILE", "MIN_GAPS"]

BASELINE_QUANTILE = 0.95
#: Gaps needed before an account's pacing is judged (fewer say nothing).
MIN_GAPS = 30


@dataclass
class Baselines:
    """Population baselines: ``value[measure]`` is the quantile the ratios divide by."""

    quantile: float
    value: dict[str, float] = field(default_factory=dict)
    median_by_type: dict[str, dict[str, float]] = field(default_factory=dict)

    def ratio(self, measure: str, x):
        return np.asarray(x, dtype=float) / self.value[measure]


def _max_share(links: pd.DataFrame, key: str, graph: EntityGraph, n_accounts: int) -> np.ndarray:
    """Per account: the most accounts on any one of its non-hub entities of one kind."""
    out = np.zeros(n_accounts)
    if links.empty:
        return out
    deg = links.groupby(key)["aid"].transform("size").to_numpy()
    deg = np.where(deg > graph.hub_degree, 0, deg)
    np.maximum.at(out, links["aid"].to_numpy(), deg)
    return out


def account_signals(agg: Aggregates, graph: EntityGraph,
                    quantile: float = BASELINE_QUANTILE) -> tuple[pd.DataFrame, Baselines]:
    """Per-account signals and the population baselines they are measured against.

    Returns a frame indexed like ``agg.accounts`` (one row per account, ``aid``
    column kept) with the raw measures, their ratios to the baseline and a
    ``harvest_ratio``: the larger of the two harm ratios.
    """
    acc = agg.accounts.copy()
    n = len(acc)
    acc["device_share"] = _max_share(agg.device_links, "did", graph, n)
    acc["ip_share"] = _max_share(agg.ip_links, "iid", graph, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc["untied_share"] = np.where(acc["profile_reads"] > 0,
                                       acc["untied_reads"] / acc["profile_reads"], np.nan)
        cv = acc["gap_sd"] / acc["gap_mean"]
        acc["pacing"] = np.where((acc["n_gaps"] >= MIN_GAPS) & (cv > 0), 1.0 / cv, np.nan)
    acc["round_clock"] = np.where(acc["n_events"] >= MIN_GAPS, acc["hour_entropy"], np.nan)
    active = acc[acc["n_events"] > 0]
    base = Baselines(quantile=quantile)
    floors = {"untied_users": 1.0, "untied_records": 1.0, "device_share": 1.0, "ip_share": 1.0,
              "coupon_no_order": 1.0, "profile_reads": 1.0}
    for measure, floor in floors.items():
        q = float(active[measure].quantile(quantile)) if len(active) else 0.0
        base.value[measure] = max(q, floor)
    for measure in ("pacing", "round_clock"):
        vals = active[measure].dropna()
        base.value[measure] = float(vals.quantile(quantile)) if len(vals) else np.inf
        if not np.isfinite(base.value[measure]) or base.value[measure] <= 0:
            base.value[measure] = np.inf
    for measure in ("untied_users", "untied_records", "profile_reads"):
        base.median_by_type[measure] = (
            active.groupby("account_type")[measure].median().astype(float).to_dict())
    acc["harm_users_ratio"] = base.ratio("untied_users", acc["untied_users"])
    acc["harm_records_ratio"] = base.ratio("untied_records", acc["untied_records"])
    acc["harvest_ratio"] = acc[["harm_users_ratio", "harm_records_ratio"]].max(axis=1)
    acc["device_share_ratio"] = base.ratio("device_share", acc["device_share"])
    acc["ip_share_ratio"] = base.ratio("ip_share", acc["ip_share"])
    acc["coupon_ratio"] = base.ratio("coupon_no_order", acc["coupon_no_order"])
    acc["pacing_ratio"] = base.ratio("pacing", acc["pacing"].fillna(0))
    acc["round_clock_ratio"] = base.ratio("round_clock", acc["round_clock"].fillna(0))
    return acc, base
