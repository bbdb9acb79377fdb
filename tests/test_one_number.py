"""One number per fact: a ring's figures read the same in every output.

The pipeline runs on a small synthetic export (1,200 accounts, 30 days: its
partner rings read comment pages of merchants without a partner, the reads
whose tie is unknown that once made a ring's days add up to more than its
``records_harvested``). Then every output that states a ring's records
harvested, distinct users reached, accounts, devices, IPs, days active and
first/last seen is compared with the one computed in :mod:`analysis.facts`:
``rings.csv``, the evidence files (``evidence.csv``, ``daily.csv``, the
timeline's title), the management charts' data and titles, and ``report.html``.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import page_text as _text

from analysis import charts, pipeline
from analysis.charts import about
from analysis.facts import ALL
from analysis.pseudonym import ring_label

FACTS = ["n_accounts", "profiles_read", "records_harvested", "untied_users", "devices", "ips",
         "days_active"]


@pytest.fixture(scope="module")
def world(small_world):
    return small_world


def test_rings_csv_states_the_facts(world):
    facts, rings = world["facts"], world["rings"].set_index("ring_id")
    for col in FACTS:
        assert (rings[col].astype("int64") == facts[col].drop(ALL).reindex(rings.index)).all(), col
    for col in ("first_seen", "last_seen"):
        assert (pd.to_datetime(rings[col]).dt.tz_localize(None)
                == facts[col].drop(ALL).reindex(rings.index)).all(), col
    # The flagged rings together: accounts and records add up; users are distinct, so the
    # total is at most the sum of the rings' (a user read by two rings counts once).
    fl = rings[rings["flagged"].astype(str).str.lower() == "true"]
    total = facts.loc[ALL]
    assert total["n_accounts"] == fl["n_accounts"].sum()
    assert total["records_harvested"] == fl["records_harvested"].sum()
    assert fl["untied_users"].max() <= total["untied_users"] <= fl["untied_users"].sum()


def test_distinct_users_are_distinct(ring_export, tmp_path):
    # Four accounts read the same 40 users: 40 users, not 160 (what the reasons sum).
    _, findings = pipeline.open_findings(ring_export, progress=False)
    ring = findings.flagged.iloc[0]
    assert ring["untied_users"] == 40
    assert "160 users with no order from its merchants (summed over its accounts)" in ring["reasons"]
    assert findings.facts.set_index("ring_id").loc[ALL, "untied_users"] == 40


def test_evidence_files_add_up_to_the_facts(world):
    facts, out = world["facts"], world["out"]
    for rid in world["findings"].flagged["ring_id"]:
        f = facts.loc[rid]
        ev = pd.read_csv(out / "investigation" / rid / "evidence.csv")
        assert len(ev) == f["n_accounts"]
        assert ev["untied_records"].sum() == f["records_harvested"], rid
        assert ev["profiles_read"].sum() == f["profiles_read"], rid
        assert ev["untied_users"].max() <= f["untied_users"] <= ev["untied_users"].sum()
        assert pd.Timestamp(ev["first_seen"].min()) == f["first_seen"]
        assert pd.Timestamp(ev["last_seen"].max()) == f["last_seen"]
        daily = pd.read_csv(out / "investigation" / rid / "daily.csv", parse_dates=["day"])
        assert daily["untied_records"].sum() == f["records_harvested"], rid
        assert daily["profile_reads"].sum() == f["profiles_read"], rid
        assert int((daily["events"] > 0).sum()) == f["days_active"], rid
        assert daily["day"].min() == f["first_seen"].normalize()
        assert daily["day"].max() == f["last_seen"].normalize()
        timeline = _text((out / "investigation" / rid / "timeline.html").read_text())
        assert (f"harvested {int(f['records_harvested']):,} records, active on "
                f"{int(f['days_active']):,} days") in timeline, rid


def test_charts_draw_and_title_the_facts(world):
    facts, figs = world["facts"], world["mgmt"].figures
    flagged = facts.drop(ALL)
    flagged = flagged[flagged["flagged"]]
    # rings by harm: one bar per flagged ring at its records; the title quotes the top one
    (bar,) = figs["rings_by_harm"].data
    drawn = dict(zip(bar.y, bar.x))
    assert drawn == {ring_label(r): int(v) for r, v in flagged["records_harvested"].items()}
    assert [c[0] for c in bar.customdata] == [int(flagged.loc[
        f"ring-{int(y.split()[-1]):03d}", "untied_users"]) for y in bar.y]
    top = flagged.sort_values("records_harvested", ascending=False).iloc[0]
    title = _text(figs["rings_by_harm"].layout.title.text)
    assert f"{about(top['records_harvested'], 'user record')} on {int(top['days_active'])} days" \
        in title
    # records over time: each ring's line adds up to its records; the title to their total
    lines = {t.name: sum(t.y) for t in figs["records_over_time"].data}
    assert lines == {ring_label(r): int(v) for r, v in flagged["records_harvested"].items()}
    assert about(facts.loc[ALL, "records_harvested"], "user record") in _text(
        figs["records_over_time"].layout.title.text)
    # users exposed: each ring's cumulative line ends at its distinct users, all at the total
    ends = {t.name: t.y[-1] for t in figs["users_exposed"].data}
    assert ends.pop("all flagged rings") == facts.loc[ALL, "untied_users"]
    assert ends == {ring_label(r): int(v) for r, v in flagged["untied_users"].items()}
    assert _text(figs["users_exposed"].layout.title.text).startswith(
        about(facts.loc[ALL, "untied_users"], "distinct user"))
    # partners: records summed over the partner's rings, users distinct over them
    parts = world["mgmt"].tables["partners_implicated"]
    for p in parts.itertuples(index=False):
        rids = p.rings.split(";")
        assert p.records_harvested == flagged.loc[rids, "records_harvested"].sum()
        assert flagged.loc[rids, "untied_users"].max() <= p.untied_users \
            <= flagged.loc[rids, "untied_users"].sum()
    # the top ring's network: its accounts, and every device and IP it used
    net = _text(figs["ring_network"].layout.title.text)
    first = facts.loc["ring-001"]
    assert net.startswith(f"Ring 1: {int(first['n_accounts'])} accounts")
    assert (f"on {charts.plural(first['devices'], 'device')} and "
            f"{charts.plural(first['ips'], 'IP')}") in net


def test_report_states_the_facts(world):
    facts, page = world["facts"], world["page"]
    total = facts.loc[ALL]
    assert f"They hold {about(total['n_accounts'], 'account')}." in page
    assert (f"read the profiles of {about(total['untied_users'], 'user')} with no business tie "
            f"and harvested {about(total['records_harvested'], 'user record')}.") in page
    for rid in world["findings"].flagged["ring_id"]:
        f = facts.loc[rid]
        assert f"{ring_label(rid)}: {charts.plural(f['n_accounts'], 'account')}" in page
        assert (f"Active on {charts.plural(f['days_active'], 'day')} from "
                f"{f['first_seen']:%Y-%m-%d} to {f['last_seen']:%Y-%m-%d}.") in page
        assert (f"It read the profiles of {about(f['untied_users'], 'user')} with no business "
                f"tie and harvested {about(f['records_harvested'], 'user record')}.") in page


def test_facts_follow_the_flags_tracking_leaves(ring_export):
    # A dismissed ring that did not grow is unflagged after detection: the flagged rings'
    # totals follow (computed again), and a second call changes nothing.
    from dataclasses import replace

    from analysis.facts import add_facts

    exp, findings = pipeline.open_findings(ring_export, progress=False)
    assert findings.facts.set_index("ring_id").loc[ALL, "n_accounts"] == 4
    rings = findings.rings.rings.assign(flagged=False)
    dismissed = replace(findings, rings=replace(findings.rings, rings=rings))
    again = add_facts(exp.con, dismissed)
    total = again.facts.set_index("ring_id").loc[ALL]
    assert total["n_accounts"] == 0 and total["untied_users"] == 0
    assert add_facts(exp.con, again) is again


def test_detection_delays_are_never_negative_and_the_title_quotes_them(world):
    import math
    import re

    lag = world["mgmt"].tables["detection_lag"]
    assert len(lag) == len(world["findings"].flagged)
    assert (lag["days_to_flag"].dropna() >= 0).all()
    early = lag["flagged_early"].astype(bool)
    assert (lag.loc[~early, "first_flagged"] >= lag.loc[~early, "started"]).all()
    assert (lag.loc[early, "days_to_flag"] == 0).all()
    # no negative number of days anywhere management reads
    title = _text(world["mgmt"].figures["detection_lag"].layout.title.text)
    for text in [title, world["page"]] + world["mgmt"].lines:
        assert not re.search(r"-\d+ days?\b", text)
    # the title's numbers are the table's: the quickest half and the slowest
    days = sorted(int(v) for v in lag["days_to_flag"].dropna())
    if len(days) > 1:
        half = days[math.ceil(len(days) / 2) - 1]
        assert (f"half of the rings within {charts.plural(half, 'day')} of their start, and "
                f"all within {charts.plural(days[-1], 'day')}") in title
    hover = world["mgmt"].figures["detection_lag"].data[2]
    # Delays in words: "N days after it started" (N >= 0) or "before its harvest showed".
    assert all(re.fullmatch(r"(\d+ days? after it started|before its harvest showed in its "
                            r"records|not flagged)", c) for c in hover.customdata)
