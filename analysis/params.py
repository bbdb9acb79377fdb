"""Every threshold and switch of a run, in one place; ``run.json`` records them all.

:class:`RunParams` holds the run's switches (as-of, seed, engines, limits) and
the detector's thresholds in :class:`RingParams` and :class:`SignalParams`. Both are plain frozen-free
dataclasses that import no step, so any step and any output can take them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["ENGINES", "RingParams", "RunParams", "SignalParams", "TrackingParams"]

#: Engines for the heavy stage (events → per-account aggregates); the rest runs in pandas.
ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class RingParams:
    """Parameters of ring extraction; every threshold is a ratio to the population."""

    #: Harm (reach of strangers, or of merchants' comments) at least this many times the
    #: account's peer baseline makes it a harvester. A ring needs this squared with crew
    #: evidence, or cubed alone.
    harvest_factor: float = 10.0
    #: Harm at least this many times the peer baseline lets an account join a ring on a
    #: device or IP the ring dominates (no account joins on a shared device alone).
    join_factor: float = 3.0
    #: An operating signal counts at this many times its baseline.
    support_factor: float = 3.0
    #: A device or IP used mostly (this share) by the ring pulls its other users in.
    dominated_share: float = 0.5
    #: A device or IP whose users are nearly all (this share) accounts with harm of their
    #: own is a crew's own, however few of them harvest: its users with harm join the ring
    #: (partner staff excepted: an office's readers share its IP).
    crew_share: float = 0.8
    #: Accounts created within this many days of each other form a burst.
    burst_days: int = 7
    #: Self-harvesting accounts that make a crew. A pair is what a shop's two logins on
    #: one PC or a household looks like, so two harvesters are judged like a lone one.
    crew_harvesters: int = 3
    #: Accounts on infrastructure they dominate, each claiming coupons at more merchants it
    #: never ordered from than 90 % of its peers, that make a coupon crew.
    coupon_crew: int = 5
    #: Accounts on devices they dominate, each reaching strangers above the level only a
    #: quarter of its peers reach, that make a reading crew (a split crawl queue).
    reader_crew: int = 5
    #: A crew that began its sweep together (:func:`analysis.rings.onset_crews`): this many
    #: or more customers, each reaching strangers it never came back to at a
    #: ``support_factor``-th of its peers' level or more, having read ``onset_strangers``
    #: strangers at least, whose first reads of a stranger fall within ``onset_days`` of the first of
    #: them, at ``harvest_factor`` times the rate readers began at in the
    #: ``onset_lookback`` days before. Each was made ``onset_lookback`` days or more
    #: before it began (a festival's sign-ups begin reading as they are made).
    onset_least: int = 5
    onset_strangers: int = 3
    onset_days: int = 3
    onset_lookback: int = 14
    #: ``workforce_least`` or more harvesters of one partner, alike (none stands out),
    #: that with the partner's quieter readers of strangers (under ``harvest_factor``, at
    #: ``join_factor`` and a ``support_factor``-th of the harvesters' median or more: a
    #: call centre's quieter agents; harvesters of other rings do not count) are at least
    #: this share of its active staff, are the partner's workforce (a call centre, a shift,
    #: a small integrator's two staff), judged as a partner in the partner review, not
    #: flagged as a crew (coupon evidence still flags). Insiders are a few among honest
    #: colleagues, or stand out.
    workforce_share: float = 0.8
    workforce_least: int = 2
    #: ... and they met their strangers steadily: the median harvester (one whose harm is
    #: comment pages counting as 0) first read one on at least this share of the days a
    #: steady reader of as many strangers would (see
    #: :func:`analysis.signals.stranger_steadiness`). Staff sweeping their partner's users
    #: in a few days of many are a crew, however many of the staff they are.
    workforce_steady: float = 0.5
    #: A coupon spree: an account whose activity is claiming coupons, at this many times
    #: the share of the median claimer of its type ...
    spree_factor: float = 8.0
    #: ... at this many merchants or more that it never ordered from. Sprees created
    #: within ``burst_days`` of their run's first, or on infrastructure they dominate,
    #: are a crew ...
    spree_merchants: int = 3
    #: ... less each spree that came for a promotion: this share or more of its
    #: never-ordered-from merchants are ones half its run or more claimed at (or the shops
    #: of a partner whose campaign the run is, see below), in a run of this many sprees
    #: or more (a promotion is a crowd; a pair that shares shops is judged on its own
    #: claims), unless it is on a device coupon accounts dominate (``dominated_share``: an
    #: emulator or cloned phone; a festival's sign-ups use phones of their own).
    promotion_share: float = 0.5
    promotion_least: int = 3
    #: A coupon harvester came for a promotion alike, judged in a run of sprees and coupon
    #: harvesters of this many or more (a crew's own few members never make its crowd),
    #: unless it is on a device or IP coupon accounts dominate (a crew's datacenter address
    #: or proxied homes) ...
    festival_least: int = 10
    #: ... or it claimed at its never-ordered-from merchants more than this many times
    #: each (a sign-up takes a shop's coupon once or twice; a harvester over and over).
    promotion_claims: float = 2.0
    #: A partner's campaign: the partner holds this share or more of a run's claims, the
    #: run claims elsewhere under a ``support_factor``-th as often as the usual claimers,
    #: and the partner serves at most half the shops (``analysis.rings.partner_campaigns``).
    campaign_share: float = 0.9


@dataclass(frozen=True)
class SignalParams:
    """Thresholds of the behaviour signals and their baselines (:mod:`analysis.signals`)."""

    #: Population baselines: this quantile of the active accounts.
    baseline_quantile: float = 0.95
    #: The baseline guard sets an upper group aside when nine in ten of it lie this many
    #: times above the rest's quantile (and the plain quantile this squared) ...
    separation: float = 10.0
    #: ... at an edge where neighbouring values jump at least this much ...
    min_jump: float = 2.0
    #: ... and at least ``min_crew_share`` of it sits in communities holding ``min_crew``
    #: or more of it (crews, not many independent readers).
    min_crew: int = 5
    min_crew_share: float = 0.5
    #: Largest share of the accounts the guard may set aside.
    max_upper_share: float = 0.25
    #: Harm is measured against this quantile of the account's peers ...
    peer_quantile: float = 0.75
    #: ... guarded up to this share of the peer group.
    peer_max_upper_share: float = 0.5
    #: Smallest baseline of a harm measure (a harvest is counted in people).
    harm_floor: float = 1.0
    #: A peer group smaller than this is pooled with all readers (or all active accounts).
    min_peers: int = 30
    #: Tied users an account needs before its clientele's return rate is judged ...
    min_clientele: int = 20
    #: ... and the least return rate that counts.
    min_return: float = 0.05
    #: Coupon claims at never-ordered-from merchants: against this quantile of the peers.
    coupon_quantile: float = 0.90
    #: Coupon focus (claims as a share of an account's events): against this quantile of
    #: the type's claimers (the median: a crew may be most of a small platform's claimers).
    focus_quantile: float = 0.5
    #: A standout is measured against the account of its type this many places below the
    #: top, plus one (the fourth-highest).
    standout_rank: int = 3
    #: Gaps between events needed before an account's pacing is judged.
    min_gaps: int = 30
    #: Peers are counted by device in the peer and coupon baselines: each account's voice
    #: is one over the most accounts on any of its devices (or, for a customer, its IPs),
    #: and a baseline is the lower of the counted and the plain quantile (a crew packed
    #: onto one cloned device or datacenter IP is one voice, not its peers' norm; on a
    #: small platform it can be most of them).
    peer_voices: bool = True
    #: In the coupon baseline, the accounts made inside the export window speak as one of
    #: them, all together (each one's voice over their number), where 30 (``min_peers``)
    #: or more of the baseline's accounts predate it: a crew
    #: bulk-made for a promotion is no norm its peers are judged by, and the platform's
    #: established customers show how claiming looks. It only ever lowers the baseline
    #: (the lowest of the plain, the device-counted and this counting).
    established_voices: bool = True


@dataclass(frozen=True)
class TrackingParams:
    """Parameters of ring identity across runs and of analysts' verdicts
    (:mod:`analysis.tracking`)."""

    #: A ring inherits the key of a previous ring whose members it shares by at least
    #: this Jaccard overlap (the best overlap first, one key per ring).
    match_jaccard: float = 0.3
    #: ... or, with shared partner staff, by this much Jaccard overlap of the devices and IPs
    #: the two rings dominate (a crew that rotated its accounts on the same phones).
    entity_jaccard: float = 0.5
    #: A ring that holds at least this share of the members of two or more previous rings
    #: merged them.
    merge_share: float = 0.5
    #: A previous ring whose members now sit in two or more rings, each holding at least this
    #: share of them (and two accounts), split.
    split_share: float = 0.25
    #: Grown (shrunk): at least this share more (fewer) members than the matched ring.
    size_change: float = 0.2
    #: A dismissed ring is flagged again when it gained at least this many members ...
    regrow_members: int = 1
    #: ... or this many devices or IPs it dominates ...
    regrow_entities: int = 1
    #: ... or harvests this many times the records per day of activity it harvested when
    #: dismissed (per day: a steady ring in an export holding every event to date is no
    #: growth).
    regrow_harvest: float = 1.5
    #: ``--previous`` must be a run of the same export: at least this estimated Jaccard
    #: overlap of the two exports' account ids (from run.json's hashed sketches).
    same_export_overlap: float = 0.2
    #: Keys of rings gone from the runs are kept in ring_keys.csv this many runs, so a ring
    #: that pauses gets its key back.
    forget_after: int = 4
    #: Size of the hashed account-id sketch in run.json.
    sketch_size: int = 256


@dataclass
class RunParams:
    """Parameters of one run; all of them are recorded in ``run.json``."""

    as_of: str | None = None
    seed: int = 7
    communities: str = "igraph"
    resolution: float = 1.0
    hub_degree: int = 200
    max_reject_rate: float = 0.05
    memory_limit: str = "3GB"
    ring: RingParams = field(default_factory=RingParams)
    signals: SignalParams = field(default_factory=SignalParams)
    #: ``duckdb`` (embedded) or ``spark`` for the heavy stage; both run :func:`aggregate.plan`.
    engine: str = "duckdb"
    #: Spark master URL; None = ``local[2]``, or what ``spark-submit`` was given.
    spark_master: str | None = None
    #: Where DuckDB stages the validated tables as Parquet for Spark; None = the run's
    #: workspace folder. On a cluster: a shared mount every executor sees at the same path.
    spark_staging: str | None = None
    #: The previous run's output folder: rings keep their keys, communities start from it.
    previous: str | None = None
    #: The analysts' verdicts (ring_key, verdict, note, decided_at).
    cases: str | None = None
    #: Rings (key, id or rank) whose subgraph is written to ``handoff/`` (GEXF, GraphML, Neo4j).
    handoff: tuple[str, ...] = ()
    tracking: TrackingParams = field(default_factory=TrackingParams)

    def record(self) -> dict:
        """The parameters as ``run.json`` records them (the ring thresholds nested)."""
        return {**{k: v for k, v in asdict(self).items()
                   if k not in ("ring", "signals", "tracking")},
                "handoff": list(self.handoff), "ring": asdict(self.ring),
                "signals": asdict(self.signals), "tracking": asdict(self.tracking)}
