"""Findings → ``report.html``: one self-contained page for management.

Every value from the export is HTML-escaped before it reaches the page, and
plotly renders chart text as text, so a ``<script>`` in a partner name shows
as text and never runs. The page carries no raw account ids, device ids or
IPs: rings are named by ring id.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

import plotly.io as pio

from . import charts

__all__ = ["write_report", "summary_lines", "figure_html"]


def figure_html(fig, *, include_js: bool | str) -> str:
    """A figure as an HTML fragment (plotly.js embedded once when ``include_js``)."""
    return pio.to_html(fig, full_html=False, include_plotlyjs=include_js,
                       config={"displaylogo": False, "responsive": True})


def summary_lines(findings, export) -> list[str]:
    """The summary in words, as plain text lines (escaped by the caller)."""
    rings = findings.rings.rings
    flagged = rings[rings["flagged"].astype(bool)]
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
        users = int(flagged["untied_users"].sum())
        records = int(flagged["records_harvested"].sum())
        lines.append(f"{len(flagged)} ring(s) flagged for investigation, holding "
                     f"{int(flagged['n_accounts'].sum()):,} accounts; together they read the "
                     f"profiles of {users:,} users with no business tie and harvested "
                     f"{records:,} user records.")
    else:
        lines.append("No ring is flagged.")
    return lines


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
</style></head><body>
<h1>{title}</h1>
<p class="note">Generated {generated}. Account ids, device ids and IPs are left out of this
report; the investigator's files (ring_members.csv) hold them.</p>
<h2>Summary</h2>
<ul>{summary}</ul>
{sections}
</body></html>
"""


def write_report(findings, export, path: Path, extra_figures: list | None = None) -> Path:
    """Write the self-contained management summary with the ring ranking chart."""
    rings = findings.rings.rings
    figs = [charts.ring_ranking(rings)] + list(extra_figures or [])
    sections = []
    for i, fig in enumerate(figs):
        sections.append(f'<div class="chart">{figure_html(fig, include_js=(i == 0))}</div>')
    flagged = rings[rings["flagged"].astype(bool)]
    if len(flagged):
        rows = "".join(
            f"<tr><td>{html.escape(str(r.ring_id))}</td><td>{r.n_accounts}</td>"
            f"<td>{html.escape(str(r.partner_ids))}</td><td>{html.escape(str(r.reasons))}</td></tr>"
            for r in flagged.itertuples(index=False))
        sections.append("<h2>Flagged rings</h2><table><tr><th>ring</th><th>accounts</th>"
                        f"<th>partners</th><th>why</th></tr>{rows}</table>")
    page = PAGE.format(
        title="Data-harvesting rings: findings",
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        summary="".join(f"<li>{html.escape(s)}</li>" for s in summary_lines(findings, export)),
        sections="\n".join(sections),
    )
    path.write_text(page, encoding="utf-8")
    return path
