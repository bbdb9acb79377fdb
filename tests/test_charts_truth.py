"""Charts say what their data says; the notebooks start where the analyst is."""

from __future__ import annotations

import math
import re

import pandas as pd

from analysis import charts


def test_hub_line_sits_at_the_hub_degree_on_the_log_axis():
    dist = pd.DataFrame({"kind": ["device", "device", "ip"], "degree": [1, 300, 5],
                         "nodes": [900, 1, 40]})
    fig = charts.degree_distribution(dist, hub_degree=200)
    assert fig.layout.xaxis.type == "log"
    (line,) = fig.layout.shapes
    assert math.isclose(line.x0, math.log10(200)) and math.isclose(line.x1, math.log10(200))


def test_degree_title_says_most_only_when_most_serve_one_account():
    shared = pd.DataFrame({"kind": ["device", "device", "ip"], "degree": [1, 2, 40],
                           "nodes": [30, 60, 10]})
    title = charts.degree_distribution(shared).layout.title.text
    assert "most" not in title and title.startswith("30% of devices and IPs serve one account")
    assert title.endswith("the busiest 40")
    lone = shared.assign(nodes=[90, 5, 1])
    assert "most devices and IPs serve one account" in charts.degree_distribution(
        lone).layout.title.text


def test_partner_chart_title_quotes_the_shares_it_draws():
    pos = pd.DataFrame({
        "partner_id": ["P1", "P2", "P3", "P4"], "name": ["a", "b", "c", "d"],
        "partner_type": ["isv"] * 4, "accounts": [3, 4, 5, 6],
        "profiles_read": [1000, 2000, 50000, 10], "untied_share": [0.02, 0.21, 0.05, 0.5],
        "untied_users": [10, 20, 30, 1],
        "status": ["linked to a flagged ring", "linked to a flagged ring",
                   "high volume, not flagged", "other"]})
    title = charts.partner_positions(pos).layout.title.text
    assert "read mostly" not in title
    assert "2 partners linked to flagged rings: 2%–21% of their profile reads had no tie" in title
    assert "1 high-volume partner not flagged: 5% with no tie" in title


def test_detection_lag_is_never_negative_in_words():
    lag = pd.DataFrame({"ring_id": ["ring-001", "ring-002"],
                        "started": pd.to_datetime(["2020-01-10", "2020-01-01"]),
                        "first_flagged": pd.to_datetime(["2020-01-08", "2020-01-15"]),
                        "days_to_flag": [0, 14], "flagged_early": [True, False]})
    title = charts.detection_lag(lag).layout.title.text
    assert not re.search(r"-\d", title)


def test_ring_ranking_puts_rank_one_on_top_with_the_report_labels():
    rings = pd.DataFrame({"ring_id": ["ring-001", "ring-002", "ring-003"], "rank": [1, 2, 3],
                          "score": [5.0, 3.0, 1.0], "flagged": [True, False, True],
                          "n_accounts": [5, 2, 3], "profiles_read": [10, 5, 1],
                          "records_harvested": [10, 5, 1]})
    fig = charts.ring_ranking(rings)
    order = list(fig.layout.yaxis.categoryarray)
    assert order[-1] == "Ring 1" and order == ["Ring 3", "Ring 2", "Ring 1"]   # top is last
    assert "log10" not in fig.layout.xaxis.title.text


def test_make_lab_sets_the_notebooks_default_export(monkeypatch, tmp_path):
    from analysis import config

    monkeypatch.setenv(config.EXPORT_ENV, str(tmp_path / "exp"))
    monkeypatch.setenv(config.OUT_ENV, str(tmp_path / "out"))
    assert config.export_dir(None) == (tmp_path / "exp").resolve()
    assert config.out_dir(None) == (tmp_path / "out").resolve()
    assert config.export_dir("elsewhere") != (tmp_path / "exp").resolve()   # a parameter wins


def test_the_notebook_charts_titles_state_their_data(small_world):
    """Notebooks 01-03 on a real run: every number a title states is its data's."""
    from conftest import page_text

    from analysis.notebook import overview

    exp, findings = small_world["exp"], small_world["findings"]
    con, g, rings = exp.con, findings.graph, findings.rings.rings

    def title(fig):
        return page_text(fig.layout.title.text)

    vol = overview.event_volume(con)
    per = vol.groupby("period")["events"].sum()
    t = title(charts.event_volume(vol))
    assert t.startswith(f"{per.sum():,} events from {per.index.min():%Y-%m-%d} to "
                        f"{per.index.max():%Y-%m-%d}")
    assert t.endswith(f"busiest day {per.idxmax():%Y-%m-%d} with {per.max():,}")
    types = overview.event_type_counts(con)
    value = [c for c in types.columns if c != "event_type"][0]
    top = types.sort_values(value).iloc[-1]
    assert title(charts.type_counts(types, "event_type", value, unit="events")) == (
        f"{top['event_type']} is the most common: {top[value]:,} of {types[value].sum():,} events")
    size = overview.graph_size(g)
    hubs = int(size["hubs_left_out"].sum())
    assert title(charts.graph_size(size)) == (
        f"The entity graph: {size['nodes'].sum():,} nodes, {size['edges'].sum():,} edges; "
        f"{charts.plural(hubs, 'hub')} left out")
    dist = overview.degree_distribution(g)
    ent = dist[dist["kind"].isin(["device", "ip"])]
    t = title(charts.degree_distribution(dist, hub_degree=g.hub_degree))
    if "most devices and IPs serve one account" in t:
        assert ent.loc[ent["degree"] == 1, "nodes"].sum() > ent["nodes"].sum() / 2
    assert t.endswith(f"the busiest {int(ent['degree'].max()):,}") or "busiest" not in t
    comm = overview.community_table(findings)
    assert title(charts.community_sizes(comm)) == (
        f"{len(comm):,} communities; {int(comm['flagged_ring'].sum())} hold a flagged ring")
    fl = rings[rings["flagged"].astype(bool)]
    assert title(charts.score_vs_size(rings)) == (
        f"Flagged rings score {fl['score'].min():.1f}–{fl['score'].max():.1f} and hold "
        f"{fl['n_accounts'].min()}–{fl['n_accounts'].max()} accounts")
    assert title(charts.ring_ranking(rings)) == (
        f"{len(fl)} of {len(rings)} candidate rings flagged")
