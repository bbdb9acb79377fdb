"""Mixed worlds (the project's generators, randomised): deterministic, and the seeds of make quality span the ranges."""

from __future__ import annotations

import json

import pandas as pd

from analysis.workshop.synth import SCENARIOS
from analysis.workshop.synth.mixed import (
    MAX_ACCOUNT_DAYS,
    MAX_DAYS,
    MIN_DAYS,
    draw_params,
    generate_world,
)


def test_quality_seeds_span_the_ranges():
    worlds = [draw_params(s) for s in range(1, 41)]
    assert min(w["accounts"] for w in worlds) < 1500 and max(w["accounts"] for w in worlds) > 30000
    assert min(w["days"] for w in worlds) < 45 and max(w["days"] for w in worlds) > 330
    assert all(MIN_DAYS <= w["days"] <= MAX_DAYS for w in worlds)
    assert all(w["accounts"] * w["days"] <= MAX_ACCOUNT_DAYS for w in worlds)
    assert {w["generator"] for w in worlds} == {"demo", "holdout"}
    assert {w["format"] for w in worlds} == {"csv", "csv.gz", "parquet"}
    assert any(w["prospecting_shops"] > 0 for w in worlds)
    planted = {s for w in worlds if w["generator"] == "demo" for s in w["scenarios"]}
    assert planted == set(SCENARIOS)
    assert len({json.dumps(w, sort_keys=True) for w in worlds}) == 40


def test_a_world_is_written_the_same_twice(tmp_path):
    a = generate_world(tmp_path / "a", seed=6, accounts=1000, days=30, fmt="csv")
    b = generate_world(tmp_path / "b", seed=6, accounts=1000, days=30, fmt="csv")
    for name in ("accounts.csv", "partners.csv", "events.csv"):
        assert (a.export_dir / name).read_bytes() == (b.export_dir / name).read_bytes()
    labels = pd.read_csv(a.labels_path, dtype=str)
    accounts = pd.read_csv(a.export_dir / "accounts.csv", dtype=str)
    assert len(labels) and set(labels["account_id"]) <= set(accounts["account_id"])
    assert json.loads(a.params_path.read_text())["accounts"] == 1000
