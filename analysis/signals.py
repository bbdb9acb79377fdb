"""Aggregates + graph → behaviour signals per account, against the population.

Every signal is measured against the export's own population, never against
fixed numbers: a **baseline** is a high quantile (by default the 95th
percentile) of the same measure over all active accounts, and a signal's
**ratio** is the account's value over that baseline. "10× the baseline" then
means "ten times what 95 % of this platform's accounts do", whatever the
platform's size or habits.

A quantile only describes the population while the harvesters are fewer than
the share above it (5 %). In a small export a ring can be more: the 95th
percentile of reads of strangers then lands inside the ring and every member
looks ordinary. So for the two harm measures the baseline is guarded: when
the top accounts split off as a separate group (5 % to ``MAX_UPPER_SHARE`` of
them, at an edge where neighbouring values jump ``MIN_JUMP``-fold, nine in ten
``SEPARATION`` times or more above the 95th percentile of the rest) and that
group is a few crews, not many independent readers (at least half its accounts
sit in communities holding ``MIN_CREW`` or more of them), the baseline is that
of the rest (:func:`bulk_baseline`). A long honest tail has no such group, and
a platform where many small shops each read strangers' profiles is many
readers, not crews: the guard then changes nothing.

Harm is reach, measured against peers
-------------------------------------
A harvest is measured by the people it reached, not by the records it
returned (an integrator's API call returns up to a hundred records):

``stranger_reach``
    distinct users whose profile the account read with no business tie, each
    weighted by how rarely that user is read: in full when at most
    ``COLD_READERS`` (10) accounts read them, ``10 / readers`` when more do. A
    crawler's targets are cold users few others read (a crew splitting its
    queue, or overlapping a little, still counts in full); a heavy honest
    reader's are popular profiles read by hundreds (weight ≈ 0). Then the
    reader's own *clientele* is taken out: an honest reader returns to its
    clients on later days, and clients who ordered before the export window look
    untied. When the account has a clientele it can be judged by (at least
    ``MIN_CLIENTELE`` tied users), the share ``r`` of its tied users it came back
    to tells how its clientele behaves; its untied users it came back to are
    then taken as a sample of its old clientele, whose size is that sample over
    ``r`` (:func:`stranger_reach`). A business (merchant or partner staff) with
    too few tied users to judge by is taken to come back to all its old clients
    (``r`` = 1): a partner's staff that re-read the same few hundred clients every
    week reach no strangers. A customer has no clientele. A sweep of users it
    never read before is what is left.
``untied_merchants``
    merchants whose comment pages (user comments) it read with no tie.
``fresh_reach``
    the part of the untied reach the account never came back to on a later day:
    the sweep itself. A heavy reader of popular profiles, or a family member,
    returns to the same people day after day; a crawler reads each stranger once.
    It matters where a platform is so small that "popular" is almost everyone and
    the popularity weight says little.
``untied_comment_reads``
    comment pages it read at merchants it has no tie to: a comment crawler pages
    through every comment of a few shops, a shopper reads a page or two of many.

How an account met its strangers over time is no harm but tells a workforce from a
sweep (:func:`stranger_steadiness`): a call centre meets new callers on every
working day, a crew sweeping its partner's users does it in a few days.

Each is compared with the account's **peers**: staff with staff, merchants with
merchants, customers with customers, readers with readers (the 75th percentile of
the accounts of its type that read profiles, or comment pages, at all, guarded as
above; :data:`PEER_QUANTILE`, :data:`READS_OF`). Most customers read nobody's
profile; against them anyone who reads a few strangers would stand out. ``harvest_ratio`` is the
larger of the two ratios.

Peers are counted by device (:func:`peer_voices`, ``SignalParams.peer_voices``): in
the peer and coupon baselines each account speaks one over the most accounts on any
of its devices (a customer's: or of its non-hub IPs), and the baseline is the lower
of that quantile and the plain one (:func:`_lower_quantile`). A crew of a hundred on
one cloned device or datacenter IP is then one voice: on a small platform, where it
can be half the readers or claimers, it no longer sets its own peers' level. A crew
on devices of its own is not caught this way; it keeps the plain quantile. In the
coupon baseline the accounts made inside the export window also speak as one of them,
all together (:func:`established_voices`, ``SignalParams.established_voices``): a coupon
crew is bulk-made for the promotion, and the established customers show how claiming
looks.

Each is also measured as a **standout** (``stranger_reach_standout`` and the
like for each harm measure): the account's value over the fourth-highest
value of its type (:data:`STANDOUT_RANK`; at least the peer baseline). Call
centres, customer-service shifts and heavy readers come in many alike; a
crawler hidden in a partner's traffic, or a pair of crawlers, stands far
above every other account of its kind, whatever their level.

Records read with no tie (``untied_records``) and the untied share stay in the
evidence and the reasons; they decide nothing.

Signals
-------
harm (what a harvest leaves behind)
    ``stranger_reach``   see above
    ``untied_users``     distinct users whose profile was read with no business tie
    ``untied_records``   user records read (profiles and comments) with no tie
    ``untied_share``     share of profile reads that had no tie
    ``clientele_return`` share of its tied users the account read again on a later day
support (how rings operate)
    ``device_share``   most accounts seen on one of the account's devices (emulators)
    ``ip_share``       most accounts seen on one of its non-hub IPs
    ``pacing``         regularity of its activity (1 / coefficient of variation of gaps)
    ``round_clock``    spread of its activity over the 24 hours (normalised entropy)
    ``coupon_no_order`` coupon claims at merchants it never ordered from
    ``coupon_merchants`` distinct merchants whose coupons it claimed and never ordered
                       from, against its type's 90th percentile (coupon crews: see
                       :mod:`analysis.rings`)
    ``coupon_focus``   coupon claims as a share of its events, against its type's median
                       claimer (coupon sprees: see :mod:`analysis.rings`)
    ``ip_spread``      IPs it used (``n_ips``), against its type's 90th percentile (proxy
                       rotation: reading crews, see :mod:`analysis.rings`)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .aggregate import Aggregates
from .graph import EntityGraph
from .params import SignalParams

__all__ = ["Baselines", "account_signals", "bulk_baseline", "stranger_reach", "stranger_steadiness",
           "BASELINE_QUANTILE", "MIN_GAPS", "STANDOUT_RANK", "SEPARATION", "MAX_UPPER_SHARE", "HARM_FLOOR"]

#: The thresholds below are :class:`analysis.params.SignalParams`' defaults (a run's own
#: values come with its parameters and are recorded in run.json); the names stay for the
#: doctests and the documentation.
_DEFAULT = SignalParams()
BASELINE_QUANTILE = _DEFAULT.baseline_quantile
#: How far above the bulk the plain quantile must lie before the guard sets it aside.
SEPARATION = _DEFAULT.separation
#: Smallest jump between neighbouring values where the guard may split off an upper group.
MIN_JUMP = _DEFAULT.min_jump
#: A crew: a community holding at least this many accounts of the upper group.
MIN_CREW = _DEFAULT.min_crew
#: Share of the upper group's accounts that must sit in crews for it to be set aside.
MIN_CREW_SHARE = _DEFAULT.min_crew_share
#: Largest share of accounts the guard may set aside as a separated upper group.
MAX_UPPER_SHARE = _DEFAULT.max_upper_share
#: Measures whose baseline is guarded against a separated upper group (the harm measures).
GUARDED = ("untied_users", "untied_records", "stranger_reach", "untied_merchants",
           "untied_comment_reads")
#: Harm measures compared with the account's peers (accounts of the same type).
PEER_MEASURES = ("stranger_reach", "fresh_reach", "untied_merchants", "untied_comment_reads")
#: The quantile of a peer group that harm is measured against. A peer group can be
#: small (a platform's partner staff) and rings a large share of it, so the baseline is
#: what three quarters of the peers stay under, not 95 %: robust while rings are fewer
#: than a quarter of their peers (a separated upper group of up to half is set aside
#: when it is crews, as above).
PEER_QUANTILE = _DEFAULT.peer_quantile
#: Largest share of a peer group the guard may set aside.
PEER_MAX_UPPER_SHARE = _DEFAULT.peer_max_upper_share
#: The reads that make an account a peer for a harm measure: its peers are the accounts
#: of its type that read profiles (for reach of strangers) or comment pages at all.
READS_OF = {"stranger_reach": "profile_reads", "fresh_reach": "profile_reads",
            "untied_merchants": "comment_reads",
            "untied_comment_reads": "comment_reads"}
#: Smallest baseline of a harm measure: a harvest is counted in people, so a peer
#: group that reads no strangers at all still needs a few before one of it stands out.
HARM_FLOOR = _DEFAULT.harm_floor
#: Active accounts a peer group needs to be its own baseline; a smaller one (the two
#: staff of a tiny export) is judged against all active accounts.
MIN_PEERS = _DEFAULT.min_peers
#: Tied users an account needs before its clientele's return rate can judge its reads.
MIN_CLIENTELE = _DEFAULT.min_clientele
#: A clientele return rate below this says too little to take anything out.
MIN_RETURN = _DEFAULT.min_return
#: Account types that serve clients, who may have ordered before the export window.
BUSINESS_TYPES = ("merchant", "partner_staff")
#: The quantile of a type's active accounts that coupon reach is measured against: a crew
#: member claims like the keenest tenth of bargain hunters, many of them on its own
#: infrastructure (:mod:`analysis.rings`).
COUPON_QUANTILE = _DEFAULT.coupon_quantile
#: A standout is measured against the highest value of its type below this many others:
#: the fourth-highest account. An outlier of one, two or three accounts (a lone crawler,
#: a pair, a trio of staff) is then set against the rest of its platform, however many
#: honest heavy readers raise its peers' quantile.
STANDOUT_RANK = _DEFAULT.standout_rank
#: Gaps needed before an account's pacing is judged (fewer say nothing).
MIN_GAPS = _DEFAULT.min_gaps


@dataclass
class Baselines:
    """Population baselines: ``value[measure]`` is the quantile the ratios divide by."""

    quantile: float
    #: The peers' quantile and the coupon quantile the peer baselines were taken at.
    peer_quantile: float = PEER_QUANTILE
    coupon_quantile: float = COUPON_QUANTILE
    value: dict[str, float] = field(default_factory=dict)
    #: Peer baselines: ``peer[measure][account_type]``.
    peer: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Peer baselines taken below a separated upper group: ``(measure, type)`` → share.
    peer_set_aside: dict[str, float] = field(default_factory=dict)
    #: ``(measure, type)`` whose baseline is the 95th percentile of all the type's active
    #: accounts (lower than its readers' 75th percentile: readers were few, crews many).
    peer_rule: dict[str, str] = field(default_factory=dict)
    median_by_type: dict[str, dict[str, float]] = field(default_factory=dict)
    #: ``standout_ref[measure][account_type]``: what a standout is measured against, the
    #: ``STANDOUT_RANK + 1``-th highest value of the type (at least its peer baseline).
    standout_ref: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Measures whose baseline was taken below a separated upper group: that group's
    #: share of the active accounts (see the module doc).
    set_aside: dict[str, float] = field(default_factory=dict)
    #: ``(measure, type)`` whose baseline counts each device (a customer's: or IP) once,
    #: lower than counting each account (see :func:`_lower_quantile`).
    counted: set[str] = field(default_factory=set)
    #: ``(measure, type)`` whose baseline counting the accounts made inside the export
    #: window as one made lower than counting by device (see :func:`established_voices`).
    counted_newcomers: set[str] = field(default_factory=set)

    def ratio(self, measure: str, x):
        return np.asarray(x, dtype=float) / self.value[measure]

    def peer_value(self, measure: str, account_type: str) -> float:
        """The peer baseline of ``measure`` for ``account_type`` (the population's if none)."""
        return self.peer.get(measure, {}).get(account_type, self.value.get(measure, 1.0))

    def counting(self, measure: str, account_type: str) -> str:
        """", counting each device or home once" where that lowered the peer baseline of
        ``measure`` for ``account_type`` (see :func:`_lower_quantile`), ", counting the
        accounts made inside the export window as one" where that lowered it (below the
        device counting), both joined by "and" where both did, else ""."""
        key = f"{measure}:{account_type}"
        ways = ((["each device or home once"] if key in self.counted else [])
                + (["the accounts made inside the export window as one"]
                   if key in self.counted_newcomers else []))
        return f", counting {' and '.join(ways)}" if ways else ""

    def describe_peer(self, measure: str, account_type: str) -> str:
        """The peer baseline in words: "the 75th-percentile partner staff account"."""
        kind = str(account_type).replace("_", " ")
        key = f"{measure}:{account_type}"
        if measure == "coupon_merchants":
            pct, who = f"{self.coupon_quantile:.0%}".removesuffix("%"), f"{kind} account"
        elif self.peer_rule.get(key) == "all":
            pct, who = f"{self.quantile:.0%}".removesuffix("%"), f"{kind} account"
        else:
            what = "profiles" if READS_OF.get(measure) == "profile_reads" else "comment pages"
            pct = f"{self.peer_quantile:.0%}".removesuffix("%")
            who = f"{kind} account that reads {what}"
        if key in self.peer_set_aside:
            return f"the {pct}th-percentile {who} outside a separate top {self.peer_set_aside[key]:.0%}"
        return f"the {pct}th-percentile {who}{self.counting(measure, account_type)}"

    def describe(self, measure: str) -> str:
        """What the baseline of ``measure`` is, in words for a reason."""
        pct = f"{self.quantile:.0%}".removesuffix("%")
        if measure in self.set_aside:
            return (f"the {pct}th-percentile account outside a separate top "
                    f"{self.set_aside[measure]:.0%}")
        return f"the {pct}th-percentile account"


def _quantiles(v: np.ndarray, start: np.ndarray, length: np.ndarray, q: float) -> np.ndarray:
    """The ``q`` quantile (numpy's linear rule) of each slice ``v[start:start + length]``."""
    pos = start + q * (length - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, start + length - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def bulk_baseline(values: np.ndarray, quantile: float, floor: float,
                  groups: np.ndarray | None = None, separation: float = SEPARATION,
                  max_upper_share: float = MAX_UPPER_SHARE, min_jump: float = MIN_JUMP,
                  min_crew: int = MIN_CREW, min_crew_share: float = MIN_CREW_SHARE,
                  voices: Voices = None) -> tuple[float, float | None]:
    """The ``quantile`` of ``values``, guarded against a separated upper group.

    Returns (baseline, share set aside). Normally that is the plain quantile (at
    least ``floor``) and None; with ``voices``, the lower quantile of
    :func:`_lower_quantile`, and the guard below, judged on the plain quantile,
    gives way to it where it is lower still (so voices never raise a baseline). The guard splits the sorted values into a bulk
    and an upper group of between ``1 - quantile`` and ``max_upper_share`` of
    them. A split counts when nine in ten of the upper group lie ``separation``
    times or more above the bulk's quantile and the plain quantile lies
    ``separation``² times above it: the upper group is then a separate
    population, not a tail, provided neighbouring values jump at the split by
    ``MIN_JUMP`` or more (a tail has no such edge). Of the splits that count,
    the one at the largest jump gives the baseline, the bulk's quantile, if
    the upper group is crews: ``groups`` (each value's community) puts at
    least ``MIN_CREW_SHARE`` of it in communities holding ``MIN_CREW`` or more
    of it. Without ``groups`` there is no guard.

    >>> honest = np.r_[np.zeros(900), np.arange(1, 51)]
    >>> b, set_aside = bulk_baseline(honest, 0.95, 1.0, np.arange(950))
    >>> round(b, 2), set_aside
    (2.55, None)
    >>> crews = np.r_[np.arange(950), np.repeat([-1, -2, -3, -4], 20)]   # 4 crews of 20
    >>> bulk_baseline(np.r_[honest, np.full(80, 600.0)], 0.95, 1.0, crews)
    (2.55, 0.0777)
    >>> shops = np.r_[np.arange(950), np.repeat(-np.arange(1, 41), 2)]    # 40 pairs
    >>> bulk_baseline(np.r_[honest, np.full(80, 600.0)], 0.95, 1.0, shops)
    (600.0, None)
    >>> spread = np.r_[np.zeros(800), np.ones(50), np.geomspace(2, 1000, 150)]
    >>> bulk_baseline(spread, 0.95, 1.0, np.zeros(1000))[1] is None   # a tail is no group
    True
    >>> # 600 kiosk users reading no one, 300 readers on phones of their own, and eight
    >>> # crews of 50 on cloned devices: counting by device does not undo the guard.
    >>> v = np.r_[np.zeros(600), np.tile(np.arange(1.0, 11.0), 30), np.full(400, 600.0)]
    >>> w = np.r_[np.full(600, 1 / 20), np.ones(300), np.full(400, 1 / 50)]
    >>> g = np.r_[np.arange(900), np.repeat(-np.arange(1, 9), 50)]
    >>> bulk_baseline(v, 0.75, 1.0, g, max_upper_share=0.5, voices=w)
    (3.0, 0.3077)
    """
    values = np.asarray(values, dtype=float)
    v = np.sort(values)
    n = len(v)
    if not n:
        return floor, None
    plain = max(float(np.quantile(v, quantile)), floor)
    counted = max(_lower_quantile(values, quantile, voices), floor)
    if groups is None:
        return counted, None
    # m = the bulk's size; the upper group v[m:] holds 1 - quantile .. max_upper_share.
    m = np.arange(max(int(np.ceil(n * (1 - max_upper_share))), 1),
                  int(np.floor(n * quantile)) + 1)
    m = m[m < n]
    if not len(m):
        return counted, None
    bulk = np.maximum(_quantiles(v, np.zeros_like(m), m, quantile), floor)
    upper = _quantiles(v, m, n - m, 0.1)
    jump = np.maximum(v[m], floor) / np.maximum(v[m - 1], floor)
    counts = ((upper >= separation * bulk) & (plain >= separation ** 2 * bulk)
              & (jump >= min_jump))
    if not counts.any():
        return counted, None
    jump = np.where(counts, jump, -np.inf)
    best = len(m) - 1 - int(np.argmax(jump[::-1]))   # ties: the smaller upper group
    # v[m] > v[m - 1] at a split that counts, so the upper group is the values >= v[m].
    _, per_group = np.unique(np.asarray(groups)[values >= v[m[best]]], return_counts=True)
    if per_group[per_group >= min_crew].sum() < min_crew_share * per_group.sum():
        return counted, None
    guarded = round(float(bulk[best]), 6)
    if counted < guarded:   # counting by device went lower still: nothing set aside
        return counted, None
    return guarded, round(float(n - m[best]) / n, 4)


def stranger_reach(untied_reach, untied_reach_returned, tied_users, tied_returned,
                   business=False, min_clientele: int = MIN_CLIENTELE,
                   min_return: float = MIN_RETURN) -> np.ndarray:
    """Reach of strangers: untied reach less the reader's estimated old clientele.

    ``untied_reach`` and ``untied_reach_returned`` are the popularity-weighted
    reach of all untied users and of those it came back to on a later day. With
    a clientele to judge by (``tied_users`` ≥ ``MIN_CLIENTELE``, returning at a
    rate ``r = tied_returned / tied_users`` ≥ ``MIN_RETURN``), the untied users
    it came back to are its old clients' returning part, so its old clientele
    reaches ``untied_reach_returned / r``; what is left is the sweep. A
    ``business`` (a mask: merchants, partner staff) without such a clientele is
    taken to come back to all its old clients (``r`` = 1).

    >>> # An honest partner: 40 % of clients come back; 40 of its 100 untied ones did too.
    >>> float(stranger_reach(100.0, 40.0, 500, 200)[0])
    0.0
    >>> # A crawler in honest traffic: 6,000 strangers read once, plus the same clientele.
    >>> float(stranger_reach(6100.0, 40.0, 500, 200)[0])
    6000.0
    >>> # No clientele to judge by: all untied reach counts ...
    >>> float(stranger_reach(300.0, 290.0, 0, 0)[0])
    300.0
    >>> # ... unless it is a business: the users it came back to are its old clients.
    >>> float(stranger_reach(300.0, 290.0, 5, 5, business=True)[0])
    10.0
    """
    total = np.atleast_1d(np.asarray(untied_reach, dtype=float))
    ret = np.atleast_1d(np.asarray(untied_reach_returned, dtype=float))
    tu = np.atleast_1d(np.asarray(tied_users, dtype=float))
    tr = np.atleast_1d(np.asarray(tied_returned, dtype=float))
    business = np.broadcast_to(np.asarray(business, dtype=bool), total.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Too few tied users to judge by: a business (a merchant, partner staff) is taken to
        # come back to all of its old clients, so the untied users it came back to are its
        # clientele from before the window; a customer has no clientele.
        r = np.where(tu >= min_clientele, tr / tu, np.where(business, 1.0, 0.0))
        clientele = np.where(r >= min_return, ret / r, 0.0)
    return np.round(np.maximum(total - clientele, 0.0), 6)


def stranger_steadiness(stranger_days, untied_users, active_days) -> np.ndarray:
    """Days it first read a stranger, over the days a steady reader of as many would.

    A reader meeting ``untied_users`` strangers at a steady rate over its
    ``active_days`` first reads one on ``active_days · (1 − e^(−untied_users /
    active_days))`` of them (each day a Poisson draw). About 1 for steady work
    (a call centre's agents meeting new callers, an integrator's calls); well under
    1 for a sweep that reached its strangers on a few days of many, and for a reader
    that met all its people early and then came back to them (a re-reader of old
    clients: but those it came back to are no strangers, see ``stranger_reach``).
    Measured over the account's own active days: staff active only on the days they
    sweep look as steady as a call centre. NaN where it read no stranger.

    >>> # A call-centre agent: 900 callers over 78 working days, new ones every day.
    >>> round(float(stranger_steadiness(78, 900, 78)[0]), 3)
    1.0
    >>> # Staff sweeping 290 strangers in 3 of their 26 working days.
    >>> round(float(stranger_steadiness(3, 290, 26)[0]), 3)
    0.115
    >>> # A light reader: 14 strangers on 14 of 128 days is as steady as that can be.
    >>> round(float(stranger_steadiness(14, 14, 128)[0]), 2)
    1.06
    """
    days = np.atleast_1d(np.asarray(stranger_days, dtype=float))
    users = np.atleast_1d(np.asarray(untied_users, dtype=float))
    active = np.atleast_1d(np.asarray(active_days, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        steady = active * -np.expm1(-users / active)
        return np.where((users > 0) & (active > 0), days / steady, np.nan)


def _max_share(links: pd.DataFrame, key: str, graph: EntityGraph, n_accounts: int) -> np.ndarray:
    """Per account: the most accounts on any one of its non-hub entities of one kind."""
    out = np.zeros(n_accounts)
    if links.empty:
        return out
    deg = links.groupby(key)["aid"].transform("size").to_numpy()
    deg = np.where(deg > graph.hub_degree, 0, deg)
    np.maximum.at(out, links["aid"].to_numpy(), deg)
    return out


Voices = np.ndarray | tuple[np.ndarray, ...] | None


def _lower_quantile(values: np.ndarray, q: float, voices: Voices = None) -> float:
    """The ``q`` quantile of ``values`` (numpy's linear rule); with ``voices``, the lowest of
    that and the quantile where each value counts its voice (the inverted-CDF rule), for
    each counting in ``voices`` (one array, or a tuple of them).

    Peers are counted by device (see :func:`peer_voices`): a crew of 100 on one cloned
    device is one voice, not the norm its peers are judged by. The lower of the two,
    because a crew on devices of its own gains weight against families and kiosks.

    >>> v = np.r_[np.zeros(40), np.full(60, 5.0)]        # 60 on one device, 40 alone
    >>> _lower_quantile(v, 0.5), _lower_quantile(v, 0.5, np.r_[np.ones(40), np.full(60, 1 / 60)])
    (5.0, 0.0)
    >>> _lower_quantile(v, 0.5, (np.ones(100), np.r_[np.ones(40), np.full(60, 1 / 60)]))
    0.0
    """
    plain = float(np.quantile(values, q))
    if voices is None:
        return plain
    countings = voices if isinstance(voices, tuple) else (voices,)
    return min([plain] + [float(np.quantile(values, q, method="inverted_cdf", weights=w))
                          for w in countings])


def _below_plain(values: np.ndarray, q: float, baseline: float, floor: float) -> bool:
    """Whether ``baseline`` lies below the plain ``q`` quantile of ``values`` (at least
    ``floor``): counting by device lowered it (where the floor decides both, it did not).

    >>> v = np.r_[np.zeros(40), np.full(60, 5.0)]
    >>> _below_plain(v, 0.5, 1.0, 1.0), _below_plain(v, 0.5, 6.0, 6.0)
    (True, False)
    """
    return len(values) > 0 and baseline < max(float(np.quantile(values, q)), floor)


def peer_voices(device_share: np.ndarray, ip_share: np.ndarray,
                business: np.ndarray) -> np.ndarray:
    """Each account's voice in its peers' baselines: one over the most accounts on any one
    of its devices, or of its IPs for a customer (1 with none shared), so each household,
    kiosk, emulator or datacenter IP speaks once. Partner staff and merchants count by
    device only: an office's IP is shared by colleagues who each read on their own.

    >>> peer_voices(np.array([0, 1, 4, 1]), np.array([0, 5, 2, 5]),
    ...             np.array([False, False, False, True])).tolist()
    [1.0, 0.2, 0.25, 1.0]
    """
    ips = np.where(business, 0.0, np.asarray(ip_share, dtype=float))
    return 1.0 / np.maximum(np.maximum(np.asarray(device_share, dtype=float), ips), 1.0)


def export_start(first_event) -> pd.Timestamp | None:
    """The export's first event as a time-zone-free UTC timestamp (the plan's timestamps
    are UTC without a zone); None without one.

    >>> export_start(pd.Timestamp("2024-03-01 01:00", tz="Europe/Berlin"))
    Timestamp('2024-03-01 00:00:00')
    """
    if first_event is None or pd.isna(first_event):
        return None
    start = pd.Timestamp(first_event)
    return start.tz_convert("UTC").tz_localize(None) if start.tzinfo is not None else start


def made_inside(created_at: pd.Series, first_event) -> np.ndarray | None:
    """Which accounts were made inside the export window: after ``first_event`` (compared
    in UTC); None without a first event. An account with no creation date is established.

    >>> made = pd.Series(pd.to_datetime(["2020-01-01", None, "2024-03-02"]))
    >>> made_inside(made, pd.Timestamp("2024-03-01 01:00", tz="Europe/Berlin")).tolist()
    [False, False, True]
    """
    start = export_start(first_event)
    if start is None:
        return None
    return pd.to_datetime(created_at).to_numpy() > np.datetime64(start)


def established_voices(voice: np.ndarray, inside: np.ndarray,
                       min_peers: int) -> np.ndarray | None:
    """``voice`` (:func:`peer_voices`, over one baseline's accounts) with the accounts made
    inside the export window (``inside``) speaking as one of them, all together: each
    one's voice over their number. None where fewer than ``min_peers`` of the accounts
    predate the window, or none was made inside it. Coupon crews are bulk-made for a
    promotion; the platform's established customers show how claiming looks, and a crew
    that is most of a small platform's claimers is then no norm.

    >>> established_voices(np.ones(4), np.array([False, False, True, True]), 2).tolist()
    [1.0, 1.0, 0.5, 0.5]
    """
    if not inside.any() or (~inside).sum() < min_peers:
        return None
    return np.where(inside, voice / inside.sum(), voice)


def _per_type_ratio(values: np.ndarray, types: np.ndarray, pool: np.ndarray, q: float,
                    floor: float, min_peers: int, voices: np.ndarray | None = None
                    ) -> tuple[np.ndarray, dict[str, float], set[str]]:
    """Each account's ``values`` over the ``q`` quantile of its type's accounts in ``pool``
    (all of ``pool`` where the type has fewer than ``min_peers`` there), at least
    ``floor`` (1 where that is 0): the ratios, the baseline of each type, and the types
    whose baseline counting ``voices`` made lower (:func:`_lower_quantile`).

    >>> v = np.array([0.0, 1.0, 2.0, 8.0])
    >>> r, b, counted = _per_type_ratio(v, np.array(["a"] * 4), v > 0, 0.5, 0.0, 1)
    >>> r.tolist(), b, counted
    ([0.0, 0.5, 1.0, 4.0], {'a': 2.0}, set())
    """
    ratio, baseline, counted = np.zeros(len(values)), {}, set()
    for kind in sorted(set(types.tolist())):
        peers = types == kind
        every = peers & pool if (peers & pool).sum() >= min_peers else pool
        w = None if voices is None else voices[every]
        value = max(_lower_quantile(values[every], q, w), floor) if every.any() else 1.0
        baseline[kind] = value if value > 0 else 1.0
        if w is not None and every.any() and value > 0 and _below_plain(values[every], q,
                                                                       value, floor):
            counted.add(kind)
        ratio[peers] = values[peers] / baseline[kind]
    return ratio, baseline, counted


def account_signals(agg: Aggregates, graph: EntityGraph, communities: pd.Series | None = None,
                    params: SignalParams | None = None) -> tuple[pd.DataFrame, Baselines]:
    """Per-account signals and the population baselines they are measured against.

    Returns a frame indexed like ``agg.accounts`` (one row per account, ``aid``
    column kept) with the raw measures, their ratios to the baseline and a
    ``harvest_ratio``: the larger of the two harm ratios. ``communities``
    (community per graph node, accounts first) lets the harm baselines be
    guarded against rings that are no minority; without it they are the plain
    quantile. ``params`` holds the thresholds (:class:`analysis.params.SignalParams`).
    """
    p = params or SignalParams()
    quantile = p.baseline_quantile

    def guarded(values, q, floor, groups, voices, max_upper_share=p.max_upper_share):
        return bulk_baseline(values, q, floor, groups, separation=p.separation,
                             max_upper_share=max_upper_share, min_jump=p.min_jump,
                             min_crew=p.min_crew, min_crew_share=p.min_crew_share,
                             voices=voices)

    acc = agg.accounts.copy()
    n = len(acc)
    acc["device_share"] = _max_share(agg.device_links, "did", graph, n)
    acc["ip_share"] = _max_share(agg.ip_links, "iid", graph, n)
    # Peers are counted by device and home in the peer and coupon baselines
    # (see _lower_quantile).
    voice = (peer_voices(acc["device_share"].to_numpy(), acc["ip_share"].to_numpy(),
                         acc["account_type"].isin(BUSINESS_TYPES).to_numpy())
             if p.peer_voices else None)

    # ... and in the coupon baseline the accounts made inside the export window speak as
    # one of them, all together (see established_voices).
    inside = (made_inside(acc["created_at"], agg.first_event)
              if voice is not None and p.established_voices else None)

    def voices_at(mask):
        return None if voice is None else voice[mask]
    with np.errstate(divide="ignore", invalid="ignore"):
        acc["untied_share"] = np.where(acc["profile_reads"] > 0,
                                       acc["untied_reads"] / acc["profile_reads"], np.nan)
        cv = acc["gap_sd"] / acc["gap_mean"]
        acc["pacing"] = np.where((acc["n_gaps"] >= p.min_gaps) & (cv > 0), 1.0 / cv, np.nan)
    acc["round_clock"] = np.where(acc["n_events"] >= p.min_gaps, acc["hour_entropy"], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc["clientele_return"] = np.where(acc["tied_users"] > 0,
                                           acc["tied_returned"] / acc["tied_users"], np.nan)
    acc["stranger_reach"] = stranger_reach(acc["untied_reach"], acc["untied_reach_returned"],
                                           acc["tied_users"], acc["tied_returned"],
                                           acc["account_type"].isin(BUSINESS_TYPES).to_numpy(),
                                           p.min_clientele, p.min_return)
    # The sweep: untied reach it never came back to (see the module doc).
    acc["fresh_reach"] = np.maximum(acc["untied_reach"] - acc["untied_reach_returned"], 0.0)
    acc["stranger_steadiness"] = stranger_steadiness(acc["stranger_days"], acc["untied_users"],
                                                     acc["active_days"])
    is_active = (acc["n_events"] > 0).to_numpy()
    active = acc[is_active]
    base = Baselines(quantile=quantile, peer_quantile=p.peer_quantile,
                     coupon_quantile=p.coupon_quantile)
    floors = {"untied_users": 1.0, "untied_records": 1.0, "device_share": 1.0, "ip_share": 1.0,
              "coupon_no_order": 1.0, "profile_reads": 1.0, "stranger_reach": p.harm_floor,
              "untied_merchants": p.harm_floor, "untied_comment_reads": p.harm_floor,
              "fresh_reach": p.harm_floor}
    for measure, floor in floors.items():
        if measure in GUARDED:
            crews = (None if communities is None
                     else communities.loc[active["aid"].to_numpy()].to_numpy())
            base.value[measure], upper = guarded(active[measure].to_numpy(), quantile,
                                                 floor, crews, None)
            if upper is not None:
                base.set_aside[measure] = upper
            continue
        q = float(active[measure].quantile(quantile)) if len(active) else 0.0
        base.value[measure] = max(q, floor)
    for measure in ("pacing", "round_clock"):
        vals = active[measure].dropna()
        base.value[measure] = float(vals.quantile(quantile)) if len(vals) else np.inf
        if not np.isfinite(base.value[measure]) or base.value[measure] <= 0:
            base.value[measure] = np.inf
    for measure in ("untied_users", "untied_records", "profile_reads", "stranger_reach"):
        base.median_by_type[measure] = (
            active.groupby("account_type")[measure].median().astype(float).to_dict())
    crews_all = (None if communities is None
                 else communities.reindex(acc["aid"].to_numpy()).to_numpy())
    types = acc["account_type"].astype(str).to_numpy()
    for measure in PEER_MEASURES:
        base.peer[measure] = {}
        ratio = np.zeros(n)
        standout = np.zeros(n)
        alone = np.zeros(n)
        # Readers are compared with readers: most customers read no one's profile, and
        # against them anyone who reads a few strangers would look like a harvester.
        reads = (acc[READS_OF[measure]].to_numpy(dtype=float) > 0) & is_active
        for kind in sorted(set(types.tolist())):
            peers = types == kind
            sel = peers & reads
            if sel.sum() < p.min_peers:
                sel = reads if reads.sum() >= p.min_peers else is_active
            value, upper = guarded(acc[measure].to_numpy()[sel], p.peer_quantile, p.harm_floor,
                                   None if crews_all is None else crews_all[sel],
                                   voices_at(sel),
                                   max_upper_share=p.peer_max_upper_share)
            # Where readers are few, crews can be a quarter of them; the 95th percentile of
            # all the type's active accounts, most of them reading no one, then says more.
            # The lower of the two is the baseline.
            every = peers & is_active if (peers & is_active).sum() >= p.min_peers else is_active
            value_all, upper_all = guarded(
                acc[measure].to_numpy()[every], quantile, p.harm_floor,
                None if crews_all is None else crews_all[every],
                voices_at(every))
            key = f"{measure}:{kind}"
            used, q_used = sel, p.peer_quantile
            if value_all < value:
                value, upper = value_all, upper_all
                base.peer_rule[key] = "all"
                used, q_used = every, quantile
            base.peer[measure][kind] = value
            if upper is not None:
                base.peer_set_aside[key] = upper
            elif voice is not None and _below_plain(acc[measure].to_numpy()[used], q_used,
                                                    value, p.harm_floor):
                base.counted.add(key)
            ratio[peers] = acc[measure].to_numpy(dtype=float)[peers] / value
            # Standing out: the account against its type's few highest others, not only
            # its peers' level (see the module doc).
            top = np.sort(acc[measure].to_numpy(dtype=float)[peers & is_active])[::-1]
            ref = max(float(top[p.standout_rank]) if len(top) > p.standout_rank else 0.0, value)
            base.standout_ref.setdefault(measure, {})[kind] = ref
            standout[peers] = acc[measure].to_numpy(dtype=float)[peers] / ref
            # Nearly alone at the top: the account against the second-highest other of its
            # type (a lone crawler, or a pair, has none near it; three heavy readers alike
            # each have two).
            second = float(top[1]) if len(top) > 1 else 0.0
            third = float(top[2]) if len(top) > 2 else 0.0
            mine = acc[measure].to_numpy(dtype=float)[peers]
            other = np.where(mine >= second, third, second)
            alone[peers] = mine / np.maximum(other, value)
        acc[f"{measure}_ratio"] = ratio
        acc[f"{measure}_standout"] = standout
        acc[f"{measure}_alone"] = alone
    # Coupon reach: merchants whose coupons the account claimed and never ordered from,
    # against the 90th percentile of its type's active accounts (guarded as above).
    base.peer["coupon_merchants"] = {}
    ratio = np.zeros(n)
    for kind in sorted(set(types.tolist())):
        peers = types == kind
        every = peers & is_active if (peers & is_active).sum() >= p.min_peers else is_active
        claimed = acc["coupon_merchants"].to_numpy()[every]
        newcomers = (None if inside is None
                     else established_voices(voice[every], inside[every], p.min_peers))
        value, upper = guarded(claimed, p.coupon_quantile, 1.0,
                               None if crews_all is None else crews_all[every],
                               voices_at(every) if newcomers is None
                               else (voice[every], newcomers))
        base.peer["coupon_merchants"][kind] = value
        if upper is not None:
            base.peer_set_aside[f"coupon_merchants:{kind}"] = upper
        elif voice is not None and _below_plain(claimed, p.coupon_quantile, value, 1.0):
            # Which counting lowered it: by device, and the newcomers as one below that
            # (the device-only quantile is taken again only where newcomers were counted).
            by_device = value if newcomers is None else max(
                _lower_quantile(claimed, p.coupon_quantile, voice[every]), 1.0)
            if _below_plain(claimed, p.coupon_quantile, by_device, 1.0):
                base.counted.add(f"coupon_merchants:{kind}")
            if value < by_device:
                base.counted_newcomers.add(f"coupon_merchants:{kind}")
        ratio[peers] = acc["coupon_merchants"].to_numpy(dtype=float)[peers] / value
    acc["coupon_merchants_ratio"] = ratio
    # Coupon focus: claims as a share of the account's events, against the median claimer
    # of its type. A bargain hunter browses, searches and orders between claims; an
    # account made for coupons does little else.
    acc["coupon_focus"] = acc["coupon_claims"].to_numpy(dtype=float) / np.maximum(
        acc["n_events"].to_numpy(dtype=float), 1.0)
    claims = acc["coupon_claims"].to_numpy() > 0
    acc["coupon_focus_ratio"], base.peer["coupon_focus"], counted = _per_type_ratio(
        acc["coupon_focus"].to_numpy(), types, claims, p.focus_quantile, 0.0, p.min_peers,
        voice)
    base.counted |= {f"coupon_focus:{kind}" for kind in counted}
    # IP spread: the IPs an account used against the keenest tenth of its type's active
    # accounts. A proxy rotator uses hundreds; a commuter, an office worker, a family
    # member a handful (a carrier NAT is one IP to thousands).
    # Counted by device and home too: where a crew of rotators is a tenth of the accounts,
    # the keenest tenth would be the crew itself.
    acc["ip_spread_ratio"], base.peer["ip_spread"], counted = _per_type_ratio(
        acc["n_ips"].to_numpy(dtype=float), types, is_active, p.coupon_quantile, 1.0,
        p.min_peers, voice)
    base.counted |= {f"ip_spread:{kind}" for kind in counted}
    acc["harm_users_ratio"] = base.ratio("untied_users", acc["untied_users"])
    acc["harm_records_ratio"] = base.ratio("untied_records", acc["untied_records"])
    acc["harvest_ratio"] = acc[[f"{m}_ratio" for m in PEER_MEASURES]].max(axis=1)
    acc["device_share_ratio"] = base.ratio("device_share", acc["device_share"])
    acc["ip_share_ratio"] = base.ratio("ip_share", acc["ip_share"])
    acc["coupon_ratio"] = base.ratio("coupon_no_order", acc["coupon_no_order"])
    acc["pacing_ratio"] = base.ratio("pacing", acc["pacing"].fillna(0))
    acc["round_clock_ratio"] = base.ratio("round_clock", acc["round_clock"].fillna(0))
    return acc, base
