"""Aggregates → the entity graph of accounts, devices, IPs and partners.

The graph is held as two tables (nodes and weighted edges) with integer node
ids, so it can be handed to networkx (:func:`to_networkx`) or igraph
(:func:`to_igraph`) without copying Python objects per edge twice.

Node ids: accounts ``0..A-1`` (their ``aid``), then devices, IPs and partners.

Hubs — a device or IP shared by more than ``hub_degree`` accounts, such as a
mobile carrier's NAT address — are kept out of the community graph: linking
every pair of their users would make 1.25 billion pairs for a 50,000-user NAT,
and even as a star they would glue unrelated people into one community. They
are listed in :attr:`EntityGraph.hubs` with their size. Shared entities below
that size are down-weighted by ``log2(1 + accounts)``, so a household phone
links its users strongly and a busy office IP only weakly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .aggregate import Aggregates

__all__ = ["EntityGraph", "build_graph", "to_networkx", "to_igraph", "NODE_KINDS"]

NODE_KINDS = ("account", "device", "ip", "partner")


@dataclass
class EntityGraph:
    """Nodes, edges and hubs of the entity graph.

    ``nodes``  node, kind, key (the raw id), degree (accounts linked)
    ``edges``  u, v, weight, n (events), first_seen, last_seen, kind ("device", "ip", "partner")
    ``hubs``   node, kind, key, accounts: entities left out as hubs
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame
    hubs: pd.DataFrame
    hub_degree: int

    @property
    def n_accounts(self) -> int:
        return int((self.nodes["kind"] == "account").sum())

    def summary(self) -> pd.DataFrame:
        """Node counts per kind, edges and hubs: what an analyst checks first."""
        counts = self.nodes.groupby("kind").size().reindex(list(NODE_KINDS), fill_value=0)
        return pd.DataFrame({
            "nodes": counts,
            "hubs_left_out": self.hubs.groupby("kind").size().reindex(list(NODE_KINDS),
                                                                      fill_value=0),
        })


def _entity_edges(links: pd.DataFrame, key: str, offset: int, kind: str, hub_degree: int,
                  names: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    deg = links.groupby(key).size().rename("accounts")
    nodes = pd.DataFrame({"node": deg.index.to_numpy() + offset, "kind": kind,
                          "key": names.reindex(deg.index).to_numpy(),
                          "degree": deg.to_numpy()})
    hub_ids = deg.index[deg.to_numpy() > hub_degree]
    hubs = nodes[nodes["node"].isin(hub_ids + offset)][["node", "kind", "key", "degree"]]
    hubs = hubs.rename(columns={"degree": "accounts"})
    kept = links[~links[key].isin(hub_ids)]
    d = deg.reindex(kept[key]).to_numpy()
    weight = (1.0 + np.log1p(kept["n"].to_numpy())) / np.log2(1.0 + d)
    edges = pd.DataFrame({
        "u": kept["aid"].to_numpy(), "v": kept[key].to_numpy() + offset,
        "weight": weight, "n": kept["n"].to_numpy(),
        "first_seen": kept["first_seen"].to_numpy(), "last_seen": kept["last_seen"].to_numpy(),
        "kind": kind,
    })
    return nodes, edges, hubs


def build_graph(agg: Aggregates, devices: pd.Series, ips: pd.Series,
                hub_degree: int = 200) -> EntityGraph:
    """Build the entity graph from aggregates.

    Parameters
    ----------
    agg : Aggregates
    devices, ips : Series
        Raw device ids and IPs indexed by ``did`` / ``iid`` (for labels).
    hub_degree : int
        Devices and IPs used by more accounts than this are hubs (left out).

    Examples
    --------
    >>> import pandas as pd
    >>> from analysis.aggregate import Aggregates
    >>> acc = pd.DataFrame({"aid": [0, 1, 2], "account_id": ["a", "b", "c"],
    ...                     "partner_id": [None, None, None]})
    >>> links = pd.DataFrame({"aid": [0, 1, 2], "did": [0, 0, 1], "n": [3, 3, 1],
    ...                       "first_seen": pd.Timestamp("2020-01-01"),
    ...                       "last_seen": pd.Timestamp("2020-01-02")})
    >>> none = links.iloc[0:0].rename(columns={"did": "iid"})
    >>> agg = Aggregates(acc, links, none, pd.DataFrame(), pd.DataFrame({"partner_id": []}),
    ...                  None, None, None)
    >>> g = build_graph(agg, pd.Series(["d0", "d1"]), pd.Series([], dtype=str), hub_degree=1)
    >>> g.hubs["key"].tolist()        # d0 links two accounts: over the hub size of 1
    ['d0']
    >>> g.edges[["u", "v"]].values.tolist()   # only c-d1 is left
    [[2, 4]]
    """
    acc = agg.accounts
    n_acc = len(acc)
    n_dev, n_ip = len(devices), len(ips)
    account_nodes = pd.DataFrame({"node": acc["aid"].to_numpy(), "kind": "account",
                                  "key": acc["account_id"].to_numpy(), "degree": 1})
    dev_nodes, dev_edges, dev_hubs = _entity_edges(agg.device_links, "did", n_acc, "device",
                                                   hub_degree, devices)
    ip_nodes, ip_edges, ip_hubs = _entity_edges(agg.ip_links, "iid", n_acc + n_dev, "ip",
                                                hub_degree, ips)
    partner_ids = agg.partners["partner_id"].tolist()
    p_offset = n_acc + n_dev + n_ip
    p_index = {p: i + p_offset for i, p in enumerate(partner_ids)}
    with_partner = acc[acc["partner_id"].notna()]
    p_nodes = pd.DataFrame({"node": list(p_index.values()), "kind": "partner",
                            "key": partner_ids,
                            "degree": [int((with_partner["partner_id"] == p).sum())
                                       for p in partner_ids]})
    p_edges = pd.DataFrame({
        "u": with_partner["aid"].to_numpy(),
        "v": with_partner["partner_id"].map(p_index).to_numpy(),
        "weight": 1.0, "n": 0,
        "first_seen": pd.NaT, "last_seen": pd.NaT, "kind": "partner",
    })
    nodes = pd.concat([account_nodes, dev_nodes, ip_nodes, p_nodes], ignore_index=True)
    nodes["node"] = nodes["node"].astype("int64")
    nodes["degree"] = nodes["degree"].astype("int64")
    frames = [f for f in (dev_edges, ip_edges, p_edges) if len(f)]
    edges = (pd.concat(frames, ignore_index=True) if frames else dev_edges)
    edges = edges.astype({"u": "int64", "v": "int64", "weight": "float64"})
    edges = edges.sort_values(["u", "v"], kind="stable").reset_index(drop=True)
    hubs = pd.concat([dev_hubs, ip_hubs], ignore_index=True)
    return EntityGraph(nodes=nodes.reset_index(drop=True), edges=edges, hubs=hubs,
                       hub_degree=hub_degree)


def to_networkx(graph: EntityGraph, nodes: pd.Series | None = None):
    """The graph (or the subgraph on ``nodes``) as a networkx Graph, in a fixed node order."""
    import networkx as nx

    g = nx.Graph()
    ndf = graph.nodes if nodes is None else graph.nodes[graph.nodes["node"].isin(nodes)]
    ndf = ndf.sort_values("node")
    g.add_nodes_from((int(r.node), {"kind": r.kind, "key": r.key})
                     for r in ndf.itertuples(index=False))
    edf = graph.edges
    if nodes is not None:
        edf = edf[edf["u"].isin(nodes) & edf["v"].isin(nodes)]
    g.add_weighted_edges_from(zip(edf["u"].tolist(), edf["v"].tolist(), edf["weight"].tolist()))
    return g


def to_igraph(graph: EntityGraph):
    """The graph as an igraph Graph with vertex ``i`` = node id ``i`` and edge weights."""
    import igraph as ig

    n = int(graph.nodes["node"].max()) + 1 if len(graph.nodes) else 0
    edges = np.column_stack([graph.edges["u"].to_numpy(np.int64),
                             graph.edges["v"].to_numpy(np.int64)])
    g = ig.Graph(n=n, edges=edges, directed=False)
    g.es["weight"] = graph.edges["weight"].to_numpy(float)
    return g
