"""The figures of each ring, computed once: every output quotes these.

A ring's records harvested, the distinct users it reached, its accounts,
devices, IPs, days active and first and last event are facts that
``rings.csv``, the evidence files, ``daily.csv``, the charts, ``report.html``
and the management text all state. They are computed here, once per run, and
every output takes them from :attr:`Findings.facts
<analysis.findings.Findings.facts>` (or from the ring columns
:func:`with_facts` adds), so the same fact reads the same everywhere.

One row per candidate ring, and one row ``ring_id == "all"`` for the flagged
rings together (its ``n_accounts`` is their accounts; its users, devices, IPs
and days are distinct over the union, not sums):

``n_accounts``          members
``profiles_read``       profile reads by members (the detector's ``profiles_read``)
``records_harvested``   user records read with no business tie, profiles and comments
                        (the detector's sum over members: members are disjoint, and the
                        day-by-day tables add up to it, see :func:`~analysis.aggregate.daily_activity`)
``untied_users``        **distinct** users whose profile the ring read with no business tie
                        (a user read by two of its accounts counts once)
``devices``, ``ips``    distinct devices and IPs its accounts used (hubs included)
``days_active``         days (UTC) on which any of its accounts had an event
``first_seen``, ``last_seen``   its first and last event (UTC)

The per-account ``untied_users`` summed over a ring's members (which counts a
user read by two members twice) is kept only in the analyst's ``reasons``,
labelled as a sum.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from .aggregate import _cut, as_of_bound, ensure_ties
from .findings import Findings, is_flagged
from .workspace import Workspace

__all__ = ["ALL", "FACT_COLUMNS", "add_facts", "ring_facts", "with_facts", "fact",
           "group_users"]

#: The ``ring_id`` of the row for all flagged rings together.
ALL = "all"
FACT_COLUMNS = ["ring_id", "flagged", "n_accounts", "profiles_read", "records_harvested",
                "untied_users", "devices", "ips", "days_active", "first_seen", "last_seen"]
#: The columns :func:`with_facts` sets on the rings table.
RING_FACT_COLUMNS = ("untied_users", "devices", "ips", "days_active")


def _groups(con: Workspace, aids, groups) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE fact_groups AS "
                "SELECT unnest(?::INTEGER[]) AS aid, unnest(?::VARCHAR[]) AS grp",
                [[int(a) for a in aids], [str(g) for g in groups]])


def group_users(con: Workspace, findings: Findings, members: pd.DataFrame) -> dict[str, int]:
    """Distinct users read with no business tie per group of accounts.

    ``members`` has columns ``aid`` and ``group`` (an account may sit in several
    groups: a partner's rings, all flagged rings). One DuckDB query over the
    validated events' tie table for the run's as-of.
    """
    if len(members) == 0:
        return {}
    ensure_ties(con, findings.params.as_of)
    _groups(con, members["aid"], members["group"])
    rows = con.execute("""
        SELECT g.grp, count(DISTINCT pp.tid) FROM profile_pairs pp
        JOIN fact_groups g ON g.aid = pp.aid
        WHERE pp.tied IS FALSE AND pp.tid IS NOT NULL GROUP BY g.grp
    """).fetchall()
    con.execute("DROP TABLE IF EXISTS fact_groups")
    return {str(g): int(n) for g, n in rows}


def _days(con: Workspace, findings: Findings, members: pd.DataFrame) -> dict[str, int]:
    if len(members) == 0:
        return {}
    _groups(con, members["aid"], members["group"])
    rows = con.execute(f"""
        SELECT g.grp, count(DISTINCT CAST(e.ts AS DATE)) FROM ev e
        JOIN fact_groups g ON g.aid = e.aid
        WHERE {_cut(as_of_bound(findings.params.as_of), 'e.ts')} GROUP BY g.grp
    """).fetchall()
    con.execute("DROP TABLE IF EXISTS fact_groups")
    return {str(g): int(n) for g, n in rows}


def _entities(findings: Findings, members: pd.DataFrame) -> dict[str, tuple[int, int]]:
    agg = findings.aggregates
    out: dict[str, list[int]] = {}
    for i, (links, key) in enumerate(((agg.device_links, "did"), (agg.ip_links, "iid"))):
        n = (links[["aid", key]].merge(members, on="aid").groupby("group")[key].nunique())
        for g, v in n.items():
            out.setdefault(str(g), [0, 0])[i] = int(v)
    return {g: (v[0], v[1]) for g, v in out.items()}


def ring_facts(con: Workspace, findings: Findings) -> pd.DataFrame:
    """The facts of every candidate ring and of the flagged rings together (module doc).

    ``con`` is the run's workspace (its validated events); ``findings`` the
    detector's rings. Deterministic: rings in rank order, then ``"all"``.
    """
    rings, m = findings.rings.rings, findings.rings.members
    if len(rings) == 0:
        return pd.DataFrame(columns=FACT_COLUMNS)
    flagged = is_flagged(rings).to_numpy()
    flagged_ids = set(rings.loc[flagged, "ring_id"].astype(str))
    groups = pd.DataFrame({"aid": m["aid"].astype("int64").to_numpy(),
                           "group": m["ring_id"].astype(str).to_numpy()})
    union = groups[groups["group"].isin(flagged_ids)].assign(group=ALL)
    both = pd.concat([groups, union], ignore_index=True)
    users = group_users(con, findings, both)
    days = _days(con, findings, both)
    ents = _entities(findings, both)
    out = pd.DataFrame({
        "ring_id": rings["ring_id"].astype(str).to_numpy(), "flagged": flagged,
        "n_accounts": rings["n_accounts"].astype("int64").to_numpy(),
        "profiles_read": rings["profiles_read"].astype("int64").to_numpy(),
        "records_harvested": rings["records_harvested"].astype("int64").to_numpy(),
        "first_seen": pd.to_datetime(rings["first_seen"]).to_numpy(),
        "last_seen": pd.to_datetime(rings["last_seen"]).to_numpy()})
    fl = out[out["flagged"]]
    total = pd.DataFrame([{
        "ring_id": ALL, "flagged": True, "n_accounts": int(fl["n_accounts"].sum()),
        "profiles_read": int(fl["profiles_read"].sum()),
        "records_harvested": int(fl["records_harvested"].sum()),
        "first_seen": fl["first_seen"].min() if len(fl) else pd.NaT,
        "last_seen": fl["last_seen"].max() if len(fl) else pd.NaT}])
    out = pd.concat([out, total], ignore_index=True)
    out["untied_users"] = [users.get(r, 0) for r in out["ring_id"]]
    out["devices"] = [ents.get(r, (0, 0))[0] for r in out["ring_id"]]
    out["ips"] = [ents.get(r, (0, 0))[1] for r in out["ring_id"]]
    out["days_active"] = [days.get(r, 0) for r in out["ring_id"]]
    out = out.astype({c: "int64" for c in ("n_accounts", "profiles_read", "records_harvested",
                                           "untied_users", "devices", "ips", "days_active")})
    return out[FACT_COLUMNS]


def with_facts(rings: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    """The rings table with the facts' ``untied_users`` (distinct users, replacing the
    detector's sum over members), ``devices``, ``ips`` and ``days_active``.

    A small function of its own, applied after detection: the detector's columns
    are left as they are otherwise.
    """
    if len(rings) == 0 or facts is None or len(facts) == 0:
        return rings
    f = facts[facts["ring_id"] != ALL].set_index("ring_id")
    out = rings.copy()
    for col in RING_FACT_COLUMNS:
        out[col] = f[col].reindex(out["ring_id"].astype(str)).fillna(0).astype("int64").to_numpy()
    return out


def add_facts(con: Workspace, findings: Findings) -> Findings:
    """The findings with their facts: ``facts`` (:func:`ring_facts`) and the rings' fact
    columns (:func:`with_facts`). Detection is left as it was.

    Called after detection and again after ring tracking, which may unflag a dismissed
    ring: the facts are computed anew only when the rings or the flagged set changed.
    """
    rings = findings.rings.rings
    cur = findings.facts
    if cur is not None and len(cur) == len(rings) + (1 if len(rings) else 0):
        per = cur[cur["ring_id"] != ALL]
        same = (set(per["ring_id"]) == set(rings["ring_id"].astype(str))
                and set(per.loc[per["flagged"].astype(bool), "ring_id"])
                == set(rings.loc[is_flagged(rings).to_numpy(), "ring_id"].astype(str)))
        if same:
            if all(c in rings for c in RING_FACT_COLUMNS):
                return findings
            return replace(findings, rings=replace(findings.rings,
                                                   rings=with_facts(rings, cur)))
    table = ring_facts(con, findings)
    return replace(findings, rings=replace(findings.rings, rings=with_facts(rings, table)),
                   facts=table)


def fact(findings: Findings, ring_id: str = ALL) -> pd.Series | None:
    """One ring's facts (``"all"``: the flagged rings together); None when the run has none."""
    facts = getattr(findings, "facts", None)
    if facts is None or len(facts) == 0:
        return None
    hit = facts[facts["ring_id"] == str(ring_id)]
    return None if hit.empty else hit.iloc[0]
