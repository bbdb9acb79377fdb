"""The synthetic export generator: files, contract, answer key, determinism, formats."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest
from conftest import digest, read_table

from analysis.contract import EVENT_TYPES
from analysis.workshop.synth import SCENARIOS, SynthResult, generate

#: Slow tier (`make test` runs it after the fast tier).
pytestmark = pytest.mark.slow

SMALL = {"accounts": 2000, "days": 60}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> SynthResult:
    return generate(tmp_path_factory.mktemp("synth") / "out", seed=11, **SMALL)


@pytest.fixture(scope="module")
def tables(small) -> dict[str, pd.DataFrame]:
    return {name: read_table(small.export_dir / f"{name}.csv")
            for name in ("accounts", "partners", "events")}


def test_files_and_layout(small):
    out = small.export_dir.parent
    assert sorted(p.name for p in small.export_dir.iterdir()) == [
        "accounts.csv", "events.csv", "partners.csv"]
    assert small.labels_path == out / "labels.csv" and small.labels_path.exists()
    assert small.truth_path == out / "truth.json" and small.truth_path.exists()
    # the answer key is never inside the export folder
    assert small.export_dir not in small.labels_path.parents
    assert small.n_events > 50_000


def test_every_scenario_planted(small, tables):
    labels = read_table(small.labels_path)
    assert list(labels.columns) == ["account_id", "ring_id", "scenario"]
    assert set(labels["scenario"]) == set(SCENARIOS)
    assert labels.groupby("ring_id")["scenario"].nunique().eq(1).all()
    assert not labels["account_id"].duplicated().any()
    assert set(labels["account_id"]) <= set(tables["accounts"]["account_id"])
    sizes = labels.groupby("scenario").size()
    assert sizes["low_and_slow"] >= 40
    assert 2 <= sizes["insider_staff"] <= 5
    acc = tables["accounts"].set_index("account_id")
    insiders = labels.loc[labels["scenario"] == "insider_staff", "account_id"]
    assert (acc.loc[insiders, "account_type"] == "partner_staff").all()
    external = labels.loc[labels["scenario"] == "external", "account_id"]
    assert (acc.loc[external, "partner_id"] == "").all()


def test_truth(small, tables):
    truth = json.loads(small.truth_path.read_text())
    labels = read_table(small.labels_path)
    rings = {r["ring_id"]: r for r in truth["rings"]}
    assert set(rings) == set(labels["ring_id"])
    start = pd.Timestamp(truth["window_start"])
    end = pd.Timestamp(truth["window_end"])
    partners = set(tables["partners"]["partner_id"])
    for rid, r in rings.items():
        assert r["n_accounts"] == int((labels["ring_id"] == rid).sum())
        first = pd.Timestamp(r["first_harvest_ts"])
        assert first.tzinfo is not None and start <= first < end
        assert (r["partner_id"] is None) == (r["scenario"] == "external")
        assert r["partner_id"] is None or r["partner_id"] in partners
    late = next(r for r in rings.values() if r["scenario"] == "late_start")
    assert pd.Timestamp(late["first_harvest_ts"]) >= end - pd.Timedelta(days=30)
    kinds = {g["kind"] for g in truth["lookalikes"]}
    assert {"integrator", "logistics_call_centre", "carrier_nat", "household",
            "power_shoppers", "merchant_buyer_lookup"} <= kinds
    planted = set(labels["account_id"])
    for g in truth["lookalikes"]:
        assert g["n_accounts"] > 0
        assert not planted & set(g.get("account_ids", []))


def test_contract(tables):
    acc, par, ev = tables["accounts"], tables["partners"], tables["events"]
    assert list(acc.columns) == ["account_id", "account_type", "created_at", "partner_id"]
    assert list(par.columns) == ["partner_id", "name", "partner_type", "onboarded_at"]
    assert list(ev.columns) == ["ts", "account_id", "device_id", "ip", "event_type",
                                "target_id", "records"]
    assert acc["account_id"].is_unique and (acc["account_id"] != "").all()
    assert par["partner_id"].is_unique and (par["partner_id"] != "").all()
    assert set(acc["account_type"]) == {"customer", "merchant", "partner_staff"}
    pid = acc["partner_id"]
    assert pid[pid != ""].isin(par["partner_id"]).all()
    assert (pid[acc["account_type"] == "partner_staff"] != "").all()
    assert (pid[acc["account_type"] == "customer"] == "").all()
    pd.to_datetime(acc["created_at"], format="ISO8601", utc=True)
    onb = par["onboarded_at"]
    pd.to_datetime(onb[onb != ""], format="ISO8601", utc=True)

    ids = set(acc["account_id"])
    assert ev["account_id"].isin(ids).all()
    tgt = ev["target_id"]
    assert tgt[tgt != ""].isin(ids).all()
    assert set(ev["event_type"]) == set(EVENT_TYPES)
    assert (tgt[ev["event_type"].isin(["login", "search"])] == "").all()
    assert (tgt[~ev["event_type"].isin(["login", "search"])] != "").all()
    assert ev["records"].str.fullmatch(r"\d*").all()
    assert (ev["records"] == "").any()            # empty means 1
    assert (ev.loc[ev["records"] == "", "event_type"].isin(["view_profile", "search"])).all()
    ts = pd.to_datetime(ev["ts"], format="ISO8601", utc=True)
    assert ev["ts"].str.endswith("+08:00").any() and ev["ts"].str.endswith("Z").mean() > 0.9
    assert ts.min() >= pd.Timestamp("2020-05-02", tz="UTC")
    assert ts.max() < pd.Timestamp("2020-07-01", tz="UTC")
    assert ts.is_monotonic_increasing
    # no account acts before it exists
    created = pd.to_datetime(acc.set_index("account_id")["created_at"], format="ISO8601",
                             utc=True)
    assert (ts.to_numpy() >= created.reindex(ev["account_id"]).to_numpy()).all()
    # ids look alike for everybody
    assert acc["account_id"].str.fullmatch(r"a\d{7}").all()
    dev = ev["device_id"]
    assert dev[dev != ""].str.fullmatch(r"[0-9a-f]{16}").all()
    ip = ev["ip"]
    assert ip[ip != ""].str.fullmatch(r"\d+\.\d+\.\d+\.\d+|[0-9a-f:]+").all()


def test_deterministic(tmp_path, small):
    again = generate(tmp_path / "again", seed=11, **SMALL)
    assert digest(again.export_dir.parent) == digest(small.export_dir.parent)
    other = generate(tmp_path / "other", seed=12, **SMALL)
    a, b = digest(other.export_dir.parent), digest(small.export_dir.parent)
    assert a["export/events.csv"] != b["export/events.csv"]
    assert a["labels.csv"] != b["labels.csv"]


@pytest.mark.parametrize("fmt", ["parquet", "csv.gz"])
def test_other_formats(tmp_path, fmt):
    res = generate(tmp_path / "out", seed=3, fmt=fmt, **SMALL)
    names = sorted(p.name for p in res.export_dir.iterdir())
    assert names == sorted(f"{t}.{fmt}" for t in ("accounts", "events", "partners"))
    con = duckdb.connect()
    reader = "read_parquet" if fmt == "parquet" else "read_csv"

    def q(sql: str):
        return con.execute(sql.format(**{t: f"{reader}('{res.export_dir / (t + '.' + fmt)}')"
                                         for t in ("accounts", "partners", "events")})).fetchall()

    assert q("select count(*) from {events}")[0][0] == res.n_events
    assert q("select count(*) from {events} e anti join {accounts} a using (account_id)") == [(0,)]
    assert q("select count(*) from {accounts} a where partner_id is not null and partner_id "
             "not in (select partner_id from {partners})") == [(0,)]
    assert q("select min(records) >= 0 from {events}") == [(True,)]
    if fmt == "parquet":
        types = dict(q("select column_name, column_type from (describe select * from {events})"))
        assert types["ts"].startswith("TIMESTAMP")
    # a second run in another format leaves exactly one file per table
    generate(tmp_path / "out", seed=3, fmt="csv", **SMALL)
    assert sorted(p.name for p in res.export_dir.iterdir()) == [
        "accounts.csv", "events.csv", "partners.csv"]


def test_scenario_subset(tmp_path):
    res = generate(tmp_path / "out", seed=5, scenarios=["external", "insider_staff"], **SMALL)
    labels = read_table(res.labels_path)
    assert set(labels["scenario"]) == {"external", "insider_staff"}
    truth = json.loads(res.truth_path.read_text())
    assert [r["ring_id"] for r in truth["rings"]] == ["R1", "R2"]


@pytest.mark.parametrize("kwargs", [{"fmt": "xlsx"}, {"scenarios": ["nope"]},
                                    {"accounts": 10}, {"days": 3}, {"end": "June"}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate(tmp_path / "out", **kwargs)
