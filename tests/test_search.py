"""Search by id and the per-account timeline (issue 14, points 9-10): investigator outputs on
the tiny ring export, whose answer is known (conftest: s1 steers k1..k3 on emu-1 and
198.51.100.7, reading u00..u39 once each on 2020-01-13)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import charts, pipeline, queries
from analysis.contract import EVENT_TYPES
from analysis.params import RunParams


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import tiny_ring_export

    export = tiny_ring_export(tmp_path_factory.mktemp("search"))
    exp, findings = pipeline.open_findings(export, progress=False)
    yield export, exp, findings
    exp.con.close()


def test_an_account_in_a_ring(run):
    _, _, findings = run
    hit = queries.find_id(findings, "k1")
    assert hit.kind == "account" and hit.community is not None
    assert hit.rings["ring_id"].tolist() == ["ring-001"] and bool(hit.rings["flagged"].iloc[0])
    nb = hit.neighbours.set_index("id")
    assert nb.loc["emu-1", "kind"] == "device" and nb.loc["emu-1", "accounts"] == 3
    assert nb.loc["198.51.100.7", "accounts"] == 4 and nb.loc["198.51.100.7", "rings"] == "ring-001"
    ev = hit.evidence
    assert ev["account_id"].tolist() == ["k1"] and ev["untied_users"].iloc[0] == 40
    assert "k1" in hit.summary() and "ring-001 (flagged)" in hit.summary()


def test_an_account_outside_any_ring(run):
    _, _, findings = run
    hit = queries.find_id(findings, "h000")
    assert hit.kind == "account" and hit.rings.empty
    assert hit.evidence["account_id"].tolist() == ["h000"]
    assert set(hit.neighbours["id"]) == {"hphone0", "10.1.0.1"}
    assert "no candidate ring" in hit.summary()


def test_a_device_an_ip_and_a_partner(run):
    _, _, findings = run
    dev = queries.find_id(findings, "emu-1")
    assert dev.kind == "device" and set(dev.neighbours["account_id"]) == {"k1", "k2", "k3"}
    assert (dev.neighbours["ring_id"] == "ring-001").all() and dev.neighbours["events"].sum() == 120
    ip = queries.find_id(findings, "198.51.100.7")
    assert ip.kind == "ip" and set(ip.neighbours["account_id"]) == {"k1", "k2", "k3", "s1"}
    assert ip.rings["ring_id"].tolist() == ["ring-001"]
    partner = queries.find_id(findings, "P1")
    assert partner.kind == "partner" and partner.rings["ring_id"].tolist() == ["ring-001"]
    assert partner.neighbours["account_id"].iloc[0] == "s1"          # ring members first
    assert set(partner.neighbours["account_id"]) == {"s1", "m1"}
    missing = queries.find_id(findings, "nobody")
    assert missing.kind is None and "no account, device, IP or partner" in missing.summary()


def test_a_hub_is_found_with_its_accounts(ring_export):
    _, findings = pipeline.open_findings(ring_export, params=RunParams(hub_degree=3),
                                         progress=False)
    hit = queries.find_id(findings, "198.51.100.7")
    assert hit.hub and hit.community is None and len(hit.neighbours) == 4
    assert "a hub" in hit.summary()


def test_account_timeline_by_type_with_strangers(run):
    _, exp, findings = run
    tl = queries.account_timeline(exp.con, findings, "ring-001")
    assert list(tl.columns) == (["account_id", "day"] + list(EVENT_TYPES)
                                + ["events", "strangers_read", "untied_records"])
    assert set(tl["account_id"]) == {"s1", "k1", "k2", "k3"}
    assert (tl["view_profile"] == 40).all() and (tl["strangers_read"] == 40).all()
    assert (tl["day"] == pd.Timestamp("2020-01-13")).all()
    # the per-account days add up to the evidence
    ev = queries.evidence_table(findings, "ring-001").set_index("account_id")
    per = tl.groupby("account_id")["untied_records"].sum()
    assert (per == ev["untied_records"].reindex(per.index)).all()
    # the date range
    assert queries.account_timeline(exp.con, findings, 1, start="2020-01-14").empty
    assert len(queries.account_timeline(exp.con, findings, 1, start="2020-01-13",
                                        end="2020-01-13")) == 4
    one = queries.account_timeline(exp.con, findings, accounts=["s2"])
    assert set(one["account_id"]) == {"s2"} and one["strangers_read"].sum() == 0
    assert one["view_profile"].sum() == 1200
    with pytest.raises(ValueError, match="not in this export"):
        queries.account_timeline(exp.con, findings, accounts=["ghost"])
    fig = charts.account_timeline(tl, "ring-001")
    assert fig.layout.title.text.startswith("ring-001: 4 accounts active on 1 day")


def test_strangers_read_lists_the_users(run):
    _, exp, findings = run
    users = queries.strangers_read(exp.con, findings, "k2")
    assert sorted(users["user_id"]) == [f"u{i:02d}" for i in range(40)]
    assert (users["reads"] == 1).all()
    assert queries.strangers_read(exp.con, findings, "s2").empty       # all its reads tied
    assert queries.strangers_read(exp.con, findings, "k2", end="2020-01-12").empty


def test_widgets_build(run):
    from analysis.notebook import widgets

    _, exp, findings = run
    assert widgets.search_box(findings, "k1") is not None
    assert widgets.timeline_explorer(exp, findings, 1, draw_now=True) is not None
