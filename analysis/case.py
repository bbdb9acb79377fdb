"""One ring's case: its network, neighbourhood, timeline, evidence and partner staff,
gathered once for notebook 04, ``report --ring`` and the investigation folder.

Real ids throughout: the investigator's evidence, never a management output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .findings import Findings
from .load import Export
from .queries import (
    RingGraph,
    account_timeline,
    evidence_table,
    partner_staff,
    resolve_ring,
    ring_daily,
    ring_row,
    ring_subgraph,
)

__all__ = ["RingCase", "case", "split_reasons", "write_investigations"]


def split_reasons(reasons: str) -> list[str]:
    """A ring's ``reasons`` as a list: split on "; " outside parentheses.

    >>> split_reasons("read 5 (3× the baseline; median 0); linked to P1")
    ['read 5 (3× the baseline; median 0)', 'linked to P1']
    """
    out, depth, cur = [], 0, []
    for ch in str(reasons or ""):
        depth += (ch == "(") - (ch == ")")
        if ch == ";" and depth <= 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [x for x in out if x]


@dataclass
class RingCase:
    """Everything notebook 04 shows about one ring (real ids: the investigator's evidence)."""

    ring_id: str | None
    ring: pd.Series | None = None
    network: RingGraph | None = None
    neighbourhood: RingGraph | None = None
    daily: pd.DataFrame | None = None
    evidence: pd.DataFrame | None = None
    staff: pd.DataFrame | None = None
    #: Per account and day: events by type and strangers read (queries.account_timeline).
    accounts_daily: pd.DataFrame | None = None

    def headline(self) -> str:
        """The ring in a few lines of plain text."""
        if self.ring is None:
            return "No candidate ring in this run: nothing to investigate."
        r = self.ring
        flag = "FLAGGED" if bool(r["flagged"]) else "not flagged"
        why = "\n".join(f"  - {x}" for x in split_reasons(r["reasons"]))
        key = ""
        if "ring_key" in r and isinstance(r["ring_key"], str):
            key = f"{r['ring_key']}, {r['status']}"
            if r.get("verdict"):
                key += f", {r['verdict']} on {str(r['decided_at'])[:10]}"
            key = f"[{key}] "
        facts = ""
        if "days_active" in r:
            facts = (f", active on {int(r['days_active']):,} days; "
                     f"{int(r['records_harvested']):,} records harvested, "
                     f"{int(r['untied_users']):,} distinct users read with no tie, "
                     f"{int(r['devices']):,} devices, {int(r['ips']):,} IPs")
        return (f"{key}{r['ring_id']} (rank {r['rank']}, score {r['score']:.2f}, {flag}): "
                f"{r['n_accounts']} accounts, partners {r['partner_ids'] or 'none'}\n"
                f"seen {r['first_seen']} to {r['last_seen']}{facts}\nwhy:\n{why}")

    def figures(self, pseudonyms=None) -> dict:
        """network, neighbourhood (2 hops), timeline and staff comparison figures."""
        from . import charts

        if self.ring_id is None:
            e = charts.empty("No candidate ring in this run", "nothing to investigate")
            return {"network": e, "neighbourhood": e, "timeline": e, "staff": e}
        return {
            "network": charts.ring_network(self.network, pseudonyms),
            "neighbourhood": charts.ring_network(self.neighbourhood, pseudonyms),
            "timeline": charts.ring_timeline(self.daily, self.ring_id),
            "staff": charts.staff_comparison(self.staff, self.ring_id, pseudonyms),
        }

    def write(self, folder: str | Path, *, plotly_js: str | Path | None = None) -> list[Path]:
        """Write the evidence into ``folder/<ring_id>/``: evidence.csv, partner_staff.csv,
        daily.csv, accounts_daily.csv and the figures as HTML, loading ``plotly_js``
        (default ``folder/plotly.min.js``; a report passes its one copy at OUT's root) by a
        relative path, so they work offline. Real ids: not for management."""
        from .charts import PLOTLY_JS, write_html
        from .safe import write_csv

        if self.ring_id is None:
            return []
        js = Path(plotly_js) if plotly_js is not None else Path(folder) / PLOTLY_JS
        where = Path(folder) / self.ring_id
        where.mkdir(parents=True, exist_ok=True)
        paths = [write_csv(self.evidence, where / "evidence.csv"),
                 write_csv(self.staff, where / "partner_staff.csv"),
                 write_csv(self.daily, where / "daily.csv")]
        if self.accounts_daily is not None:
            paths.append(write_csv(self.accounts_daily, where / "accounts_daily.csv"))
        for name, fig in self.figures().items():
            paths.append(write_html(fig, where / f"{name}.html", js))
        return paths


#: In the investigation folder: what its case files were written from (see ``source``).
WRITTEN = ".written.json"


def _written_keys(findings: Findings, rings: list[str], source: str,
                  plotly_js: str = "") -> dict[str, str]:
    """Per ring, a digest of what its case files depend on: ``source`` (what the findings were
    made from), the ring's row (key, status, verdict, flag), its members, and where its pages
    load plotly.js from (``plotly_js``, relative to the folder)."""
    import hashlib
    import json

    m, r = findings.rings.members, findings.rings.rings
    out = {}
    for rid in rings:
        blob = json.dumps({"source": source, "plotly_js": plotly_js,
                           "row": r.loc[r["ring_id"] == rid].iloc[0].to_dict(),
                           "members": sorted(m.loc[m["ring_id"] == rid, "account_id"]
                                             .astype(str))}, sort_keys=True, default=str)
        out[rid] = hashlib.sha256(blob.encode()).hexdigest()
    return out


def write_investigations(export: Export, findings: Findings, folder: str | Path, *,
                         also: int | str | None = None,
                         source: str | None = None,
                         plotly_js: str | Path | None = None) -> list[Path]:
    """Write ``folder/<ring_id>/`` for every flagged ring (and ring ``also``, when given and
    not flagged): the investigator's case files, real ids. Their pages load ``plotly_js``
    (default ``folder/plotly.min.js``; see :meth:`RingCase.write`).

    ``source`` (what the findings were made from: :func:`analysis.store.digest` of the
    output folder they were kept in): a ring whose case files in ``folder`` were written from
    the same source, ring row and members (recorded in ``folder/.written.json``) is not
    written again, so reopening notebook 04 on another ring does not redo every flagged ring.
    Returns the paths of every ring's case files, written now or before.
    """
    import json
    import os

    from .charts import PLOTLY_JS

    rings = list(findings.flagged["ring_id"])
    extra = resolve_ring(findings, also) if also is not None else None
    if extra is not None and extra not in rings:
        rings.append(extra)
    folder = Path(folder)
    js = Path(plotly_js) if plotly_js is not None else folder / PLOTLY_JS
    tags = (_written_keys(findings, rings, source,
                          Path(os.path.relpath(js, folder)).as_posix()) if source else None)
    done: dict = {}
    if tags is not None:
        try:
            done = dict(json.loads((folder / WRITTEN).read_text()))
        except (OSError, ValueError, TypeError):
            done = {}
    written: list[Path] = []
    for ring_id in rings:
        before = done.get(ring_id) or {}
        files = [folder / f for f in before.get("files", [])] if isinstance(before, dict) else []
        if (tags is not None and before.get("key") == tags[ring_id] and files
                and all(f.exists() for f in files) and js.exists()):
            written += files
            continue
        files = case(export, findings, ring_id).write(folder, plotly_js=js)
        written += files
        if tags is not None:
            done[ring_id] = {"key": tags[ring_id],
                             "files": [f.relative_to(folder).as_posix() for f in files]}
    if tags is not None:
        (folder / WRITTEN).write_text(json.dumps(done, indent=1, sort_keys=True) + "\n")
    return written


def case(export: Export, findings: Findings, ring: int | str | None = None, *,
         max_accounts: int = 150) -> RingCase:
    """Gather one ring's network, 2-hop neighbourhood, timeline, evidence and staff comparison.

    ``ring`` is a rank, a ring id or None (the top flagged ring). A run without
    candidate rings gives an empty case that still displays and writes nothing.
    """
    ring_id = resolve_ring(findings, ring)
    if ring_id is None:
        return RingCase(ring_id=None)
    return RingCase(
        ring_id=ring_id, ring=ring_row(findings, ring_id),
        network=ring_subgraph(findings, ring_id, hops=1),
        neighbourhood=ring_subgraph(findings, ring_id, hops=2, max_accounts=max_accounts),
        daily=ring_daily(export.con, findings, ring_id),
        evidence=evidence_table(findings, ring_id),
        staff=partner_staff(findings, ring_id),
        accounts_daily=account_timeline(export.con, findings, ring_id))


