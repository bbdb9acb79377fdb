"""Baselines: the population yardstick, and its guard against rings that are not a minority."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.pipeline import run
from analysis.signals import MAX_UPPER_SHARE, MIN_CREW, SEPARATION, bulk_baseline
from analysis.workshop.evaluate import evaluate
from analysis.workshop.synth import add_prospecting_shops, generate


def _honest(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Honest-looking measures: mostly zero with a tail, or spread over decades."""
    if kind == "zero_inflated":
        x = np.zeros(n)
        k = int(n * rng.uniform(0.03, 0.3))
        x[:k] = np.ceil(rng.lognormal(1.0, 1.2, k))
        return x
    if kind == "lognormal":
        return np.round(rng.lognormal(3.0, 1.5, n))
    return np.round(rng.pareto(1.2, n) * 10)


@pytest.mark.parametrize("kind", ["zero_inflated", "lognormal", "pareto"])
def test_guard_leaves_honest_populations_alone(kind):
    for seed in range(40):
        v = _honest(np.random.default_rng(seed), 3000, kind)
        b, set_aside = bulk_baseline(v, 0.95, 1.0, np.zeros(len(v)))    # even as one crew
        assert set_aside is None, (kind, seed)
        assert b == max(float(pd.Series(v).quantile(0.95)), 1.0)


@pytest.mark.parametrize("share", [0.06, 0.1, 0.2])
def test_guard_finds_the_bulk_under_a_ring_that_is_no_minority(share):
    rng = np.random.default_rng(1)
    honest = _honest(rng, 3000, "zero_inflated")
    # A ring's members read far more strangers than the heaviest honest reader.
    ring = np.round(rng.lognormal(np.log(1500), 0.5, int(3000 * share / (1 - share))))
    crews = np.r_[np.arange(len(honest)), -1 - np.arange(len(ring)) % 6]      # six crews
    b, set_aside = bulk_baseline(np.r_[honest, ring], 0.95, 1.0, crews)
    truth = max(float(np.quantile(honest, 0.95)), 1.0)
    assert set_aside == pytest.approx(len(ring) / (len(honest) + len(ring)), abs=0.01)
    assert truth / 2 <= b <= truth * 2
    plain = float(np.quantile(np.r_[honest, ring], 0.95))
    assert plain >= SEPARATION * b     # what the plain quantile would have been
    # The same readers as many independent pairs (shops), not crews: no guard.
    pairs = np.r_[np.arange(len(honest)), -1 - np.arange(len(ring)) // 2]
    assert bulk_baseline(np.r_[honest, ring], 0.95, 1.0, pairs) == (max(plain, 1.0), None)
    assert MIN_CREW > 2


def test_guard_never_sets_aside_more_than_its_limit():
    rng = np.random.default_rng(2)
    v = np.r_[np.zeros(600), np.full(400, 800.0) + rng.integers(0, 50, 400)]   # 40 % up high
    b, set_aside = bulk_baseline(v, 0.95, 1.0, np.zeros(len(v)))
    assert set_aside is None and b == float(np.quantile(v, 0.95))
    assert 0.4 > MAX_UPPER_SHARE


def test_small_export_where_rings_are_six_percent_of_accounts(tmp_path):
    # 2,000 accounts with the generator's six rings: the rings are about 6 % of the active
    # accounts, so the plain 95th percentile of reads of strangers sits inside them.
    res = generate(tmp_path / "gen", seed=11, accounts=2000, days=60, fmt="parquet")
    out = tmp_path / "out"
    run(res.export_dir, out)
    record = json.loads((out / "run.json").read_text())
    assert 0.05 < record["baselines_set_aside"]["untied_users"] <= MAX_UPPER_SHARE
    ev = evaluate(out, res.labels_path)
    assert ev.rings_found == ev.rings_planted and ev.false_alert_rings == 0
    assert ev.precision == 1.0
    # Harm is judged against peers at their 75th percentile: the rings stay above it.
    reasons = pd.read_csv(out / "rings.csv")["reasons"]
    assert reasons.str.contains("75th-percentile").all()


def test_many_small_shops_reading_strangers_are_a_habit_not_rings(tmp_path):
    # An honest world plus 110 two-account shops, each reading ~200 profiles of customers
    # who never ordered from it: 14 % of the active accounts read far more strangers than
    # the rest. They are not crews, so the baseline stays the plain percentile.
    res = generate(tmp_path / "gen", seed=3, accounts=2000, days=60, fmt="parquet",
                   scenarios=[])
    assert add_prospecting_shops(res.export_dir, 110, seed=3) > 20_000
    out = tmp_path / "out"
    run(res.export_dir, out)
    record = json.loads((out / "run.json").read_text())
    assert record["baselines_set_aside"] == {}
    assert record["baselines"]["untied_users"] > 100
    rings = pd.read_csv(out / "rings.csv")
    assert not rings["flagged"].astype(bool).any()


def test_the_signals_thresholds_are_parameters_and_run_json_records_them(tmp_path):
    """The peers' quantile is a parameter, not a constant: at the 50th percentile the
    baselines are lower and the reasons say so; run.json records every threshold."""
    from dataclasses import asdict, replace

    from analysis.params import RunParams, SignalParams

    res = generate(tmp_path / "gen", seed=11, accounts=1000, days=30)
    p = RunParams(signals=replace(SignalParams(), peer_quantile=0.5))
    run(res.export_dir, tmp_path / "half", p)
    run(res.export_dir, tmp_path / "default")
    half = json.loads((tmp_path / "half" / "run.json").read_text())
    default = json.loads((tmp_path / "default" / "run.json").read_text())
    assert default["parameters"]["signals"] == asdict(SignalParams())
    assert half["parameters"]["signals"]["peer_quantile"] == 0.5
    assert (half["peer_baselines"]["stranger_reach"]["partner_staff"]
            <= default["peer_baselines"]["stranger_reach"]["partner_staff"])
    reasons = pd.read_csv(tmp_path / "half" / "rings.csv")["reasons"]
    assert reasons.str.contains("50th-percentile").any()
