"""Entity graph → communities (Louvain and kin).

Engines
-------
``louvain``
    python-louvain's ``best_partition`` on a networkx graph built in a fixed
    node order (its ``random_state`` alone is not enough for repeatable
    results; see python-louvain issue #105).
``igraph``
    igraph's multilevel (Louvain) algorithm: the same method, in C; about 20×
    faster on graphs of this shape.
``leiden``
    igraph's Leiden algorithm on the modularity objective.

All engines take a ``resolution`` (higher gives smaller communities) and a
``seed``; the same graph, engine, resolution and seed give the same partition.

Small components are settled before any engine runs
----------------------------------------------------
The entity graph is mostly small islands: an account with its own phone and
home IP, a household, a merchant and its partner. Modularity (with resolution
γ, total edge weight W) gains ``w_AB/W − γ·D_A·D_B/(2W²)`` from merging two
adjacent communities A and B, where ``D`` is a community's total edge weight
at its nodes. Inside a component of total weight ``W_k`` we have
``D_A·D_B ≤ W_k²`` and ``w_AB`` at least the component's lightest edge, so
when ``2·W·w_min > γ·W_k²`` every merge inside the component gains: the best
partition, and the one Louvain and Leiden converge to, keeps the whole
component as one community. Such components are labelled directly. Only the
rest (at 100k accounts, one component of about 30k of 270k nodes) goes to the
engine, together with one ballast edge, on two extra nodes, that carries the
settled components' weight: the engine's total weight is then the full graph's
W, so its objective is exactly the full graph's modularity restricted to the
unsettled components. (A ballast rather than a scaled resolution, because
python-louvain 0.16 applies the resolution to the wrong term when it decides
to stop.)
"""

from __future__ import annotations

import logging
import random

import numpy as np
import pandas as pd

from .graph import EntityGraph

__all__ = ["ENGINES", "WARM_ENGINES", "detect_communities", "seed_membership"]

log = logging.getLogger(__name__)

ENGINES = ("igraph", "leiden", "louvain")
#: Engines that can start from a previous partition (warm start): igraph's Leiden takes
#: ``initial_membership``, python-louvain's ``best_partition`` a ``partition``. igraph's
#: multilevel takes none.
WARM_ENGINES = ("leiden", "louvain")
#: Also accepted by :func:`detect_communities`: networkx's own Louvain, for the benchmark's
#: engine comparison (as slow as python-louvain; not offered on the command line).
_ALL_ENGINES = ENGINES + ("networkx",)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Number communities 0.. by their smallest node id (a canonical labelling)."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first, kind="stable")
    remap = np.empty(len(first), dtype=np.int64)
    remap[order] = np.arange(len(first))
    _, inverse = np.unique(labels, return_inverse=True)
    return remap[inverse]


def _settle_components(graph: EntityGraph, resolution: float):
    """Split the graph into settled components and the part an engine must partition.

    Returns ``(labels, sub_nodes, sub_u, sub_v, sub_w)``: ``labels`` gives every
    node id ``0..max`` its component number (settled components are final
    communities); ``sub_nodes`` are the node ids of the unsettled components in
    increasing order; ``sub_u``/``sub_v`` index into ``sub_nodes``, and the last
    edge is the ballast between the two extra nodes ``len(sub_nodes)`` and
    ``len(sub_nodes) + 1``.
    """
    import igraph as ig

    n = int(graph.nodes["node"].max()) + 1
    u = graph.edges["u"].to_numpy(np.int64)
    v = graph.edges["v"].to_numpy(np.int64)
    w = graph.edges["weight"].to_numpy(float)
    labels = np.asarray(ig.Graph(n=n, edges=np.column_stack([u, v]), directed=False)
                        .connected_components().membership, dtype=np.int64)
    n_comp = int(labels.max()) + 1 if n else 0
    comp_of_edge = labels[u]
    total = float(w.sum())
    comp_w = np.bincount(comp_of_edge, weights=w, minlength=n_comp)
    comp_min = np.full(n_comp, np.inf)
    np.minimum.at(comp_min, comp_of_edge, w)
    # Components without edges have comp_min = inf: settled (a single node).
    settled = resolution * comp_w ** 2 < 2.0 * total * comp_min
    open_edge = ~settled[comp_of_edge]
    sub_nodes = np.flatnonzero(~settled[labels])
    position = np.full(n, -1, dtype=np.int64)
    position[sub_nodes] = np.arange(len(sub_nodes))
    k = len(sub_nodes)
    sub_u = np.append(position[u[open_edge]], k)
    sub_v = np.append(position[v[open_edge]], k + 1)
    sub_w = np.append(w[open_edge], max(total - float(w[open_edge].sum()), 1e-9))
    return labels, sub_nodes, sub_u, sub_v, sub_w


def _start(initial: np.ndarray | None, n: int) -> list[int] | None:
    """A starting membership for nodes ``0..n-1``: the previous labels renumbered densely,
    every node without one (-1) on its own."""
    if initial is None:
        return None
    init = np.asarray(initial, dtype=np.int64)[:n]
    init = np.concatenate([init, np.full(n - len(init), -1, dtype=np.int64)])
    known = init >= 0
    out = np.empty(n, dtype=np.int64)
    _, dense = np.unique(init[known], return_inverse=True)
    out[known] = dense
    k = int(dense.max()) + 1 if known.any() else 0
    out[~known] = k + np.arange(int((~known).sum()))
    return out.tolist()


def _run_engine(engine: str, n: int, u: np.ndarray, v: np.ndarray, w: np.ndarray,
                resolution: float, seed: int, initial: np.ndarray | None = None) -> np.ndarray:
    """Community numbers for nodes ``0..n-1`` of the graph with edges ``(u, v, w)``.

    ``initial`` (previous labels, -1 for none) starts the engines of :data:`WARM_ENGINES`.
    """
    start = _start(initial, n) if engine in WARM_ENGINES else None
    if engine in ("louvain", "networkx"):
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_weighted_edges_from(zip(u.tolist(), v.tolist(), w.tolist()))
        if engine == "networkx":
            labels = np.empty(n, dtype=np.int64)
            for i, c in enumerate(nx.community.louvain_communities(
                    g, weight="weight", resolution=resolution, seed=seed)):
                labels[list(c)] = i
            return labels
        import community as community_louvain

        part = community_louvain.best_partition(
            g, weight="weight", resolution=resolution, random_state=seed,
            partition=None if start is None else dict(enumerate(start)))
        return np.array([part[i] for i in range(n)], dtype=np.int64)
    import igraph as ig

    g = ig.Graph(n=n, edges=np.column_stack([u, v]), directed=False)
    g.es["weight"] = w
    rng = random.Random(seed)
    ig.set_random_number_generator(rng)
    try:
        if engine == "igraph":
            cl = g.community_multilevel(weights="weight", resolution=resolution)
        else:
            cl = g.community_leiden(objective_function="modularity", weights="weight",
                                    resolution=resolution, n_iterations=-1,
                                    initial_membership=start)
    finally:
        ig.set_random_number_generator(random)
    return np.asarray(cl.membership, dtype=np.int64)


def seed_membership(graph: EntityGraph, previous: pd.DataFrame | None) -> pd.Series | None:
    """The previous run's communities on this graph's nodes, for a warm start.

    ``previous`` holds ``kind, key, community`` (a run's ``communities.parquet``);
    nodes are matched by kind and raw id. Returns a Series indexed by node id
    (-1 for a node the previous run did not have), or None without a previous.

    >>> nodes = pd.DataFrame({"node": [0, 1], "kind": "account", "key": ["a", "b"],
    ...                       "degree": 1})
    >>> g = EntityGraph(nodes, pd.DataFrame(columns=["u", "v", "weight"]), pd.DataFrame(), 200)
    >>> prev = pd.DataFrame({"kind": ["account"], "key": ["b"], "community": [4]})
    >>> seed_membership(g, prev).tolist()
    [-1, 4]
    """
    if previous is None or len(previous) == 0:
        return None
    lab = previous.drop_duplicates(["kind", "key"]).set_index(["kind", "key"])["community"]
    idx = pd.MultiIndex.from_arrays([graph.nodes["kind"].astype(str),
                                     graph.nodes["key"].astype(str)])
    got = lab.reindex(idx).fillna(-1).astype(np.int64).to_numpy()
    return pd.Series(got, index=graph.nodes["node"].to_numpy(), name="previous")


def detect_communities(graph: EntityGraph, *, engine: str = "igraph", resolution: float = 1.0,
                       seed: int = 0, settle: bool = True,
                       initial: pd.Series | None = None) -> pd.Series:
    """Partition the graph's nodes into communities.

    ``initial`` (node id → previous community, -1 for none; :func:`seed_membership`)
    starts the engines of :data:`WARM_ENGINES` from the previous run's partition:
    communities stay stable across weekly runs. Other engines ignore it.

    ``settle`` labels components too small to split directly (see the module
    doc); without it the engine gets the whole graph (for the benchmark's
    comparison; the partition is the same up to the engine's randomness).

    Returns a Series indexed by node id (every node of ``graph.nodes``) holding
    a community number. Numbers are canonical: community 0 holds the smallest
    node id, and so on.

    Examples
    --------
    Two triangles joined by one edge split into two communities:

    >>> import pandas as pd
    >>> nodes = pd.DataFrame({"node": range(6), "kind": "account", "key": list("abcdef"),
    ...                       "degree": 1})
    >>> e = [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)]
    >>> edges = pd.DataFrame({"u": [a for a, b in e], "v": [b for a, b in e], "weight": 1.0})
    >>> g = EntityGraph(nodes, edges, pd.DataFrame(), 200)
    >>> detect_communities(g, engine="louvain", seed=1).tolist()
    [0, 0, 0, 1, 1, 1]
    >>> detect_communities(g, engine="igraph", seed=1).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    if engine not in _ALL_ENGINES:
        raise ValueError(f"unknown community engine {engine!r}; choose one of {', '.join(ENGINES)}")
    node_ids = graph.nodes["node"].to_numpy()
    if len(node_ids) == 0:
        return pd.Series([], dtype=np.int64)
    if settle:
        labels, sub_nodes, su, sv, sw = _settle_components(graph, resolution)
    else:   # the whole graph to the engine (the benchmark's comparison)
        n = int(node_ids.max()) + 1
        labels = np.zeros(n, dtype=np.int64)
        sub_nodes = np.arange(n)
        su, sv = graph.edges["u"].to_numpy(np.int64), graph.edges["v"].to_numpy(np.int64)
        sw = graph.edges["weight"].to_numpy(float)   # (the two extra nodes stay isolated)
    if len(sub_nodes):
        init = None
        if initial is not None and engine in WARM_ENGINES:
            init = np.append(initial.reindex(sub_nodes).fillna(-1).to_numpy(np.int64), [-1, -1])
        inner = _run_engine(engine, len(sub_nodes) + 2, su, sv, sw, resolution, seed, init)
        labels[sub_nodes] = labels.max() + 1 + inner[:len(sub_nodes)]
    log.info("communities: %d of %d nodes left to %s after settling small components",
             len(sub_nodes), len(node_ids), engine)
    return pd.Series(_relabel(labels[node_ids]), index=node_ids, name="community")
