"""Hand-off to other tools: one ring's subgraph as GEXF and GraphML (Gephi, yEd, Cytoscape)
and as CSV files for ``neo4j-admin database import``.

These files carry **real ids** (accounts, devices, IPs): they are the
investigator's files, never management outputs. ``run --handoff RING`` writes
them into ``OUT/handoff/<ring_key or ring_id>/``; notebooks call :func:`export_ring`.

Neo4j: ``nodes.csv`` has the header ``id:ID,key,kind,account_type,partner_id,
in_ring:boolean,profiles_read:long,untied_users:long,:LABEL`` (labels Account,
Device, IP, Partner) and ``relationships.csv`` ``:START_ID,:END_ID,:TYPE,
weight:double,events:long,first_seen,last_seen`` (types USES_DEVICE, USES_IP,
BELONGS_TO). Import with::

    neo4j-admin database import full --nodes=nodes.csv --relationships=relationships.csv neo4j
"""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import pandas as pd

from .findings import Findings
from .queries import RingGraph, resolve_ring, ring_subgraph
from .safe import write_csv

__all__ = ["resolve_handoff_ring", "ring_graph", "to_neo4j_frames", "export_ring"]

LABELS = {"account": "Account", "device": "Device", "ip": "IP", "partner": "Partner"}
TYPES = {"device": "USES_DEVICE", "ip": "USES_IP", "partner": "BELONGS_TO"}


def resolve_handoff_ring(findings: Findings, ring: int | str | None) -> str | None:
    """The ring id meant by a ring key (``RK-0007``), a ring id or a rank."""
    rings = findings.rings.rings
    if ring is not None and "ring_key" in rings and str(ring).strip() in set(rings["ring_key"]):
        return str(rings.loc[rings["ring_key"] == str(ring).strip(), "ring_id"].iloc[0])
    return resolve_ring(findings, ring)


def _node_id(kind: str, key) -> str:
    return f"{kind}:{key}"


def _plain(value):
    """A value GEXF/GraphML writers accept: str, int, float or bool (None for missing)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def ring_graph(sub: RingGraph) -> nx.Graph:
    """A ring's subgraph (:func:`analysis.queries.ring_subgraph`) as a networkx Graph with
    string node ids ``kind:raw id`` and plain attributes."""
    g = nx.Graph(name=sub.ring_id)
    key_of = {}
    attrs = ["kind", "key", "in_ring", "account_type", "partner_id", "profile_reads",
             "untied_users", "untied_records", "first_seen", "last_seen", "accounts"]
    for r in sub.nodes.to_dict("records"):
        nid = _node_id(r["kind"], r["key"])
        key_of[r["node"]] = nid
        a = {k: _plain(r.get(k)) for k in attrs}
        a["label"] = str(r["key"])
        g.add_node(nid, **{k: v for k, v in a.items() if v is not None})
    for r in sub.edges.to_dict("records"):
        if r["u"] in key_of and r["v"] in key_of:
            a = {"kind": r["kind"], "weight": float(r["weight"]), "events": int(r["n"]),
                 "first_seen": _plain(pd.Timestamp(r["first_seen"]))
                 if pd.notna(r["first_seen"]) else None,
                 "last_seen": _plain(pd.Timestamp(r["last_seen"]))
                 if pd.notna(r["last_seen"]) else None}
            g.add_edge(key_of[r["u"]], key_of[r["v"]],
                       **{k: v for k, v in a.items() if v is not None})
    return g


def to_neo4j_frames(g: nx.Graph) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The graph as neo4j-admin import tables: (nodes, relationships).

    >>> g = nx.Graph()
    >>> g.add_node("account:a1", kind="account", key="a1", in_ring=True)
    >>> g.add_node("device:d1", kind="device", key="d1")
    >>> g.add_edge("account:a1", "device:d1", kind="device", weight=1.0, events=3)
    >>> n, r = to_neo4j_frames(g)
    >>> list(n.columns)[:3], n[":LABEL"].tolist()
    (['id:ID', 'key', 'kind'], ['Account', 'Device'])
    >>> r[[":START_ID", ":END_ID", ":TYPE"]].values.tolist()
    [['account:a1', 'device:d1', 'USES_DEVICE']]
    """
    nodes = pd.DataFrame([{
        "id:ID": n, "key": a.get("key", ""), "kind": a.get("kind", ""),
        "account_type": a.get("account_type", ""), "partner_id": a.get("partner_id", ""),
        "in_ring:boolean": "true" if a.get("in_ring") else "false",
        "profiles_read:long": a.get("profile_reads", ""),
        "untied_users:long": a.get("untied_users", ""),
        ":LABEL": LABELS.get(a.get("kind"), "Entity")} for n, a in g.nodes(data=True)])
    rels = []
    for u, v, a in g.edges(data=True):
        # Accounts start the relationship: (account)-[:USES_DEVICE]->(device).
        if g.nodes[u].get("kind") != "account":
            u, v = v, u
        rels.append({":START_ID": u, ":END_ID": v, ":TYPE": TYPES.get(a.get("kind"), "LINKED"),
                     "weight:double": a.get("weight", ""), "events:long": a.get("events", ""),
                     "first_seen": a.get("first_seen", ""), "last_seen": a.get("last_seen", "")})
    rel_cols = [":START_ID", ":END_ID", ":TYPE", "weight:double", "events:long", "first_seen",
                "last_seen"]
    return nodes, pd.DataFrame(rels, columns=rel_cols)


def export_ring(findings: Findings, ring: int | str | None, folder: str | Path, *,
                hops: int = 1) -> list[Path]:
    """Write one ring's subgraph into ``folder/<ring_key or ring_id>/``: ``ring.gexf``,
    ``ring.graphml`` and ``neo4j/nodes.csv``, ``neo4j/relationships.csv``.

    ``ring`` is a ring key, a ring id or a rank (None: the top flagged ring);
    ``hops=2`` adds the other accounts on the ring's devices and IPs. Real ids:
    the investigator's files. Raises ValueError for a ring not in the run.
    """
    ring_id = resolve_handoff_ring(findings, ring)
    if ring_id is None:
        raise ValueError("no candidate ring in this run to hand off")
    rings = findings.rings.rings
    name = ring_id
    if "ring_key" in rings:
        name = str(rings.loc[rings["ring_id"] == ring_id, "ring_key"].iloc[0])
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or len(name) > 100:
        # A key read from --previous's ring_keys.csv names a folder: never a path.
        raise ValueError(f"--handoff {ring}: ring key {name[:60]!r} (carried over from "
                         f"--previous's ring_keys.csv) is not a plain name; fix that file")
    g = ring_graph(ring_subgraph(findings, ring_id, hops=hops))
    where = Path(folder) / name
    (where / "neo4j").mkdir(parents=True, exist_ok=True)
    paths = []
    for fname, writer in (("ring.gexf", nx.write_gexf), ("ring.graphml", nx.write_graphml)):
        tmp = where / (fname + ".part")
        writer(g, str(tmp))
        tmp.replace(where / fname)
        paths.append(where / fname)
    nodes, rels = to_neo4j_frames(g)
    paths.append(write_csv(nodes, where / "neo4j" / "nodes.csv"))
    paths.append(write_csv(rels, where / "neo4j" / "relationships.csv"))
    return paths
