"""Every threshold and switch of a run, in one place; ``run.json`` records them all.

:class:`RunParams` holds the run's switches (as-of, seed, engines, limits) and
the detector's thresholds in :class:`RingParams`. Both are plain frozen-free
dataclasses that import no step, so any step and any output can take them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["ENGINES", "RingParams", "RunParams"]

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
    #: Accounts created within this many days of each other form a burst.
    burst_days: int = 7
    #: Self-harvesting accounts that make a crew. A pair is what a shop's two logins on
    #: one PC or a household looks like, so two harvesters are judged like a lone one.
    crew_harvesters: int = 3


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
    #: ``duckdb`` (embedded) or ``spark`` for the heavy stage; both run :func:`aggregate.plan`.
    engine: str = "duckdb"
    #: Spark master URL; None = ``local[2]``, or what ``spark-submit`` was given.
    spark_master: str | None = None
    #: Where DuckDB stages the validated tables as Parquet for Spark; None = the run's
    #: workspace folder. On a cluster: a shared mount every executor sees at the same path.
    spark_staging: str | None = None

    def record(self) -> dict:
        """The parameters as ``run.json`` records them (the ring thresholds nested)."""
        return {**{k: v for k, v in asdict(self).items() if k != "ring"},
                "ring": asdict(self.ring)}
