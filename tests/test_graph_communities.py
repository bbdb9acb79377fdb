"""The entity graph and community detection: hubs, partitions, reproducibility."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.aggregate import Aggregates
from analysis.communities import ENGINES, detect_communities
from analysis.graph import EntityGraph, build_graph, to_networkx

T = pd.Timestamp("2020-01-01")


def agg_with_links(device_links: list[tuple[int, int, int]], n_accounts: int,
                   ip_links: list[tuple[int, int, int]] = ()) -> Aggregates:
    acc = pd.DataFrame({"aid": range(n_accounts), "account_id": [f"a{i}" for i in range(n_accounts)],
                        "partner_id": [None] * n_accounts})

    def frame(rows, key):
        return pd.DataFrame({"aid": [r[0] for r in rows], key: [r[1] for r in rows],
                             "n": [r[2] for r in rows], "first_seen": T, "last_seen": T})
    return Aggregates(acc, frame(device_links, "did"), frame(list(ip_links), "iid"),
                      pd.DataFrame(), pd.DataFrame({"partner_id": []}), None, None, None)


def test_carrier_nat_hub_is_left_out_not_projected():
    # 5,000 accounts behind one NAT IP and a household of 3 on one phone.
    n = 5000
    ip_links = [(i, 0, 2) for i in range(n)]
    device_links = [(0, 0, 5), (1, 0, 5), (2, 0, 5)]
    agg = agg_with_links(device_links, n, ip_links)
    g = build_graph(agg, pd.Series(["phone"]), pd.Series(["100.64.0.1"]), hub_degree=200)
    assert g.hubs[["kind", "key", "accounts"]].values.tolist() == [["ip", "100.64.0.1", 5000]]
    # Only the three household edges remain: no pairwise projection, no star.
    assert len(g.edges) == 3
    assert g.summary().loc["ip", "hubs_left_out"] == 1


def test_shared_entity_weight_falls_with_sharing():
    # a0 alone on d0; a1..a4 share d1 (4 accounts); same event counts.
    agg = agg_with_links([(0, 0, 10), (1, 1, 10), (2, 1, 10), (3, 1, 10), (4, 1, 10)], 5)
    g = build_graph(agg, pd.Series(["d0", "d1"]), pd.Series([], dtype=str))
    w = g.edges.set_index("u")["weight"]
    # weight = (1 + ln(1 + n)) / log2(1 + accounts): log2(2) = 1 vs log2(5) = 2.32
    assert w[0] == pytest.approx(1 + 2.3979, rel=1e-3)
    assert w[1] == pytest.approx((1 + 2.3979) / 2.3219, rel=1e-3)


def two_households(n_pairs: int) -> EntityGraph:
    links = []
    for k in range(n_pairs):
        links += [(2 * k, k, 3), (2 * k + 1, k, 3)]
    agg = agg_with_links(links, 2 * n_pairs)
    return build_graph(agg, pd.Series([f"d{k}" for k in range(n_pairs)]), pd.Series([], dtype=str))


@pytest.mark.parametrize("engine", ENGINES)
def test_households_are_their_own_communities(engine):
    g = two_households(4)
    part = detect_communities(g, engine=engine, seed=1)
    # account 2k, 2k+1 and device node 8+k belong together, and nothing else.
    for k in range(4):
        assert part[2 * k] == part[2 * k + 1] == part[8 + k]
    assert part.nunique() == 4


@settings(max_examples=25, deadline=None)
@given(edges=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 10), st.integers(1, 9)),
                      min_size=1, max_size=80),
       seed=st.integers(0, 1000), engine=st.sampled_from(ENGINES))
def test_communities_partition_and_repeat(edges, seed, engine):
    links = sorted({(a, d): n for a, d, n in edges}.items())
    agg = agg_with_links([(a, d, n) for (a, d), n in links], 31)
    g = build_graph(agg, pd.Series([f"d{i}" for i in range(11)]), pd.Series([], dtype=str))
    part = detect_communities(g, engine=engine, seed=seed)
    # A partition: every node exactly once, labels 0..k-1.
    assert sorted(part.index) == sorted(g.nodes["node"])
    assert set(part) == set(range(part.nunique()))
    # Connected nodes only: a community never spans two connected components.
    import networkx as nx
    comp = {n: i for i, c in enumerate(nx.connected_components(to_networkx(g))) for n in c}
    for _, grp in part.groupby(part):
        assert len({comp[n] for n in grp.index}) == 1
    # Same seed, same partition.
    assert part.equals(detect_communities(g, engine=engine, seed=seed))


def modularity(g: EntityGraph, part: pd.Series) -> float:
    import networkx as nx
    nxg = to_networkx(g)
    groups = [set(grp.index) for _, grp in part.groupby(part)]
    return nx.community.modularity(nxg, groups, weight="weight")


def islands_and_a_mainland(n_islands: int, clique: int, n_cliques: int) -> EntityGraph:
    """Many households (an island of two accounts on one phone) and one connected mainland:
    ``n_cliques`` groups of ``clique`` accounts, each group on its own device, chained
    by single accounts that also use the next group's device."""
    links = []
    for k in range(n_islands):
        links += [(2 * k, k, 3), (2 * k + 1, k, 3)]
    a, d = 2 * n_islands, n_islands
    for c in range(n_cliques):
        links += [(a + i, d + c, 20) for i in range(clique)]
        if c:
            links.append((a, d + c - 1, 1))      # the bridge to the previous group
        a += clique
    agg = agg_with_links(links, a)
    return build_graph(agg, pd.Series([f"d{k}" for k in range(d + n_cliques)]),
                       pd.Series([], dtype=str))


@pytest.mark.parametrize("engine", ENGINES)
def test_small_components_settled_and_the_rest_split_as_on_the_whole_graph(engine):
    import igraph as ig

    from analysis.graph import to_igraph

    g = islands_and_a_mainland(n_islands=300, clique=6, n_cliques=12)
    part = detect_communities(g, engine=engine, seed=3)
    n_acc = 600 + 12 * 6                         # device k is node n_acc + k
    # Every household is one community of its own.
    for k in range(300):
        assert part[2 * k] == part[2 * k + 1] == part[n_acc + k]
    assert part[:600].nunique() == 300
    # The mainland is split into its groups, not kept whole: the engine ran on it.
    assert part[600:n_acc].nunique() >= 3
    # The partition is as good as the engine's on the whole graph (same objective).
    gi = to_igraph(g)
    ig.set_random_number_generator(__import__("random").Random(3))
    whole = gi.community_multilevel(weights="weight")
    ids = g.nodes["node"].to_numpy()
    ref = pd.Series([whole.membership[i] for i in ids], index=ids)
    assert modularity(g, part) == pytest.approx(modularity(g, ref), abs=2e-3)
