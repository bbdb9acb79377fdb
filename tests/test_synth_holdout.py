"""The holdout generator: export contract, answer key, ring sizes, determinism."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import digest, read_table

from analysis.contract import EVENT_TYPES
from analysis.load import load_export
from analysis.workshop.synth import SynthResult
from analysis.workshop.synth.holdout import HOLDOUT_SCENARIOS, LOOKALIKE_KINDS, generate_holdout
from analysis.workspace import open_workspace

#: Slow tier (`make test` runs it after the fast tier).
pytestmark = pytest.mark.slow

SMALL = {"accounts": 3000, "days": 45}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> SynthResult:
    return generate_holdout(tmp_path_factory.mktemp("holdout") / "out", seed=3, **SMALL)


@pytest.fixture(scope="module")
def tables(small) -> dict[str, pd.DataFrame]:
    return {name: read_table(small.export_dir / f"{name}.csv")
            for name in ("accounts", "partners", "events")}


def test_layout(small):
    assert sorted(p.name for p in small.export_dir.iterdir()) == [
        "accounts.csv", "events.csv", "partners.csv"]
    assert small.labels_path.exists() and small.truth_path.exists()
    assert small.export_dir not in small.labels_path.parents


def test_contract(tables, small, tmp_path):
    acc, par, ev = tables["accounts"], tables["partners"], tables["events"]
    assert list(acc.columns) == ["account_id", "account_type", "created_at", "partner_id"]
    assert list(ev.columns) == ["ts", "account_id", "device_id", "ip", "event_type",
                                "target_id", "records"]
    assert acc["account_id"].is_unique
    assert acc["account_id"].str.fullmatch(r"a\d{7}").all()
    assert set(acc["account_type"]) == {"customer", "merchant", "partner_staff"}
    pid = acc["partner_id"]
    assert pid[pid != ""].isin(par["partner_id"]).all()
    assert (pid[acc["account_type"] == "partner_staff"] != "").all()
    assert (pid[acc["account_type"] == "customer"] == "").all()
    created = pd.to_datetime(acc.set_index("account_id")["created_at"], format="ISO8601",
                             utc=True)
    ids = set(acc["account_id"])
    assert ev["account_id"].isin(ids).all()
    tgt = ev["target_id"]
    assert tgt[tgt != ""].isin(ids).all()
    assert set(ev["event_type"]) == set(EVENT_TYPES)
    assert (tgt[ev["event_type"].isin(["login", "search"])] == "").all()
    assert (tgt[~ev["event_type"].isin(["login", "search"])] != "").all()
    assert ev["records"].str.fullmatch(r"\d*").all()
    ts = pd.to_datetime(ev["ts"], format="ISO8601", utc=True)
    assert ts.is_monotonic_increasing
    truth = json.loads(small.truth_path.read_text())
    assert ts.min() >= pd.Timestamp(truth["window_start"])
    assert ts.max() < pd.Timestamp(truth["window_end"])
    assert (ts.to_numpy() >= created.reindex(ev["account_id"]).to_numpy()).all()
    dev = ev["device_id"]
    assert dev[dev != ""].str.fullmatch(r"[0-9a-f]{16}").all()
    ip = ev["ip"]
    assert ip[ip != ""].str.fullmatch(r"\d+\.\d+\.\d+\.\d+|[0-9a-f:]+").all()
    # the tool's own loader accepts every row
    con = open_workspace()
    export = load_export(small.export_dir, con, tmp_path / "rejects")
    assert all(c.rejected == 0 for c in export.counts.values())
    assert export.n_events == len(ev) == small.n_events


def test_labels_and_truth(small, tables):
    labels = read_table(small.labels_path)
    truth = json.loads(small.truth_path.read_text())
    assert list(labels.columns) == ["account_id", "ring_id", "scenario"]
    assert not labels["account_id"].duplicated().any()
    assert labels["account_id"].isin(tables["accounts"]["account_id"]).all()
    assert [r["scenario"] for r in truth["rings"]] == list(HOLDOUT_SCENARIOS)
    assert [r["ring_id"] for r in truth["rings"]] == [f"R{i}" for i in range(1, 6)]
    n = len(tables["accounts"])
    sizes = labels.groupby("ring_id").size()
    assert (sizes < 0.01 * n).all()
    partners = set(tables["partners"]["partner_id"])
    for r in truth["rings"]:
        assert r["n_accounts"] == sizes[r["ring_id"]]
        assert r["partner_id"] in partners
        assert r["n_harvest_events"] > 0 and r["first_harvest_ts"]
    acc = tables["accounts"].set_index("account_id")
    types = labels.assign(t=acc.loc[labels["account_id"], "account_type"].to_numpy())
    by = types.groupby("scenario")["t"].agg(set)
    assert by["slow_insider"] == {"partner_staff"}
    assert "merchant" in by["merchant_abuse"]
    planted = set(labels["account_id"])
    kinds = {g["kind"] for g in truth["lookalikes"] if g.get("holdout")}
    assert kinds == set(LOOKALIKE_KINDS)
    for g in truth["lookalikes"]:
        assert not planted & set(g.get("account_ids", []))
        assert set(g.get("account_ids", [])) <= set(acc.index)


def test_deterministic(tmp_path, small):
    again = generate_holdout(tmp_path / "again", seed=3, **SMALL)
    assert digest(again.export_dir.parent) == digest(small.export_dir.parent)
    other = generate_holdout(tmp_path / "other", seed=4, **SMALL)
    a, b = digest(other.export_dir.parent), digest(small.export_dir.parent)
    assert a["export/events.csv"] != b["export/events.csv"]
    assert a["labels.csv"] != b["labels.csv"]
