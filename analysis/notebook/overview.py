"""Tables that describe an export and its graph, for notebooks 01–03.

Pure functions over a loaded workspace (the DuckDB connection), an
:class:`~analysis.load.Export` or :class:`~analysis.pipeline.Findings`; each
returns a DataFrame and leaves the workspace as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..aggregate import as_of_bound
from ..contract import ACCOUNT_TYPES, EVENT_TYPES
from ..findings import split_ids

__all__ = ["validation_table", "reject_reasons", "reject_samples", "event_volume",
           "event_type_counts", "account_type_counts", "graph_size", "degree_table",
           "degree_distribution", "hubs_table", "community_table", "partner_positions"]


def validation_table(export) -> pd.DataFrame:
    """Per table: rows read, accepted, rejected and the rejected share."""
    rows = [{"table": t, **c.as_dict()} for t, c in export.counts.items()]
    df = pd.DataFrame(rows, columns=["table", "rows", "accepted", "rejected"])
    df["rejected_share"] = np.where(df["rows"] > 0, df["rejected"] / df["rows"].clip(lower=1), 0.0)
    return df


def reject_reasons(export) -> pd.DataFrame:
    """Per table and reason: how many rows were quarantined."""
    rows = [(t, reason, int(n)) for t, reasons in export.reject_reasons.items()
            for reason, n in reasons.items()]
    return pd.DataFrame(rows, columns=["table", "reason", "rows"]).sort_values(
        ["table", "rows"], ascending=[True, False], kind="stable").reset_index(drop=True)


def reject_samples(rejects_dir: Path | str, n: int = 5) -> dict[str, pd.DataFrame]:
    """The first ``n`` quarantined rows of each table, as written to ``rejects/``."""
    out = {}
    for path in sorted(Path(rejects_dir).glob("*.csv")):
        out[path.stem] = pd.read_csv(path, dtype=str, nrows=n, keep_default_na=False)
    return out


def _cut(as_of) -> str:
    bound = as_of_bound(as_of)
    return f"ts < TIMESTAMP '{bound.isoformat(sep=' ')}'" if bound else "TRUE"


def event_volume(con, as_of=None, freq: str = "day") -> pd.DataFrame:
    """Events per ``freq`` ("day" or "week") and event type: columns period, event_type, events."""
    if freq not in ("day", "week"):
        raise ValueError(f"freq must be 'day' or 'week', not {freq!r}")
    df = con.execute(f"""
        SELECT CAST(date_trunc('{freq}', ts) AS DATE) AS period, et, count(*) AS events
        FROM ev WHERE {_cut(as_of)} GROUP BY ALL ORDER BY period, et
    """).df()
    df["event_type"] = pd.Categorical([EVENT_TYPES[int(i)] for i in df["et"]],
                                      categories=list(EVENT_TYPES))
    df["period"] = pd.to_datetime(df["period"])
    return df[["period", "event_type", "events"]]


def event_type_counts(con, as_of=None) -> pd.DataFrame:
    """Accepted events and user records returned per event type (every type listed)."""
    df = con.execute(f"""
        SELECT et, count(*) AS events, coalesce(sum(rec), 0) AS records
        FROM ev WHERE {_cut(as_of)} GROUP BY et
    """).df()
    df["event_type"] = [EVENT_TYPES[int(i)] for i in df["et"]]
    out = pd.DataFrame({"event_type": list(EVENT_TYPES)}).merge(
        df[["event_type", "events", "records"]], how="left", on="event_type")
    return out.fillna({"events": 0, "records": 0}).astype({"events": "int64", "records": "int64"})


def account_type_counts(con) -> pd.DataFrame:
    """Accounts per type, and how many of them belong to (or are served by) a partner."""
    df = con.execute("""
        SELECT account_type, count(*) AS accounts,
               count(partner_id) AS with_partner
        FROM accounts GROUP BY account_type
    """).df()
    out = pd.DataFrame({"account_type": list(ACCOUNT_TYPES)}).merge(df, how="left",
                                                                   on="account_type")
    return out.fillna(0).astype({"accounts": "int64", "with_partner": "int64"})


def graph_size(graph) -> pd.DataFrame:
    """Nodes per kind, hubs left out, and edges from accounts to that kind."""
    s = graph.summary()
    edges = graph.edges.groupby("kind").size()
    s["edges"] = [int(edges.get(k, 0)) if k != "account" else 0 for k in s.index]
    s.index.name = "kind"
    return s.reset_index()


def degree_table(graph) -> pd.DataFrame:
    """Every node with its degree: links to devices, IPs and partners for an account, accounts
    linked for a device, IP or partner (hubs included, with their full degree)."""
    nodes = graph.nodes[["node", "kind", "key", "degree"]].copy()
    acc_deg = graph.edges.groupby("u").size()
    is_acc = nodes["kind"] == "account"
    nodes.loc[is_acc, "degree"] = acc_deg.reindex(nodes.loc[is_acc, "node"]).fillna(0).to_numpy()
    nodes["hub"] = nodes["node"].isin(graph.hubs["node"]) if len(graph.hubs) else False
    return nodes.astype({"degree": "int64"})


def degree_distribution(graph) -> pd.DataFrame:
    """How many nodes of each kind have each degree: columns kind, degree, nodes."""
    d = degree_table(graph)
    return d.groupby(["kind", "degree"]).size().rename("nodes").reset_index()


def hubs_table(graph, top: int = 20) -> pd.DataFrame:
    """The biggest hubs (devices or IPs over the hub degree), left out of the community graph."""
    h = graph.hubs
    if h is None or len(h) == 0:
        return pd.DataFrame(columns=["kind", "key", "accounts", "handling"])
    h = h.sort_values("accounts", ascending=False).head(top).copy()
    h["handling"] = (f"left out of the graph: shared by more than {graph.hub_degree} accounts")
    return h[["kind", "key", "accounts", "handling"]].reset_index(drop=True)


def community_table(findings) -> pd.DataFrame:
    """One row per community: its size by node kind and the rings cut out of it."""
    g = findings.graph
    comm = findings.communities
    nodes = g.nodes[["node", "kind"]].assign(community=comm.reindex(g.nodes["node"]).to_numpy())
    t = nodes.pivot_table(index="community", columns="kind", values="node", aggfunc="size",
                          fill_value=0)
    for k in ("account", "device", "ip", "partner"):
        if k not in t.columns:
            t[k] = 0
    t = t[["account", "device", "ip", "partner"]].rename(
        columns={"account": "accounts", "device": "devices", "ip": "ips", "partner": "partners"})
    t["nodes"] = t.sum(axis=1)
    m = findings.rings.members
    if len(m):
        mc = m.assign(community=comm.reindex(m["aid"]).to_numpy())
        rings = mc.groupby("community")["ring_id"].agg(lambda s: ";".join(sorted(set(s))))
        flagged = set(findings.flagged["ring_id"])
        t["rings"] = rings.reindex(t.index).fillna("")
        t["flagged_ring"] = [any(r in flagged for r in split_ids(x))
                             for x in t["rings"]]
    else:
        t["rings"] = ""
        t["flagged_ring"] = False
    t = t.reset_index().sort_values(["flagged_ring", "nodes"], ascending=[False, False],
                                    kind="stable")
    return t.reset_index(drop=True)


def partner_positions(findings) -> pd.DataFrame:
    """Every partner: what its staff and merchants read, how much of it had no tie, and whether
    it is linked to a flagged ring or only looks alarming by volume (the partners review)."""
    sig = findings.signals
    staffed = sig[sig["partner_id"].notna()]
    g = staffed.groupby("partner_id").agg(
        accounts=("aid", "size"),
        staff=("account_type", lambda s: int((s == "partner_staff").sum())),
        profiles_read=("profile_reads", "sum"), untied_reads=("untied_reads", "sum"),
        untied_users=("untied_users", "sum"), untied_records=("untied_records", "sum"))
    p = findings.aggregates.partners[["partner_id", "name", "partner_type"]].set_index("partner_id")
    g = p.join(g, how="left").fillna({"accounts": 0, "staff": 0, "profiles_read": 0,
                                      "untied_reads": 0, "untied_users": 0, "untied_records": 0})
    g["untied_share"] = np.where(g["profiles_read"] > 0,
                                 g["untied_reads"] / g["profiles_read"].clip(lower=1), 0.0)
    flagged = set()
    for ids in findings.flagged["partner_ids"]:
        flagged |= set(split_ids(ids))
    review = set(findings.review["partner_id"]) if len(findings.review) else set()
    g["status"] = [
        "linked to a flagged ring" if pid in flagged else
        "high volume, not flagged" if pid in review else "other"
        for pid in g.index]
    g.index.name = "partner_id"
    return g.reset_index().sort_values("profiles_read", ascending=False,
                                       kind="stable").reset_index(drop=True)
