"""Findings → ``report.html``: one self-contained page for management.

The page is a summary in words, then the charts (plotly.js embedded once, so it
works offline), then the table of flagged rings.

Every value from the export is HTML-escaped before it reaches the page or a
figure (plotly renders a subset of HTML in chart text), so a ``<script>`` in a
partner name shows as text and never runs. The page carries no raw account ids,
device ids or IPs: rings are named by rank ("Ring 2"), their accounts, devices
and IPs by pseudonyms (:mod:`analysis.pseudonym`); partner ids, which name
firms, are shown.

:func:`management` builds the management charts and summary (notebook 05 and
``make report``); :func:`write_report` writes the page (also called by
``pipeline.run`` with the ring ranking alone).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import plotly.io as pio

from . import charts
from .charts import plural
from .findings import Findings, flagged_rings, split_ids
from .load import Export
from .pseudonym import Pseudonyms, ring_label
from .queries import (
    partners_implicated,
    records_by_ring,
    resolve_ring,
    ring_subgraph,
    users_exposed,
)

__all__ = ["Management", "management", "write_report", "summary_lines", "since_lines",
           "ring_lines", "figure_html"]


def figure_html(fig, *, include_js: bool | str) -> str:
    """A figure as an HTML fragment (plotly.js embedded once when ``include_js``)."""
    return pio.to_html(fig, full_html=False, include_plotlyjs=include_js,
                       config={"displaylogo": False, "responsive": True})


def summary_lines(findings: Findings, export: Export, users_exposed: int | None = None) -> list[str]:
    """The summary in words, as plain text lines (escaped by the caller).

    ``users_exposed`` is the number of distinct users the flagged rings read with
    no tie (:func:`analysis.queries.users_exposed`); without it the sum over
    the rings' accounts is used, which counts a user read by two accounts twice.
    """
    rings = findings.rings.rings
    flagged = flagged_rings(rings)
    lines = []
    n_ev = findings.aggregates.accounts["n_events"].sum()
    lines.append(f"{int(n_ev):,} events of {len(findings.aggregates.accounts):,} accounts "
                 f"analysed" + (f", as of {findings.params.as_of}" if findings.params.as_of else "")
                 + ".")
    if n_ev == 0:
        lines.append("The export holds no usable events, so no ring can be assessed.")
    rejected = {k: v.rejected for k, v in export.counts.items()}
    if any(rejected.values()):
        lines.append("Rows rejected at validation: " + ", ".join(
            f"{k} {v:,} of {export.counts[k].rows:,}" for k, v in rejected.items()) + ".")
    else:
        lines.append("Every row of the export passed validation.")
    if len(flagged):
        users = int(flagged["untied_users"].sum()) if users_exposed is None else users_exposed
        records = int(flagged["records_harvested"].sum())
        lines.append(f"{plural(len(flagged), 'ring')} flagged for investigation, holding "
                     f"{int(flagged['n_accounts'].sum()):,} accounts; together they read the "
                     f"profiles of {users:,} users with no business tie and harvested "
                     f"{records:,} user records.")
    else:
        lines.append("No ring is flagged.")
    lines += since_lines(findings, users_exposed)
    return lines


def since_lines(findings: Findings, users_exposed: int | None = None) -> list[str]:
    """What changed since the previous run, in counts (ring keys tie rings across runs;
    no ids): rings newly flagged, still flagged (and how many grew), closed."""
    t = findings.tracking
    if t is None or t.previous is None:
        return []
    c = t.counts()
    when = f" (as of {t.previous.as_of})" if t.previous.as_of else ""
    flagged = flagged_rings(findings.rings.rings)
    users = (int(flagged["untied_users"].sum()) if users_exposed is None else users_exposed)
    return [f"Since the previous run{when}: {plural(c['new'], 'ring')} newly flagged, "
            f"{c['continuing']:,} still flagged ({c['grown']:,} of them grew), "
            f"{c['closed']:,} closed (gone, merged, quiet or dismissed); "
            f"{users:,} distinct users exposed to date by the rings flagged now."]


def _day(ts) -> str:
    return "" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d")


def ring_lines(findings, lag: pd.DataFrame | None = None,
               partners: pd.DataFrame | None = None,
               users: dict[str, int] | None = None) -> list[str]:
    """One sentence per flagged ring, in words management can act on (no raw ids).

    ``users`` maps a ring id to the distinct users it read with no tie.
    """
    members = findings.rings.members
    names = {}
    if partners is not None and len(partners):
        names = {p: f"{p} ({n}, {t})" if isinstance(n, str) and n else str(p)
                 for p, n, t in zip(partners["partner_id"], partners["name"],
                                    partners["partner_type"])}
    lag_of = ({} if lag is None or lag.empty
              else dict(zip(lag["ring_id"], lag["days_to_flag"])))
    early = (set() if lag is None or lag.empty or "flagged_early" not in lag
             else set(lag.loc[lag["flagged_early"].astype(bool), "ring_id"]))
    out = []
    for r in findings.flagged.itertuples(index=False):
        staff = int(((members["ring_id"] == r.ring_id)
                     & (members["account_type"] == "partner_staff")).sum())
        pids = split_ids(r.partner_ids)
        days = ((pd.Timestamp(r.last_seen) - pd.Timestamp(r.first_seen)).days + 1
                if pd.notna(r.first_seen) else 0)
        s = (f"{ring_label(r.ring_id)}: {r.n_accounts} accounts"
             + (f" ({staff} partner staff)" if staff else "")
             + (f", linked to partner {', '.join(names.get(p, p) for p in pids)}" if pids else "")
             + f"; read {int(r.profiles_read):,} user profiles in {plural(days, 'day')} "
               f"({_day(r.first_seen)} to {_day(r.last_seen)}) reaching {int((users or {}).get(r.ring_id, r.untied_users)):,} "
               f"users with no business tie, and harvested {int(r.records_harvested):,} records")
        d = lag_of.get(r.ring_id)
        if r.ring_id in early:
            s += "; weekly runs would have flagged it before its harvest showed in its records"
        elif d is not None and pd.notna(d):
            s += f"; weekly runs would have flagged it {plural(d, 'day')} after it started"
        out.append(s + ".")
    return out


@dataclass
class Management:
    """The management charts (name → figure, in report order), summary lines and tables."""

    figures: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    pseudonyms: Pseudonyms | None = None


def management(export: Export, findings: Findings, pseudonyms: Pseudonyms | None = None, *,
               lag: pd.DataFrame | None = None) -> Management:
    """Build the management charts and summary of one run.

    Charts: rings ranked by harm, records harvested over time per ring,
    cumulative distinct users exposed, partners implicated, when each ring
    started against when weekly runs first flagged it (when ``lag`` is given:
    the table of :func:`analysis.replay.first_flagged`), the score ranking, and
    the network of the top flagged ring (pseudonymised).
    """
    con = export.con
    # Free text of the export (partner names, types, ids) may hold any of its ids.
    ps = (pseudonyms or Pseudonyms.for_findings(findings)).learn_export(con)
    daily = records_by_ring(con, findings)
    exposed = users_exposed(con, findings)
    replay = lag is not None
    if lag is None:
        lag = pd.DataFrame(columns=["ring_id", "started", "first_flagged", "days_to_flag"])
    rings = findings.rings.rings.copy()
    per_ring = exposed[exposed["ring_id"] != "all"].groupby("ring_id")["users"].max()
    distinct = {str(k): int(v) for k, v in per_ring.items()}
    total = (int(exposed.loc[exposed["ring_id"] == "all", "users"].max())
             if len(exposed) else 0)
    own = rings["untied_users"] if "untied_users" in rings else [0] * len(rings)
    rings["untied_users"] = [distinct.get(r, u) for r, u in zip(rings["ring_id"], own)]
    partners = partners_implicated(findings, distinct)
    for col in ("partner_id", "name", "partner_type"):
        if col in partners:
            partners[col] = [ps.scrub(v) if isinstance(v, str) else v for v in partners[col]]
    figs = {
        "rings_by_harm": charts.harm_ranking(rings),
        "records_over_time": charts.records_over_time(daily),
        "users_exposed": charts.users_exposed(exposed),
        "partners_implicated": charts.partners_implicated(partners),
    }
    if replay:
        figs["detection_lag"] = charts.detection_lag(lag)
    figs["ring_ranking"] = charts.ring_ranking(rings)
    top = resolve_ring(findings, None)
    if top is not None and len(findings.flagged):
        sub = ring_subgraph(findings, top, hops=1)
        figs["ring_network"] = charts.ring_network(sub, pseudonyms=ps)
    lines = (summary_lines(findings, export, users_exposed=total if len(exposed) else None)
             + ring_lines(findings, lag, partners, distinct))
    figs = {name: ps.scrub_figure(fig) for name, fig in figs.items()}
    lines = [ps.scrub(line) for line in lines]
    return Management(figures=figs, lines=lines, pseudonyms=ps,
                      tables={"records_by_ring": daily, "users_exposed": exposed,
                              "partners_implicated": partners, "detection_lag": lag})


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.2em; margin-top: 2em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
.note {{ color: #555; font-size: 0.85em; }}
.chart {{ margin: 1.5em 0; }}
</style></head><body>
<h1>{title}</h1>
<p class="note">Generated {generated}. Account ids, device ids and IPs are left out of this
report (rings are named by rank; their accounts, devices and IPs by pseudonyms such as
R1-A01, R1-D01, R1-IP01); the investigator's files (ring_members.csv) hold them.</p>
<h2>Summary</h2>
<ul>{summary}</ul>
{sections}
</body></html>
"""


def write_report(findings: Findings, export: Export, path: Path, extra_figures: list | None = None, *,
                 figures: list | None = None, lines: list[str] | None = None,
                 pseudonyms: Pseudonyms | None = None) -> Path:
    """Write the self-contained management page.

    By default it holds the ring ranking chart followed by ``extra_figures``;
    ``figures`` replaces that list, ``lines`` the default summary
    (:func:`summary_lines`). Text from the export is escaped, and raw ids that
    might appear in a ring's reasons are replaced by their pseudonyms.
    """
    rings = findings.rings.rings
    figs = (list(figures) if figures is not None
            else [charts.ring_ranking(rings)] + list(extra_figures or []))
    ps = (pseudonyms or Pseudonyms.for_findings(findings)).learn_export(export.con)
    figs = [ps.scrub_figure(fig) for fig in figs]
    sections = ["<h2>Charts</h2>"] if figs else []
    for i, fig in enumerate(figs):
        sections.append(f'<div class="chart">{figure_html(fig, include_js=(i == 0))}</div>')
    flagged = flagged_rings(rings)
    if len(flagged):
        rows = "".join(
            f"<tr><td>{html.escape(ring_label(r.ring_id))}</td><td>{r.n_accounts}</td>"
            f"<td>{html.escape(ps.scrub(str(r.partner_ids)))}</td>"
            f"<td>{html.escape(ps.scrub(str(r.reasons)))}</td></tr>"
            for r in flagged.itertuples(index=False))
        sections.append("<h2>Flagged rings</h2><table><tr><th>ring</th><th>accounts</th>"
                        f"<th>partners</th><th>why</th></tr>{rows}</table>")
    summary = lines if lines is not None else summary_lines(findings, export)
    page = PAGE.format(
        title="Data-harvesting rings: findings",
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        summary="".join(f"<li>{html.escape(ps.scrub(s))}</li>" for s in summary),
        sections="\n".join(sections),
    )
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
