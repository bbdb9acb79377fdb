"""Signals + communities → candidate rings, scored and explained.

How a ring is cut out
---------------------
1. **Harvesters**: accounts whose harm, their reach of strangers (or of
   merchants' comment pages) with no business tie, is at least
   ``harvest_factor`` times their peers' baseline (:mod:`analysis.signals`).
   There is no share floor: a crawler that hides a few per cent of stranger
   reads inside heavy honest traffic is judged by the strangers it reached.
   Volume alone never makes a harvester: an integrator reading 100,000
   profiles of its own merchants' buyers reaches no strangers, and records
   returned per call count for nothing.
2. **Their crew**: an account on a device or IP the ring mostly uses joins it
   only when it has harm of its own (``join_factor`` times its peer baseline:
   a *weak harvester*). Members earn their place: shared phones, kiosks,
   offices and proxied homes never pull an honest account in. Two rounds, so
   the crew of the crew is found too. A weak harvester under a
   ``harvest_factor``-th of its ring's median harvester leaves again: a heavy
   reader on a home that 1,000× crawlers borrowed is not one of them.
3. **Grouping**: harvesters and crew connected through devices and IPs they
   dominate form pieces (an entity is dominated when accounts with harm or
   claims of their own, members or not, are most of its users); pieces are
   grouped by the community (Louvain) most of their members sit in, and by the
   partner whose staff are in them: pieces of two partners are two rings.
   The pieces of coupon harvesters and coupon sprees made within ``burst_days``
   of one another, in a burst against the platform's rate, are one piece
   (:func:`_created_together`). A passer-by (under a ``harvest_factor``-th of the
   events of the account that makes most of a device's or IP's events: a crew's
   session through a proxied home) is none of its users (:func:`_entity_links`).
4. **Coupon crews**: a *claimer* claimed coupons at more merchants it never
   ordered from than 90 % of its peers, and at two or more. Alone it is a keen
   bargain hunter. Claimers on devices and IPs they dominate (a mild claimer,
   under ``support_factor`` times its peers, through devices only) form pieces;
   a piece of ``coupon_crew`` (5) or more, less members under a
   ``support_factor``-th of the crew's median, is a crew and starts a ring as
   harvesters do (:func:`coupon_crews`). Households and kiosks are no crews:
   two claimers on a phone are a pair, and six on a kiosk of thirty do not
   dominate it.
5. **Reading crews**: where a crew is a large share of an export's readers,
   its members set their peers' level and none is a harvester alone. A
   *reader* reached strangers (profiles, sweeping: under ``support_factor``²
   reads per stranger; or comment pages) strictly above its peers' baseline.
   ``reader_crew`` (5) or more readers linked through devices they dominate
   form a crew and start a ring (:func:`reader_crews`).
6. **Crews that began together**: a crew splitting its queue over aged or
   taken-over accounts, on homes it proxies through and phones of its own, shares
   no infrastructure and sets its own peers' level. What it shares is when it
   began: ``onset_least`` (5) or more customers, made long before, each reading
   strangers it never came back to, whose first reads of a stranger fall within
   ``onset_days`` of one another at ``harvest_factor`` times the rate readers
   began at in the two weeks before (:func:`onset_crews`). Honest first reads
   pile up on an export's first days and thin out after. Such a crew is a ring
   of its own: its members link to no one through devices or IPs (the homes it
   proxied through would pull their residents in), and it is flagged when its
   members' harm summed reaches ``harvest_factor``.

A ring is **flagged** when its harm, summed over its members in units of each
member's peer baseline, is at least ``harvest_factor``² and it carries crew
evidence that households, kiosks and offices do not give: ``crew_harvesters``
(3) or more accounts that each harvest on their own, linked through devices or
IPs they dominate (three heavy readers among a kiosk's twenty shoppers, or behind
a carrier NAT, share a community, not a crew's infrastructure), or partner staff
harvesting (the seed case). A lone harvester, or a pair, needs
``harvest_factor``³ (a lone crawler): a pair is what a household or a shop's
two logins on one PC look like. A coupon crew is flagged when its claims,
summed in units of each claimer's peer baseline (``coupon_harm``), reach
``harvest_factor`` and it shows a new-account burst or a shared device; a reading
crew when its members' harm summed reaches ``harvest_factor`` and three or more of
them share a device they dominate.

A ring is also flagged, at ``harvest_factor`` alone, when one of its harvesters
**stands out**: its harm is ``support_factor`` times that of the fourth-highest
account of its type (``harvest_factor`` times for a lone harvester with no staff
or crew evidence; :mod:`analysis.signals`). Call centres, customer-service
shifts and crowds of heavy readers come many alike and raise their peers' level;
a crawler inside a partner's traffic, or a pair of crawlers, stands above them
all. And two or more **coupon harvesters** (each claiming at never-ordered-from
merchants ``harvest_factor`` times the keenest tenth of its peers) in one piece
of infrastructure they dominate, or made the same week in a burst, are flagged
(:func:`coupon_harvesters`), unless they came for one promotion, a festival's crowd
(:func:`_not_promotions`). Two or more harvesters of one partner, alike, none standing
out, whose partner's active staff nearly all read strangers alike (``workforce_share``),
are that partner's **workforce** (a call centre, a shift, a small integrator's two
staff) when they met their strangers steadily (``workforce_steady``,
:func:`analysis.signals.stranger_steadiness`): not flagged, and the partner review says
so. Staff who sweep in a burst are a crew however many of the staff they are. The
weaker operating signals (operating together on shared devices or IPs,
machine pacing, round-the-clock activity, a new-account burst, coupon abuse)
raise the score and are reported, but never flag on their own. Its **score**
is the log10 of its harm ratio plus coupon harm, plus half a point per corroborating signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .aggregate import Aggregates
from .findings import is_flagged, split_ids
from .graph import EntityGraph
from .params import RingParams
from .signals import BUSINESS_TYPES, PEER_MEASURES, Baselines, export_start

__all__ = ["RingParams", "Rings", "coupon_crews", "coupon_harvesters", "coupon_sprees",
           "decide_flag", "find_rings", "partner_campaigns", "promotion_shares",
           "onset_crews", "partner_review", "reader_crews", "ring_score", "standouts"]

RING_COLUMNS = ["ring_id", "rank", "score", "flagged", "n_accounts", "partner_ids", "first_seen",
                "last_seen", "profiles_read", "records_harvested", "reasons"]
MEMBER_COLUMNS = ["ring_id", "account_id", "account_type", "partner_id", "account_score"]


@dataclass
class Rings:
    """The candidate rings and their members (``aid`` kept for joins)."""

    rings: pd.DataFrame
    members: pd.DataFrame
    params: RingParams


def _no_rings(params: RingParams) -> Rings:
    return Rings(pd.DataFrame(columns=RING_COLUMNS),
                 pd.DataFrame(columns=MEMBER_COLUMNS + ["aid"]), params)


def _entity_links(agg: Aggregates, params: RingParams | None = None) -> pd.DataFrame:
    """Every account's devices and IPs, hubs included, less passers-by: aid, entity, kind.

    Hubs stay out of the community graph (a carrier NAT would glue strangers), but a
    ring is cut by devices and IPs its members *dominate*: a NAT's thousands of honest
    users are never dominated, while a datacenter IP that only a crew of 300 uses is
    the crew's own infrastructure whatever its size.

    A *passer-by* used a device or IP that one account (its owner) makes most of the
    events on (``dominated_share``), for under a ``harvest_factor``-th of its owner's
    events there: a crew's session through a residential proxy (a real customer's
    home), a guest on a household's Wi-Fi. It is not one of the entity's users and links
    to no one through it, so a crew that proxies through hundreds of homes is not glued
    to their residents, and through them to other crews.

    >>> import types
    >>> dl = pd.DataFrame({"aid": [0, 1], "did": [0, 1], "n": [50, 50]})
    >>> il = pd.DataFrame({"aid": [0, 1, 2, 2], "iid": [0, 0, 0, 1], "n": [300, 4, 5, 9]})
    >>> _entity_links(types.SimpleNamespace(device_links=dl, ip_links=il))[["aid", "entity"]
    ...                                                                  ].values.tolist()
    [[0, 0], [1, 1], [0, 2], [2, 3]]
    """
    params = params or RingParams()
    dl, il = agg.device_links, agg.ip_links
    offset = int(dl["did"].max()) + 1 if len(dl) else 0
    links = pd.concat([
        pd.DataFrame({"aid": dl["aid"].to_numpy(np.int64), "entity": dl["did"].to_numpy(np.int64),
                      "kind": "device", "n": dl["n"].to_numpy(np.int64)}),
        pd.DataFrame({"aid": il["aid"].to_numpy(np.int64),
                      "entity": il["iid"].to_numpy(np.int64) + offset, "kind": "ip",
                      "n": il["n"].to_numpy(np.int64)}),
    ], ignore_index=True)
    by = links.groupby("entity")["n"]
    top = by.transform("max").to_numpy()
    owned = top >= params.dominated_share * by.transform("sum").to_numpy()
    passer = owned & (links["n"].to_numpy() * params.harvest_factor < top)
    return links[~passer].drop(columns="n").reset_index(drop=True)


def _expand(sig: pd.DataFrame, links: pd.DataFrame, harvester: np.ndarray, weak: np.ndarray,
            params: RingParams) -> np.ndarray:
    """Harvesters plus the accounts that operate with them (see module doc).

    An account on a device or IP the ring dominates joins when it has harm of its
    own (a *weak harvester*: ``join_factor`` times its peer baseline or more).
    Sharing alone never pulls an account in: households, kiosks, offices and
    proxied homes share devices and IPs with strangers.
    """
    in_ring = harvester.copy()
    aid = links["aid"].to_numpy()
    size = links.groupby("entity")["aid"].transform("size").to_numpy()
    # Crewed: accounts with harm of their own (the ring's or joining) are nearly all its
    # users (``crew_share``): a crew of weak harvesters around a few strong ones on the
    # datacenter IPs they all use. A carrier NAT or a campus always has plain users too.
    business = sig["account_type"].isin(BUSINESS_TYPES).to_numpy()
    n_sus = pd.Series((harvester | weak)[aid]).groupby(
        links["entity"].to_numpy()).transform("sum").to_numpy()
    for _ in range(2):
        ring_on = in_ring[aid]
        n_ring = pd.Series(ring_on).groupby(links["entity"].to_numpy()).transform("sum").to_numpy()
        dominated = (n_ring > 0) & (n_ring / size >= params.dominated_share)
        crewed = (n_ring > 0) & (n_sus / size >= params.crew_share)
        # Members earn their place: only an account with harm of its own joins. A shared
        # phone, a kiosk or a proxied home never pulls an honest account in. Partner staff
        # share their office with colleagues who read too: they join only where the ring
        # itself is most of the users.
        joins = (dominated | (crewed & ~business[aid])) & weak[aid] & ~ring_on
        if not joins.any():
            break
        in_ring[np.unique(aid[joins])] = True
    return np.flatnonzero(in_ring)


def _components(members: np.ndarray, links: pd.DataFrame, params: RingParams,
                usable: np.ndarray | None = None, suspects: np.ndarray | None = None
                ) -> np.ndarray:
    """Connected pieces of ``members`` through devices/IPs the members dominate.

    ``usable`` (a mask over ``links``) limits the links that may connect; entity
    sizes still count every account. With ``suspects`` (a mask over accounts) an
    entity is dominated when suspects, members or not, are most of its users: two
    crews on one datacenter IP each hold part of it, and honest users hold little.
    """
    import igraph as ig

    size = links.groupby("entity")["aid"].transform("size")
    sub = links.assign(size=size.to_numpy())
    if suspects is not None:
        sus = pd.Series(suspects[links["aid"].to_numpy()]).groupby(
            links["entity"].to_numpy()).transform("sum").to_numpy()
        sub = sub.assign(sus=sus)
    sub = sub[sub["aid"].isin(members) & (True if usable is None else usable)]
    n_in = sub.groupby("entity")["aid"].transform("size")
    owners = n_in if suspects is None else np.maximum(n_in, sub["sus"])
    keep = (n_in >= 2) & (owners / sub["size"] >= params.dominated_share)
    sub = sub[keep.to_numpy()]
    # Vertices: the members (in their order), then each kept entity; edges as arrays.
    order = np.argsort(members, kind="stable")
    member_at = order[np.searchsorted(members, sub["aid"].to_numpy(), sorter=order)]
    ents, ent_at = np.unique(sub["entity"].to_numpy(), return_inverse=True)
    edges = np.column_stack([member_at, len(members) + ent_at]).tolist()
    g = ig.Graph(n=len(members) + len(ents), edges=edges)
    return np.asarray(g.connected_components().membership)[: len(members)]


def _runs(t: np.ndarray, days: int) -> np.ndarray:
    """Run numbers of sorted creation times ``t``: a run holds the accounts created within
    ``days`` of its first one (no chaining: accounts made a week apart, week after week,
    are many runs).

    >>> t = pd.to_datetime(["2020-01-01", "2020-01-06", "2020-01-11", "2020-01-12"]).to_numpy()
    >>> _runs(t, 7).tolist()
    [0, 0, 1, 1]
    """
    run = np.zeros(len(t), dtype=np.int64)
    start, r = 0, 0
    limit = np.timedelta64(days, "D")
    for i in range(1, len(t)):
        if t[i] - t[start] > limit:
            start, r = i, r + 1
        run[i] = r
    return run


def _by_creation(mask: np.ndarray, created: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The positions of ``mask`` whose creation time is known, sorted by it, and those
    times (``created`` is aligned with ``mask``)."""
    idx = np.flatnonzero(mask)
    at = pd.to_datetime(created.to_numpy()[idx])
    known = ~pd.isna(at)
    idx, t = idx[known], at.to_numpy()[known]
    order = np.argsort(t, kind="stable")
    return idx[order], t[order]


def _created_together(comp: np.ndarray, members: np.ndarray, hoarder: np.ndarray,
                      created: pd.Series, params: RingParams,
                      pop: np.ndarray | None = None) -> np.ndarray:
    """``comp`` with the pieces made only of coupon accounts (``hoarder``) joined when
    they were created within ``burst_days`` of one another (:func:`_runs`). A piece that
    holds other accounts (a crawl crew with a coupon account among it) is not joined.
    With ``pop`` (every account's creation time, sorted), a run is joined only when it
    is a burst: ``support_factor`` times the coupon accounts a random draw of as many
    would have made in its days, at the platform's rate then. Where coupon hunting is
    common, two of a platform's hundreds of hunters made the same week are chance.

    >>> p = RingParams()
    >>> at = pd.Series(pd.to_datetime(["2020-01-01", "2020-01-03", "2020-03-01", "2020-01-05"]))
    >>> _created_together(np.array([0, 1, 2, 1]), np.arange(4),
    ...                   np.array([True, True, True, True]), at, p).tolist()
    [3, 3, 2, 3]
    >>> _created_together(np.array([0, 1, 2, 1]), np.arange(4),   # piece 1 is no coupon piece
    ...                   np.array([True, True, True, False]), at, p).tolist()
    [0, 1, 2, 1]
    >>> days = pd.Series(pd.date_range("2020-01-01", periods=100))   # one account a day
    >>> hunter = np.arange(100) % 2 == 0                               # half hunt coupons
    >>> pop = np.sort(days.to_numpy(dtype="datetime64[s]"))
    >>> comp = _created_together(np.arange(100), np.arange(100), hunter, days, p, pop)
    >>> bool((comp == np.arange(100)).all())          # four a week of fifty: chance
    True
    >>> _created_together(np.arange(4), np.arange(4), np.ones(4, bool), at, p,
    ...                   np.sort(np.r_[at.to_numpy(dtype="datetime64[s]"), pop])).tolist()
    [4, 4, 2, 4]
    """
    comp = np.asarray(comp).copy()
    only = pd.Series(hoarder[members]).groupby(comp).transform("all").to_numpy()
    idx, t = _by_creation(hoarder[members] & only, pd.Series(created.to_numpy()[members]))
    if len(idx) < 2:
        return comp
    run = _runs(t, params.burst_days)
    if pop is not None and len(pop):
        first = t[np.r_[0, np.flatnonzero(np.diff(run)) + 1]].astype(pop.dtype)
        made = (np.searchsorted(pop, first + np.timedelta64(params.burst_days, "D"), "right")
                - np.searchsorted(pop, first, "left"))
        burst = np.bincount(run) >= params.support_factor * len(idx) * made / len(pop)
        idx, run = idx[burst[run]], run[burst[run]]
        if len(idx) < 2:
            return comp
    return _join_runs(comp, idx, run)


def _join_runs(comp: np.ndarray, idx: np.ndarray, run: np.ndarray) -> np.ndarray:
    """``comp`` with the pieces that hold members ``idx`` of one run (``run``, aligned
    with ``idx``) joined into one new piece each, numbered after ``comp``'s (in the order
    of their first piece); a piece holding members of two runs joins them both.

    >>> _join_runs(np.array([0, 1, 2, 3]), np.array([0, 1, 3]), np.array([0, 0, 1])).tolist()
    [4, 4, 2, 3]
    """
    import igraph as ig

    comp = np.asarray(comp).copy()
    pieces, at_piece = np.unique(comp[idx], return_inverse=True)
    _, run = np.unique(run, return_inverse=True)
    # Pieces and runs as one graph: the pieces that hold accounts of one run (a piece may
    # hold two runs) are connected.
    g = ig.Graph(n=len(pieces) + int(run.max()) + 1,
                 edges=np.column_stack([at_piece, len(pieces) + run]).tolist())
    group = np.asarray(g.connected_components().membership)[: len(pieces)]
    # A group of two or more pieces becomes one new piece (in the order of its first).
    labels, first, n = np.unique(group, return_index=True, return_counts=True)
    joined = labels[n >= 2][np.argsort(first[n >= 2], kind="stable")]
    fresh = comp.max() + 1
    relabel = {int(piece): fresh + i for i, label in enumerate(joined)
               for piece in pieces[group == label]}
    return pd.Series(comp).replace(relabel).to_numpy()


def onset_crews(sig: pd.DataFrame, params: RingParams,
                first_event) -> tuple[np.ndarray, np.ndarray]:
    """Crews that began their sweep together: each account's run (-1 for none) and how
    many times the rate readers began at before its run began (0 for none).

    A crew that splits a crawl queue over aged or taken-over accounts, on homes it proxies
    through and phones of its own, can be most of a small platform's readers: each reads
    no more strangers than an honest reader, nothing links them and none stands out.
    What they share is when they began. An honest reader first reads a stranger when it
    first comes by in the export, so honest first reads pile up on the export's first
    days and thin out after; a crew's come in a burst, weeks or months in.

    A *reader* is a customer that reached strangers it never came back to at a
    ``support_factor``-th of its peers' level or more (``fresh_reach_ratio``), having read
    ``onset_strangers`` strangers or more; its onset is the first day it read a stranger
    (``stranger_onset``). A run is ``onset_least`` or more readers whose onsets fall
    within ``onset_days`` of its first, at ``harvest_factor`` times the rate readers
    (one more than there were) began at in the ``onset_lookback`` days before (fewer
    when the export began later; none of it on the export's first ``onset_days``,
    whose readers may have begun before). Its members were made ``onset_lookback`` days
    or more before their onset: a festival's sign-ups, and accounts made for a job
    (judged by their creation burst), begin reading as they are made; they count in
    the rate before all the same. The largest run is taken first, then the next among
    the readers left.

    >>> p = RingParams()
    >>> day = lambda d: pd.Timestamp("2024-01-01") + pd.Timedelta(days=d)
    >>> onsets = [0] * 30 + [1] * 10 + [2, 5, 9, 12, 20] + [30] * 4 + [31] * 3
    >>> sig = pd.DataFrame({"account_type": "customer", "fresh_reach_ratio": 0.8,
    ...                     "untied_users": 12, "stranger_onset": [day(d) for d in onsets],
    ...                     "created_at": pd.Timestamp("2020-05-01")})
    >>> run, ratio = onset_crews(sig, p, day(0))
    >>> run[-7:].tolist(), round(float(ratio[-1]), 1), int((run >= 0).sum())
    ([0, 0, 0, 0, 0, 0, 0], 16.3, 7)
    >>> sig.loc[45:, "created_at"] = day(29)          # a festival's sign-ups, reading at once
    >>> int((onset_crews(sig, p, day(0))[0] >= 0).sum())
    0
    """
    n = len(sig)
    run, ratio = np.full(n, -1, dtype=np.int64), np.zeros(n)
    start = export_start(first_event)
    if start is None or not n:
        return run, ratio
    onset = pd.to_datetime(sig["stranger_onset"]).to_numpy("datetime64[ns]")
    reader = (~sig["account_type"].isin(BUSINESS_TYPES).to_numpy()
              & (np.nan_to_num(sig["fresh_reach_ratio"].to_numpy(dtype=float))
                 >= 1.0 / params.support_factor)
              & (sig["untied_users"].to_numpy() >= params.onset_strangers) & ~np.isnat(onset))
    idx = np.flatnonzero(reader)
    one_day = np.timedelta64(1, "D")
    day = (onset[idx] - np.datetime64(start.normalize())) / one_day
    made = pd.to_datetime(sig["created_at"]).to_numpy("datetime64[ns]")[idx]
    old = ~((onset[idx] - made) / one_day < params.onset_lookback)   # unknown: an old one
    order = np.argsort(day, kind="stable")
    idx, day, old = idx[order], day[order], old[order]
    free = np.ones(len(idx), dtype=bool)
    first = np.searchsorted(day, day, side="left")          # the first reader of its day
    end = np.searchsorted(day, day + params.onset_days, side="left")
    back = np.minimum(params.onset_lookback, day)
    since = np.searchsorted(day, day - back, side="left")
    k = 0
    while True:
        olds = np.r_[0, np.cumsum(old & free)]
        alls = np.r_[0, np.cumsum(free)]
        count = olds[end] - olds[first]
        before = alls[first] - alls[since]
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = (before + 1) * params.onset_days / back
        ok = (old & free & (day >= params.onset_days) & (count >= params.onset_least)
              & (count >= params.harvest_factor * expected))
        if not ok.any():
            return run, ratio
        best = int(np.argmax(np.where(ok, count, -1)))   # the largest; ties: the earliest
        mine = np.arange(first[best], end[best])
        mine = mine[old[mine] & free[mine]]
        run[idx[mine]] = k
        ratio[idx[mine]] = round(float(count[best] / expected[best]), 3)
        free[mine] = False
        k += 1


def _not_promotions(spree: np.ndarray, hoarder: np.ndarray, sig: pd.DataFrame,
                    agg: Aggregates, links: pd.DataFrame, pairs: pd.DataFrame,
                    params: RingParams) -> tuple[np.ndarray, np.ndarray]:
    """``spree`` and ``hoarder`` (coupon harvesters) less the accounts that came for one
    promotion: in its run (created within ``burst_days`` of the run's first,
    :func:`_runs`), ``promotion_share`` or more of its never-ordered-from shops are its
    run's promotion (:func:`promotion_shares`). A festival's sign-ups all claim at the
    same shops, a few or many of them each; a crew sprays claims over many, and one that
    signs up during a promotion keeps its own. A partner's campaign is a promotion too
    (:func:`partner_campaigns`).

    A promotion is a crowd. A spree is judged in its run of sprees, of
    ``promotion_least`` or more (two made the same week that share shops are judged on
    their claims, together at ``harvest_factor`` shops or more, see :func:`find_rings`),
    or in that run with the coupon harvesters that joined it (:func:`_promotion_runs`),
    of ``festival_least`` or more; a coupon harvester only in the latter, so that a
    crew's own few members never make its crowd. A spree on a device coupon accounts
    dominate (an emulator, a cloned phone) came for no promotion; a harvester neither,
    nor on an IP they dominate, nor when it claimed at its shops more than
    ``promotion_claims`` times each (a sign-up takes a shop's coupon once or twice)
    (:func:`_on_owned_infrastructure`)."""
    coupon = spree | hoarder
    merchant = sig["account_type"].to_numpy() == "merchant"
    partner_of = pd.Series(sig["partner_id"].to_numpy(object)[merchant],
                           index=sig["aid"].to_numpy()[merchant]).dropna()
    # Each partner's share of the usual claims (by accounts neither sprees nor coupon
    # harvesters; shops no partner serves count in the whole) and of the platform's shops:
    # a campaign lifts its own.
    claims_of = sig["coupon_claims"].to_numpy(dtype=float)
    usual = agg.coupons[~coupon[agg.coupons["aid"].to_numpy()]]
    usual_share = (usual.groupby("partner_id")["claims"].sum()
                   / max(float(claims_of[~coupon].sum()), 1.0))
    shop_share = partner_of.value_counts() / max(int(merchant.sum()), 1)

    def came(run: pd.Series, least: int) -> np.ndarray:
        """The accounts of ``run`` (position → run number) whose run, ``least`` or more,
        came for one promotion and so did they."""
        if len(run) < 2:
            return np.zeros(0, dtype=np.int64)
        campaigns = partner_campaigns(agg.coupons, run, usual_share, claims_of, shop_share,
                                      params.campaign_share, params.support_factor)
        share = promotion_shares(pairs, run, partner_of, campaigns)
        crowd = run.map(run.value_counts()).reindex(share.index).to_numpy() >= least
        return share.index[(share >= params.promotion_share) & crowd].to_numpy()

    run = _promotion_runs(spree, hoarder & ~spree, sig["created_at"], params.burst_days)
    of_sprees = run[spree[run.index.to_numpy()]]
    festival = came(run, params.festival_least)
    spree, hoarder = spree.copy(), hoarder.copy()
    # A spree: by its run of sprees (promotion_least), or by the run its festival's coupon
    # harvesters joined (festival_least: a crew's few harvesters never make a crowd).
    sprees = np.union1d(came(of_sprees, params.promotion_least), festival)
    sprees = sprees[spree[sprees]]
    spree[sprees[~_on_owned_infrastructure(links, coupon, params, ips=False)[sprees]]] = False
    harvesters = festival[hoarder[festival]]
    harvesters = harvesters[~_on_owned_infrastructure(links, coupon, params)[harvesters]]
    repeat = (sig["coupon_no_order"].to_numpy(dtype=float)
              / np.maximum(sig["coupon_merchants"].to_numpy(dtype=float), 1.0))
    hoarder[harvesters[repeat[harvesters] <= params.promotion_claims]] = False
    return spree, hoarder


def _promotion_runs(spree: np.ndarray, harvester: np.ndarray, created: pd.Series,
                    days: int) -> pd.Series:
    """Each spree's and coupon harvester's run (position → run number). Sprees make the
    runs (:func:`_runs`); a harvester joins the run of sprees whose first was made within
    ``days`` of it (the nearest), so that a keen bargain hunter made days before a festival
    neither starts nor moves the festival's run. Harvesters near no run of sprees make
    runs of their own.

    >>> made = pd.Series(pd.to_datetime(["2020-03-10", "2020-03-10", "2020-03-12",
    ...                                  "2020-03-04", "2020-05-01", "2020-05-02"]))
    >>> spree = np.array([True, True, True, False, False, False])
    >>> _promotion_runs(spree, ~spree, made, 7).to_dict()
    {0: 0, 1: 0, 2: 0, 3: 0, 4: 1, 5: 1}
    """
    idx, t = _by_creation(spree, created)
    run = _runs(t, days)
    first = t[np.r_[0, np.flatnonzero(np.diff(run)) + 1]] if len(t) else t
    hidx, ht = _by_creation(harvester, created)
    limit = np.timedelta64(days, "D")
    joined = np.full(len(hidx), -1, dtype=np.int64)
    if len(first) and len(ht):
        after = np.clip(np.searchsorted(first, ht), 1, len(first) - 1) if len(first) > 1 \
            else np.zeros(len(ht), dtype=np.int64)
        before = np.maximum(after - 1, 0)
        near = np.where(np.abs(ht - first[before]) <= np.abs(first[after] - ht), before, after)
        joined = np.where(np.abs(ht - first[near]) <= limit, near, -1)
    alone = joined < 0
    own = _runs(ht[alone], days) + (run.max() + 1 if len(run) else 0)
    joined[alone] = own
    return pd.Series(np.r_[run, joined], index=np.r_[idx, hidx])


def partner_campaigns(claims: pd.DataFrame, run: pd.Series, usual_share: pd.Series,
                      claims_of: np.ndarray, shop_share: pd.Series, share: float,
                      lift: float) -> set:
    """The (run, partner) pairs that are a partner's campaign. ``claims`` holds each
    account's claims at each partner's shops (aid, partner_id, claims), ``run`` maps an
    aid to its run, ``claims_of`` each account's claims in all (by aid),
    ``usual_share`` each partner's share of the usual claimers' claims and
    ``shop_share`` its share of the platform's shops. A campaign: the partner holds
    ``share`` or more of the run's claims; the run claims elsewhere under a
    ``lift``-th as often as the usual claimers do; and the partner serves no more than
    half the shops. A festival run by one promotions partner brings sign-ups that each
    try a few of its many shops. Where one partner serves most shops, or takes most
    claims anyway, or nothing claims but the runs, there is nothing a campaign stands
    out from.

    >>> claims = pd.DataFrame({"aid": [1, 2, 2], "partner_id": ["P1", "P1", "P2"],
    ...                        "claims": [9, 10, 1]})
    >>> run, claims_of = pd.Series([0, 0], index=[1, 2]), np.array([0, 9, 11])  # 19 of 20
    >>> few = pd.Series({"P1": 0.2, "P2": 0.2})                       # each serves 1 shop in 5
    >>> partner_campaigns(claims, run, pd.Series({"P1": 0.5}), claims_of, few, 0.9, 3.0)
    {(0, 'P1')}
    >>> partner_campaigns(claims, run, pd.Series({"P1": 0.9}), claims_of, few, 0.9, 3.0)
    set()
    >>> partner_campaigns(claims, run, pd.Series({"P1": 0.5}), claims_of,
    ...                   pd.Series({"P1": 0.9}), 0.9, 3.0)           # P1 serves 90 % of shops
    set()
    >>> partner_campaigns(claims, run, pd.Series(dtype=float), claims_of, few, 0.9, 3.0)
    set()
    """
    mine = claims[claims["aid"].isin(run.index)]
    if mine.empty or usual_share.empty:   # no usual claims: nothing to stand out from
        return set()
    per = mine.assign(run=run.reindex(mine["aid"].to_numpy()).to_numpy()).groupby(
        ["run", "partner_id"])["claims"].sum()
    total = pd.Series(claims_of[run.index.to_numpy()]).groupby(run.to_numpy()).sum()
    held = per.to_numpy() / np.maximum(
        total.reindex(per.index.get_level_values("run")).to_numpy(), 1.0)
    partners = per.index.get_level_values("partner_id")
    usual = usual_share.reindex(partners).fillna(0.0).to_numpy()
    few_shops = shop_share.reindex(partners).fillna(0.0).to_numpy() <= 0.5
    return set(per.index[(held >= share) & ((1.0 - held) * lift < 1.0 - usual) & few_shops])


def _on_owned_infrastructure(links: pd.DataFrame, coupon: np.ndarray,
                             params: RingParams, ips: bool = True) -> np.ndarray:
    """Which accounts (a mask) are ``coupon`` accounts on infrastructure coupon accounts
    dominate (``dominated_share`` of its users): a device two or more of them use (an
    emulator, a cloned phone; not a family phone or a booth's tablet), or (with ``ips``)
    an IP ``crew_harvesters`` or more of them use (a crew's datacenter address or proxied
    homes; not a household, nor a carrier NAT's thousands).

    >>> links = pd.DataFrame({"aid": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    ...                       "entity": [9, 9, 8, 8, 8, 5, 5, 5, 4, 4],
    ...                       "kind": ["device"] * 5 + ["ip"] * 5})
    >>> coupon = np.array([True, True, True, False, False, True, True, True, True, True])
    >>> # an emulator (9), a family phone (8), a datacenter IP (5), a couple's home (4)
    >>> _on_owned_infrastructure(links, coupon, RingParams()).tolist()
    [True, True, False, False, False, True, True, True, False, False]
    """
    if not ips:
        links = links[links["kind"].to_numpy() == "device"]
    # Only devices and IPs a coupon account uses can be owned: the rest need no counting.
    used = links["entity"].to_numpy()[coupon[links["aid"].to_numpy()]]
    links = links[np.isin(links["entity"].to_numpy(), used)]
    aid, entity = links["aid"].to_numpy(), links["entity"].to_numpy()
    n_coupon = pd.Series(coupon[aid]).groupby(entity).transform("sum").to_numpy()
    n_users = pd.Series(aid).groupby(entity).transform("size").to_numpy()
    least = np.where(links["kind"].to_numpy() == "device", 2, params.crew_harvesters)
    owned = (n_coupon >= least) & (n_coupon / n_users >= params.dominated_share) & coupon[aid]
    out = np.zeros(len(coupon), dtype=bool)
    out[aid[owned]] = True
    return out


def _burst(created: np.ndarray, pop: np.ndarray, days: int) -> tuple[int, float]:
    """Largest number of ``created`` within ``days``, and its ratio to the population rate.

    ``created`` holds the ring's creation times (``datetime64``, NaT for unknown);
    ``pop`` is every account's creation time, sorted (``datetime64[s]``).
    """
    created = np.asarray(created).astype("datetime64[s]")
    c = np.sort(created[~np.isnat(created)])
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
    ratio = sig["harvest_ratio"].to_numpy()
    harvester = ratio >= params.harvest_factor
    # Joining takes harm of one's own: reach of strangers over the join factor (reading a
    # few comment pages of unvisited shops is a common shopper's habit, so comments count
    # only at the full harvest factor).
    weak = ((sig["stranger_reach_ratio"].to_numpy() >= params.join_factor)
            | (sig["untied_merchants_ratio"].to_numpy() >= params.harvest_factor)
            | (sig["untied_comment_reads_ratio"].to_numpy() >= params.harvest_factor)) & ~harvester
    links = _entity_links(agg, params)
    # Coupon crews: accounts that claimed coupons at more merchants they never ordered from
    # than 90 % of their peers, working from devices or IPs they dominate. Alone such an
    # account is a keen bargain hunter; five of them on their own infrastructure are a crew.
    claimer = coupon_crews(sig, links, params)
    # Reading crews: accounts each reaching strangers like the top quarter of their peers,
    # many of them on devices they dominate (a crawl queue split over a crew).
    reader = reader_crews(sig, links, params)
    # Crews that began their sweep together: aged or taken-over accounts on homes and phones
    # of their own, most of a small platform's readers, each reading like its peers and
    # linked by nothing but when they began.
    sweep_run, sweep_rate = onset_crews(sig, params, agg.first_event)
    # Coupon harvesters: claims at never-ordered-from merchants at harvest_factor times the
    # keenest tenth of their peers. Two of them on infrastructure they dominate are a pair
    # no bargain hunter makes (see decide_flag).
    hoarder = coupon_harvesters(sig, params)
    # Coupon sprees: accounts whose activity is claiming coupons at merchants they never
    # ordered from. Two made the same week, or on infrastructure they dominate, are a crew,
    # unless they came for one promotion (see below).
    # Judging a spree takes the shops each account claimed at (coupon_pairs); Aggregates
    # made before that table have none, and no sprees.
    pairs = agg.coupon_pairs if agg.coupon_pairs is not None else pd.DataFrame(
        {"aid": pd.Series([], dtype="int32"), "mid": pd.Series([], dtype="int32")})
    spree = coupon_sprees(sig, params) & ~hoarder & (agg.coupon_pairs is not None)
    spree, hoarder = _not_promotions(spree, hoarder, sig, agg, links, pairs, params)
    start = harvester | claimer | reader | hoarder | spree
    # A crew that began its sweep together is a ring of its own (one piece per run): its
    # members with no harm or claims that start a ring anyway take no part in linking
    # through devices and IPs, where the homes it proxied through would pull their honest
    # residents in. Its harvesters link as any harvester does.
    sweeper = (sweep_run >= 0) & ~start
    if not (start | sweeper).any():
        return _no_rings(params)
    members = _expand(sig, links, start, weak & ~sweeper, params)
    # Suspects: any account with harm of its own or claiming like the keenest tenth.
    suspect = (harvester | weak | claimer | reader
               | coupon_harvesters(sig, params, factor=1.0)) & ~sweeper
    comp = _components(members, links, params, suspects=suspect)
    # Coupon harvesters and sprees created together (within burst_days of one another,
    # one after the other) are one piece, whatever infrastructure they used: accounts
    # bulk-made for coupons. No bargain hunter claims like them, and a pair made the same
    # week, in a burst against the platform's rate, is an operation (see decide_flag).
    infra = comp    # pieces by devices and IPs alone: who operates together
    pop_created = np.sort(sig["created_at"].dropna().to_numpy(dtype="datetime64[s]"))
    comp = _created_together(comp, members, hoarder | spree, sig["created_at"], params,
                              pop_created)
    # Each sweeper is a piece of its own (it shares no device or IP with the crew); the
    # pieces made only of one run's members, its harvesters' among them, are then joined:
    # one crew, one ring.
    swept = np.flatnonzero(sweeper)
    alone = np.r_[comp, infra, -1].max() + 1 + np.arange(len(swept))
    members = np.concatenate([members, swept])
    comp = np.concatenate([comp, alone])
    infra = np.concatenate([infra, alone])
    run_of = sweep_run[members]
    only = pd.Series(run_of >= 0).groupby(comp).transform("all").to_numpy()
    at = np.flatnonzero((run_of >= 0) & only)
    if len(at):
        comp = _join_runs(comp, at, run_of[at])
    onset_comp = np.isin(comp, comp[at])
    comm = communities.reindex(members).to_numpy()
    # Each connected piece goes to the community most of its members sit in.
    piece = pd.DataFrame({"aid": members, "comp": comp, "comm": comm, "infra": infra})
    piece_comm = (piece.groupby(["comp", "comm"]).size().rename("n").reset_index()
                  .sort_values(["comp", "n", "comm"], ascending=[True, False, True])
                  .drop_duplicates("comp").set_index("comp")["comm"])
    # Pieces of one community are one ring, unless they belong to different partners
    # (staff of one partner and of another are two operations, not one).
    pid = sig["partner_id"].to_numpy()[members]
    staff_of = np.where((sig["account_type"].to_numpy()[members] == "partner_staff")
                        & pd.notna(pid), pid, "").astype(str)
    sign = (pd.Series(staff_of).groupby(comp).agg(lambda v: ";".join(sorted({x for x in v
                                                                               if x})))
            .reindex(comp).to_numpy())
    ring_of = piece["comp"].map(piece_comm).astype(str).to_numpy(object)
    ring_of[onset_comp] = [f"onset {c}" for c in comp[onset_comp]]
    keys = pd.Series([f"{c}|{p}" for c, p in zip(ring_of, sign)])
    piece["group"] = pd.factorize(keys, sort=True)[0]
    # Crew with no harvester (or coupon crew) in their group did not join a ring.
    piece["harvester"] = harvester[piece["aid"].to_numpy()]
    piece["claimer"] = claimer[piece["aid"].to_numpy()]
    piece["reader"] = reader[piece["aid"].to_numpy()]
    piece["sweeper"] = sweep_run[piece["aid"].to_numpy()] >= 0
    # Coupon harvesters count where two or more share one connected piece.
    # Coupon accounts (harvesters and sprees) count where two or more share one connected
    # piece and claimed, together, at harvest_factor or more shops they never ordered from
    # (two sign-ups that each tried three shops are no operation).
    aid_of = piece["aid"].to_numpy()
    piece["hoarder"] = hoarder[aid_of] | spree[aid_of]
    piece["spree"] = spree[aid_of]
    piece["hoarder"] &= piece.groupby("comp")["hoarder"].transform("sum") >= 2
    # (Aggregates without coupon_pairs, made before it existed, keep the harvesters'
    # pairs: each harvester alone claimed at harvest_factor shops or more.)
    if agg.coupon_pairs is not None:
        comp_of = piece.loc[piece["hoarder"], ["aid", "comp"]]
        shops = pairs.merge(comp_of, on="aid").groupby("comp")["mid"].nunique()
        shops = shops.reindex(piece["comp"].to_numpy()).fillna(0).to_numpy()
        piece["hoarder"] &= shops >= params.harvest_factor
    piece["spree"] &= piece["hoarder"]
    grp = piece.groupby("group")
    keep = (grp["harvester"].transform("any")
            | (grp["claimer"].transform("sum") >= params.coupon_crew)
            | (grp["reader"].transform("sum") >= params.reader_crew)
            | (grp["sweeper"].transform("sum") >= params.onset_least)
            | grp["hoarder"].transform("any"))
    piece = piece[keep.to_numpy()]
    # Members earn their place against their ring too: an account that joined on its own
    # harm (not a harvester, claimer, reader) but harvests under a harvest_factor-th of its
    # ring's typical harvester is an honest reader on a home or phone the ring borrowed.
    ratio_of = ratio[piece["aid"].to_numpy()]
    core = pd.Series(np.where(piece["harvester"].to_numpy(), ratio_of, np.nan)).groupby(
        piece["group"].to_numpy()).transform("median").to_numpy()
    joined = ~(piece["harvester"] | piece["claimer"] | piece["reader"] | piece["sweeper"]
               | piece["hoarder"]).to_numpy()
    piece = piece[~(joined & (ratio_of < np.nan_to_num(core) / params.harvest_factor))]

    if piece.empty:   # lone coupon harvesters, crews that did not hold: no candidate ring
        return _no_rings(params)
    rows, member_idx, member_group, member_score = [], [], [], []
    partners = agg.partners.set_index("partner_id") if len(agg.partners) else pd.DataFrame()
    # Plain arrays, split once per ring: the loop below touches only its own rows and
    # pays no per-ring pandas overhead (thousands of candidate rings at 1M accounts).
    cols = {c: sig[c].to_numpy() for c in _EVIDENCE_COLUMNS}
    cols["sweep_rate"] = sweep_rate
    group_of = piece.set_index("aid")["group"]
    entity_size = links.groupby("entity")["aid"].size()
    mlinks = links[links["aid"].isin(group_of.index)]
    links_by_group = _split(mlinks["aid"].map(group_of).to_numpy(),
                            entity=mlinks["entity"].to_numpy(),
                            aid=mlinks["aid"].to_numpy(),
                            device=(mlinks["kind"] == "device").to_numpy(),
                            size=entity_size.reindex(mlinks["entity"]).to_numpy())
    staff = sig[(sig["account_type"] == "partner_staff") & sig["partner_id"].notna()]
    staff_links = links[links["aid"].isin(staff["aid"])].merge(
        staff[["aid", "partner_id"]], on="aid")
    staff_partners: dict[int, set[str]] = {}
    for e, p in zip(staff_links["entity"].tolist(), staff_links["partner_id"].tolist()):
        staff_partners.setdefault(e, set()).add(p)
    # Each partner's active staff, with each one's harm: a ring of a partner whose staff
    # nearly all read strangers alike is its workforce.
    active_staff = staff[staff["n_events"] > 0]
    workforce = {p: g.to_numpy(dtype=float)
                 for p, g in active_staff.groupby("partner_id")["harvest_ratio"]}
    coupons = agg.coupons[agg.coupons["aid"].isin(group_of.index)] \
        if len(agg.coupons) else agg.coupons
    coupons_by_group = _split(coupons["aid"].map(group_of).to_numpy(),
                              partner_id=coupons["partner_id"].to_numpy(object),
                              claims=coupons["claims"].to_numpy()) if len(coupons) else {}
    no_coupons = {"partner_id": np.array([], dtype=object), "claims": np.array([], dtype=int)}
    piece = piece.sort_values(["group", "aid"], kind="stable")
    by_group = _split(piece["group"].to_numpy(), aid=piece["aid"].to_numpy(),
                      comp=piece["comp"].to_numpy(), hoarder=piece["hoarder"].to_numpy(),
                      spree=piece["spree"].to_numpy(), infra=piece["infra"].to_numpy())
    for group in sorted(by_group):
        idx = by_group[group]["aid"]
        hidx = idx[harvester[idx]]
        cpidx = idx[claimer[idx]]
        rdidx = idx[reader[idx]]
        # Its crew that began together: the ring's largest run (one burst of first reads).
        runs = sweep_run[idx]
        swidx = (idx[runs == np.bincount(runs[runs >= 0]).argmax()] if (runs >= 0).any()
                 else idx[:0])
        _, comp_inv, comp_n = np.unique(by_group[group]["infra"], return_inverse=True,
                                        return_counts=True)
        together = int((comp_n[comp_inv] >= 2).sum())
        # The most harvesters in one piece: linked through devices or IPs they dominate.
        _, per_piece = np.unique(by_group[group]["infra"][harvester[idx]], return_counts=True)
        crewed = int(per_piece.max()) if len(per_piece) else 0
        ring = _ring_evidence(cols, idx, hidx, cpidx, rdidx, base, params, pop_created, partners,
                              coupons_by_group.get(group, no_coupons),
                              links_by_group.get(group), staff_partners, together,
                              idx[by_group[group]["hoarder"] & ~by_group[group]["spree"]],
                              workforce, idx[by_group[group]["spree"]], crewed, swidx)
        ring["group"] = group
        rows.append(ring)
        acct_score = (np.log10(1 + np.maximum(cols["harvest_ratio"][idx],
                                              cols["coupon_merchants_ratio"][idx]))
                      + 0.5 * (cols["device_share_ratio"][idx] >= params.support_factor)
                      + 0.5 * (cols["coupon_ratio"][idx] >= params.support_factor)
                      + 0.5 * (cols["pacing_ratio"][idx] >= 1)
                      + 0.5 * (cols["round_clock_ratio"][idx] >= 1))
        member_idx.append(idx)
        member_group.append(np.full(len(idx), group))
        member_score.append(np.round(acct_score, 3))
    at = np.concatenate(member_idx)
    members_df = pd.DataFrame({
        "group": np.concatenate(member_group), "aid": sig["aid"].to_numpy()[at],
        "account_id": sig["account_id"].to_numpy()[at],
        "account_type": sig["account_type"].to_numpy()[at],
        "partner_id": sig["partner_id"].to_numpy()[at],
        "account_score": np.concatenate(member_score)})
    rings = pd.DataFrame(rows)
    rings = rings.sort_values(["score", "n_accounts", "group"], ascending=[False, False, True],
                              kind="stable").reset_index(drop=True)
    rings["rank"] = np.arange(1, len(rings) + 1)
    rings["ring_id"] = [f"ring-{r:03d}" for r in rings["rank"]]
    ring_of = dict(zip(rings["group"], rings["ring_id"]))
    members_df["ring_id"] = members_df["group"].map(ring_of)
    members_df = members_df.sort_values(["ring_id", "account_score", "account_id"],
                                        ascending=[True, False, True], kind="stable")
    extra = [c for c in rings.columns if c not in RING_COLUMNS]
    rings = rings[RING_COLUMNS + extra].drop(columns=["group"])
    members_df = members_df[MEMBER_COLUMNS + ["aid"]].reset_index(drop=True)
    return Rings(rings=rings, members=members_df, params=params)


#: Account signals the ring evidence reads (as arrays, see :func:`find_rings`).
_EVIDENCE_COLUMNS = ("untied_users", "untied_records", "untied_reads", "profile_reads",
                     "account_type", "partner_id", "device_share", "device_share_ratio",
                     "pacing", "pacing_ratio", "round_clock_ratio", "hours_active",
                     "created_at", "coupon_no_order", "coupon_ratio", "first_seen", "last_seen",
                     "harvest_ratio", "stranger_reach", "stranger_reach_ratio",
                     "untied_merchants", "untied_merchants_ratio", "clientele_return",
                     "coupon_merchants", "coupon_merchants_ratio", "stranger_reach_standout",
                     "untied_merchants_standout", "untied_comment_reads",
                     "untied_comment_reads_ratio", "untied_comment_reads_standout",
                     "fresh_reach", "fresh_reach_ratio", "fresh_reach_standout",
                     "coupon_focus", "coupon_focus_ratio", "ip_spread_ratio", "n_ips",
                     "stranger_reach_alone", "fresh_reach_alone", "untied_merchants_alone",
                     "untied_comment_reads_alone", "stranger_steadiness", "stranger_days",
                     "active_days", "stranger_onset")


def coupon_crews(sig: pd.DataFrame, links: pd.DataFrame, params: RingParams) -> np.ndarray:
    """The members of coupon crews (a mask over ``sig``'s rows).

    A *claimer* claimed coupons at more merchants it never ordered from than 90 % of
    its peers, and at two or more (one unused coupon says nothing); :func:`crews`
    groups them.
    """
    return crews(sig["coupon_merchants_ratio"].to_numpy(dtype=float),
                 sig["coupon_merchants"].to_numpy(dtype=float), links, params,
                 size=params.coupon_crew, least=2)


def coupon_sprees(sig: pd.DataFrame, params: RingParams) -> np.ndarray:
    """Accounts whose activity is claiming coupons (a mask over ``sig``'s rows): claims at
    ``spree_factor`` times the share of its type's median claimer, at ``spree_merchants``
    or more merchants it never ordered from."""
    return ((sig["coupon_focus_ratio"].to_numpy(dtype=float) >= params.spree_factor)
            & (sig["coupon_merchants"].to_numpy(dtype=float) >= params.spree_merchants))


def promotion_shares(pairs: pd.DataFrame, run: pd.Series, partner_of: pd.Series | None = None,
                     campaigns: set | None = None) -> pd.Series:
    """How much each account came for one promotion: for each account of ``run`` (aid →
    its run's number), the share of its never-ordered-from coupon shops (``pairs``: aid,
    mid) that are its run's promotion: shops half its run or more (two at least) claimed
    at, or the shops of a partner whose campaign the run is (``campaigns``: (run,
    partner) pairs, :func:`partner_campaigns`; ``partner_of``: merchant → partner).

    >>> same = pd.DataFrame({"aid": [1, 1, 1, 2, 2, 2], "mid": [7, 8, 9, 7, 8, 9]})
    >>> promotion_shares(same, pd.Series([0, 0], index=[1, 2])).tolist()   # a festival
    [1.0, 1.0]
    >>> spread = pd.DataFrame({"aid": [1, 1, 1, 2, 2, 2, 2], "mid": [7, 8, 9, 7, 4, 5, 6]})
    >>> promotion_shares(spread, pd.Series([0, 0], index=[1, 2])).round(3).tolist()
    [0.333, 0.25]
    >>> shops = pd.Series(["P1"] * 6, index=[7, 4, 5, 6, 8, 9])         # one partner's shops
    >>> promotion_shares(spread, pd.Series([0, 0], index=[1, 2]), shops, {(0, "P1")}).tolist()
    [1.0, 1.0]
    """
    mine = pairs[pairs["aid"].isin(run.index)]
    mine = mine.assign(run=run.reindex(mine["aid"].to_numpy()).to_numpy())
    claimed_by = mine.groupby(["run", "mid"])["aid"].transform("nunique").to_numpy()
    need = np.maximum(2, np.ceil(run.value_counts().reindex(mine["run"]).to_numpy() / 2))
    promotion = claimed_by >= need
    if campaigns and partner_of is not None:
        at = pd.MultiIndex.from_arrays([mine["run"].to_numpy(),
                                        partner_of.reindex(mine["mid"].to_numpy()).to_numpy(object)])
        promotion |= at.isin(list(campaigns))
    return pd.Series(promotion).groupby(mine["aid"].to_numpy()).mean()


def coupon_harvesters(sig: pd.DataFrame, params: RingParams,
                      factor: float | None = None) -> np.ndarray:
    """Accounts that claimed coupons at ``factor`` (``harvest_factor`` unless given) times
    as many never-ordered-from merchants as the keenest tenth of their peers, and at two
    or more (a mask)."""
    factor = params.harvest_factor if factor is None else factor
    return ((sig["coupon_merchants_ratio"].to_numpy(dtype=float) >= factor)
            & (sig["coupon_merchants"].to_numpy(dtype=float) >= 2))


def standouts(c: dict[str, np.ndarray], idx: np.ndarray, params: RingParams,
              by: float | None = None, alone: bool = False) -> np.ndarray:
    """Which of accounts ``idx`` stand out: harm at ``harvest_factor`` times their peers'
    level in a measure and ``by`` (``support_factor`` unless given) times the
    fourth-highest account of their type in it (``c`` holds the signals as arrays;
    :mod:`analysis.signals`); with ``alone``, also ``support_factor`` times the
    second-highest other account of their type."""
    by = params.support_factor if by is None else by
    out = np.zeros(len(idx), dtype=bool)
    for measure in PEER_MEASURES:
        out |= ((np.nan_to_num(c[f"{measure}_ratio"][idx]) >= params.harvest_factor)
                & (np.nan_to_num(c[f"{measure}_standout"][idx]) >= by)
                & ((not alone) | (np.nan_to_num(c[f"{measure}_alone"][idx])
                             >= params.support_factor)))
    return out


def reader_crews(sig: pd.DataFrame, links: pd.DataFrame, params: RingParams) -> np.ndarray:
    """The members of reading crews (a mask over ``sig``'s rows).

    A *reader* reached strangers (or merchants' comment pages) above its peers'
    baseline, as only a quarter of its peers do. Alone it is a keen reader. Many
    of them on infrastructure they dominate are a crew that split its crawl queue:
    where a crew is a large share of an export's readers, its members set their
    own peers' level and none stands out alone (:func:`crews`). A crew harvests one
    thing: profiles (reach of strangers) or comment pages (untied merchants), each
    judged on its own, so readers of profiles never make up a crew of comment readers.
    """
    crew = np.zeros(len(sig), dtype=bool)
    # A sweep reads each stranger once or a few times; a test rig reads the same few
    # test profiles all day, and what it reaches is those few, however many rigs.
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = sig["untied_reads"].to_numpy(dtype=float) / sig["untied_users"].to_numpy(dtype=float)
    # Proxy rotators (IPs at harvest_factor times the keenest tenth of their peers) link
    # through IPs too: an office's or a campus's readers, and a test rig, use a handful of
    # IPs each. A rotator that re-reads its strangers is a crawler re-sweeping a platform.
    rotator = sig["ip_spread_ratio"].to_numpy(dtype=float) >= params.harvest_factor
    sweep = (np.nan_to_num(depth, nan=np.inf) <= params.support_factor ** 2) | rotator
    for measure, ok in (("stranger_reach_ratio", sweep), ("untied_merchants_ratio", None),
                        ("untied_comment_reads_ratio", None)):
        ratio = sig[measure].to_numpy(dtype=float)
        if ok is not None:
            ratio = np.where(ok, ratio, 0.0)
        # Strictly above: where three quarters of the readers read one stranger merchant's
        # comments, reading one is the norm, however many share a kiosk. Devices only: a
        # crew's proxied homes are real customers' IPs, and a reading crew is judged by
        # the device it shares.
        crew |= crews(ratio, ratio, links, params, size=params.reader_crew, least=1.0,
                      above=True, by_ip=rotator)
    return crew


def crews(level: np.ndarray, amount: np.ndarray, links: pd.DataFrame, params: RingParams,
          *, size: int, least: float, above: bool = False,
          by_ip: bool | np.ndarray = True) -> np.ndarray:
    """Crews of accounts that each do somewhat more of one thing than their peers.

    ``level`` is each account's measure over its peers' baseline, ``amount`` the
    measure itself: an account with ``level`` ≥ 1 (> 1 with ``above``) and
    ``amount`` ≥ ``least`` is a candidate. Candidates linked through devices or IPs
    they dominate form pieces; a piece of ``size`` or more is a crew. A candidate
    under ``support_factor`` times its peers' level links through devices only (an
    office or a proxied home shares its IP with a crew, never the crew's emulator or
    phone); without ``by_ip`` every candidate does, and with a mask for ``by_ip`` only
    the accounts it marks link through IPs. Members earn their place against
    their crew too: one at under a ``support_factor``-th of its crew's median is an
    honest account in a home the crew proxied through, and leaves (the piece is
    judged again without it).
    """
    level = np.nan_to_num(np.asarray(level, dtype=float))
    amount = np.nan_to_num(np.asarray(amount, dtype=float))
    candidate = ((level > 1.0) if above else (level >= 1.0)) & (amount >= least)
    crew = np.zeros(len(level), dtype=bool)
    if candidate.sum() < size:
        return crew
    cidx = np.flatnonzero(candidate)
    strong = level >= params.support_factor
    by_device = links["kind"].to_numpy() == "device"
    if isinstance(by_ip, np.ndarray):
        usable = by_device | by_ip[links["aid"].to_numpy()]
    else:
        usable = by_device | strong[links["aid"].to_numpy()] if by_ip else by_device
    comp = _components(cidx, links, params, usable=usable)
    _, inv, counts = np.unique(comp, return_inverse=True, return_counts=True)
    big = counts[inv] >= size
    # One pass over the pieces big enough (a mask per piece was quadratic: at 1M accounts
    # the readers above their peers' level are tens of thousands of one-account pieces).
    for piece in _split(comp[big], idx=cidx[big]).values():
        mine = piece["idx"]
        mine = mine[amount[mine] >= np.median(amount[mine]) / params.support_factor]
        if len(mine) >= size:
            crew[mine] = True
    return crew


def _split(keys: np.ndarray, **arrays: np.ndarray) -> dict[object, dict[str, np.ndarray]]:
    """Split arrays by ``keys``: {key: {name: the key's rows of each array}}, in row order."""
    if len(keys) == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    cuts = np.flatnonzero(k[1:] != k[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(k)]])
    return {k[a]: {n: v[order[a:b]] for n, v in arrays.items()} for a, b in zip(starts, ends)}


def _mode(values: np.ndarray) -> str:
    """The most frequent value; the first in sorted order among equals (as pandas' mode)."""
    uniq, counts = np.unique(values.astype(str), return_counts=True)
    return str(uniq[np.argmax(counts)])


def _extreme(values: np.ndarray, fn) -> pd.Timestamp:
    v = values[~pd.isna(values)]
    return pd.Timestamp(fn(v)) if len(v) else pd.NaT


def _ring_evidence(c: dict[str, np.ndarray], idx: np.ndarray, hidx: np.ndarray,
                   cpidx: np.ndarray, rdidx: np.ndarray, base: Baselines, params: RingParams,
                   pop_created: np.ndarray, partners: pd.DataFrame, coupons: dict[str, np.ndarray],
                   mine: dict[str, np.ndarray] | None, staff_partners: dict[int, set[str]],
                   together: int, hoarders: np.ndarray, workforce: dict[str, np.ndarray],
                   sprees: np.ndarray, crewed: int,
                   swidx: np.ndarray | None = None) -> dict:
    """Measure one ring against the population and say why in plain words.

    ``c`` holds the account signals as arrays; ``idx`` are the ring's rows in
    them, ``hidx`` its harvesters', ``cpidx`` its coupon claimers' and ``rdidx``
    its reading crew's, ``hoarders`` its coupon harvesters that share a piece with another,
    ``sprees`` its coupon sprees that do (and came for no one promotion), ``crewed``
    the most of its harvesters in one piece (linked through devices or IPs they
    dominate), ``swidx`` its accounts that began their sweep together (:func:`onset_crews`;
    ``c["sweep_rate"]``: their run's rate over the rate before). ``mine`` holds the ring's own device/IP links (entity,
    account, device or not, the entity's size in accounts);
    ``staff_partners`` maps an entity to the partners whose staff use it;
    ``workforce`` maps a partner to the harm of each of its active staff.
    """
    def m(col):
        return c[col][idx]

    def h(col):
        return c[col][hidx]

    reasons: list[str] = []
    support = strong = 0
    users, records = int(m("untied_users").sum()), int(m("untied_records").sum())
    reads = int(m("untied_reads").sum())
    reach = float(m("stranger_reach").sum())
    # Harm in units of each member's own peer baseline, summed over the ring.
    harm_ratio = float(np.nansum(m("harvest_ratio")))
    top = _mode(h("account_type")) if len(hidx) else _mode(m("account_type"))
    if users:
        peer = base.peer_value("stranger_reach", top)
        reasons.append(
            f"reached {reach:,.0f} strangers: read {reads:,} profiles of {users:,} users with "
            f"no order from its merchants (summed over its accounts), each account's counted "
            f"once per user, less popular profiles and "
            f"its own returning clientele (each harvester {_fmt(float(np.nanmax(h('stranger_reach_ratio'))) if len(hidx) else 0)}× "
            f"at most of {base.describe_peer('stranger_reach', top)}, {_fmt(peer)}; the median "
            f"{top.replace('_', ' ')} reached "
            f"{_fmt(base.median_by_type.get('stranger_reach', {}).get(top, 0))})")
    if (m("fresh_reach_ratio") >= params.harvest_factor).any():
        fresh = float(m("fresh_reach").sum())
        reasons.append(f"read {fresh:,.0f} strangers once and never came back to them "
                       f"({_fmt(float(np.nanmax(m('fresh_reach_ratio'))))}× at most of "
                       f"{base.describe_peer('fresh_reach', top)}): a sweep, where honest "
                       f"readers return to the same people")
    merchants = int(m("untied_merchants").sum())
    if merchants and (m("untied_merchants_ratio") >= params.harvest_factor).any():
        reasons.append(f"read the comment pages of {merchants:,} merchants it has no tie to "
                       f"({_fmt(float(np.nanmax(m('untied_merchants_ratio'))))}× at most of "
                       f"{base.describe_peer('untied_merchants', top)})")
    pages = int(m("untied_comment_reads").sum())
    if pages and (m("untied_comment_reads_ratio") >= params.harvest_factor).any():
        reasons.append(f"read {pages:,} comment pages of merchants it has no tie to "
                       f"({_fmt(float(np.nanmax(m('untied_comment_reads_ratio'))))}× at most of "
                       f"{base.describe_peer('untied_comment_reads', top)})")
    if records:
        reasons.append(f"{records:,} user records returned with no business tie (profiles and "
                       f"comments)")
    pr = m("profile_reads").sum()
    has_partner = pd.notna(m("partner_id"))
    if pr and has_partner.any():
        share = m("untied_reads").sum() / pr
        reasons.append(f"{share:.0%} of its {int(pr):,} profile reads had no business tie")
    # Partner linkage: staff in the ring, or staff sharing its devices/IPs.
    partner_ids = sorted(set(m("partner_id")[has_partner]))
    # Only through devices, or IPs the ring dominates: a busy NAT says nothing.
    ents: set[int] = set()
    if mine is not None:
        uniq, first, n_in = np.unique(mine["entity"], return_index=True, return_counts=True)
        own = uniq[n_in / mine["size"][first] >= params.dominated_share]
        ents = set(own.tolist()) | set(mine["entity"][mine["device"]].tolist())
    near = set().union(*(staff_partners.get(e, ()) for e in ents)) if ents else set()
    linked = sorted(near - set(partner_ids))
    staff = int((m("account_type") == "partner_staff").sum())
    if staff or linked:
        support += 1
        # Inside the partner relationship (the seed case) only when staff harvest themselves;
        # sharing a phone or an office with staff is reported, not counted as a crew.
        strong += bool(staff)
        names = partner_ids + linked
        what = []
        for p in names:
            ptype = partners["partner_type"].get(p) if len(partners) else None
            what.append(f"{p} ({ptype})" if isinstance(ptype, str) and ptype else str(p))
        how = (f"{staff} of its accounts {'is' if staff == 1 else 'are'} partner staff" if staff
               else "it shares devices or IPs with partner staff")
        reasons.append(f"linked to partner {', '.join(what)}: {how}")
        partner_ids = names
    if crewed >= params.crew_harvesters:
        # A crew: several accounts that each harvest on their own, on devices or IPs they
        # dominate. A household or a shop's two logins on one PC give one or two heavy
        # readers, not three; a kiosk's or a carrier NAT's three heavy readers among many
        # users share a community, not infrastructure of their own.
        strong += 1
        reasons.append(f"{crewed} accounts harvest on their own, together, on devices or IPs "
                       f"they dominate")
    if together >= 2:
        support += 1
        dev_max = int(np.nanmax(m("device_share")))
        if (m("device_share_ratio") >= params.support_factor).any():
            reasons.append(f"{together} accounts operate together; one device is shared by "
                           f"{dev_max} accounts ({_fmt(dev_max / base.value['device_share'])}× "
                           f"the 95th percentile)")
        else:
            reasons.append(f"{together} accounts operate together on devices or IPs used "
                           f"mostly by the ring")
    paced = h("pacing_ratio") >= 1
    if paced.any():
        support += 1
        cv = float(np.nanmedian(1 / h("pacing")[paced]))
        reasons.append(f"machine-paced: {int(paced.sum())} harvesting account(s) act at regular "
                       f"intervals (gap variation {cv:.2f}, steadier than 95% of accounts)")
    clock = h("round_clock_ratio") >= 1
    if clock.any():
        support += 1
        reasons.append(f"round the clock: {int(clock.sum())} harvesting account(s) active in up to "
                       f"{int(h('hours_active')[clock].max())} of 24 hours of the day")
    count, burst_ratio = _burst(m("created_at"), pop_created, params.burst_days)
    burst = count >= 3 and burst_ratio >= params.support_factor
    if burst:
        support += 1
        reasons.append(f"new-account burst: {count} of its accounts were created within "
                       f"{params.burst_days} days ({_fmt(burst_ratio)}× the platform's rate)")
    # Harvesters made together: a crew's accounts, bulk-made, each harvesting on its own.
    # A household's or an office's heavy readers are not created in one burst. A partner's
    # staff and merchants are: onboarding makes a team's logins the same day.
    own = ~np.isin(h("account_type"), BUSINESS_TYPES)
    made, made_ratio = _burst(h("created_at")[own], pop_created, params.burst_days)
    made_together = (made >= params.crew_harvesters
                     and made_ratio >= params.support_factor)
    if made_together:
        reasons.append(f"{made} of its harvesters were created within {params.burst_days} days "
                       f"of one another ({_fmt(made_ratio)}× the platform's rate): a crew made "
                       f"for the job")
    claims = 0
    if partner_ids and len(coupons["claims"]):
        claims = int(coupons["claims"][np.isin(coupons["partner_id"], partner_ids)].sum())
    no_order = int(m("coupon_no_order").sum())
    coupon_signal = bool((m("coupon_ratio") >= params.support_factor).any())
    if claims or coupon_signal:
        if claims >= base.value["coupon_no_order"] * params.support_factor or coupon_signal:
            support += 1
            reasons.append(f"claimed {claims:,} coupons at its partner's merchants; "
                           f"{no_order:,} claims at merchants it never ordered from")
    # Coupon crew: in units of each claimer's peer baseline, like harm.
    coupon_harm = float(np.nansum(c["coupon_merchants_ratio"][cpidx])) if len(cpidx) else 0.0
    shared_device = bool(len(cpidx)) and bool(
        (c["device_share_ratio"][cpidx] >= params.support_factor).any())
    if len(cpidx) >= params.coupon_crew:
        kind = _mode(c["account_type"][cpidx])
        each = float(np.median(c["coupon_merchants"][cpidx]))
        reasons.append(
            f"coupon crew: {len(cpidx)} accounts claimed coupons at merchants they never "
            f"ordered from, {_fmt(each)} merchants each at the median "
            f"({_fmt(coupon_harm)}× in all of {base.describe_peer('coupon_merchants', kind)}, "
            f"{_fmt(base.peer_value('coupon_merchants', kind))})")
    # Reading crew: its members' harm summed, like a ring's, over accounts none of which
    # need stand out alone.
    crew_harm = float(np.nansum(c["harvest_ratio"][rdidx])) if len(rdidx) else 0.0
    # Its own device: one the crew dominates, used by three or more of it (a population
    # percentile says little where crews are a large share of the accounts).
    crew_device = False
    if len(rdidx) and mine is not None:
        on = mine["device"] & np.isin(mine["aid"], rdidx)
        _, first, n_crew = np.unique(mine["entity"][on], return_index=True, return_counts=True)
        crew_device = bool(((n_crew >= params.crew_harvesters)
                            & (n_crew / mine["size"][on][first] >= params.dominated_share)).any())
        # Or proxy rotation: a crew of readers each on IPs at harvest_factor times its peers'.
        rotating = int((c["ip_spread_ratio"][rdidx] >= params.harvest_factor).sum())
        if not crew_device and rotating >= params.crew_harvesters:
            crew_device = True
            counted = base.counting("ip_spread", _mode(c["account_type"][rdidx]))
            reasons.append(f"{plural_accounts(rotating)} of the reading crew rotated through "
                           f"{int(np.median(c['n_ips'][rdidx]))} IPs each at the median, "
                           f"{params.harvest_factor:g}× or more what the keenest tenth of "
                           f"their peers used{counted}: proxies")
    swidx = np.zeros(0, dtype=np.int64) if swidx is None else swidx
    sweep_harm = float(np.nansum(c["harvest_ratio"][swidx])) if len(swidx) else 0.0
    if len(swidx) >= params.onset_least:
        began = c["stranger_onset"][swidx]
        reasons.append(
            f"swept together: {len(swidx)} accounts, made long before, each first read a "
            f"stranger within {params.onset_days} days of the first of them "
            f"({_extreme(began, np.min):%Y-%m-%d} to {_extreme(began, np.max):%Y-%m-%d}), "
            f"{_fmt(float(np.max(c['sweep_rate'][swidx])))}× the rate readers began at in the "
            f"{params.onset_lookback} days before ({_fmt(sweep_harm)}× their peers' level "
            f"in all)")
    if len(rdidx) >= params.reader_crew:
        reasons.append(
            f"reading crew: {len(rdidx)} accounts on devices they dominate each reached "
            f"strangers above what three quarters of their peers reach "
            f"({_fmt(crew_harm)}× their peers' level in all)")
    # A lone harvester with no staff or crew evidence (a heavy reader's habit looks like
    # that) must stand out harvest_factor times above the fourth-highest of its kind.
    # It must also stand nearly alone: support_factor times the second-highest other
    # account of its kind (three heavy readers of a small platform, alike, are each no
    # lone crawler; two crawlers alike that share nothing are still each flagged).
    lone = len(hidx) < 2 and not strong
    by = params.harvest_factor if lone else params.support_factor
    out = standouts(c, hidx, params, by=by, alone=lone) if len(hidx) \
        else np.zeros(0, dtype=bool)
    stand = int(out.sum())
    if stand:
        kinds = sorted(set(c["account_type"][hidx][out].tolist()))
        reasons.append(
            f"{plural_accounts(stand)} {'stands' if stand == 1 else 'stand'} out: "
            f"{'its' if stand == 1 else 'their'} harm is {by:g}× or more "
            f"that of the fourth-highest {' or '.join(k.replace('_', ' ') for k in kinds)} "
            f"account of the export")
    # A partner's workforce: two or more harvesters of one partner, alike (none stands
    # out), where nearly all of the partner's active staff read strangers alike: the
    # ring's harvesters and the partner's quieter readers (under harvest_factor, at
    # join_factor and a support_factor-th of the harvesters' median or more; harvesters
    # of other rings do not count). A call centre or a customer-service shift reads
    # callers it has no order tie to, every agent alike, and a small integrator's two
    # staff both work its API traffic; the partner is judged as a whole in the partner
    # review, against partners of its kind. A workforce meets new strangers on its
    # working days: staff who sweep their partner's users in a burst are a crew however
    # many of the staff they are. Steadiness is measured on profiles, where callers are
    # read: a harvester whose harm is comment pages counts as unsteady.
    shift = 0
    hp = h("partner_id")
    if (len(hidx) >= params.workforce_least and not stand
            and (h("account_type") == "partner_staff").all() and pd.notna(hp).all()
            and len(set(hp.tolist())) == 1):
        staff_harm = workforce.get(hp[0], np.zeros(0))
        n_staff = len(staff_harm)
        level = max(params.join_factor,
                    float(np.median(h("harvest_ratio"))) / params.support_factor)
        quieter = int(((staff_harm < params.harvest_factor) & (staff_harm >= level)).sum())
        profiles = ((np.fmax(h("stranger_reach_ratio"), h("fresh_reach_ratio"))
                     >= params.harvest_factor) & np.isfinite(h("stranger_steadiness")))
        steady = float(np.median(np.where(profiles, h("stranger_steadiness"), 0.0)))
        if len(hidx) + quieter >= params.workforce_share * n_staff:
            who = (f"its {plural_accounts(len(hidx))}"
                   + (f" and {quieter} quieter reader{'s' if quieter > 1 else ''}" if quieter
                      else "")
                   + f", {len(hidx) + quieter} of one partner's {n_staff} active staff, "
                   f"read strangers alike")
            if steady >= params.workforce_steady:
                shift = n_staff
            elif not profiles.any():
                reasons.append(f"not a workforce: {who}, but harvest comment pages, not the "
                               f"profiles of callers a workforce reads")
            else:
                reasons.append(
                    f"a sweep, not a workforce: {who}, but met their strangers on "
                    f"{int(np.median(h('stranger_days')[profiles]))} of their "
                    f"{int(np.median(h('active_days')[profiles]))} active days at the median, "
                    f"{steady:.0%} of the days a steady reader of as many would")
    if len(hoarders):
        reasons.append(
            f"{plural_accounts(len(hoarders))} on devices or IPs they dominate, or created within "
            f"{params.burst_days} days of one another, each claimed "
            f"coupons at {params.harvest_factor:g}× or more the never-ordered-from merchants "
            f"of {base.describe_peer('coupon_merchants', _mode(c['account_type'][hoarders]))} "
            f"({int(np.median(c['coupon_merchants'][hoarders]))} merchants each at the median)")
    if len(sprees):
        focus = np.median(c["coupon_focus"][sprees])
        counted = base.counting("coupon_focus", _mode(c["account_type"][sprees]))
        reasons.append(
            f"coupon spree: {plural_accounts(len(sprees))} on devices or IPs they dominate, or "
            f"created within {params.burst_days} days of one another, did little but claim "
            f"coupons ({focus:.0%} of their activity at the median, "
            f"{_fmt(float(np.median(c['coupon_focus_ratio'][sprees])))}× the median claimer's "
            f"share{counted}), each at {params.spree_merchants} or more merchants it never ordered from "
            f"({int(np.median(c['coupon_merchants'][sprees]))} at the median), "
            f"mostly not the same ones")
    flagged, why_not = decide_flag(harm_ratio, len(hidx), strong, params,
                                   standouts=stand, coupon_harvesters=len(hoarders),
                                   coupon_sprees=len(sprees), made_together=made_together,
                                   workforce=shift,
                                   coupon_claimers=len(cpidx), coupon_harm=coupon_harm,
                                   coupon_corroborated=burst or shared_device,
                                   crew_readers=len(rdidx), crew_harm=crew_harm,
                                   crew_corroborated=crew_device, crewed=crewed,
                                   swept=len(swidx), sweep_harm=sweep_harm)
    # Coupon harvesters' claims, in units of their peer baseline, rank like a crew's.
    spent = np.concatenate([hoarders, sprees])
    hoard_harm = float(np.nansum(c["coupon_merchants_ratio"][spent])) if len(spent) else 0.0
    score = ring_score(max(harm_ratio, crew_harm) + max(coupon_harm, hoard_harm), support)
    if why_not:
        reasons.append(why_not)
    return {
        "score": score, "flagged": flagged, "n_accounts": int(len(idx)),
        "partner_ids": ";".join(partner_ids), "first_seen": _extreme(m("first_seen"), np.min),
        "last_seen": _extreme(m("last_seen"), np.max), "profiles_read": int(m("profile_reads").sum()),
        "records_harvested": records, "reasons": "; ".join(reasons),
        "harm_ratio": round(float(harm_ratio), 3), "support_signals": support,
        "untied_users": users, "harvesters": int(len(hidx)),
        "coupon_claimers": int(len(cpidx)), "coupon_harm": round(coupon_harm, 3),
        "crew_readers": int(len(rdidx)), "swept_together": int(len(swidx)),
        "standouts": stand, "workforce": int(shift),
        "coupon_harvesters": int(len(hoarders)), "coupon_sprees": int(len(sprees)),
    }


def decide_flag(harm_ratio: float, harvesters: int, crew_evidence: int,
                params: RingParams, *, standouts: int = 0, coupon_harvesters: int = 0,
                coupon_sprees: int = 0, workforce: int = 0, made_together: bool = False,
                coupon_claimers: int = 0, coupon_harm: float = 0.0,
                coupon_corroborated: bool = False, crew_readers: int = 0,
                crew_harm: float = 0.0, crew_corroborated: bool = False,
                crewed: int | None = None, swept: int = 0,
                sweep_harm: float = 0.0) -> tuple[bool, str]:
    """Whether a candidate ring is an alert, and if not, why not (in words).

    ``harm_ratio`` is the ring's harm summed over its members in units of their
    peer baselines; ``crew_evidence`` counts what households and kiosks do not
    give (``crew_harvesters`` or more self-harvesting accounts on devices or IPs they
    dominate; harvesting partner staff; ``crewed``, the most harvesters in one such piece,
    words the reason where harvesters are many but not linked so). With
    ``harvest_factor`` f: flagged at f² with crew evidence, at f³ alone.

    A coupon crew (``coupon_claimers`` ≥ ``coupon_crew`` accounts each claiming
    coupons at more never-ordered-from merchants than 90 % of its peers) is
    flagged when its ``coupon_harm`` (their claims in units of that baseline)
    reaches f and a new-account burst or a shared device corroborates it. A
    reading crew (``crew_readers`` ≥ ``reader_crew`` accounts each reaching
    strangers above the level of three quarters of its peers) is flagged alike on
    its ``crew_harm``, and a crew that began its sweep together (``swept`` ≥
    ``onset_least`` accounts, see :func:`onset_crews`) on its ``sweep_harm``: the burst
    of first reads is its corroboration.

    A ring whose harvesters include a *standout* (``standouts``: harm at f times
    its peers' level and ``support_factor`` times the fourth-highest account of its
    type) is flagged at f: a call centre, a shift or a crowd of heavy readers are
    many alike, and none of them stands out. Two or more *coupon harvesters* (each
    claiming coupons at f times the never-ordered-from merchants of the keenest
    tenth of its peers) on infrastructure they dominate are flagged: no bargain
    hunter claims like that, and two of them together are an operation. So are
    ``coupon_sprees`` (accounts that did little but claim coupons, made the same
    week or on infrastructure they dominate, not for one promotion), counted with them. Harvesters
    of a partner whose active staff nearly all read strangers alike, steadily
    (``workforce``: that partner's active staff, see :class:`RingParams` and
    :func:`_ring_evidence`), are its workforce, not a crew.
    ``crew_harvesters`` or more harvesters created in one burst (``made_together``:
    within ``burst_days``, at ``support_factor`` times the platform's rate) are a
    bulk-made crew, flagged (each is a harvester at f, so such a crew is over f times
    ``crew_harvesters`` in all, under the f² a crew needs otherwise).

    >>> p = RingParams()                       # f = 10
    >>> decide_flag(150.0, 3, 1, p)            # a crew over 100×
    (True, '')
    >>> decide_flag(150.0, 1, 0, p)[0]         # one heavy reader and family: no crew
    False
    >>> decide_flag(400.0, 2, 0, p)[1]         # a shop's two logins on one PC: a pair
    'not flagged: no crew evidence (2 accounts harvesting, under the 3 of a crew; no harvesting partner staff; none stands out), under the 1000× harm that flags a lone crawler'
    >>> decide_flag(150.0, 3, 0, p, crewed=1)[1]   # three heavy readers at a kiosk
    'not flagged: no crew evidence (3 accounts harvesting, no 3 of them on devices or IPs they dominate; no harvesting partner staff; none stands out), under the 1000× harm that flags a lone crawler'
    >>> decide_flag(1500.0, 1, 0, p)           # a lone crawler over 1,000×
    (True, '')
    >>> decide_flag(60.0, 4, 2, p)[1]
    'not flagged: harm 60× its peers is under the 100× a ring needs, and none of its harvesters stands out'
    >>> decide_flag(31.0, 1, 1, p, standouts=1)   # a crawler far above every other staff
    (True, '')
    >>> decide_flag(0.0, 0, 0, p, coupon_harvesters=2)
    (True, '')
    >>> decide_flag(0.0, 0, 0, p, coupon_harvesters=1, coupon_sprees=1)
    (True, '')
    >>> decide_flag(62.0, 4, 1, p, made_together=True)  # four harvesters made one week
    (True, '')
    >>> decide_flag(700.0, 21, 1, p, workforce=21)[0]   # a call centre's 21 agents, alike
    False
    >>> decide_flag(400.0, 2, 1, p, workforce=2, coupon_harvesters=2)[0]  # and claim coupons
    True
    >>> decide_flag(0.0, 0, 0, p, coupon_claimers=12, coupon_harm=30.0, coupon_corroborated=True)
    (True, '')
    >>> decide_flag(0.0, 0, 0, p, coupon_claimers=12, coupon_harm=30.0)[1]
    'not flagged: a coupon crew of 12 accounts with neither a new-account burst nor a shared device'
    >>> decide_flag(0.0, 0, 0, p, crew_readers=8, crew_harm=12.8, crew_corroborated=True)
    (True, '')
    >>> decide_flag(0.0, 0, 0, p, crew_readers=8, crew_harm=12.8)[1]
    'not flagged: a reading crew of 8 accounts with no device three or more of it share and dominate'
    >>> decide_flag(0.0, 0, 0, p, swept=60, sweep_harm=52.0)
    (True, '')
    >>> decide_flag(0.0, 0, 0, p, swept=6, sweep_harm=3.1)[1]
    'not flagged: 6 accounts began reading strangers together, 3.1× their peers in all, under the 10× a crew needs'
    """
    f = params.harvest_factor
    # Coupon evidence stands on its own: a partner's workforce reads, it does not claim.
    if coupon_harvesters + coupon_sprees >= 2:
        return True, ""
    if coupon_claimers >= params.coupon_crew and coupon_harm >= f and coupon_corroborated:
        return True, ""
    if workforce:
        return False, (f"not flagged: its {harvesters} harvesters are staff of one partner "
                       f"whose {workforce} active staff nearly all read strangers alike, "
                       f"steadily, none standing out: "
                       f"a partner's workforce (a call centre or a shift), "
                       f"judged as a partner in the partner review")
    if harvesters and ((harm_ratio >= f ** 2 and crew_evidence >= 1) or harm_ratio >= f ** 3):
        return True, ""
    if made_together and harvesters >= params.crew_harvesters:
        return True, ""
    if harvesters and standouts and harm_ratio >= f:
        return True, ""
    if crew_readers >= params.reader_crew and crew_harm >= f and crew_corroborated:
        return True, ""
    if swept >= params.onset_least and sweep_harm >= f:
        return True, ""
    if crew_readers >= params.reader_crew and not harvesters and not coupon_claimers:
        if crew_harm < f:
            return False, (f"not flagged: a reading crew of {crew_readers} accounts, "
                           f"{_fmt(crew_harm)}× its peers in all, under the {f:g}× a crew needs")
        return False, (f"not flagged: a reading crew of {crew_readers} accounts with no device "
                       f"three or more of it share and dominate")
    if swept >= params.onset_least and not harvesters and not coupon_claimers:
        return False, (f"not flagged: {swept} accounts began reading strangers together, "
                       f"{_fmt(sweep_harm)}× their peers in all, under the {f:g}× a crew needs")
    if coupon_claimers >= params.coupon_crew and coupon_harm >= f and not harvesters:
        return False, (f"not flagged: a coupon crew of {coupon_claimers} accounts with "
                       f"neither a new-account burst nor a shared device")
    if not harvesters:
        return False, (f"not flagged: {plural_accounts(coupon_claimers)} claiming coupons "
                       f"where {'it' if coupon_claimers == 1 else 'they'} never ordered, "
                       f"{_fmt(coupon_harm)}× in all, under the {params.coupon_crew} accounts "
                       f"and {f:g}× of a coupon crew")
    if harm_ratio < f ** 2:
        return False, (f"not flagged: harm {_fmt(harm_ratio)}× its peers is under the "
                       f"{f ** 2:g}× a ring needs, and none of its harvesters stands out")
    if crewed is not None and harvesters >= params.crew_harvesters > crewed:
        crew = (f"{plural_accounts(harvesters)} harvesting, no {params.crew_harvesters} of "
                f"them on devices or IPs they dominate")
    else:
        crew = (f"{plural_accounts(harvesters)} harvesting, under the "
                f"{params.crew_harvesters} of a crew")
    return False, (f"not flagged: no crew evidence ({crew}; no harvesting partner staff; "
                   f"none stands out), under the {f ** 3:g}× harm that flags a lone crawler")


def plural_accounts(n: int) -> str:
    return f"{n} account" if n == 1 else f"{n} accounts"


def ring_score(harm_ratio: float, support: int) -> float:
    """A ring's rank score: log10 of (1 + harm ratio) plus half a point per support signal.

    >>> ring_score(99.0, 0), ring_score(99.0, 2)
    (2.0, 3.0)
    """
    return round(float(np.log10(1 + harm_ratio) + 0.5 * support), 3)


def partner_review(sig: pd.DataFrame, base: Baselines, rings: Rings,
                   params: RingParams | None = None) -> pd.DataFrame:
    """Every partner judged as a whole: all its staff and merchants together.

    One row per partner whose staff and merchants read at least ``harvest_factor``
    times the baseline number of profiles, or reached strangers at least
    ``harvest_factor`` times a staff account's baseline. ``why`` says in measured
    terms why it is flagged (a flagged ring holds its staff or names it) or not:
    the strangers it reached against its peers, and what share of its reads were
    its merchants' buyers. No share floor hides a large reach.
    """
    params = params or rings.params
    cols = ["partner_id", "accounts", "profiles_read", "untied_reads", "untied_share",
            "untied_users", "stranger_reach", "flagged", "why"]
    staffed = sig[sig["partner_id"].notna()]
    if staffed.empty:
        return pd.DataFrame(columns=cols)
    g = staffed.groupby("partner_id").agg(
        accounts=("aid", "size"), profiles_read=("profile_reads", "sum"),
        untied_reads=("untied_reads", "sum"), untied_users=("untied_users", "sum"),
        stranger_reach=("stranger_reach", "sum"),
        records_read=("records_read", "sum")).reset_index()
    staff_base = base.peer_value("stranger_reach", "partner_staff")
    loud = ((g["profiles_read"] >= params.harvest_factor * base.value["profile_reads"])
            | (g["stranger_reach"] >= params.harvest_factor * staff_base))
    g = g[loud].copy()
    flagged_members = rings.members.merge(rings.rings[["ring_id", "flagged"]], on="ring_id")
    flagged_partners = set(flagged_members.loc[is_flagged(flagged_members),
                                               "partner_id"].dropna())
    for ids in rings.rings.loc[is_flagged(rings.rings), "partner_ids"]:
        flagged_partners |= set(split_ids(ids))
    # Partners whose staff harvest alike, all of them (a call centre, a shift): its workforce.
    workforce = {}
    if "workforce" in rings.rings:
        crews = rings.rings[~is_flagged(rings.rings) & (rings.rings["workforce"] > 0)]
        for ids, n in zip(crews["partner_ids"], crews["workforce"]):
            for p in split_ids(ids):
                workforce[p] = int(n)
    g["untied_share"] = np.where(g["profiles_read"] > 0, g["untied_reads"] / g["profiles_read"], 0)
    g["flagged"] = g["partner_id"].isin(flagged_partners)
    g["stranger_reach"] = g["stranger_reach"].round(1)
    why = []
    for r in g.itertuples(index=False):
        vol = (f"read {int(r.profiles_read):,} profiles "
               f"({_fmt(r.profiles_read / base.value['profile_reads'])}× {base.describe('profile_reads')})")
        reach = (f"reached {r.stranger_reach:,.0f} strangers after its returning clientele "
                 f"({_fmt(r.stranger_reach / staff_base)}× "
                 f"{base.describe_peer('stranger_reach', 'partner_staff')})")
        if r.flagged:
            why.append(f"flagged: {vol}; {reach}; {r.untied_share:.0%} of its reads had no "
                       "business tie")
        elif r.partner_id in workforce:
            why.append(
                f"not flagged: {vol}; {reach}; {1 - r.untied_share:.1%} of its reads were users "
                f"who ordered from its merchants; its {workforce[r.partner_id]} active staff "
                f"nearly all read strangers alike, steadily, none standing out: a workforce "
                f"(a call centre or a shift), not a crew")
        else:
            why.append(
                f"not flagged: {vol}; {reach}; {1 - r.untied_share:.1%} of its reads were users "
                f"who ordered from its merchants, and none of its accounts reached "
                f"{params.harvest_factor:g}× its peers on its own with crew or staff evidence")
    g["why"] = why
    return g[cols].sort_values(["flagged", "profiles_read", "partner_id"],
                               ascending=[False, False, True]).reset_index(drop=True)
