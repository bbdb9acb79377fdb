"""Signals + communities → candidate rings, scored and explained.

How a ring is cut out
---------------------
1. **Harvesters**: accounts whose reads of users with no business tie are at
   least ``harvest_factor`` times the population baseline (and, when they have
   profile reads, mostly untied). Volume alone never makes a harvester: an
   integrator reading 100,000 profiles of its own merchants' buyers is not one.
2. **Their crew**: accounts on a device the ring mostly uses (a shared
   emulator) join it; so do accounts on an IP the ring mostly uses when they
   carry a signal of their own (*weak harvesters*, with harm over the factor
   but mostly tied reads, like a partner's staff member steering a crawler;
   an emulator-like device). An IP alone never pulls an account in: homes
   and carriers share IPs with strangers. Two rounds, so the crew of the crew
   is found too.
3. **Grouping**: harvesters and crew connected through devices and IPs they
   dominate form pieces; pieces are grouped by the community (Louvain) most of
   their members sit in: one community, one ring.

A ring is **flagged** when its harm is at least ``harvest_factor``² times the
baseline and it is more than one curious account: several accounts operating
together on devices or IPs the ring dominates, or a partner link (staff in the
ring, or staff on its devices). A lone account with no partner link needs
``harvest_factor``³ times the baseline (a lone crawler). The weaker operating
signals (machine pacing, round-the-clock activity, a new-account burst,
coupon abuse) raise the score and are reported, but never flag on their own. Its **score** is the log10 of its harm
ratio plus half a point per corroborating signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .aggregate import Aggregates
from .graph import EntityGraph
from .signals import Baselines

__all__ = ["RingParams", "Rings", "find_rings", "partner_review"]

RING_COLUMNS = ["ring_id", "rank", "score", "flagged", "n_accounts", "partner_ids", "first_seen",
                "last_seen", "profiles_read", "records_harvested", "reasons"]
MEMBER_COLUMNS = ["ring_id", "account_id", "account_type", "partner_id", "account_score"]


@dataclass(frozen=True)
class RingParams:
    """Parameters of ring extraction; every threshold is a ratio to the population."""

    #: Harm at least this many times the baseline makes an account a harvester.
    harvest_factor: float = 10.0
    #: Share of untied profile reads a harvester must have (when it reads profiles).
    min_untied_share: float = 0.03
    #: An operating signal counts at this many times its baseline.
    support_factor: float = 3.0
    #: A device or IP used mostly (this share) by the ring pulls its other users in.
    dominated_share: float = 0.5
    #: Accounts created within this many days of each other form a burst.
    burst_days: int = 7


@dataclass
class Rings:
    """The candidate rings and their members (``aid`` kept for joins)."""

    rings: pd.DataFrame
    members: pd.DataFrame
    params: RingParams


def _entity_links(graph: EntityGraph) -> pd.DataFrame:
    e = graph.edges
    links = e.loc[e["kind"].isin(["device", "ip"]), ["u", "v", "kind"]]
    return links.rename(columns={"u": "aid", "v": "entity"})


def _expand(sig: pd.DataFrame, links: pd.DataFrame, harvester: np.ndarray, weak: np.ndarray,
            params: RingParams) -> np.ndarray:
    """Harvesters plus the accounts that operate with them (see module doc).

    A device mostly used by the ring pulls in all its users (a shared emulator).
    An IP never does by itself, because households and carriers share IPs with
    strangers; but an account on an IP the ring dominates joins when it carries a
    signal of its own: it is a *weak harvester* (harm over the factor with a
    mostly tied share, such as a partner's staff member steering a crawler) or
    it uses a device shared like an emulator.
    """
    in_ring = harvester.copy()
    # Coupon claims are no crew signal: honest power shoppers claim plenty.
    own_signal = sig["device_share_ratio"].to_numpy() >= params.support_factor
    aid = links["aid"].to_numpy()
    is_device = (links["kind"] == "device").to_numpy()
    size = links.groupby("entity")["aid"].transform("size").to_numpy()
    for _ in range(2):
        ring_on = in_ring[aid]
        n_ring = pd.Series(ring_on).groupby(links["entity"].to_numpy()).transform("sum").to_numpy()
        dominated = (n_ring > 0) & (n_ring / size >= params.dominated_share)
        joins = dominated & (is_device | weak[aid] | own_signal[aid]) & ~ring_on
        if not joins.any():
            break
        in_ring[np.unique(aid[joins])] = True
    return np.flatnonzero(in_ring)


def _components(members: np.ndarray, links: pd.DataFrame, params: RingParams) -> np.ndarray:
    """Connected pieces of ``members`` through devices/IPs the members dominate."""
    import igraph as ig

    size = links.groupby("entity")["aid"].transform("size")
    sub = links.assign(size=size.to_numpy())
    sub = sub[sub["aid"].isin(members)]
    n_in = sub.groupby("entity")["aid"].transform("size")
    keep = (n_in >= 2) & (n_in / sub["size"] >= params.dominated_share)
    sub = sub[keep.to_numpy()]
    index = {int(a): i for i, a in enumerate(members)}
    ent = {int(e): len(members) + i for i, e in enumerate(np.unique(sub["entity"].to_numpy()))}
    edges = [(index[int(a)], ent[int(e)]) for a, e in zip(sub["aid"], sub["entity"])]
    g = ig.Graph(n=len(members) + len(ent), edges=edges)
    return np.asarray(g.connected_components().membership)[: len(members)]


def _burst(created: pd.Series, pop: np.ndarray, days: int) -> tuple[int, float]:
    """Largest number of ``created`` within ``days``, and its ratio to the population rate.

    ``pop`` is every account's creation time, sorted (``datetime64[s]``).
    """
    c = np.sort(created.dropna().to_numpy(dtype="datetime64[s]"))
    if len(c) < 2:
        return len(c), 0.0
    window = np.timedelta64(days * 86400, "s")
    ends = np.searchsorted(c, c + window, side="right")
    i = int(np.argmax(ends - np.arange(len(c))))
    count = int(ends[i] - i)
    span = max(float((pop[-1] - pop[0]) / np.timedelta64(1, "D")), days) if len(pop) else days
    in_window = np.searchsorted(pop, c[i] + window, side="right") - np.searchsorted(pop, c[i])
    # Accounts a random draw of this ring's size would have in that window.
    expected = len(c) * max(in_window, 1) / max(len(pop), 1)
    expected = max(expected, len(c) * days / span)
    return count, count / expected if expected > 0 else 0.0


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:,.1f}"


def find_rings(sig: pd.DataFrame, base: Baselines, graph: EntityGraph, communities: pd.Series,
               agg: Aggregates, params: RingParams | None = None) -> Rings:
    """Cut candidate rings out of the communities, score, flag and explain them."""
    params = params or RingParams()
    sig = sig.reset_index(drop=True)
    share = sig["untied_share"].to_numpy()
    harmful = sig["harvest_ratio"].to_numpy() >= params.harvest_factor
    harvester = harmful & (np.isnan(share) | (share >= params.min_untied_share))
    weak = harmful & ~harvester
    links = _entity_links(graph)
    if not harvester.any():
        return Rings(pd.DataFrame(columns=RING_COLUMNS), pd.DataFrame(columns=MEMBER_COLUMNS + ["aid"]),
                     params)
    members = _expand(sig, links, harvester, weak, params)
    comp = _components(members, links, params)
    comm = communities.reindex(members).to_numpy()
    # Each connected piece goes to the community most of its members sit in.
    piece = pd.DataFrame({"aid": members, "comp": comp, "comm": comm})
    piece_comm = (piece.groupby(["comp", "comm"]).size().rename("n").reset_index()
                  .sort_values(["comp", "n", "comm"], ascending=[True, False, True])
                  .drop_duplicates("comp").set_index("comp")["comm"])
    piece["group"] = piece["comp"].map(piece_comm)
    # Crew with no harvester in their group did not join a ring.
    piece["harvester"] = harvester[piece["aid"].to_numpy()]
    has_h = piece.groupby("group")["harvester"].transform("any")
    piece = piece[has_h.to_numpy()]

    rows, member_rows = [], []
    pop_created = np.sort(sig["created_at"].dropna().to_numpy(dtype="datetime64[s]"))
    partners = agg.partners.set_index("partner_id") if len(agg.partners) else pd.DataFrame()
    # Split once what each ring needs, so the loop below touches only its own rows.
    group_of = piece.set_index("aid")["group"]
    entity_size = links.groupby("entity")["aid"].size()
    mlinks = links[links["aid"].isin(group_of.index)].copy()
    mlinks["group"] = mlinks["aid"].map(group_of).to_numpy()
    mlinks["size"] = entity_size.reindex(mlinks["entity"]).to_numpy()
    staff = sig[(sig["account_type"] == "partner_staff") & sig["partner_id"].notna()]
    staff_links = links[links["aid"].isin(staff["aid"])].merge(
        staff[["aid", "partner_id"]], on="aid")
    coupons = agg.coupons[agg.coupons["aid"].isin(group_of.index)].copy() \
        if len(agg.coupons) else agg.coupons
    if len(coupons):
        coupons["group"] = coupons["aid"].map(group_of).to_numpy()
    links_by_group = dict(tuple(mlinks.groupby("group", sort=False)))
    coupons_by_group = dict(tuple(coupons.groupby("group", sort=False))) if len(coupons) else {}
    empty_links, empty_coupons = mlinks.iloc[0:0], coupons.iloc[0:0] if len(coupons) else coupons
    for group, grp in piece.groupby("group", sort=True):
        m = sig.iloc[grp["aid"].to_numpy()]
        h = m[harvester[m.index.to_numpy()]]
        together = int(grp.groupby("comp")["aid"].transform("size").ge(2).sum())
        ring = _ring_evidence(m, h, base, params, pop_created, partners,
                              coupons_by_group.get(group, empty_coupons),
                              links_by_group.get(group, empty_links), staff_links, together)
        ring["group"] = group
        rows.append(ring)
        acct_score = (np.log10(1 + m["harvest_ratio"].to_numpy())
                      + 0.5 * (m["device_share_ratio"].to_numpy() >= params.support_factor)
                      + 0.5 * (m["coupon_ratio"].to_numpy() >= params.support_factor)
                      + 0.5 * (m["pacing_ratio"].to_numpy() >= 1)
                      + 0.5 * (m["round_clock_ratio"].to_numpy() >= 1))
        member_rows.append(pd.DataFrame({
            "group": group, "aid": m["aid"].to_numpy(), "account_id": m["account_id"].to_numpy(),
            "account_type": m["account_type"].to_numpy(), "partner_id": m["partner_id"].to_numpy(),
            "account_score": np.round(acct_score, 3)}))
    rings = pd.DataFrame(rows)
    rings = rings.sort_values(["score", "n_accounts", "group"], ascending=[False, False, True],
                              kind="stable").reset_index(drop=True)
    rings["rank"] = np.arange(1, len(rings) + 1)
    rings["ring_id"] = [f"ring-{r:03d}" for r in rings["rank"]]
    ring_of = dict(zip(rings["group"], rings["ring_id"]))
    members_df = pd.concat(member_rows, ignore_index=True)
    members_df["ring_id"] = members_df["group"].map(ring_of)
    members_df = members_df.sort_values(["ring_id", "account_score", "account_id"],
                                        ascending=[True, False, True], kind="stable")
    extra = [c for c in rings.columns if c not in RING_COLUMNS]
    rings = rings[RING_COLUMNS + extra].drop(columns=["group"])
    members_df = members_df[MEMBER_COLUMNS + ["aid"]].reset_index(drop=True)
    return Rings(rings=rings, members=members_df, params=params)


def _ring_evidence(m: pd.DataFrame, h: pd.DataFrame, base: Baselines, params: RingParams,
                   pop_created: np.ndarray, partners: pd.DataFrame, coupons: pd.DataFrame,
                   mine: pd.DataFrame, staff_links: pd.DataFrame, together: int) -> dict:
    """Measure one ring against the population and say why in plain words.

    ``mine`` holds the ring's own device/IP links with each entity's ``size``;
    ``staff_links`` the links of every partner staff account.
    """
    reasons: list[str] = []
    support = strong = 0
    bu, br = base.value["untied_users"], base.value["untied_records"]
    users, records = int(m["untied_users"].sum()), int(m["untied_records"].sum())
    reads = int(m["untied_reads"].sum())
    harm_ratio = max(users / bu, records / br)
    if users:
        reasons.append(
            f"read {reads:,} profiles of {users:,} users with no order from its merchants "
            f"({_fmt(users / bu)}× the 95th-percentile account; the median "
            f"{h['account_type'].mode().iloc[0].replace('_', ' ')} read "
            f"{_fmt(base.median_by_type['untied_users'].get(h['account_type'].mode().iloc[0], 0))})")
    if records and records / br >= params.harvest_factor:
        reasons.append(f"harvested {records:,} user records from profiles and comments with no "
                       f"business tie ({_fmt(records / br)}× the 95th-percentile account)")
    pr = m["profile_reads"].sum()
    if pr and (m["partner_id"].notna().any()):
        share = m["untied_reads"].sum() / pr
        reasons.append(f"{share:.0%} of its {int(pr):,} profile reads had no business tie")
    # Partner linkage: staff in the ring, or staff sharing its devices/IPs.
    partner_ids = sorted(set(m["partner_id"].dropna()))
    # Only through devices, or IPs the ring dominates: a busy NAT says nothing.
    n_in = mine.groupby("entity")["aid"].size()
    size = mine.groupby("entity")["size"].first()
    own = n_in.index[(n_in / size.reindex(n_in.index)) >= params.dominated_share]
    ents = set(own) | set(mine.loc[mine["kind"] == "device", "entity"])
    near_staff = staff_links[staff_links["entity"].isin(ents)]
    linked = sorted(set(near_staff["partner_id"]) - set(partner_ids))
    staff = int((m["account_type"] == "partner_staff").sum())
    if staff or linked:
        support += 1
        strong += 1
        names = partner_ids + linked
        what = []
        for p in names:
            ptype = partners["partner_type"].get(p) if len(partners) else None
            what.append(f"{p} ({ptype})" if isinstance(ptype, str) and ptype else str(p))
        how = (f"{staff} of its accounts are partner staff" if staff
               else "it shares devices or IPs with partner staff")
        reasons.append(f"linked to partner {', '.join(what)}: {how}")
        partner_ids = names
    if together >= 2:
        support += 1
        strong += 1
        dev_max = int(m["device_share"].max())
        if (m["device_share_ratio"] >= params.support_factor).any():
            reasons.append(f"{together} accounts operate together; one device is shared by "
                           f"{dev_max} accounts ({_fmt(dev_max / base.value['device_share'])}× "
                           f"the 95th percentile)")
        else:
            reasons.append(f"{together} accounts operate together on devices or IPs used "
                           f"mostly by the ring")
    paced = h[h["pacing_ratio"] >= 1]
    if len(paced):
        support += 1
        cv = float((1 / paced["pacing"]).median())
        reasons.append(f"machine-paced: {len(paced)} harvesting account(s) act at regular "
                       f"intervals (gap variation {cv:.2f}, steadier than 95% of accounts)")
    clock = h[h["round_clock_ratio"] >= 1]
    if len(clock):
        support += 1
        reasons.append(f"round the clock: {len(clock)} harvesting account(s) active in up to "
                       f"{int(clock['hours_active'].max())} of 24 hours of the day")
    count, burst_ratio = _burst(m["created_at"], pop_created, params.burst_days)
    if count >= 3 and burst_ratio >= params.support_factor:
        support += 1
        reasons.append(f"new-account burst: {count} of its accounts were created within "
                       f"{params.burst_days} days ({_fmt(burst_ratio)}× the platform's rate)")
    claims = 0
    if partner_ids and len(coupons):
        claims = int(coupons.loc[coupons["partner_id"].isin(partner_ids), "claims"].sum())
    no_order = int(m["coupon_no_order"].sum())
    if claims or (m["coupon_ratio"] >= params.support_factor).any():
        if claims >= base.value["coupon_no_order"] * params.support_factor or \
                (m["coupon_ratio"] >= params.support_factor).any():
            support += 1
            reasons.append(f"claimed {claims:,} coupons at its partner's merchants; "
                           f"{no_order:,} claims at merchants it never ordered from")
    f = params.harvest_factor
    flagged = bool(len(h)) and ((harm_ratio >= f ** 2 and strong >= 1) or harm_ratio >= f ** 3)
    score = np.log10(1 + harm_ratio) + 0.5 * support
    if not flagged:
        if harm_ratio < f ** 2:
            reasons.append(f"not flagged: harm {_fmt(harm_ratio)}× the baseline is under the "
                           f"{f ** 2:g}× a ring needs")
        else:
            reasons.append(f"not flagged: a lone account with no partner link, under the "
                           f"{f ** 3:g}× harm that flags a lone crawler")
    return {
        "score": round(float(score), 3), "flagged": flagged, "n_accounts": int(len(m)),
        "partner_ids": ";".join(partner_ids), "first_seen": m["first_seen"].min(),
        "last_seen": m["last_seen"].max(), "profiles_read": int(m["profile_reads"].sum()),
        "records_harvested": records, "reasons": "; ".join(reasons),
        "harm_ratio": round(float(harm_ratio), 3), "support_signals": support,
        "untied_users": users, "harvesters": int(len(h)),
    }


def partner_review(sig: pd.DataFrame, base: Baselines, rings: Rings,
                   params: RingParams | None = None) -> pd.DataFrame:
    """Partners whose reading volume alone looks alarming, and why each is or is not flagged.

    One row per partner whose staff and merchants read at least ``harvest_factor``
    times the baseline number of profiles.
    """
    params = params or rings.params
    staffed = sig[sig["partner_id"].notna()]
    if staffed.empty:
        return pd.DataFrame(columns=["partner_id", "accounts", "profiles_read", "untied_reads",
                                     "untied_share", "flagged", "why"])
    g = staffed.groupby("partner_id").agg(
        accounts=("aid", "size"), profiles_read=("profile_reads", "sum"),
        untied_reads=("untied_reads", "sum"), untied_users=("untied_users", "sum"),
        records_read=("records_read", "sum")).reset_index()
    g = g[g["profiles_read"] >= params.harvest_factor * base.value["profile_reads"]].copy()
    flagged_members = rings.members.merge(rings.rings[["ring_id", "flagged"]], on="ring_id")
    flagged_partners = set(flagged_members.loc[flagged_members["flagged"].astype(bool),
                                               "partner_id"].dropna())
    for ids in rings.rings.loc[rings.rings["flagged"].astype(bool), "partner_ids"]:
        flagged_partners |= set(filter(None, str(ids).split(";")))
    g["untied_share"] = np.where(g["profiles_read"] > 0, g["untied_reads"] / g["profiles_read"], 0)
    g["flagged"] = g["partner_id"].isin(flagged_partners)
    why = []
    for r in g.itertuples(index=False):
        vol = (f"read {int(r.profiles_read):,} profiles "
               f"({_fmt(r.profiles_read / base.value['profile_reads'])}× the 95th-percentile account)")
        if r.flagged:
            why.append(f"flagged: {vol}; {r.untied_share:.0%} had no business tie")
        else:
            why.append(
                f"not flagged: {vol}, but {1 - r.untied_share:.1%} were users who ordered from its "
                f"merchants; {int(r.untied_users):,} users with no tie = "
                f"{_fmt(r.untied_users / base.value['untied_users'])}× the baseline, under the "
                f"{params.harvest_factor:g}× needed per account")
    g["why"] = why
    return g.sort_values(["flagged", "profiles_read"], ascending=[False, False]).reset_index(drop=True)
