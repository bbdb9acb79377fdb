"""Questions asked of a run's findings: one ring's members, network, evidence and days;
across rings, the records harvested, the distinct users exposed and the partners implicated.

Pure functions over :class:`~analysis.findings.Findings` and, where events are
needed, the run's :class:`~analysis.workspace.Workspace`. They return
DataFrames (and a :class:`RingGraph`); :mod:`analysis.charts` turns them into
figures. These tables keep the **real ids**: they are the investigator's
evidence. Management outputs go through :mod:`analysis.pseudonym` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .aggregate import ET, as_of_bound, daily_activity, ensure_ties
from .contract import EVENT_TYPES
from .facts import fact, group_users
from .findings import Findings, flagged_rings, split_ids
from .workspace import Workspace

__all__ = ["RingGraph", "resolve_ring", "ring_choices", "ring_row", "ring_members",
           "ring_subgraph", "node_scores", "node_neighbours", "expand_node", "filter_graph",
           "evidence_table", "ring_daily", "partner_staff", "records_by_ring",
           "users_exposed", "partners_implicated", "Lookup", "find_id", "account_timeline",
           "strangers_read"]


# -- which ring -----------------------------------------------------------------------------

def ring_choices(findings: Findings) -> list[tuple[str, str]]:
    """(label, ring_id) for every candidate ring, best first: for a picker widget."""
    out = []
    for r in findings.rings.rings.itertuples(index=False):
        flag = "flagged" if bool(r.flagged) else "not flagged"
        key = f"{r.ring_key} ({r.status}) · " if hasattr(r, "ring_key") else ""
        out.append((f"{key}{r.ring_id} · score {r.score:.2f} · "
                    f"{r.n_accounts} account{'' if r.n_accounts == 1 else 's'} · {flag}",
                    r.ring_id))
    return out


def resolve_ring(findings: Findings, ring: int | str | None = None) -> str | None:
    """The ring id meant by ``ring``: a rank (1 = top), a ring id, or None (the top flagged ring,
    else the top candidate). None when the run has no candidate rings.

    Raises ValueError for a rank or id that is not in the run.
    """
    rings = findings.rings.rings
    if len(rings) == 0:
        if ring in (None, "", 1, "1"):
            return None
        raise ValueError(f"ring {ring!r} not found: this run has no candidate rings")
    if ring is None or ring == "":
        flagged = flagged_rings(rings)
        return str((flagged if len(flagged) else rings)["ring_id"].iloc[0])
    if isinstance(ring, (int, np.integer)) or str(ring).strip().isdigit():
        hit = rings[rings["rank"] == int(ring)]
    else:
        hit = rings[rings["ring_id"] == str(ring).strip()]
    if hit.empty:
        raise ValueError(f"ring {ring!r} not found; this run has {len(rings)} candidate rings "
                         f"(ranks 1–{len(rings)})")
    return str(hit["ring_id"].iloc[0])


def ring_row(findings: Findings, ring_id: str) -> pd.Series:
    rings = findings.rings.rings
    hit = rings[rings["ring_id"] == ring_id]
    if hit.empty:
        raise ValueError(f"ring {ring_id!r} not found")
    return hit.iloc[0]


def ring_members(findings: Findings, ring_id: str) -> pd.DataFrame:
    """The members of one ring with their signals (one row per account, ``aid`` kept)."""
    m = findings.rings.members
    m = m[m["ring_id"] == ring_id]
    sig = findings.signals.set_index("aid")
    cols = [c for c in sig.columns if c not in ("account_id", "account_type", "partner_id")]
    return m.join(sig[cols], on="aid").reset_index(drop=True)


# -- the network ----------------------------------------------------------------------------

@dataclass
class RingGraph:
    """A ring's subgraph: ``nodes`` and ``edges`` (see :func:`ring_subgraph`)."""

    ring_id: str
    nodes: pd.DataFrame
    edges: pd.DataFrame
    hops: int
    left_out: int = 0
    #: Devices and IPs used by one account only, folded into that account's counts
    #: (``own_devices``, ``own_ips`` on its node) instead of drawn.
    folded: dict[str, int] = field(default_factory=dict)
    #: Shared devices and IPs not drawn because of the cap (``max_entities``).
    entities_left_out: int = 0
    #: Every device and IP the ring's accounts used (hubs included): the ring's facts.
    totals: dict[str, int] = field(default_factory=dict)
    #: Nodes opened by hand (:func:`expand_node`), as (kind, key), and how many of their
    #: neighbours the cap left out.
    opened: list[tuple[str, str]] = field(default_factory=list)
    opened_left_out: int = 0
    #: Nodes the filter hides (:func:`filter_graph`), by kind; ring accounts as "ring
    #: accounts", opened nodes (whatever their kind) as "opened".
    hidden: dict[str, int] = field(default_factory=dict)
    #: The ring's partners the filter hides (still named in the picture's title).
    hidden_partners: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        n = self.nodes
        return {"ring accounts": int(n["in_ring"].sum()),
                "other accounts": int(((n["kind"] == "account") & ~n["in_ring"]).sum()),
                "devices": int((n["kind"] == "device").sum()),
                "ips": int((n["kind"] == "ip").sum()),
                "partners": int((n["kind"] == "partner").sum())}


#: Most shared devices and IPs a ring's network draws (the busiest for the ring first).
MAX_ENTITIES = 200


def ring_subgraph(findings: Findings, ring_id: str, hops: int = 1, *, max_accounts: int = 150,
                  through_partners: bool = False,
                  max_entities: int = MAX_ENTITIES) -> RingGraph:
    """The ring's accounts and what links them, optionally with their neighbourhood.

    Parameters
    ----------
    hops : 1 = the ring's accounts and the devices, IPs and partners they use;
        2 = also the other accounts on those devices and IPs (the 2-hop
        neighbourhood of the ring's accounts).
    max_accounts : at most this many outside accounts are added (those with the
        most events on the shared devices and IPs first); ``left_out`` counts the rest.
    through_partners : at 2 hops, also add every account of the ring's partners.
    max_entities : at most this many shared devices and IPs are kept (those used by
        most of the drawn accounts first); ``entities_left_out`` counts the rest.
        Devices and IPs used by a single account are folded into that account's
        ``own_devices`` and ``own_ips`` (``folded`` counts them), so a ring of
        thousands of one-off IPs still draws its accounts, not a cloud of IPs.

    Returns
    -------
    RingGraph whose ``nodes`` have: node, kind, key (raw id), in_ring, hop
    (0 ring account, 1 device/IP/partner, 2 outside account), account_type,
    partner_id, and for accounts their activity (n_events, profile_reads,
    untied_users, untied_records, first_seen, last_seen); ``accounts`` for
    devices, IPs and partners is how many accounts use them in the whole graph.
    Hubs (devices or IPs over the hub degree) are not in the graph and so not here.
    """
    if hops not in (1, 2):
        raise ValueError("hops must be 1 or 2")
    g = findings.graph
    members = findings.rings.members
    aids = members.loc[members["ring_id"] == ring_id, "aid"].to_numpy()
    if len(aids) == 0:
        raise ValueError(f"ring {ring_id!r} has no members in this run")
    e = g.edges
    first = e[e["u"].isin(aids)]
    ents = first["v"].unique()
    left_out = 0
    outside = np.array([], dtype=np.int64)
    if hops == 2:
        via = first["v"][first["kind"].isin(["device", "ip"] + (["partner"] if through_partners
                                                                  else []))].unique()
        second = e[e["v"].isin(via) & ~e["u"].isin(aids)]
        weight = second.groupby("u")["n"].sum().sort_values(ascending=False, kind="stable")
        left_out = max(0, len(weight) - max_accounts)
        outside = weight.index.to_numpy()[:max_accounts]
    keep_acc = np.concatenate([aids, outside])
    cand = e[e["u"].isin(keep_acc) & e["v"].isin(ents)]
    # A device or IP that only one account uses (in the whole graph) says nothing about who
    # operates together: fold it into that account's counts.
    deg = g.nodes.set_index("node")["degree"]
    is_ent = cand["kind"].isin(["device", "ip"]).to_numpy()
    single = is_ent & (deg.reindex(cand["v"]).to_numpy() <= 1)
    own = cand[single]
    folded = {k: int(own.loc[own["kind"] == k, "v"].nunique()) for k in ("device", "ip")}
    cand = cand[~single]
    ent_use = (cand[cand["kind"].isin(["device", "ip"])].groupby("v")["u"].nunique()
               .sort_values(ascending=False, kind="stable"))
    entities_left_out = max(0, len(ent_use) - max_entities)
    dropped = set(ent_use.index[max_entities:].tolist())
    dropped |= set(own["v"].tolist())
    keep_ents = [v for v in ents.tolist() if v not in dropped]
    nodes_set = set(keep_acc.tolist()) | set(keep_ents)
    edges = cand[cand["v"].isin(keep_ents)].copy()
    nodes = _describe_nodes(findings, list(nodes_set), aids)
    for k, col in (("device", "own_devices"), ("ip", "own_ips")):
        n_own = own[own["kind"] == k].groupby("u")["v"].nunique()
        nodes[col] = (nodes["node"].map(n_own).fillna(0).astype("int64")
                      .where(nodes["kind"] == "account", 0))
    nodes = nodes.sort_values(["hop", "kind", "node"], kind="stable").reset_index(drop=True)
    row = fact(findings, ring_id)
    if row is not None:
        totals = {"device": int(row["devices"]), "ip": int(row["ips"])}
    else:   # findings without facts: what the graph holds (hubs are not in it)
        ring_links = first[first["kind"].isin(["device", "ip"])]
        totals = {k: int(ring_links.loc[ring_links["kind"] == k, "v"].nunique())
                  for k in ("device", "ip")}
    return RingGraph(ring_id=ring_id, nodes=nodes, edges=edges.reset_index(drop=True), hops=hops,
                     left_out=int(left_out), folded=folded,
                     entities_left_out=int(entities_left_out), totals=totals)


def _describe_nodes(findings: Findings, node_ids, ring_aids) -> pd.DataFrame:
    """Graph nodes as :class:`RingGraph` rows: kind, key, accounts, in_ring, hop, the account's
    activity, the partner's name and type, and ``score`` (:func:`node_scores`)."""
    g = findings.graph
    nodes = g.nodes[g.nodes["node"].isin(list(node_ids))].copy()
    nodes = nodes.rename(columns={"degree": "accounts"})
    nodes["in_ring"] = nodes["node"].isin(np.asarray(ring_aids))
    nodes["hop"] = np.where(nodes["in_ring"], 0, np.where(nodes["kind"] == "account", 2, 1))
    sig = findings.signals.set_index("aid")
    cols = ["account_type", "partner_id", "n_events", "profile_reads", "untied_users",
            "untied_records", "coupon_claims", "first_seen", "last_seen"]
    info = sig[cols].reindex(nodes["node"].where(nodes["kind"] == "account"))
    for c in cols:
        nodes[c] = info[c].to_numpy()
    part = findings.aggregates.partners.set_index("partner_id")
    is_p = nodes["kind"] == "partner"
    if is_p.any() and len(part):
        nodes.loc[is_p, "partner_id"] = nodes.loc[is_p, "key"]
        nodes["partner_name"] = nodes["partner_id"].map(part["name"]).where(is_p)
        nodes["partner_type"] = nodes["partner_id"].map(part["partner_type"]).where(is_p)
    else:
        nodes["partner_name"] = None
        nodes["partner_type"] = None
    nodes.loc[nodes["kind"] == "account", "accounts"] = 1
    nodes["score"] = node_scores(findings, nodes["node"].to_numpy()).to_numpy()
    return nodes


def _account_scores(findings: Findings) -> pd.Series:
    """Per account (aid): how many times its type's baseline it harvested, the larger of its
    ``harvest_ratio`` and ``coupon_merchants_ratio`` (0 when it has neither)."""
    sig = findings.signals
    cols = [c for c in ("harvest_ratio", "coupon_merchants_ratio") if c in sig]
    if not cols:
        return pd.Series(0.0, index=sig["aid"].to_numpy())
    score = sig[cols].astype(float).max(axis=1).fillna(0.0).to_numpy()
    return pd.Series(score, index=sig["aid"].to_numpy())


def node_scores(findings: Findings, node_ids) -> pd.Series:
    """A score per graph node, one scale for every kind, to filter a network by: an account's
    is how many times its type's baseline it harvested (the larger of ``harvest_ratio`` and
    ``coupon_merchants_ratio``); a device's, IP's or partner's is the highest score of the
    accounts that use it in the graph (hubs are not in it)."""
    node_ids = np.asarray(node_ids, dtype=np.int64)
    g = findings.graph
    acc = _account_scores(findings)
    kind = g.nodes.set_index("node")["kind"].reindex(node_ids)
    out = pd.Series(0.0, index=node_ids)
    is_acc = (kind == "account").to_numpy()
    out[is_acc] = acc.reindex(node_ids[is_acc]).fillna(0.0).to_numpy()
    ents = node_ids[~is_acc]
    if len(ents):
        e = g.edges[g.edges["v"].isin(ents)]
        best = acc.reindex(e["u"]).fillna(0.0).groupby(e["v"].to_numpy()).max()
        out[~is_acc] = best.reindex(ents).fillna(0.0).to_numpy()
    return out


#: Most neighbours one expansion adds (the highest-scoring first): a device shared by
#: hundreds of accounts opens a readable picture, and says how many it left out.
MAX_EXPAND = 100


def _node_id(findings: Findings, node, within: pd.DataFrame | None = None) -> int:
    """A graph node from its number or its raw id (account, device, IP or partner id); a raw
    id held by several kinds is taken from ``within`` (the drawn nodes) first."""
    if isinstance(node, (int, np.integer)):
        return int(node)
    value = str(node).strip()
    for table in ([within] if within is not None else []) + [findings.graph.nodes]:
        hit = table[table["key"].astype(str) == value]
        if len(hit):
            order = {"account": 0, "device": 1, "ip": 2, "partner": 3}
            return int(hit.sort_values("kind", key=lambda k: k.map(order),
                                       kind="stable")["node"].iloc[0])
    raise ValueError(f"{value!r}: no account, device, IP or partner of this run has this id "
                     "(hubs are not in the graph)")


def node_neighbours(findings: Findings, node) -> pd.DataFrame:
    """A node's neighbours in the entity graph: an account's devices, IPs and partner, or the
    accounts of a device, IP or partner. Columns: node, kind, key, events (on the link),
    score (:func:`node_scores`), ring_id; highest score first, then most events."""
    g = findings.graph
    nid = _node_id(findings, node)
    e = g.edges
    links = e[(e["u"] == nid) | (e["v"] == nid)]
    other = np.where(links["u"].to_numpy() == nid, links["v"].to_numpy(), links["u"].to_numpy())
    nb = pd.DataFrame({"node": other.astype(np.int64), "events": links["n"].to_numpy()})
    nb = nb.groupby("node", as_index=False)["events"].sum()
    info = g.nodes.set_index("node").reindex(nb["node"])
    nb["kind"] = info["kind"].to_numpy()
    nb["key"] = info["key"].to_numpy()
    nb["score"] = node_scores(findings, nb["node"].to_numpy()).to_numpy()
    m = findings.rings.members
    nb["ring_id"] = nb["node"].map(pd.Series(m["ring_id"].to_numpy(), index=m["aid"].to_numpy()))
    nb = nb.sort_values(["score", "events", "node"], ascending=[False, False, True],
                        kind="stable").reset_index(drop=True)
    return nb[["node", "kind", "key", "events", "score", "ring_id"]]


def expand_node(findings: Findings, sub: RingGraph, node, *,
                max_new: int = MAX_EXPAND) -> RingGraph:
    """Open a node of a ring's network: its neighbours are added (the ``max_new``
    highest-scoring first; ``opened_left_out`` counts the rest) with their links to what is
    already drawn. ``node`` is a graph node number or a raw id. The ring's own figures
    (``totals``) are unchanged; added nodes are flagged ``opened``, and a ring account's
    one-account devices and IPs drawn by opening it leave ``folded``.

    Works on a ring of thousands of entities: one pass over the graph's links per call.
    """
    nid = _node_id(findings, node, sub.nodes)
    nb = node_neighbours(findings, nid)
    drawn = set(sub.nodes["node"].astype(int))
    new = nb[~nb["node"].isin(drawn)]
    left = max(0, len(new) - max_new)
    new = new.head(max_new)
    keep = drawn | set(new["node"].astype(int)) | {nid}
    aids = findings.rings.members.loc[findings.rings.members["ring_id"] == sub.ring_id, "aid"]
    nodes = sub.nodes.copy()
    if "opened" not in nodes:
        nodes["opened"] = False
    add_ids = set(new["node"].astype(int)) | ({nid} - drawn)
    folded = dict(sub.folded)
    if add_ids:
        extra = _describe_nodes(findings, sorted(add_ids), aids.to_numpy())
        # A ring account's one-account devices and IPs, drawn now, are no longer folded.
        if bool(nodes.loc[nodes["node"] == nid, "in_ring"].any()):
            mine = extra[extra["kind"].isin(["device", "ip"]) & (extra["accounts"] == 1)]
            for kind, n in mine["kind"].value_counts().items():
                folded[kind] = max(0, folded.get(kind, 0) - int(n))
        for col in ("own_devices", "own_ips"):
            extra[col] = 0
        extra["opened"] = True
        nodes = pd.concat([nodes, extra[[c for c in nodes.columns if c in extra]]],
                          ignore_index=True)
    e = findings.graph.edges
    added = list(add_ids)
    new_edges = e[(e["u"].isin(added) & e["v"].isin(list(keep)))
                  | (e["v"].isin(added) & e["u"].isin(list(keep)))
                  | ((e["u"] == nid) & e["v"].isin(list(keep)))
                  | ((e["v"] == nid) & e["u"].isin(list(keep)))]
    edges = pd.concat([sub.edges, new_edges], ignore_index=True).drop_duplicates(
        subset=["u", "v", "kind"]).reset_index(drop=True)
    key = nodes.loc[nodes["node"] == nid].iloc[0]
    return replace(sub, nodes=nodes.reset_index(drop=True), edges=edges, folded=folded,
                   opened=list(sub.opened) + [(str(key["kind"]), str(key["key"]))],
                   opened_left_out=sub.opened_left_out + int(left))


def filter_graph(sub: RingGraph, *, kinds=None, min_score: float | None = None) -> RingGraph:
    """A ring's network with only the nodes of ``kinds`` (account, device, ip, partner) whose
    score (:func:`node_scores`) is at least ``min_score``; links follow their nodes and
    ``hidden`` counts what the filter took away, by kind."""
    nodes = sub.nodes
    keep = np.ones(len(nodes), dtype=bool)
    if kinds is not None:
        keep &= nodes["kind"].isin(list(kinds)).to_numpy()
    if min_score is not None and min_score > 0 and "score" in nodes:
        keep &= nodes["score"].fillna(0.0).to_numpy() >= float(min_score)
    gone = nodes[~keep]
    hidden = dict(sub.hidden)
    opened = (gone["opened"].fillna(False).astype(bool) if "opened" in gone
              else pd.Series(False, index=gone.index))
    if opened.any():
        hidden["opened"] = hidden.get("opened", 0) + int(opened.sum())
    for k, n in gone.loc[~gone["in_ring"] & ~opened, "kind"].value_counts().items():
        hidden[str(k)] = hidden.get(str(k), 0) + int(n)
    if gone["in_ring"].any():
        hidden["ring accounts"] = hidden.get("ring accounts", 0) + int(gone["in_ring"].sum())
    kept = nodes[keep]
    ids = kept["node"]
    lost = gone[(gone["kind"] == "partner") & ~opened]
    partners = sorted(set(sub.hidden_partners) | set(lost["key"].astype(str)))
    edges = sub.edges[sub.edges["u"].isin(ids) & sub.edges["v"].isin(ids)]
    return replace(sub, nodes=kept.reset_index(drop=True), edges=edges.reset_index(drop=True),
                   hidden=hidden, hidden_partners=partners)


# -- evidence -------------------------------------------------------------------------------

def _harvester(m: pd.DataFrame, findings: Findings) -> np.ndarray:
    return m["harvest_ratio"].to_numpy(dtype=float) >= findings.rings.params.harvest_factor


def evidence_table(findings: Findings, ring_id: str) -> pd.DataFrame:
    """What each account of the ring did, with first and last seen (real ids).

    One row per member: account_id, account_type, partner_id, role (harvester:
    its own reads of users with no tie are over the harvest threshold; crew:
    it operates with the harvesters), account_score, first_seen, last_seen,
    active_days, events, profiles_read, untied_users (users read with no
    business tie), untied_records, coupon_claims, coupon_no_order, devices,
    ips, shared_devices and shared_ips (used by two or more ring accounts),
    hours_active and ``what_it_did`` in words.
    """
    m = ring_members(findings, ring_id)
    g = findings.graph
    links = g.edges[g.edges["kind"].isin(["device", "ip"]) & g.edges["u"].isin(m["aid"])]
    shared = links.groupby("v")["u"].transform("size") >= 2
    sh = links[shared.to_numpy()].groupby(["u", "kind"]).size().unstack(fill_value=0)
    for k in ("device", "ip"):
        if k not in sh.columns:
            sh[k] = 0
    role = np.where(_harvester(m, findings), "harvester", "crew")
    out = pd.DataFrame({
        "account_id": m["account_id"], "account_type": m["account_type"],
        "partner_id": m["partner_id"], "role": role, "account_score": m["account_score"],
        "first_seen": m["first_seen"], "last_seen": m["last_seen"],
        "active_days": m["active_days"].astype("int64"), "events": m["n_events"].astype("int64"),
        "profiles_read": m["profile_reads"].astype("int64"),
        "untied_users": m["untied_users"].astype("int64"),
        "untied_records": m["untied_records"].astype("int64"),
        "coupon_claims": m["coupon_claims"].astype("int64"),
        "coupon_no_order": m["coupon_no_order"].astype("int64"),
        "devices": m["n_devices"].astype("int64"), "ips": m["n_ips"].astype("int64"),
        "shared_devices": sh["device"].reindex(m["aid"]).fillna(0).astype("int64").to_numpy(),
        "shared_ips": sh["ip"].reindex(m["aid"]).fillna(0).astype("int64").to_numpy(),
        "hours_active": m["hours_active"].astype("int64"),
    })
    did = []
    for r, pace in zip(out.itertuples(index=False), m["pacing_ratio"].to_numpy(dtype=float)):
        parts = []
        if r.profiles_read:
            parts.append(f"read {r.profiles_read:,} profiles, of {r.untied_users:,} users with "
                         "no business tie")
        if r.untied_records:
            parts.append(f"{r.untied_records:,} user records with no tie")
        if r.coupon_claims:
            parts.append(f"claimed {r.coupon_claims:,} coupons ({r.coupon_no_order:,} where it "
                         "never ordered)")
        if r.shared_devices or r.shared_ips:
            parts.append(f"shares {r.shared_devices} device(s) and {r.shared_ips} IP(s) with the "
                         "ring")
        if pace >= 1:
            parts.append("machine-paced")
        if r.hours_active >= 20:
            parts.append(f"active in {r.hours_active} of 24 hours")
        did.append("; ".join(parts) or f"{r.events:,} events, no reads")
    out["what_it_did"] = did
    return out.reset_index(drop=True)


def ring_daily(con: Workspace, findings: Findings, ring_id: str) -> pd.DataFrame:
    """Per day, the ring's activity: events, profile_reads, records_read, untied_reads,
    untied_records (records harvested) and accounts_active. Days without events are 0."""
    aids = findings.rings.members.loc[findings.rings.members["ring_id"] == ring_id, "aid"]
    d = daily_activity(con, aids.tolist(), findings.params.as_of)
    cols = ["events", "profile_reads", "records_read", "untied_reads", "untied_records"]
    if d.empty:
        return pd.DataFrame(columns=["day"] + cols + ["accounts_active"])
    day = d.groupby("day")[cols].sum()
    day["accounts_active"] = d.groupby("day")["aid"].nunique()
    day.index = pd.to_datetime(day.index)
    full = pd.date_range(day.index.min(), day.index.max(), freq="D")
    day = day.reindex(full, fill_value=0)
    day.index.name = "day"
    return day.reset_index().astype({c: "int64" for c in cols + ["accounts_active"]})


def partner_staff(findings: Findings, ring_id: str) -> pd.DataFrame:
    """The staff of the ring's partners, ring members and the rest side by side.

    One row per ``partner_staff`` account of each partner in the ring's
    ``partner_ids``: partner_id, account_id, in_ring, profiles_read,
    untied_reads, untied_share, untied_users, untied_records, devices, ips,
    device_share (most accounts on one of its devices), hours_active,
    first_seen, last_seen. Ring members first, then by untied users.
    """
    row = ring_row(findings, ring_id)
    pids = split_ids(row["partner_ids"])
    sig = findings.signals
    staff = sig[(sig["account_type"] == "partner_staff") & sig["partner_id"].isin(pids)]
    members = set(findings.rings.members.loc[findings.rings.members["ring_id"] == ring_id, "aid"])
    out = pd.DataFrame({
        "partner_id": staff["partner_id"], "account_id": staff["account_id"],
        "in_ring": staff["aid"].isin(members),
        "profiles_read": staff["profile_reads"].astype("int64"),
        "untied_reads": staff["untied_reads"].astype("int64"),
        "untied_share": staff["untied_share"].astype(float),
        "untied_users": staff["untied_users"].astype("int64"),
        "untied_records": staff["untied_records"].astype("int64"),
        "devices": staff["n_devices"].astype("int64"), "ips": staff["n_ips"].astype("int64"),
        "device_share": staff["device_share"].astype("int64"),
        "hours_active": staff["hours_active"].astype("int64"),
        "first_seen": staff["first_seen"], "last_seen": staff["last_seen"],
    })
    return out.sort_values(["partner_id", "in_ring", "untied_users", "account_id"],
                           ascending=[True, False, False, True], kind="stable").reset_index(drop=True)


# -- across rings (management) ---------------------------------------------------------------

def _rings_of_interest(findings: Findings, flagged_only: bool) -> pd.DataFrame:
    rings = findings.rings.rings
    return flagged_rings(rings) if flagged_only else rings


def records_by_ring(con: Workspace, findings: Findings, flagged_only: bool = True) -> pd.DataFrame:
    """Per ring and day: profile_reads, untied_reads and untied_records (records harvested)."""
    rings = _rings_of_interest(findings, flagged_only)
    m = findings.rings.members
    m = m[m["ring_id"].isin(rings["ring_id"])]
    cols = ["profile_reads", "untied_reads", "untied_records"]
    if m.empty:
        return pd.DataFrame(columns=["ring_id", "day"] + cols)
    d = daily_activity(con, m["aid"].tolist(), findings.params.as_of)
    d = d.merge(m[["aid", "ring_id"]], on="aid")
    out = d.groupby(["ring_id", "day"])[cols].sum().reset_index()
    out["day"] = pd.to_datetime(out["day"])
    return out.astype({c: "int64" for c in cols})


def users_exposed(con: Workspace, findings: Findings, flagged_only: bool = True) -> pd.DataFrame:
    """Distinct users whose profiles the rings read with no business tie, cumulated by day.

    Columns ring_id ("all" for the union over the rings), day, new_users,
    users (cumulative distinct users exposed up to and including that day).
    """
    rings = _rings_of_interest(findings, flagged_only)
    m = findings.rings.members
    m = m[m["ring_id"].isin(rings["ring_id"])]
    cols = ["ring_id", "day", "new_users", "users"]
    if m.empty:
        return pd.DataFrame(columns=cols)
    bound = as_of_bound(findings.params.as_of)
    cut = f"e.ts < TIMESTAMP '{bound.isoformat(sep=' ')}'" if bound else "TRUE"
    ensure_ties(con, findings.params.as_of)
    con.execute("CREATE OR REPLACE TEMP TABLE sel_ring AS "
                "SELECT unnest(?::INTEGER[]) AS aid, unnest(?::VARCHAR[]) AS ring_id",
                [m["aid"].astype(int).tolist(), m["ring_id"].astype(str).tolist()])
    first = con.execute(f"""
        SELECT s.ring_id, e.tid, min(CAST(e.ts AS DATE)) AS day
        FROM ev e JOIN sel_ring s ON s.aid = e.aid
        JOIN profile_pairs pp ON pp.aid = e.aid AND pp.tid = e.tid
        WHERE e.et = {ET['view_profile']} AND NOT pp.tied AND {cut}
        GROUP BY s.ring_id, e.tid
    """).df()
    con.execute("DROP TABLE IF EXISTS sel_ring")
    if first.empty:
        return pd.DataFrame(columns=cols)
    allr = first.groupby("tid")["day"].min().reset_index().assign(ring_id="all")
    parts = []
    for rid, grp in pd.concat([first, allr]).groupby("ring_id", sort=True):
        c = grp.groupby("day").size().rename("new_users").sort_index()
        parts.append(pd.DataFrame({"ring_id": rid, "day": pd.to_datetime(c.index),
                                   "new_users": c.to_numpy(),
                                   "users": c.cumsum().to_numpy()}))
    return pd.concat(parts, ignore_index=True)[cols]


def partners_implicated(findings: Findings, con: Workspace | None = None) -> pd.DataFrame:
    """Partners linked to flagged rings: partner_id, name, partner_type, rings, n_rings,
    staff_in_rings (its staff who are ring members), records_harvested (summed over its
    rings: their members are disjoint), untied_users (**distinct** users its rings read with
    no tie, with ``con``; without it the sum of its rings' distinct users), first_seen,
    last_seen."""
    flagged = findings.flagged
    cols = ["partner_id", "name", "partner_type", "rings", "n_rings", "staff_in_rings",
            "records_harvested", "untied_users", "first_seen", "last_seen"]
    rows = []
    for r in flagged.itertuples(index=False):
        for pid in split_ids(r.partner_ids):
            rows.append((pid, r.ring_id, r.records_harvested, r.untied_users, r.first_seen,
                         r.last_seen))
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows, columns=["partner_id", "ring_id", "records", "users", "first",
                                     "last"])
    m = findings.rings.members
    staff = m[(m["account_type"] == "partner_staff") & m["ring_id"].isin(flagged["ring_id"])]
    staff_n = staff.groupby("partner_id").size()
    g = df.groupby("partner_id").agg(
        rings=("ring_id", lambda s: ";".join(sorted(s))), n_rings=("ring_id", "size"),
        records_harvested=("records", "sum"), untied_users=("users", "sum"),
        first_seen=("first", "min"), last_seen=("last", "max"))
    if con is not None:
        groups = df[["partner_id", "ring_id"]].merge(m[["ring_id", "aid"]], on="ring_id")
        users = group_users(con, findings, groups.rename(columns={"partner_id": "group"}))
        g["untied_users"] = [users.get(str(p), 0) for p in g.index]
    g["staff_in_rings"] = staff_n.reindex(g.index).fillna(0).astype("int64")
    p = findings.aggregates.partners.set_index("partner_id")[["name", "partner_type"]]
    g = g.join(p, how="left").reset_index()
    return g[cols].sort_values(["records_harvested", "partner_id"], ascending=[False, True],
                               kind="stable").reset_index(drop=True)


# -- search by id (investigator) ------------------------------------------------------------

@dataclass
class Lookup:
    """What the run knows about one id (see :func:`find_id`): real ids, investigator only.

    ``kind`` is account, device, ip or partner (None when nothing has that id);
    ``rings`` the rings it is in (an account) or whose accounts use it, with rank and flag;
    ``neighbours`` the devices, IPs and partner of an account, or the accounts of a device,
    IP or partner; ``evidence`` an account's evidence row (its ring's, else its own
    measures), or per account how it used the device or IP.
    """

    id: str
    kind: str | None = None
    node: int | None = None
    community: int | None = None
    hub: bool = False
    rings: pd.DataFrame = field(default_factory=pd.DataFrame)
    neighbours: pd.DataFrame = field(default_factory=pd.DataFrame)
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Other kinds that hold the same id (an IP used as a device id, say).
    also: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The answer in a few words."""
        if self.kind is None:
            return f"{self.id!r}: no account, device, IP or partner of this run has this id"
        what = {"ip": "IP"}.get(self.kind, self.kind)
        where = (", ".join(f"{r.ring_id} ({'flagged' if r.flagged else 'not flagged'})"
                           for r in self.rings.itertuples(index=False))
                 or "no candidate ring")
        comm = f"community {self.community}" if self.community is not None else "no community"
        n = len(self.neighbours)
        near = {"account": "devices, IPs and partner", "partner": "accounts"}.get(
            self.kind, "accounts")
        hub = " (a hub: left out of the graph)" if self.hub else ""
        also = f"; the id is also a {', '.join(self.also)}" if self.also else ""
        return f"{what} {self.id}{hub}: in {where}; {comm}; {n:,} {near}{also}"


_SIGNAL_EVIDENCE = ["account_id", "account_type", "partner_id", "first_seen", "last_seen",
                    "active_days", "n_events", "profile_reads", "untied_users", "untied_records",
                    "coupon_claims", "n_devices", "n_ips", "harvest_ratio"]


def _ring_table(findings: Findings, ring_ids) -> pd.DataFrame:
    rings = findings.rings.rings
    cols = [c for c in ("ring_id", "ring_key", "rank", "flagged", "score", "n_accounts",
                        "records_harvested", "untied_users") if c in rings]
    hit = rings[rings["ring_id"].isin(list(ring_ids))]
    return hit[cols].sort_values("rank", kind="stable").reset_index(drop=True)


def _offset(g, links: pd.DataFrame, key: str, kind: str) -> int:
    """Graph node of a device or IP = its ``did``/``iid`` + this (see :func:`build_graph`)."""
    nodes = g.nodes.loc[g.nodes["kind"] == kind, "node"]
    return int(nodes.min()) - int(links[key].min()) if len(nodes) else 0


def _entity_lookup(findings: Findings, hit: pd.Series, ring_of: pd.Series) -> Lookup:
    g, agg = findings.graph, findings.aggregates
    kind = str(hit["kind"])
    links, key = (agg.device_links, "did") if kind == "device" else (agg.ip_links, "iid")
    use = links[links[key] == int(hit["node"]) - _offset(g, links, key, kind)]
    acc = findings.signals.set_index("aid")
    nb = pd.DataFrame({
        "account_id": acc["account_id"].reindex(use["aid"]).to_numpy(),
        "account_type": acc["account_type"].reindex(use["aid"]).to_numpy(),
        "partner_id": acc["partner_id"].reindex(use["aid"]).to_numpy(),
        "ring_id": ring_of.reindex(use["aid"]).to_numpy(),
        "events": use["n"].to_numpy(), "first_seen": use["first_seen"].to_numpy(),
        "last_seen": use["last_seen"].to_numpy()})
    nb = nb.sort_values(["events", "account_id"], ascending=[False, True], kind="stable")
    hub = bool(len(g.hubs) and (g.hubs["node"] == hit["node"]).any())
    comm = findings.communities.get(int(hit["node"])) if not hub else None
    return Lookup(id=str(hit["key"]), kind=kind, node=int(hit["node"]),
                  community=None if comm is None or pd.isna(comm) else int(comm), hub=hub,
                  rings=_ring_table(findings, nb["ring_id"].dropna().unique()),
                  neighbours=nb.reset_index(drop=True), evidence=nb.reset_index(drop=True))


def find_id(findings: Findings, value: str) -> Lookup:
    """Search the run by id: an account id, device id, IP or partner id (exact match).

    Returns a :class:`Lookup`: the ring(s) and community it is in, its neighbours and its
    evidence. Accounts come first when an id names several kinds. Real ids: the
    investigator's view, never a management output.
    """
    value = str(value).strip()
    g = findings.graph
    nodes = g.nodes[g.nodes["key"].astype(str) == value]
    if nodes.empty:
        return Lookup(id=value)
    order = {"account": 0, "device": 1, "ip": 2, "partner": 3}
    nodes = nodes.sort_values("kind", key=lambda k: k.map(order), kind="stable")
    hit = nodes.iloc[0]
    also = [("IP" if k == "ip" else k) for k in nodes["kind"].iloc[1:]]
    m = findings.rings.members
    ring_of = pd.Series(m["ring_id"].to_numpy(), index=m["aid"].to_numpy())
    kind = str(hit["kind"])
    if kind in ("device", "ip"):
        out = _entity_lookup(findings, hit, ring_of)
        out.also = also
        return out
    node = int(hit["node"])
    comm = findings.communities.get(node)
    comm = None if comm is None or pd.isna(comm) else int(comm)
    e = g.edges
    if kind == "partner":
        acc = findings.signals
        mine = acc[acc["partner_id"].astype(str) == value]
        nb = pd.DataFrame({"account_id": mine["account_id"].to_numpy(),
                           "account_type": mine["account_type"].to_numpy(),
                           "ring_id": ring_of.reindex(mine["aid"]).to_numpy(),
                           "profile_reads": mine["profile_reads"].astype("int64").to_numpy(),
                           "untied_users": mine["untied_users"].astype("int64").to_numpy()})
        nb = nb.assign(_r=nb["ring_id"].isna()).sort_values(   # ring members first
            ["_r", "profile_reads", "account_id"], ascending=[True, False, True],
            kind="stable").drop(columns="_r").reset_index(drop=True)
        linked = [r for r, p in zip(findings.rings.rings["ring_id"],
                                    findings.rings.rings["partner_ids"])
                  if value in split_ids(p)]
        rev = findings.review
        ev = rev[rev["partner_id"].astype(str) == value] if len(rev) else rev
        return Lookup(id=value, kind=kind, node=node, community=comm,
                      rings=_ring_table(findings, set(linked) | set(nb["ring_id"].dropna())),
                      neighbours=nb, evidence=ev.reset_index(drop=True), also=also)
    # an account
    rid = ring_of.get(node)
    agg = findings.aggregates
    kinds = g.nodes.set_index("node")
    hubs = set(g.hubs["node"]) if len(g.hubs) else set()
    rows = []
    for links, key, k in ((agg.device_links, "did", "device"), (agg.ip_links, "iid", "ip")):
        off = _offset(g, links, key, k)
        mine = links[links["aid"] == node]
        for r in mine.itertuples(index=False):
            v = int(getattr(r, key)) + off
            users = links.loc[links[key] == getattr(r, key), "aid"]
            others = sorted({str(x) for x in ring_of.reindex(users).dropna()})
            rows.append({"kind": k, "id": kinds.at[v, "key"], "accounts": int(len(users)),
                         "hub": v in hubs, "events": int(r.n), "first_seen": r.first_seen,
                         "last_seen": r.last_seen, "rings": ";".join(others)})
    p_edge = e[(e["u"] == node) & (e["kind"] == "partner")]
    for v in p_edge["v"]:
        rows.append({"kind": "partner", "id": kinds.at[int(v), "key"],
                     "accounts": int(kinds.at[int(v), "degree"]), "hub": False, "events": 0,
                     "first_seen": pd.NaT, "last_seen": pd.NaT, "rings": ""})
    nb = pd.DataFrame(rows, columns=["kind", "id", "accounts", "hub", "events", "first_seen",
                                     "last_seen", "rings"])
    nb = nb.sort_values(["kind", "accounts", "id"], ascending=[True, False, True],
                        kind="stable").reset_index(drop=True)
    if rid is not None:
        ev = evidence_table(findings, str(rid))
        ev = ev[ev["account_id"].astype(str) == value].reset_index(drop=True)
    else:
        sig = findings.signals
        ev = sig.loc[sig["aid"] == node, _SIGNAL_EVIDENCE].reset_index(drop=True)
    return Lookup(id=value, kind=kind, node=node, community=comm,
                  rings=_ring_table(findings, [rid] if rid is not None else []),
                  neighbours=nb, evidence=ev, also=also)


# -- a timeline per account (investigator) ---------------------------------------------------

def _date(value) -> pd.Timestamp | None:
    return None if value is None or value == "" else pd.Timestamp(value).normalize()


def _accounts_of(findings: Findings, ring: str | None, accounts) -> pd.DataFrame:
    sig = findings.signals
    if accounts is not None:
        ids = [str(a) for a in ([accounts] if isinstance(accounts, str) else accounts)]
        hit = sig[sig["account_id"].astype(str).isin(ids)]
        missing = sorted(set(ids) - set(hit["account_id"].astype(str)))
        if missing:
            raise ValueError(f"account(s) not in this export: {', '.join(missing[:5])}")
        return hit[["aid", "account_id"]]
    ring_id = resolve_ring(findings, ring)      # None: the top flagged ring
    m = findings.rings.members
    return m.loc[m["ring_id"] == ring_id, ["aid", "account_id"]]


def account_timeline(con: Workspace, findings: Findings, ring: int | str | None = None, *,
                     accounts=None, start=None, end=None) -> pd.DataFrame:
    """Per account and day: events by type, and the strangers it read.

    For the accounts of ``ring`` (rank or id; None: the top flagged ring) or the given
    ``accounts`` (ids), from
    ``start`` to ``end`` (dates, both included; None: the whole window up to the run's
    as-of). Columns account_id, day, one column per event type (login … coupon_claim),
    events, strangers_read (distinct users whose profile it read that day with no business
    tie), untied_records (records read with no tie: the harvest). Only days with events;
    accounts in ring order, then by day. Ties follow the per-account rule
    (:func:`analysis.aggregate.daily_activity`). Real ids: investigator only.
    """
    who = _accounts_of(findings, ring, accounts)
    types = list(EVENT_TYPES)
    cols = ["account_id", "day"] + types + ["events", "strangers_read", "untied_records"]
    if who.empty:
        return pd.DataFrame(columns=cols)
    ensure_ties(con, findings.params.as_of)
    bound = as_of_bound(findings.params.as_of)
    lo, hi = _date(start), _date(end)
    where = [f"e.ts < TIMESTAMP '{bound.isoformat(sep=' ')}'" if bound else "TRUE"]
    if lo is not None:
        where.append(f"e.ts >= TIMESTAMP '{lo:%Y-%m-%d}'")
    if hi is not None:
        where.append(f"e.ts < TIMESTAMP '{hi + pd.Timedelta(days=1):%Y-%m-%d}'")
    con.execute("CREATE OR REPLACE TEMP TABLE sel_tl AS SELECT unnest(?::INTEGER[]) AS aid",
                [who["aid"].astype(int).tolist()])
    p = ET["view_profile"]
    per_type = ", ".join(f"count(*) FILTER (WHERE e.et = {ET[t]}) AS {t}" for t in types)
    d = con.execute(f"""
        SELECT e.aid, CAST(e.ts AS DATE) AS day, {per_type}, count(*) AS events,
               count(DISTINCT e.tid) FILTER (WHERE e.et = {p} AND pp.tied IS FALSE)
                 AS strangers_read
        FROM ev e JOIN sel_tl s ON s.aid = e.aid
        LEFT JOIN profile_pairs pp ON e.et = {p} AND pp.aid = e.aid AND pp.tid = e.tid
        WHERE {' AND '.join(where)}
        GROUP BY e.aid, day ORDER BY e.aid, day
    """).df()
    con.execute("DROP TABLE IF EXISTS sel_tl")
    if d.empty:
        return pd.DataFrame(columns=cols)
    harvest = daily_activity(con, who["aid"].tolist(), findings.params.as_of)
    d = d.merge(harvest[["aid", "day", "untied_records"]], on=["aid", "day"], how="left")
    d["untied_records"] = d["untied_records"].fillna(0)
    order = {int(a): i for i, a in enumerate(who["aid"])}
    d["account_id"] = d["aid"].map(dict(zip(who["aid"].astype(int), who["account_id"])))
    d["_o"] = d["aid"].map(order)
    d["day"] = pd.to_datetime(d["day"])
    d = d.sort_values(["_o", "day"], kind="stable")
    return d[cols].astype({c: "int64" for c in types + ["events", "strangers_read",
                                                         "untied_records"]}
                          ).reset_index(drop=True)


def strangers_read(con: Workspace, findings: Findings, account: str, *, start=None,
                   end=None) -> pd.DataFrame:
    """The users one account read with no business tie, from ``start`` to ``end``: user_id,
    reads, records, first_read, last_read (most read first). Real ids: investigator only."""
    if not str(account or "").strip():
        return pd.DataFrame(columns=["user_id", "reads", "records", "first_read", "last_read"])
    who = _accounts_of(findings, None, [account])
    ensure_ties(con, findings.params.as_of)
    bound = as_of_bound(findings.params.as_of)
    lo, hi = _date(start), _date(end)
    where = [f"e.ts < TIMESTAMP '{bound.isoformat(sep=' ')}'" if bound else "TRUE"]
    if lo is not None:
        where.append(f"e.ts >= TIMESTAMP '{lo:%Y-%m-%d}'")
    if hi is not None:
        where.append(f"e.ts < TIMESTAMP '{hi + pd.Timedelta(days=1):%Y-%m-%d}'")
    p = ET["view_profile"]
    out = con.execute(f"""
        SELECT t.target_id AS user_id, count(*) AS reads, coalesce(sum(e.rec), 0) AS records,
               min(e.ts) AS first_read, max(e.ts) AS last_read
        FROM ev e JOIN profile_pairs pp ON pp.aid = e.aid AND pp.tid = e.tid
        JOIN targets t ON t.tid = e.tid
        WHERE e.aid = ? AND e.et = {p} AND pp.tied IS FALSE AND {' AND '.join(where)}
        GROUP BY t.target_id ORDER BY reads DESC, user_id
    """, [int(who["aid"].iloc[0])]).df()
    return out.astype({"reads": "int64", "records": "int64"})
