"""The run's result types: what one analysis produced.

This module imports no step (the step types are named for type checkers
only), so the outputs, the notebook helpers and the workshop can all take a
:class:`Findings` without pulling in the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from .params import RunParams

if TYPE_CHECKING:  # names for annotations only: no import at run time
    from .aggregate import Aggregates
    from .graph import EntityGraph
    from .rings import Rings
    from .signals import Baselines
    from .tracking import Tracking

__all__ = ["STEPS", "Findings", "flagged_rings", "flagged_accounts", "is_flagged", "split_ids",
           "join_ids"]

#: The steps a run goes through, in order: what a progress bar counts.
STEPS = ("partners", "accounts", "events", "aggregate", "graph", "communities", "signals",
         "rings", "tracking", "report")


def split_ids(value) -> list[str]:
    """A ``;``-joined id list (``partner_ids``, a partner's ``rings``) as a list.

    >>> split_ids("P1;P2"), split_ids(""), split_ids(None), split_ids(float("nan"))
    (['P1', 'P2'], [], [], [])
    """
    if value is None or (isinstance(value, float) and value != value):
        return []
    return [p for p in str(value).split(";") if p and p != "nan"]


def join_ids(ids) -> str:
    """The inverse of :func:`split_ids` (sorted, duplicates dropped)."""
    return ";".join(sorted({str(i) for i in ids if str(i)}))


def is_flagged(rings: pd.DataFrame) -> pd.Series:
    """The ``flagged`` column of a rings frame as booleans, whether it came from the
    detector (bool) or from ``rings.csv`` (``true``/``false`` text).

    >>> is_flagged(pd.DataFrame({"flagged": ["true", "False", True]})).tolist()
    [True, False, True]
    """
    col = rings["flagged"]
    if col.dtype == bool:
        return col
    return col.astype(str).str.strip().str.lower().isin(["true", "1"])


def flagged_rings(rings: pd.DataFrame) -> pd.DataFrame:
    """The flagged rows of a rings frame (``rings.csv`` or :attr:`Rings.rings`)."""
    return rings[is_flagged(rings).to_numpy()]


def flagged_accounts(rings: pd.DataFrame, members: pd.DataFrame) -> set[str]:
    """The flagged accounts of a run: members of its flagged rings (raw account ids).

    >>> r = pd.DataFrame({"ring_id": ["ring-001", "ring-002"], "flagged": [True, False]})
    >>> m = pd.DataFrame({"ring_id": ["ring-001", "ring-002"], "account_id": ["a", "b"]})
    >>> sorted(flagged_accounts(r, m))
    ['a']
    """
    ids = set(flagged_rings(rings)["ring_id"].astype(str))
    return set(members.loc[members["ring_id"].astype(str).isin(ids), "account_id"].astype(str))


@dataclass
class Findings:
    """Everything one analysis produced, for the CLI, the report and the notebooks."""

    params: RunParams
    aggregates: Aggregates
    graph: EntityGraph
    communities: pd.Series
    signals: pd.DataFrame
    baselines: Baselines
    rings: Rings
    review: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    #: Whether community detection started from the previous run's communities, and how.
    warm_start: dict = field(default_factory=dict)
    #: Ring keys, statuses against the previous run, verdicts (:mod:`analysis.tracking`).
    tracking: Tracking | None = None
    #: Each ring's figures, computed once (:mod:`analysis.facts`): what every output quotes.
    facts: pd.DataFrame | None = None

    @property
    def flagged(self) -> pd.DataFrame:
        """The flagged rings, best first."""
        return flagged_rings(self.rings.rings)

    def flagged_accounts(self) -> set[str]:
        """Raw ids of the accounts in flagged rings."""
        return flagged_accounts(self.rings.rings, self.rings.members)
