"""The detector-blind world generator: its seeds span the ranges, worlds are written the
same twice, they keep the export contract, and the answer key matches the export."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.load import load_export
from analysis.workshop.synth.worlds import (
    LOOKALIKES,
    MAX_DAYS,
    MIN_DAYS,
    TACTICS,
    draw_params,
    generate_world,
)
from analysis.workspace import open_workspace


def test_quality_seeds_span_the_ranges():
    worlds = [draw_params(s) for s in range(1, 41)]
    assert min(w["accounts"] for w in worlds) < 1500 and max(w["accounts"] for w in worlds) > 30000
    assert min(w["days"] for w in worlds) < 60 and max(w["days"] for w in worlds) > 330
    assert all(MIN_DAYS <= w["days"] <= MAX_DAYS for w in worlds)
    assert {t for w in worlds for t in w["tactics"]} == set(TACTICS)
    assert {k for w in worlds for k in w["lookalike_kinds"]} == set(LOOKALIKES)
    with_history = sum(w["format"]["relationships"] for w in worlds)
    assert 5 <= with_history <= 35
    assert len({w["format"]["ts_offset"] for w in worlds}) >= 3
    assert len({w["format"]["id_style"] for w in worlds}) >= 3
    assert len({json.dumps(w, sort_keys=True, default=str) for w in worlds}) == 40
    # Insider sweeps come as a few among honest colleagues and as a partner's whole staff,
    # to the window's end and in bursts of days.
    sweeps = [r for w in worlds for r in w["rings"] if r["scenario"] == "insider_sweep"]
    assert {r["honest_colleagues"] == 0 for r in sweeps} == {True, False}
    assert {r["burst_days"] > 0 for r in sweeps} == {True, False}
    assert any(r["honest_colleagues"] == 0 and r["size"] >= 2 for r in sweeps)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # seed 2 writes gzip CSV with IPv6 addresses
    return generate_world(tmp_path_factory.mktemp("w") / "a", seed=2, accounts=1500, days=40)


def test_a_world_is_written_the_same_twice(world, tmp_path):
    again = generate_world(tmp_path / "b", seed=2, accounts=1500, days=40)
    names = sorted(p.name for p in world.export_dir.iterdir())
    assert names == sorted(p.name for p in again.export_dir.iterdir())
    for name in names:
        assert (world.export_dir / name).read_bytes() == (again.export_dir / name).read_bytes()
    assert world.labels_path.read_bytes() == again.labels_path.read_bytes()


def test_a_world_keeps_the_contract_and_its_answer_key(world, tmp_path):
    export = load_export(world.export_dir, open_workspace(), tmp_path / "rejects")
    assert all(c.rejected == 0 for c in export.counts.values()), export.counts
    accounts = set(export.con.execute("SELECT account_id FROM accounts").df()["account_id"])
    labels = pd.read_csv(world.labels_path, dtype=str, keep_default_na=False)
    assert len(labels) and set(labels["account_id"]) <= accounts
    truth = json.loads(world.truth_path.read_text())
    planted = {a for r in truth["rings"] for a in r["accounts"]}
    assert planted == set(labels["account_id"])
    assert json.loads(world.params_path.read_text())["accounts"] == 1500
