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
