"""Rings week after week: stable ring keys, statuses against the previous run, verdicts.

A run started with ``--previous PREV_OUT`` matches its rings to the previous
run's and each ring gets a **ring key** (``RK-0007``) that never changes
meaning; ``ring_id`` and ``rank`` still give this run's order.

How rings are matched (:func:`assign_keys`, deterministic)
----------------------------------------------------------
1. A ring whose members are exactly those of a previous ring keeps its key.
2. The other pairs that share members are ranked by the Jaccard overlap of
   their members, then by the overlap of the devices and IPs they dominate,
   then by a shared partner; each previous key goes to at most one ring and
   each ring takes at most one key, best pair first. A pair needs a member
   Jaccard of ``match_jaccard`` (0.3), or, with a shared partner, a
   device/IP Jaccard of ``entity_jaccard`` (a crew that rotated its accounts
   on the same phones). Rings whose members overlap a previous ring by 0.5 or
   more always keep its key: two disjoint rings cannot both hold more than
   half of one previous ring.
3. Rings left over get new keys, numbered after the largest key ever given
   (``run.json`` keeps the counter, so a key is never reused).

Statuses: ``new``; ``continuing``, ``grown`` or ``shrunk`` (members up or down
by ``size_change``, 20 %); ``merged`` (the ring holds half or more of two or
more previous rings: which keys); ``split`` (a previous ring's members now
sit in two or more rings: from which key). Previous rings without a
successor are listed in ``ring_changes.csv`` as ``merged`` (into which key),
``split``, ``dormant`` (none of its members active since its last event) or
``gone`` (its members are active but no longer form a ring). Gone keys stay
in ``ring_keys.csv`` for ``forget_after`` runs, so a ring that pauses gets its
key back.

Verdicts (``--cases CASES.csv``)
--------------------------------
The analysts' file has the columns ``ring_key, verdict, note, decided_at``
(verdict: confirmed, dismissed or monitoring); :func:`record_verdict` also
writes ``superseded_at`` (an older verdict stays as history) and what the
ring was when decided (``n_accounts``, ``records_harvested``, ``members``,
``entities``). A dismissed ring is not flagged again unless it grew
materially since the verdict: ``regrow_members`` new members, ``regrow_entities``
new devices or IPs it dominates, or ``regrow_harvest`` times the records
harvested per day of activity.
Without the snapshot (a hand-written line) the previous run's figures stand
in for it. A confirmed or monitored ring stays in the alert queue with its
growth since the verdict.

The key files hold real account ids, devices and IPs: investigator's files,
never management outputs.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .findings import Findings, is_flagged, join_ids, split_ids
from .params import TrackingParams

__all__ = ["TrackingError", "Previous", "Tracking", "VERDICTS", "CASE_COLUMNS", "KEY_COLUMNS",
           "CHANGE_COLUMNS", "export_identity", "sketch_overlap", "load_previous",
           "check_same_export", "ring_profiles", "assign_keys", "read_cases", "record_verdict",
           "follow", "alert_queue", "key_number", "format_key"]

log = logging.getLogger(__name__)

VERDICTS = ("confirmed", "dismissed", "monitoring")
CASE_COLUMNS = ["ring_key", "verdict", "note", "decided_at", "superseded_at", "n_accounts",
                "records_harvested", "records_per_day", "members", "entities"]
KEY_COLUMNS = ["ring_key", "ring_id", "present", "flagged", "status", "n_accounts",
               "records_harvested", "untied_users", "first_seen", "last_seen", "absent_runs",
               "partner_ids", "members", "devices", "ips"]
CHANGE_COLUMNS = ["ring_key", "ring_id", "status", "detail", "prev_ring_id", "jaccard",
                  "n_accounts", "prev_n_accounts", "added", "removed", "last_seen"]
#: Order of the alert queue: what changed first.
QUEUE_ORDER = ("new", "grown", "merged", "split", "continuing", "shrunk")


class TrackingError(ValueError):
    """``--previous`` or ``--cases`` makes the run impossible (the CLI exits 2)."""


def format_key(n: int) -> str:
    """A ring key from its number.

    >>> format_key(7)
    'RK-0007'
    """
    return f"RK-{n:04d}"


def key_number(key: str) -> int:
    """The number of a ring key (0 for anything else).

    >>> key_number("RK-0012"), key_number("junk")
    (12, 0)
    """
    try:
        return int(str(key).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _unneutralise(value: str) -> str:
    """Undo the apostrophe :func:`analysis.safe.write_csv` puts before a formula-like cell."""
    v = str(value)
    return v[1:] if len(v) > 1 and v[0] == "'" and v[1] in "=+-@\t\r" else v


def _ids(value) -> frozenset[str]:
    """A set of ids from a set, a list or a ``;``-joined cell (as written by write_csv)."""
    if isinstance(value, (set, frozenset, list, tuple)):
        return frozenset(str(x) for x in value)
    return frozenset(_unneutralise(x) for x in split_ids(_unneutralise(value)
                                                        if isinstance(value, str) else value))


# -- which export ------------------------------------------------------------------------------

def export_identity(con, sketch_size: int = 256) -> dict:
    """What makes two weekly exports "the same export": a bottom-k sketch of its account ids.

    The ``sketch_size`` smallest SHA-256 hashes (16 hex digits each) of the
    account ids, and the number of accounts. Weekly exports of one platform
    share most accounts; another platform's share none. File contents and
    fingerprints differ every week, so they cannot tell.
    """
    n = con.execute("SELECT count(*) FROM accounts").fetchone()[0]
    rows = con.execute("SELECT substr(sha256(account_id), 1, 16) AS h FROM accounts "
                       "ORDER BY h LIMIT ?", [int(sketch_size)]).fetchall()
    return {"accounts": int(n), "account_sketch": [r[0] for r in rows]}


def sketch_overlap(a: list[str], b: list[str]) -> float:
    """Estimated Jaccard overlap of two sets from their bottom-k sketches.

    >>> sketch_overlap(["1", "2", "3"], ["1", "2", "3"]), sketch_overlap(["1", "3"], ["2", "4"])
    (1.0, 0.0)
    """
    if not a or not b:
        return 0.0
    k = min(len(a), len(b))
    union = sorted(set(a) | set(b))[:k]
    sa, sb = set(a), set(b)
    return sum(h in sa and h in sb for h in union) / len(union)


# -- the previous run --------------------------------------------------------------------------

@dataclass
class Previous:
    """What a run needs from the previous one: its key ledger, key counter, export identity
    and communities."""

    folder: Path | None
    keys: pd.DataFrame
    last_key: int = 0
    as_of: str | None = None
    identity: dict | None = None
    communities: pd.DataFrame | None = None

    @property
    def present(self) -> pd.DataFrame:
        return self.keys[self.keys["present"]]


def _parse_keys(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in ("members", "devices", "ips", "partner_ids"):
        df[c] = [_ids(v) for v in df.get(c, [""] * len(df))]
    for c in ("present", "flagged"):
        df[c] = (is_flagged(pd.DataFrame({"flagged": df[c]})).to_numpy() if c in df
                 else False)
    for c in ("n_accounts", "records_harvested", "untied_users", "absent_runs"):
        df[c] = pd.to_numeric(df.get(c, 0), errors="coerce").fillna(0).astype("int64")
    df["ring_key"] = df["ring_key"].map(_unneutralise)
    return df


def load_previous(folder: str | Path) -> Previous | None:
    """Read a previous run's ``run.json``, ``ring_keys.csv`` and ``communities.parquet``.

    Raises TrackingError when the folder is missing or is no run's output; returns
    None (with a warning) for a run made before ring tracking (no ``ring_keys.csv``).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise TrackingError(f"--previous {folder}: no such folder")
    run_json = folder / "run.json"
    if not run_json.exists():
        raise TrackingError(f"--previous {folder}: not a ringscope output folder (no run.json)")
    try:
        record = json.loads(run_json.read_text())
    except json.JSONDecodeError as exc:
        raise TrackingError(f"--previous {run_json}: unreadable ({exc.msg})") from None
    keys_csv = folder / "ring_keys.csv"
    if not keys_csv.exists():
        log.warning("--previous %s: made before ring tracking (no ring_keys.csv); ring keys "
                    "start afresh", folder)
        return None
    keys = _parse_keys(pd.read_csv(keys_csv, dtype=str, keep_default_na=False))
    tr = record.get("tracking", {})
    last = max([int(tr.get("last_key", 0))] + [key_number(k) for k in keys["ring_key"]])
    comm = None
    if (folder / "communities.parquet").exists():
        comm = pd.read_parquet(folder / "communities.parquet")
    return Previous(folder=folder, keys=keys, last_key=last,
                    as_of=record.get("parameters", {}).get("as_of"),
                    identity=record.get("export_identity"), communities=comm)


def check_same_export(previous: Previous | None, identity: dict,
                      params: TrackingParams | None = None) -> float | None:
    """The estimated account overlap with the previous run's export; TrackingError when it
    is of another export (under ``same_export_overlap``)."""
    params = params or TrackingParams()
    if previous is None or not previous.identity:
        return None
    overlap = sketch_overlap(previous.identity.get("account_sketch", []),
                             identity.get("account_sketch", []))
    if overlap < params.same_export_overlap:
        raise TrackingError(
            f"--previous {previous.folder}: that run is of another export (about "
            f"{overlap:.0%} of account ids in common, {params.same_export_overlap:.0%} needed); "
            f"pass the previous run of this export")
    return round(overlap, 4)


# -- rings as sets -----------------------------------------------------------------------------

def ring_profiles(findings: Findings) -> pd.DataFrame:
    """One row per candidate ring: its members, the devices and IPs it dominates (half or
    more of their accounts are members, ``dominated_share``) and partners, as sets; and
    its figures (n_accounts, records_harvested, untied_users, flagged, first/last seen)."""
    rings, members = findings.rings.rings, findings.rings.members
    cols = ["ring_id", "members", "devices", "ips", "partner_ids", "n_accounts",
            "records_harvested", "untied_users", "flagged", "first_seen", "last_seen"]
    if len(rings) == 0:
        return pd.DataFrame(columns=cols)
    g = findings.graph
    e = g.edges[g.edges["kind"].isin(["device", "ip"])][["u", "v", "kind"]]
    size = e.groupby("v").size()
    ring_of = dict(zip(members["aid"].astype(int), members["ring_id"]))
    mine = e[e["u"].isin(ring_of)].assign(ring_id=lambda d: d["u"].map(ring_of))
    n_in = mine.groupby(["ring_id", "v", "kind"]).size().rename("n").reset_index()
    share = findings.rings.params.dominated_share
    n_in = n_in[n_in["n"] / size.reindex(n_in["v"]).to_numpy() >= share]
    key = g.nodes.set_index("node")["key"].astype(str)
    n_in["key"] = key.reindex(n_in["v"]).to_numpy()
    ents = {(r, k): frozenset(s) for (r, k), s in n_in.groupby(["ring_id", "kind"])["key"]}
    mem = {r: frozenset(s.astype(str)) for r, s in members.groupby("ring_id")["account_id"]}
    out = pd.DataFrame({"ring_id": rings["ring_id"].to_numpy()})
    out["members"] = [mem.get(r, frozenset()) for r in out["ring_id"]]
    out["devices"] = [ents.get((r, "device"), frozenset()) for r in out["ring_id"]]
    out["ips"] = [ents.get((r, "ip"), frozenset()) for r in out["ring_id"]]
    out["partner_ids"] = [frozenset(split_ids(p)) for p in rings["partner_ids"]]
    for c in ("n_accounts", "records_harvested", "untied_users"):
        out[c] = pd.to_numeric(rings[c], errors="coerce").fillna(0).astype("int64").to_numpy()
    out["flagged"] = is_flagged(rings).to_numpy()
    out["first_seen"] = rings["first_seen"].to_numpy()
    out["last_seen"] = rings["last_seen"].to_numpy()
    return out[cols]


def _entities(row) -> frozenset[str]:
    return frozenset({f"d:{d}" for d in row["devices"]} | {f"i:{i}" for i in row["ips"]})


def _jac(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if (a | b) else 0.0


def _as_sets(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in ("members", "devices", "ips", "partner_ids"):
        if c not in df:
            df[c] = [frozenset()] * len(df)
        df[c] = [v if isinstance(v, frozenset) else frozenset(v) if isinstance(v, (set, list,
                 tuple)) else _ids(v) for v in df[c]]
    return df


def assign_keys(current: pd.DataFrame, previous: pd.DataFrame, last_key: int = 0,
                params: TrackingParams | None = None,
                activity: dict[str, pd.Timestamp] | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Match this run's rings to the previous run's: keys, statuses and the changes.

    Parameters
    ----------
    current : ring_id, members (set or ``;``-joined), optionally devices, ips,
        partner_ids; rows in rank order.
    previous : the previous key ledger: ring_key, ring_id, members, devices, ips,
        partner_ids, present (False: a gone ring still remembered), absent_runs,
        last_seen.
    last_key : the largest key number ever given; new keys follow it.
    activity : account id → its last event in this run, to tell dormant from gone.

    Returns
    -------
    (assigned, changes, last_key): ``assigned`` has, per current ring, ring_id,
    ring_key, status, detail, prev_key, prev_ring_id, jaccard, added, removed;
    ``changes`` lists ring_changes.csv's rows (:data:`CHANGE_COLUMNS`).

    Examples
    --------
    >>> prev = pd.DataFrame({"ring_key": ["RK-0001", "RK-0002"], "ring_id": ["ring-001",
    ...                      "ring-002"], "members": ["a;b;c", "x;y"], "present": True})
    >>> cur = pd.DataFrame({"ring_id": ["ring-001", "ring-002"], "members": ["a;b;c;d;e", "q"]})
    >>> a, ch, last = assign_keys(cur, prev, 2)
    >>> a[["ring_id", "ring_key", "status"]].values.tolist()
    [['ring-001', 'RK-0001', 'grown'], ['ring-002', 'RK-0003', 'new']]
    >>> ch.loc[ch["ring_key"] == "RK-0002", "status"].tolist(), last
    (['gone'], 3)
    """
    params = params or TrackingParams()
    cur = _as_sets(current).reset_index(drop=True)
    prev = _as_sets(previous).reset_index(drop=True) if len(previous) else pd.DataFrame(
        columns=["ring_key", "ring_id", "members", "devices", "ips", "partner_ids", "present"])
    if "present" not in prev:
        prev["present"] = True
    prev["present"] = prev["present"].astype(bool)
    if "absent_runs" not in prev:
        prev["absent_runs"] = 0
    cur_ent = [_entities(r) for _, r in cur.iterrows()]
    prev_ent = [_entities(r) for _, r in prev.iterrows()]
    # Candidate pairs: rings sharing members, or devices/IPs (inverted indexes).
    by_member: dict[str, list[int]] = {}
    by_entity: dict[str, list[int]] = {}
    for j, r in prev.iterrows():
        for a in r["members"]:
            by_member.setdefault(a, []).append(j)
        for x in prev_ent[j]:
            by_entity.setdefault(x, []).append(j)
    pairs = []
    inter: dict[tuple[int, int], int] = {}
    for i, r in cur.iterrows():
        cand: dict[int, int] = {}
        for a in r["members"]:
            for j in by_member.get(a, ()):
                cand[j] = cand.get(j, 0) + 1
        for x in cur_ent[i]:
            for j in by_entity.get(x, ()):
                cand.setdefault(j, 0)
        for j, n in cand.items():
            p = prev.loc[j]
            inter[(i, j)] = n
            union = len(r["members"]) + len(p["members"]) - n
            jm = n / union if union else 0.0
            je = _jac(cur_ent[i], prev_ent[j])
            partner = bool(r["partner_ids"] & p["partner_ids"])
            ok = jm >= params.match_jaccard or (partner and je >= params.entity_jaccard)
            if ok:
                pairs.append((i, j, jm, je, partner, bool(p["present"]), str(p["ring_key"])))
    # 1. identical members keep their key; 2. the best pairs, one-to-one.
    key_of: dict[int, int] = {}
    taken: set[int] = set()
    for i, j, jm, *_ in sorted(pairs, key=lambda t: (not t[5], t[6], t[0])):
        if jm == 1.0 and cur.loc[i, "members"] == prev.loc[j, "members"] \
                and i not in key_of and j not in taken:
            key_of[i] = j
            taken.add(j)
    for i, j, *_ in sorted(pairs, key=lambda t: (-t[2], -t[3], -t[4], not t[5], t[6], t[0])):
        if i not in key_of and j not in taken:
            key_of[i] = j
            taken.add(j)
    # Merges and splits, on the members' shares.
    absorbed: dict[int, list[int]] = {}
    pieces: dict[int, list[int]] = {}
    for (i, j), n in inter.items():
        p_n = len(prev.loc[j, "members"])
        if not prev.loc[j, "present"] or n == 0 or p_n == 0:
            continue
        if n >= params.merge_share * p_n:
            absorbed.setdefault(i, []).append(j)
        if n >= max(params.split_share * p_n, 2):
            pieces.setdefault(j, []).append(i)
    rows = []
    for i, r in cur.iterrows():
        j = key_of.get(i)
        p = prev.loc[j] if j is not None else None
        n_c = len(r["members"])
        jm = added = removed = None
        if p is not None:
            n = inter.get((i, j), 0)
            n_p = len(p["members"])
            jm = round(n / (n_c + n_p - n), 4) if (n_c + n_p - n) else 0.0
            added, removed = n_c - n, n_p - n
        merged = sorted(str(prev.loc[x, "ring_key"]) for x in absorbed.get(i, []))
        split_from = sorted(str(prev.loc[x, "ring_key"]) for x, ps in pieces.items()
                            if i in ps and len(ps) >= 2)
        if len(merged) >= 2:
            status, detail = "merged", f"merged {', '.join(merged)}"
        elif split_from:
            status = "split"
            detail = f"split from {', '.join(split_from)}"
            if p is not None and str(p["ring_key"]) in split_from:
                detail += " (keeps its key: the largest part)"
        elif p is None:
            status, detail = "new", "no ring of the previous run shares enough of its members"
        else:
            n_p = len(p["members"])
            if n_c >= n_p * (1 + params.size_change) and added:
                status = "grown"
            elif n_c <= n_p * (1 - params.size_change):
                status = "shrunk"
            else:
                status = "continuing"
            detail = f"{n_p} → {n_c} members ({added} joined, {removed} left)"
            if jm < params.match_jaccard:
                detail += "; matched on the devices and IPs it dominates and its partner"
        if p is not None and not bool(p["present"]):
            gap = int(p["absent_runs"])
            detail += f"; back after {gap} run{'s' if gap != 1 else ''} without it"
        rows.append({"ring_id": r["ring_id"], "prev_key": None if p is None else p["ring_key"],
                     "prev_ring_id": "" if p is None or not bool(p["present"])
                     else str(p["ring_id"]), "status": status, "detail": detail,
                     "jaccard": jm, "added": added, "removed": removed, "n_accounts": n_c,
                     "prev_n_accounts": None if p is None else len(p["members"])})
    assigned = pd.DataFrame(rows, columns=["ring_id", "prev_key", "prev_ring_id", "status",
                                           "detail", "jaccard", "added", "removed",
                                           "n_accounts", "prev_n_accounts"])
    keys = []
    for k in assigned["prev_key"]:
        if k is None or (isinstance(k, float) and np.isnan(k)):
            last_key += 1
            keys.append(format_key(last_key))
        else:
            keys.append(str(k))
    assigned.insert(1, "ring_key", keys)
    # The previous rings no ring took the key of.
    into = {}
    for i, js in absorbed.items():
        if len(js) >= 2:
            for j in js:
                into.setdefault(j, assigned.loc[i, "ring_key"])
    gone_rows = []
    activity = activity or {}
    for j, p in prev.iterrows():
        if j in taken or not bool(p["present"]):
            continue
        key = str(p["ring_key"])
        n_p = len(p["members"])
        if j in into:
            status, detail = "merged", f"merged into {into[j]}"
        elif len(pieces.get(j, [])) >= 2:
            status = "split"
            detail = "split into " + ", ".join(sorted(assigned.loc[i, "ring_key"]
                                                       for i in pieces[j]))
        else:
            last = pd.to_datetime(p.get("last_seen") or None, errors="coerce", utc=True)
            seen = [activity.get(a) for a in p["members"]]
            seen = [pd.Timestamp(s).tz_localize("UTC") if pd.Timestamp(s).tzinfo is None
                    else pd.Timestamp(s) for s in seen if s is not None and pd.notna(s)]
            since = max(seen) if seen else None
            where = sorted({assigned.loc[i, "ring_key"] for (i, jj), n in inter.items()
                            if jj == j and n})
            if pd.notna(last) and (since is None or since <= last):
                status = "dormant"
                detail = f"no activity of its members since {last:%Y-%m-%d}"
            else:
                status = "gone"
                detail = "its members are active but no longer form a ring"
            if where:
                detail += f"; some of its members are now in {', '.join(where)}"
        gone_rows.append({"ring_key": key, "ring_id": "", "status": status, "detail": detail,
                          "prev_ring_id": str(p["ring_id"]), "jaccard": None, "n_accounts": 0,
                          "prev_n_accounts": n_p, "added": 0, "removed": n_p,
                          "last_seen": p.get("last_seen", "")})
    changes = pd.concat([assigned.assign(last_seen="")[CHANGE_COLUMNS],
                         pd.DataFrame(gone_rows, columns=CHANGE_COLUMNS)], ignore_index=True)
    for c in ("n_accounts", "prev_n_accounts", "added", "removed"):
        changes[c] = pd.to_numeric(changes[c]).astype("Int64")
    return assigned.drop(columns=["prev_key"]), changes, last_key


# -- verdicts ----------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_cases_all(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in ("ring_key", "verdict", "note", "decided_at") if c not in df.columns]
    if missing:
        raise TrackingError(f"--cases {path}: missing column(s) {', '.join(missing)} (needs "
                            f"ring_key, verdict, note, decided_at)")
    for c in CASE_COLUMNS:
        if c not in df.columns:
            df[c] = ""
    for c in df.columns:
        df[c] = df[c].map(_unneutralise).str.strip() if c != "note" else df[c]
    return df


def read_cases(path: str | Path) -> pd.DataFrame:
    """The analysts' current verdicts: one line per ring key (the latest not superseded).

    A missing file or column raises (the CLI exits 2); a line with a verdict other
    than confirmed, dismissed or monitoring is skipped with a warning.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise TrackingError(f"--cases {path}: no such file")
    df = _read_cases_all(path)
    df["verdict"] = df["verdict"].str.lower()
    bad = ~df["verdict"].isin(VERDICTS)
    for i in np.flatnonzero(bad.to_numpy()):
        log.warning("--cases %s: line %d: verdict %r is not one of %s; line skipped", path,
                    i + 2, df["verdict"].iloc[i], ", ".join(VERDICTS))
    df = df[~bad & (df["superseded_at"] == "")]
    df = df.sort_values(["ring_key", "decided_at"], kind="stable")
    doubled = df["ring_key"].duplicated(keep="last")
    for k in sorted(set(df.loc[doubled, "ring_key"])):
        log.warning("--cases %s: %s has more than one current verdict; the latest is used",
                    path, k)
    return df[~doubled].reset_index(drop=True)


def _per_day(records, first, last) -> float:
    """Records harvested per day of the ring's activity (first to last event, inclusive).

    >>> _per_day(300, "2020-03-01T10:00:00Z", "2020-03-03T09:00:00Z")
    100.0
    """
    a, b = pd.to_datetime(first, errors="coerce"), pd.to_datetime(last, errors="coerce")
    days = (b.normalize() - a.normalize()).days + 1 if pd.notna(a) and pd.notna(b) else 1
    return float(records) / max(days, 1)


def record_verdict(cases: str | Path, ring_key: str, verdict: str, note: str = "",
                   decided_at: str | None = None, *, findings: Findings | None = None,
                   run: str | Path | None = None) -> Path:
    """Record an analyst's verdict on a ring into the cases file, atomically.

    A previous current verdict on the same key stays as history: its
    ``superseded_at`` is set to this decision's time. With ``findings`` (a tracked
    run holding the ring) or ``run`` (a run's output folder, read through its
    ``ring_keys.csv``), what the ring is now is stored beside the verdict
    (members, devices/IPs it dominates, records harvested and per day), so a
    later run can tell whether a dismissed ring grew since. The file is sorted by ring key and time: plain,
    diff-friendly CSV to keep in git.

    >>> import tempfile; from pathlib import Path
    >>> f = Path(tempfile.mkdtemp()) / "cases.csv"
    >>> _ = record_verdict(f, "RK-0001", "dismissed", "a call centre", "2026-12-01T10:00:00Z")
    >>> _ = record_verdict(f, "RK-0001", "confirmed", "crawler after all", "2026-12-08T09:00:00Z")
    >>> pd.read_csv(f, dtype=str, keep_default_na=False)[["verdict", "superseded_at"]].values.tolist()
    [['dismissed', '2026-12-08T09:00:00Z'], ['confirmed', '']]
    """
    from .safe import write_csv

    verdict = str(verdict).strip().lower()
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    path = Path(cases).expanduser()
    decided_at = decided_at or _now()
    old = _read_cases_all(path) if path.exists() else pd.DataFrame(columns=CASE_COLUMNS)
    current = (old["ring_key"] == ring_key) & (old["superseded_at"] == "")
    old.loc[current, "superseded_at"] = decided_at
    snap = {"n_accounts": "", "records_harvested": "", "records_per_day": "", "members": "",
            "entities": ""}
    ledger = None
    if findings is not None and findings.tracking is not None:
        ledger = findings.tracking.keys
    elif run is not None and (Path(run) / "ring_keys.csv").exists():
        ledger = _parse_keys(pd.read_csv(Path(run) / "ring_keys.csv", dtype=str,
                                         keep_default_na=False))
    if ledger is not None:
        row = ledger[ledger["ring_key"] == ring_key]
        if len(row) and bool(row["present"].iloc[0]):
            r = row.iloc[0]
            snap = {"n_accounts": str(int(r["n_accounts"])),
                    "records_harvested": str(int(r["records_harvested"])),
                    "records_per_day": f"{_per_day(r['records_harvested'], r['first_seen'], r['last_seen']):.3f}",
                    "members": join_ids(_ids(r["members"])),
                    "entities": join_ids(sorted(_entities({"devices": _ids(r["devices"]),
                                                           "ips": _ids(r["ips"])})))}
        else:
            log.warning("%s is not a ring of that run: the verdict is recorded without what "
                        "the ring was", ring_key)
    new = pd.DataFrame([{"ring_key": ring_key, "verdict": verdict, "note": note,
                         "decided_at": decided_at, "superseded_at": "", **snap}])
    out = pd.concat([old[CASE_COLUMNS], new[CASE_COLUMNS]], ignore_index=True)
    out = out.sort_values(["ring_key", "decided_at"], kind="stable").fillna("")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(out, path)   # written beside, then moved into place


def _growth(row, base_members, base_entities, base_rate, base_n, params) -> tuple[bool, str]:
    """Whether a ring grew materially since a verdict, and what grew (in words).

    The harvest is compared per day of activity: an export that holds every event to
    date adds the same steady harvest each week, which is not growth.
    """
    parts, grew = [], False
    if base_members is not None:
        new = len(row["members"] - base_members)
        parts.append(f"{new} new member{'s' if new != 1 else ''}")
        grew |= new >= params.regrow_members
    elif base_n is not None:
        new = max(int(row["n_accounts"]) - int(base_n), 0)
        parts.append(f"{new} more member{'s' if new != 1 else ''}")
        grew |= new >= params.regrow_members
    if base_entities is not None:
        new = len(_entities(row) - base_entities)
        parts.append(f"{new} new device{'s' if new != 1 else ''} or IPs")
        grew |= new >= params.regrow_entities
    rate = _per_day(row["records_harvested"], row["first_seen"], row["last_seen"])
    if base_rate is not None:
        ratio = rate / base_rate if base_rate else (np.inf if rate else 1.0)
        ratio_txt = f"{ratio:.1f}×" if np.isfinite(ratio) else "from none"
        big = ratio >= params.regrow_harvest
        parts.append(f"records harvested per day {_fmt_rate(base_rate)} → {_fmt_rate(rate)} "
                     f"({ratio_txt}{'' if big else f', under {params.regrow_harvest:g}×'})")
        grew |= bool(big)
    return grew, ", ".join(parts)


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:,.1f}"


def _apply_verdicts(rings: pd.DataFrame, prof: pd.DataFrame, cases: pd.DataFrame | None,
                    prev: Previous | None, params: TrackingParams) -> pd.DataFrame:
    rings = rings.copy()
    for c in ("verdict", "verdict_note", "decided_at", "since_verdict"):
        rings[c] = ""
    rings["detector_flagged"] = is_flagged(rings).to_numpy()
    if cases is None or cases.empty:
        return rings
    known = set(rings["ring_key"]) | (set(prev.keys["ring_key"]) if prev is not None else set())
    for k in sorted(set(cases["ring_key"]) - known):
        log.warning("--cases: ring_key %s is not a ring of this run or of the previous one; "
                    "its verdict is not applied", k)
    prev_row = (prev.keys.set_index("ring_key") if prev is not None and len(prev.keys)
                else pd.DataFrame())
    by_key = cases.set_index("ring_key")
    prof = prof.set_index("ring_id")
    for i, r in rings.iterrows():
        key = r["ring_key"]
        if key not in by_key.index:
            continue
        c = by_key.loc[key]
        p = prof.loc[r["ring_id"]]
        if c["members"]:
            bm, be = _ids(c["members"]), _ids(c["entities"])
            brate = float(c["records_per_day"]) if c["records_per_day"] else None
            bn = None
        elif key in prev_row.index:   # no snapshot: the previous run's figures stand in
            q = prev_row.loc[key]
            bm, be = q["members"], _entities(q)
            brate, bn = _per_day(q["records_harvested"], q["first_seen"], q["last_seen"]), None
        else:
            bm = be = brate = None
            bn = int(float(c["n_accounts"])) if c["n_accounts"] else None
        grew, what = _growth(p, bm, be, brate, bn, params)
        day = str(c["decided_at"])[:10]
        rings.at[i, "verdict"] = c["verdict"]
        rings.at[i, "verdict_note"] = c["note"]
        rings.at[i, "decided_at"] = c["decided_at"]
        rings.at[i, "since_verdict"] = what
        if c["verdict"] == "dismissed" and rings.at[i, "detector_flagged"]:
            if grew:
                why = (f"flagged again: dismissed on {day}, but it grew materially since "
                       f"({what})")
            else:
                rings.at[i, "flagged"] = False
                why = (f"not flagged again: dismissed on {day} and it did not grow materially "
                       f"since ({what})")
            rings.at[i, "reasons"] = f"{why}; {r['reasons']}" if r["reasons"] else why
    return rings


# -- the whole step ----------------------------------------------------------------------------

@dataclass
class Tracking:
    """This run's key ledger (``ring_keys.csv``), changes (``ring_changes.csv``), verdicts
    applied, and what the previous run was."""

    keys: pd.DataFrame
    changes: pd.DataFrame
    last_key: int
    previous: Previous | None = None
    cases: pd.DataFrame | None = None
    overlap: float | None = None
    identity: dict = field(default_factory=dict)

    def counts(self) -> dict:
        """Alerts since the previous run: new (flagged now, not before), continuing
        (flagged in both; ``grown`` of them), closed (flagged before, not now)."""
        now = self.keys[self.keys["present"] & self.keys["flagged"]]
        before = (set(self.previous.present.loc[self.previous.present["flagged"], "ring_key"])
                  if self.previous is not None else set())
        cur = set(now["ring_key"])
        return {"flagged": len(cur), "new": len(cur - before), "continuing": len(cur & before),
                "grown": int(now.loc[now["ring_key"].isin(before), "status"].isin(
                    ["grown", "merged"]).sum()),
                "closed": len(before - cur), "previous": self.previous is not None}

    def record(self) -> dict:
        """For run.json (no raw ids)."""
        statuses = self.changes["status"].value_counts().sort_index()
        return {"previous": str(self.previous.folder) if self.previous else None,
                "previous_as_of": self.previous.as_of if self.previous else None,
                "export_overlap": self.overlap, "last_key": int(self.last_key),
                "statuses": {k: int(v) for k, v in statuses.items()},
                "alerts": self.counts(),
                "verdicts_applied": 0 if self.cases is None else int(len(self.cases))}

    def key_file(self) -> pd.DataFrame:
        """The ledger as ``ring_keys.csv`` writes it (sets ``;``-joined)."""
        k = self.keys.copy()
        for c in ("members", "devices", "ips", "partner_ids"):
            k[c] = [join_ids(v) for v in k[c]]
        return k[KEY_COLUMNS]


def _iso(ts) -> str:
    return "" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def follow(findings: Findings, previous: Previous | None = None,
           cases: pd.DataFrame | None = None, *, identity: dict | None = None,
           params: TrackingParams | None = None) -> Findings:
    """Give this run's rings their keys and statuses, and apply the analysts' verdicts.

    Returns new Findings whose rings frame has the extra columns ring_key,
    status, status_detail, verdict, verdict_note, decided_at, since_verdict and
    detector_flagged (``flagged`` is False for a dismissed ring that did not
    grow materially), with :attr:`Findings.tracking` set.
    """
    params = params or findings.params.tracking
    if cases is not None and previous is None:
        raise TrackingError("--cases needs --previous: ring keys are only stable along a "
                            "chain of runs, so without it a verdict would land on another ring")
    prof = ring_profiles(findings)
    prev_keys = previous.keys if previous is not None else pd.DataFrame()
    sig = findings.signals
    activity = dict(zip(sig["account_id"].astype(str), sig["last_seen"])) if len(prof) else {}
    assigned, changes, last_key = assign_keys(
        prof[["ring_id", "members", "devices", "ips", "partner_ids"]], prev_keys,
        previous.last_key if previous is not None else 0, params, activity)
    rings = findings.rings.rings.copy()
    a = assigned.set_index("ring_id")
    rings["ring_key"] = a["ring_key"].reindex(rings["ring_id"]).to_numpy()
    rings["status"] = a["status"].reindex(rings["ring_id"]).to_numpy()
    rings["status_detail"] = a["detail"].reindex(rings["ring_id"]).to_numpy()
    rings = _apply_verdicts(rings, prof.assign(ring_key=rings["ring_key"].to_numpy()), cases,
                            previous, params)
    # The ledger: this run's rings, then the gone ones still remembered.
    cur = prof.assign(ring_key=rings["ring_key"].to_numpy(), status=rings["status"].to_numpy(),
                      flagged=is_flagged(rings).to_numpy(), present=True, absent_runs=0)
    cur["first_seen"] = cur["first_seen"].map(_iso)
    cur["last_seen"] = cur["last_seen"].map(_iso)
    ledger = [cur]
    if previous is not None and len(previous.keys):
        old = previous.keys[~previous.keys["ring_key"].isin(set(cur["ring_key"]))].copy()
        old["absent_runs"] = old["absent_runs"] + 1
        old = old[old["absent_runs"] <= params.forget_after]
        gone = changes.set_index("ring_key")["status"]
        old["status"] = [gone.get(k, s) for k, s in zip(old["ring_key"], old["status"])]
        old["present"] = False
        old["flagged"] = False
        old["ring_id"] = ""
        ledger.append(old)
    keys = pd.concat(ledger, ignore_index=True)
    for c in KEY_COLUMNS:
        if c not in keys:
            keys[c] = ""
    keys = keys[KEY_COLUMNS]
    t = Tracking(keys=keys, changes=changes, last_key=last_key, previous=previous, cases=cases,
                 overlap=None, identity=identity or {})
    if previous is not None and identity:
        t.overlap = check_same_export(previous, identity, params)
    rings_obj = replace(findings.rings, rings=rings)
    return replace(findings, rings=rings_obj, tracking=t)


def alert_queue(findings: Findings) -> pd.DataFrame:
    """What an analyst opens this week: flagged rings, and rings with a confirmed or
    monitoring verdict, new and grown first; the verdict and the growth since beside each.
    Dismissed rings that did not grow are left out (``rings.csv`` keeps them, with why)."""
    rings = findings.rings.rings
    cols = ["ring_key", "ring_id", "rank", "status", "status_detail", "verdict",
            "since_verdict", "verdict_note", "score", "n_accounts", "records_harvested",
            "partner_ids", "reasons"]
    if len(rings) == 0 or "ring_key" not in rings:
        return pd.DataFrame(columns=cols)
    keep = is_flagged(rings) | rings["verdict"].isin(["confirmed", "monitoring"])
    q = rings[keep.to_numpy()].copy()
    order = {s: i for i, s in enumerate(QUEUE_ORDER)}
    q["_o"] = q["status"].map(order).fillna(len(order))
    q = q.sort_values(["_o", "rank"], kind="stable")
    return q[cols].reset_index(drop=True)


def write_tracking(findings: Findings, out: Path) -> list[Path]:
    """Write ring_keys.csv, ring_changes.csv and communities.parquet (real ids: the
    investigator's files) into ``out``."""
    from .safe import write_csv

    t = findings.tracking
    if t is None:
        return []
    paths = [write_csv(t.key_file(), out / "ring_keys.csv"),
             write_csv(t.changes.astype(object).fillna(""), out / "ring_changes.csv")]
    g = findings.graph
    comm = pd.DataFrame({"kind": g.nodes["kind"].astype(str).to_numpy(),
                         "key": g.nodes["key"].astype(str).to_numpy(),
                         "community": findings.communities.reindex(g.nodes["node"])
                         .fillna(-1).astype("int64").to_numpy()})
    tmp = out / "communities.parquet.part"
    comm.to_parquet(tmp, index=False)
    os.replace(tmp, out / "communities.parquet")
    paths.append(out / "communities.parquet")
    return paths
