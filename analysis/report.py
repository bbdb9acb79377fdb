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
from datetime import datetime
from pathlib import Path

import pandas as pd
import plotly.io as pio

from . import charts
from .charts import about, plural
from .facts import ALL, add_facts, fact
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
           "ring_lines", "management_why", "partner_names", "figure_html", "data_time"]


def figure_html(fig, *, include_js: bool | str, div_id: str | None = None) -> str:
    """A figure as an HTML fragment (plotly.js embedded once when ``include_js``).

    ``div_id`` names the chart's element; give one (plotly's default is random), so
    that the same figures give the same page byte for byte.
    """
    return pio.to_html(fig, full_html=False, include_plotlyjs=include_js, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def data_time(findings: Findings, export: Export) -> tuple[datetime | None, str]:
    """The time a report speaks of, and where it comes from: the end of ``--as-of``, else
    the newest event of the export (never the clock, so reruns are byte-identical)."""
    if findings.params.as_of:
        return findings.aggregates.as_of, f"the end of {findings.params.as_of} UTC (--as-of)"
    try:
        newest = export.con.execute("SELECT max(ts) FROM ev").fetchone()[0]
    except Exception:  # noqa: BLE001 - a workspace without events
        newest = None
    if newest is None:
        return None, "an export without events"
    return newest, f"{newest:%Y-%m-%d %H:%M} UTC (the newest event in the export)"


def _total(findings: Findings) -> pd.Series | None:
    return fact(findings, ALL)


def _ring_fact(findings: Findings, r) -> pd.Series:
    """The ring's facts; for findings made without them, its row (days: first to last)."""
    f = fact(findings, r.ring_id)
    if f is not None:
        return f
    row = pd.Series(r._asdict())
    row["days_active"] = ((pd.Timestamp(r.last_seen) - pd.Timestamp(r.first_seen)).days + 1
                          if pd.notna(r.first_seen) else 0)
    return row


def summary_lines(findings: Findings, export: Export) -> list[str]:
    """The summary in words, as plain text lines (escaped by the caller): short sentences,
    rounded numbers (:func:`analysis.charts.about`), the figures of :mod:`analysis.facts`."""
    rings = findings.rings.rings
    flagged = flagged_rings(rings)
    lines = []
    n_ev = int(findings.aggregates.accounts["n_events"].sum())
    n_acc = len(findings.aggregates.accounts)
    when = f", up to {findings.params.as_of}" if findings.params.as_of else ""
    lines.append(f"{_cap(about(n_ev, 'event'))} of {about(n_acc, 'account')} were analysed{when}.")
    if n_ev == 0:
        lines.append("The export holds no usable events, so no ring can be assessed.")
    rejected = {k: v.rejected for k, v in export.counts.items()}
    if any(rejected.values()):
        lines += [f"{_cap(about(v))} of {about(export.counts[k].rows, k.rstrip('s') + ' row')}"
                  f" {'was' if v == 1 else 'were'} rejected at validation."
                  for k, v in rejected.items() if v]
    else:
        lines.append("Every row of the export passed validation.")
    total = _total(findings)
    if len(flagged) and total is not None:
        lines.append(f"{plural(len(flagged), 'ring')} {'is' if len(flagged) == 1 else 'are'} "
                     f"flagged for investigation. "
                     f"{'It holds' if len(flagged) == 1 else 'They hold'} "
                     f"{about(total['n_accounts'], 'account')}.")
        lines.append(f"{'It' if len(flagged) == 1 else 'Together they'} read the profiles of "
                     f"{about(total['untied_users'], 'user')} with no business tie and "
                     f"harvested {about(total['records_harvested'], 'user record')}.")
    else:
        lines.append("No ring is flagged.")
    lines += since_lines(findings)
    return lines


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def since_lines(findings: Findings) -> list[str]:
    """What changed since the previous run, in counts (ring keys tie rings across runs;
    no ids): rings newly flagged, still flagged (and how many grew), closed."""
    t = findings.tracking
    if t is None or t.previous is None:
        return []
    c = t.counts()
    when = f" (as of {t.previous.as_of})" if t.previous.as_of else ""
    total = _total(findings)
    users = int(total["untied_users"]) if total is not None else 0
    return [f"Since the previous run{when}: {plural(c['new'], 'ring')} newly flagged, "
            f"{plural(c['continuing'], 'ring')} still flagged ({c['grown']:,} of them grew) "
            f"and {plural(c['closed'], 'ring')} closed (gone, merged, quiet or dismissed).",
            f"The rings flagged now have exposed {about(users, 'distinct user')} to date."]


def _day(ts) -> str:
    return "" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d")


def _of_its(n: int, singular: str, plural_: str, total: int | None = None) -> str:
    """'1 of its accounts is …', '3 of its accounts are …', 'all 4 of its accounts are …'.

    >>> _of_its(1, "is staff", "are staff"), _of_its(4, "is", "are", total=4)
    ('1 of its accounts is staff', 'all 4 of its accounts are')
    """
    every = "all " if total is not None and n == total and n > 1 else ""
    return f"{every}{n:,} of its accounts {singular if n == 1 else plural_}"


def partner_names(partners: pd.DataFrame | None) -> dict[str, str]:
    """Partner id → "id (name, type)" for the text (from :func:`partners_implicated`)."""
    if partners is None or not len(partners):
        return {}
    return {p: f"{p} ({n}, {t})" if isinstance(n, str) and n else str(p)
            for p, n, t in zip(partners["partner_id"], partners["name"],
                               partners["partner_type"])}


def ring_lines(findings, lag: pd.DataFrame | None = None,
               partners: pd.DataFrame | None = None) -> list[str]:
    """A few short sentences per flagged ring, in words management can act on (no raw ids,
    rounded numbers, the ring's facts)."""
    members = findings.rings.members
    names = partner_names(partners)
    lag_of = ({} if lag is None or lag.empty
              else dict(zip(lag["ring_id"], lag["days_to_flag"])))
    early = (set() if lag is None or lag.empty or "flagged_early" not in lag
             else set(lag.loc[lag["flagged_early"].astype(bool), "ring_id"]))
    out = []
    for r in findings.flagged.itertuples(index=False):
        f = _ring_fact(findings, r)
        staff = int(((members["ring_id"] == r.ring_id)
                     & (members["account_type"] == "partner_staff")).sum())
        pids = split_ids(r.partner_ids)
        head = f"{ring_label(r.ring_id)}: {plural(f['n_accounts'], 'account')}"
        if staff:
            head += f", {staff:,} of {'it' if f['n_accounts'] == 1 else 'them'} partner staff"
        if pids:
            head += (f", linked to {'partner' if len(pids) == 1 else 'partners'} "
                     f"{', '.join(names.get(p, p) for p in pids)}")
        s = [head + ".",
             f"Active on {plural(f['days_active'], 'day')} from {_day(f['first_seen'])} to "
             f"{_day(f['last_seen'])}.",
             f"It read the profiles of {about(f['untied_users'], 'user')} with no business tie "
             f"and harvested {about(f['records_harvested'], 'user record')}."]
        d = lag_of.get(r.ring_id)
        if r.ring_id in early:
            s.append("Weekly runs would have flagged it before its harvest showed in its "
                     "records.")
        elif d is not None and pd.notna(d):
            s.append(f"Weekly runs would have flagged it {plural(d, 'day')} after it started.")
        out.append(" ".join(s))
    return out


def management_why(findings: Findings, ring_id: str) -> str:
    """Why a ring is flagged, for management: short sentences, rounded numbers, no jargon.

    The analyst's ``reasons`` keep the full measures (baselines, percentiles, ratios);
    this says the same in plain words from the ring's measures and its members' signals.
    """
    row = findings.rings.rings.set_index("ring_id").loc[ring_id]
    m = findings.rings.members
    aids = m.loc[m["ring_id"] == ring_id, "aid"]
    sig = findings.signals.set_index("aid").reindex(aids)
    n = len(sig)
    out = []
    harm = float(row.get("harm_ratio", 0) or 0)
    if harm >= 2:
        out.append(f"Its accounts read strangers' profiles on a scale {about(harm)} times that "
                   "of comparable accounts.")

    def say(k: int, singular: str, plural_: str) -> None:
        if k:
            out.append(_cap(_of_its(k, singular, plural_, total=n)) + "."
                       if n > 1 else f"Its one account {singular}.")

    say(int(row.get("harvesters", 0) or 0), "harvests on its own", "harvest on their own")
    staff = int((sig["account_type"] == "partner_staff").sum())
    say(staff, "is partner staff", "are partner staff")
    if not staff and split_ids(row.get("partner_ids", "")):
        out.append("It shares devices or IPs with a partner's staff.")

    def count(col: str, at: float) -> int:
        return int((sig[col].fillna(0) >= at).sum()) if col in sig else 0

    say(count("round_clock_ratio", 1), "is active around the clock",
        "are active around the clock")
    say(count("pacing_ratio", 1), "acts at machine-regular intervals",
        "act at machine-regular intervals")
    say(count("device_share_ratio", findings.rings.params.support_factor),
        "uses a device that many accounts share", "use a device that many accounts share")
    return " ".join(out) or "Its accounts read strangers' profiles with no business tie."


@dataclass
class Management:
    """The management charts (name → figure, in report order), summary lines and tables."""

    figures: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    pseudonyms: Pseudonyms | None = None
    #: The time the report speaks of (:func:`data_time`): the charts' PDFs carry it.
    data_time: datetime | None = None


def management(export: Export, findings: Findings, pseudonyms: Pseudonyms | None = None, *,
               lag: pd.DataFrame | None = None) -> Management:
    """Build the management charts and summary of one run.

    Charts: rings ranked by harm, records harvested over time per ring,
    cumulative distinct users exposed, partners implicated, when each ring
    started against when weekly runs first flagged it (when ``lag`` is given:
    the table of :func:`analysis.replay.first_flagged`), the score ranking, and
    the network of the top flagged ring (pseudonymised). Every figure a title
    or a sentence states is the ring's fact (:mod:`analysis.facts`).
    """
    con = export.con
    findings = add_facts(con, findings)       # a no-op for the pipeline's findings
    # Free text of the export (partner names, types, ids) may hold any of its ids.
    ps = (pseudonyms or Pseudonyms.for_findings(findings)).learn_export(con)
    daily = records_by_ring(con, findings)
    exposed = users_exposed(con, findings)
    replay = lag is not None
    if lag is None:
        lag = pd.DataFrame(columns=["ring_id", "started", "first_flagged", "days_to_flag"])
    rings = findings.rings.rings
    partners = partners_implicated(findings, con=con)
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
    lines = summary_lines(findings, export) + ring_lines(findings, lag, partners)
    figs = {name: ps.scrub_figure(fig) for name, fig in figs.items()}
    lines = [ps.scrub(line) for line in lines]
    return Management(figures=figs, lines=lines, pseudonyms=ps,
                      data_time=data_time(findings, export)[0],
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
<p class="note">Data up to {generated}. Account ids, device ids and IPs are left out of this
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
    findings = add_facts(export.con, findings)
    rings = findings.rings.rings
    figs = (list(figures) if figures is not None
            else [charts.ring_ranking(rings)] + list(extra_figures or []))
    ps = (pseudonyms or Pseudonyms.for_findings(findings)).learn_export(export.con)
    figs = [ps.scrub_figure(fig) for fig in figs]
    sections = ["<h2>Charts</h2>"] if figs else []
    for i, fig in enumerate(figs):
        sections.append(f'<div class="chart">'
                        f'{figure_html(fig, include_js=(i == 0), div_id=f"chart-{i + 1}")}</div>')
    flagged = flagged_rings(rings)
    if len(flagged):
        rows = "".join(
            f"<tr><td>{html.escape(ring_label(r.ring_id))}</td><td>{r.n_accounts:,}</td>"
            f"<td>{html.escape(about(r.records_harvested))}</td>"
            f"<td>{html.escape(about(getattr(r, 'untied_users', 0)))}</td>"
            f"<td>{html.escape(ps.scrub(', '.join(split_ids(r.partner_ids)) or 'none'))}</td>"
            f"<td>{html.escape(ps.scrub(management_why(findings, r.ring_id)))}</td></tr>"
            for r in flagged.itertuples(index=False))
        sections.append("<h2>Flagged rings</h2><table><tr><th>ring</th><th>accounts</th>"
                        "<th>records harvested</th><th>users reached</th>"
                        f"<th>partners</th><th>why</th></tr>{rows}</table>")
    summary = lines if lines is not None else summary_lines(findings, export)
    page = PAGE.format(
        title="Data-harvesting rings: findings",
        generated=html.escape(data_time(findings, export)[1]),
        summary="".join(f"<li>{html.escape(ps.scrub(s))}</li>" for s in summary),
        sections="\n".join(sections),
    )
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
