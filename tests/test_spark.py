"""The Spark engine runs the same plan as DuckDB and finds the same rings.

One synthetic export, the whole pipeline once per engine (Spark in local mode),
then the aggregates and the flagged rings side by side. Spark needs Java 17+;
``make setup`` installs it where it can.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis import pipeline
from analysis.aggregate import SCHEMAS, plan
from analysis.cli import main
from analysis.engines.spark import to_spark_sql
from analysis.workshop import synth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    # Seed 3 at 3,000 accounts and 45 days plants rings the detector flags (at 2,000
    # accounts and 30 days it flags none, and "the same flagged rings" would prove little).
    root = tmp_path_factory.mktemp("spark-export")
    synth.generate(root, seed=3, accounts=3000, days=45)
    # The optional order history: every fifth customer ordered from two merchants a year
    # before the window (so partners' re-reads of them are tied), one pair after it.
    acc = pd.read_csv(root / "export" / "accounts.csv", dtype=str)
    merchants = acc.loc[acc["account_type"] == "merchant", "account_id"].tolist()
    customers = acc.loc[acc["account_type"] == "customer", "account_id"].tolist()[::5]
    pairs = [(merchants[(i * k) % len(merchants)], c, "2018-06-01")
             for i, c in enumerate(customers) for k in (1, 7)]
    pairs.append((merchants[0], customers[1], "2030-01-01"))
    pd.DataFrame(pairs, columns=["merchant_id", "customer_id", "first_order_at"]) \
        .drop_duplicates(["merchant_id", "customer_id"]) \
        .to_csv(root / "export" / "relationships.csv", index=False)
    return root / "export"


def _flagged_sets(out: Path) -> set[frozenset[str]]:
    rings = pd.read_csv(out / "rings.csv")
    members = pd.read_csv(out / "ring_members.csv")
    flagged = rings.loc[rings["flagged"].astype(bool), "ring_id"]
    return {frozenset(members.loc[members["ring_id"] == r, "account_id"]) for r in flagged}


def test_plan_transpiles_for_spark():
    sqls = {step.name: to_spark_sql(step.sql) for step in plan("2020-03-01")}
    assert not [n for n, sql in sqls.items() if "EPOCH" in sql.upper()]   # rewritten
    assert "UNIX_MICROS" in sqls["timing"]
    # DuckDB's TIMESTAMP is Spark's TIMESTAMP_NTZ: the as-of cut needs no time zone.
    assert "CAST('2020-03-02 00:00:00' AS TIMESTAMP_NTZ)" in sqls["e"]


def test_spark_and_duckdb_agree(export, tmp_path):
    out_d, out_s = tmp_path / "duckdb", tmp_path / "spark"
    _, duck = pipeline.run(export, out_d, pipeline.RunParams(seed=3))
    _, spark = pipeline.run(export, out_s, pipeline.RunParams(seed=3, engine="spark",
                                                              spark_master="local[2]"))
    a, b = duck.aggregates, spark.aggregates
    # Account features: equal within float tolerance (sums and the median are computed in a
    # different order); everything else exactly, with the same column types.
    pd.testing.assert_frame_equal(a.accounts, b.accounts, rtol=1e-9)
    for name in ("device_links", "ip_links", "coupons", "partners"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True,
                                      obj=name)
        assert list(getattr(b, name).columns) == list(SCHEMAS[name])
    assert (a.first_event, a.last_event, a.as_of) == (b.first_event, b.last_event, b.as_of)
    assert len(a.accounts) == 3000 and a.accounts["n_events"].sum() > 100_000
    # The reach measures the detector judges by are there, not all zero.
    for col in ("tied_users", "tied_returned", "untied_reach", "untied_reach_returned",
                "stranger_days"):
        assert a.accounts[col].sum() > 0, col
    assert a.accounts["stranger_onset"].notna().sum() > 0
    rec_d = json.loads((out_d / "run.json").read_text())
    assert rec_d["tables"]["relationships"]["accepted"] > 100

    flagged = _flagged_sets(out_d)
    assert flagged, "the test export should flag rings"
    assert _flagged_sets(out_s) == flagged
    pd.testing.assert_frame_equal(pd.read_csv(out_d / "rings.csv"),
                                  pd.read_csv(out_s / "rings.csv"))

    rec = json.loads((out_s / "run.json").read_text())
    assert rec["engine"] == "spark" and rec["parameters"]["engine"] == "spark"
    assert rec["spark"]["master"] == "local[2]"
    assert {"spark_session", "spark_stage", "aggregate"} <= set(rec["timings_s"])
    assert json.loads((out_d / "run.json").read_text())["engine"] == "duckdb"
    assert not list(out_s.glob("workspace*")), "staged Parquet must not stay in the outputs"


def test_spark_as_of_cut_matches(export, tmp_path):
    from analysis.aggregate import aggregate, daily_activity
    from analysis.engines.spark import SparkAggregator
    from analysis.load import load_export
    from analysis.workspace import open_workspace

    con = open_workspace()
    load_export(export, con, tmp_path / "rejects")
    with SparkAggregator(con, tmp_path / "staging") as sp:
        b = sp.aggregate("2020-06-10")
        staged = sp.folder
    assert not staged.exists()
    # The heavy stage ran on Spark: the workspace has no tie tables yet, and the
    # investigator's daily view builds them itself.
    daily = daily_activity(con, [0, 1, 2], "2020-06-10")
    assert set(daily["aid"]) <= {0, 1, 2} and daily["day"].max() <= pd.Timestamp("2020-06-10")
    a = aggregate(con, "2020-06-10")
    assert a.as_of == b.as_of and a.last_event == b.last_event
    assert 0 < a.accounts["n_events"].sum() < con.execute("SELECT count(*) FROM ev").fetchone()[0]
    pd.testing.assert_frame_equal(a.accounts, b.accounts, rtol=1e-9)
    pd.testing.assert_frame_equal(a.device_links, b.device_links, check_exact=True)
    pd.testing.assert_frame_equal(a.coupons, b.coupons, check_exact=True)
    pd.testing.assert_frame_equal(a.coupon_pairs, b.coupon_pairs, check_exact=True)


def test_missing_java_is_one_line(ring_export, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    code = main(["run", str(ring_export), "--out", str(tmp_path / "out"), "--engine", "spark"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "Java 17" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()


def test_spark_flags_need_spark_engine(ring_export, tmp_path, capsys):
    code = main(["run", str(ring_export), "--out", str(tmp_path / "o"), "--spark-master",
                 "local[1]"])
    assert code == 2 and "need --engine spark" in capsys.readouterr().err
