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
"""

from __future__ import annotations

import logging
import random

import numpy as np
import pandas as pd

from .graph import EntityGraph, to_igraph, to_networkx

__all__ = ["ENGINES", "detect_communities"]

log = logging.getLogger(__name__)

ENGINES = ("igraph", "leiden", "louvain")


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Number communities 0.. by their smallest node id (a canonical labelling)."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first, kind="stable")
    remap = np.empty(len(first), dtype=np.int64)
    remap[order] = np.arange(len(first))
    _, inverse = np.unique(labels, return_inverse=True)
    return remap[inverse]


def detect_communities(graph: EntityGraph, *, engine: str = "igraph", resolution: float = 1.0,
                       seed: int = 0) -> pd.Series:
    """Partition the graph's nodes into communities.

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
    if engine not in ENGINES:
        raise ValueError(f"unknown community engine {engine!r}; choose one of {', '.join(ENGINES)}")
    node_ids = graph.nodes["node"].to_numpy()
    if len(node_ids) == 0:
        return pd.Series([], dtype=np.int64)
    if engine == "louvain":
        import community as community_louvain

        g = to_networkx(graph)
        part = community_louvain.best_partition(g, weight="weight", resolution=resolution,
                                                random_state=seed)
        labels = np.array([part[int(n)] for n in node_ids])
    else:
        import igraph as ig

        g = to_igraph(graph)
        rng = random.Random(seed)
        ig.set_random_number_generator(rng)
        try:
            if engine == "igraph":
                cl = g.community_multilevel(weights="weight", resolution=resolution)
            else:
                cl = g.community_leiden(objective_function="modularity", weights="weight",
                                        resolution=resolution, n_iterations=-1)
        finally:
            ig.set_random_number_generator(random)
        membership = np.asarray(cl.membership)
        labels = membership[node_ids]
    return pd.Series(_relabel(labels), index=node_ids, name="community")
