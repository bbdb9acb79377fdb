"""A big ring's network opens: one-off devices and IPs fold into counts, the rest is capped."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from analysis import charts
from analysis.queries import ring_subgraph


def big_ring_findings(accounts=60, own_ips=40, shared_ips=300):
    """60 ring accounts; each with 40 IPs of its own (2,400: what hid the accounts), one
    device all of them use, and 300 IPs each shared by two of them."""
    nodes, edges = [], []
    for a in range(accounts):
        nodes.append((a, "account", f"acct{a}", 0))
    nid = accounts
    dev = nid
    nodes.append((dev, "device", "dev-shared", accounts))
    edges += [(a, dev, "device", 5) for a in range(accounts)]
    nid += 1
    for a in range(accounts):
        for _ in range(own_ips):
            nodes.append((nid, "ip", f"10.{a}.{nid % 250}.{nid % 7}", 1))
            edges.append((a, nid, "ip", 1))
            nid += 1
    for k in range(shared_ips):
        nodes.append((nid, "ip", f"192.168.{k // 250}.{k % 250}", 2))
        edges += [(k % accounts, nid, "ip", 2), ((k + 1) % accounts, nid, "ip", 1 + k % 3)]
        nid += 1
    n = pd.DataFrame(nodes, columns=["node", "kind", "key", "degree"])
    e = pd.DataFrame(edges, columns=["u", "v", "kind", "n"])
    aids = np.arange(accounts)
    sig = pd.DataFrame({"aid": aids, "account_type": "customer", "partner_id": None,
                        "n_events": 100, "profile_reads": 50, "untied_users": 40,
                        "untied_records": 40, "coupon_claims": 0,
                        "first_seen": pd.Timestamp("2020-01-01"),
                        "last_seen": pd.Timestamp("2020-02-01")})
    members = pd.DataFrame({"ring_id": "ring-002", "aid": aids,
                            "account_id": [f"acct{a}" for a in aids]})
    return SimpleNamespace(graph=SimpleNamespace(nodes=n, edges=e),
                           rings=SimpleNamespace(members=members), signals=sig,
                           aggregates=SimpleNamespace(partners=pd.DataFrame(
                               columns=["partner_id", "name", "partner_type"])))


def test_one_off_ips_fold_and_shared_ones_are_capped():
    sub = ring_subgraph(big_ring_findings(), "ring-002", max_entities=200)
    c = sub.counts()
    assert c["ring accounts"] == 60
    assert sub.folded == {"device": 0, "ip": 2400}
    assert c["devices"] + c["ips"] == 200 and sub.entities_left_out == 101
    assert c["devices"] == 1                       # the device all 60 use is kept first
    acc = sub.nodes[sub.nodes["kind"] == "account"]
    assert (acc["own_ips"] == 40).all()
    fig = charts.ring_network(sub)
    title = fig.layout.title.text
    assert "showing 200 of 301 shared devices and IPs" in title
    assert "2,400 one-account devices and IPs folded into their accounts" in title
    drawn = sum(len(t.x) for t in fig.data if t.mode == "markers+text")
    assert drawn == 260
    # Labels stay readable: a 60-account ring labels none of its accounts on the picture.
    assert not any(t for tr in fig.data if tr.mode == "markers+text" for t in (tr.text or ()))


def test_the_layout_is_the_same_each_time():
    sub = ring_subgraph(big_ring_findings(accounts=8, own_ips=2, shared_ips=10), "ring-002")
    a, b = charts.ring_network(sub), charts.ring_network(sub)
    assert [t.x for t in a.data] == [t.x for t in b.data]


# -- expand on demand, filter by node type and score (issue 14, item 11) --------------------

def _scored(findings, scores):
    findings.signals["harvest_ratio"] = scores
    return findings


def test_opening_a_node_adds_its_neighbours_capped_and_says_so():
    from analysis.queries import expand_node, node_neighbours

    f = big_ring_findings()
    sub = ring_subgraph(f, "ring-002", max_entities=50)
    # acct0's 40 own IPs were folded into its counts; opening it draws them, 25 at most.
    assert len(node_neighbours(f, "acct0")) == 40 + 1 + 10     # own IPs, the device, shared
    more = expand_node(f, sub, "acct0", max_new=25)
    not_drawn = (~node_neighbours(f, "acct0")["key"].isin(sub.nodes["key"])).sum()
    assert not_drawn >= 40
    assert len(more.nodes) == len(sub.nodes) + 25 and more.opened_left_out == not_drawn - 25
    added = more.nodes[more.nodes["opened"].fillna(False).astype(bool)]
    assert len(added) == 25 and set(added["kind"]) <= {"ip"}
    # every added node is linked to the opened account
    acct0 = int(sub.nodes.loc[sub.nodes["key"] == "acct0", "node"].iloc[0])
    linked = set(more.edges.loc[more.edges["u"] == acct0, "v"])
    assert set(added["node"]) <= linked
    # the ring's facts stay; the title says what was opened
    title = charts.ring_network(more).layout.title.text
    assert title.startswith("ring-002: 60 accounts")
    assert "opened account acct0: 25 nodes added" in title
    # its one-account IPs drawn now are no longer counted as folded (they were counted twice)
    own = int((added["accounts"] == 1).sum())
    assert own > 0 and more.folded["ip"] == sub.folded["ip"] - own
    assert f"{sub.folded['ip'] + sub.folded.get('device', 0) - own:,} one-account" in title
    # opening a device draws its accounts (all 60 are drawn already: nothing added)
    again = expand_node(f, more, "dev-shared")
    assert len(again.nodes) == len(more.nodes)


def test_filter_by_node_type_and_score_keeps_the_ring_facts_in_the_title():
    from analysis.queries import filter_graph

    f = _scored(big_ring_findings(), [50.0 if a < 10 else 1.0 for a in range(60)])
    sub = ring_subgraph(f, "ring-002")
    assert sub.nodes.loc[sub.nodes["kind"] == "account", "score"].max() == 50.0
    # a device's or IP's score is its best account's
    dev = sub.nodes[sub.nodes["key"] == "dev-shared"].iloc[0]
    assert dev["score"] == 50.0
    only = filter_graph(sub, kinds=["account"])
    assert set(only.nodes["kind"]) == {"account"} and len(only.edges) == 0
    assert only.hidden == {"device": 1, "ip": 199}
    high = filter_graph(sub, min_score=10)
    acc = high.nodes[high.nodes["kind"] == "account"]
    assert len(acc) == 10 and (acc["score"] >= 10).all()
    assert high.hidden["ring accounts"] == 50
    assert set(high.edges["u"]) | set(high.edges["v"]) <= set(high.nodes["node"])
    title = charts.ring_network(high).layout.title.text
    assert title.startswith("ring-002: 60 accounts on 1 device and 2,700 IPs")
    assert "hidden by the filter (50 of the ring's accounts)" in title


def test_exploring_a_ring_of_thousands_stays_quick():
    import time

    from analysis.notebook.widgets import NetworkView

    f = _scored(big_ring_findings(accounts=3000, own_ips=3, shared_ips=6000),
                [float(a % 5) for a in range(3000)])
    f.rings.rings = pd.DataFrame({"ring_id": ["ring-002"], "rank": [1], "flagged": [True]})
    t0 = time.perf_counter()
    view = NetworkView(f, "ring-002")
    view.open("acct7")
    view.open("dev-shared")
    view.kinds, view.min_score = ("account", "ip"), 0.5
    fig = charts.ring_network(view.graph())
    assert time.perf_counter() - t0 < 20
    assert fig.layout.title.text.startswith("ring-002: 3,000 accounts")
    assert view.choices(limit=50) and len(view.choices(limit=50)) == 50


def test_the_explorer_widget_opens_and_filters(ring_export):
    from analysis import pipeline
    from analysis.notebook import widgets

    _, findings = pipeline.open_findings(ring_export, progress=False)
    box = widgets.network_explorer(findings, 1, draw_now=True)
    view = box.view
    (node, open_button, _reset), (kinds, score) = box.children[0].children, box.children[1].children
    before = len(view.graph().nodes)
    node.value = "emu-1"                     # the crawlers' device: its accounts are drawn
    open_button.click()
    assert view.opened == ["emu-1"] and len(view.graph().nodes) >= before
    kinds.value = ("account",)
    assert set(view.graph().nodes["kind"]) == {"account"}
    score.value = 1e6
    assert view.graph().nodes.empty
    view.open("k1")
    assert view.opened[-1] == "k1"
    said = box.children[2]
    view.reset()
    assert view.opened == []
    node.options = [("nowhere", "no-such-id")]
    node.value = "no-such-id"
    open_button.click()
    assert "no account, device, IP or partner" in said.value
