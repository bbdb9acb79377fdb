"""Rings → plotly figures for analysts and management.

Every function returns a ``plotly.graph_objects.Figure`` whose title states the
finding. Colours come from the Okabe–Ito palette, which stays distinguishable
with the common forms of colour blindness, and kinds of things also differ by
marker shape. Axes name their units; dates are UTC days.

Values from the export (ids, names, types) are written by the very people under
investigation, and plotly renders a subset of HTML in titles, labels and hover
texts. Every such value goes through :func:`esc` (``html.escape``) before it
reaches a figure, so ``<script>`` or ``<img onerror=…>`` shows as text.

Figures meant for management never carry raw account ids, device ids or IPs:
pass ``pseudonyms`` (:class:`analysis.pseudonym.Pseudonyms`) to the functions
that can show them; without it they show the raw ids (the investigator's view).
"""

from __future__ import annotations

import html
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .findings import flagged_rings, is_flagged, split_ids
from .pseudonym import ring_label, ring_number

__all__ = ["OKABE_ITO", "KIND_COLOURS", "esc", "style", "empty", "ring_ranking",
           "event_volume", "type_counts", "graph_size", "degree_distribution",
           "community_sizes", "score_vs_size", "partner_positions", "ring_network",
           "ring_timeline", "staff_comparison", "plural", "approx", "about", "ring_style",
           "harm_ranking", "records_over_time", "account_timeline",
           "users_exposed", "partners_implicated", "detection_lag"]

#: Okabe & Ito (2008) colour-blind-safe palette.
#: The one copy of plotly.js an output folder carries (see :func:`write_html`).
PLOTLY_JS = "plotly.min.js"
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
             "#000000"]
KIND_COLOURS = {"account": "#0072B2", "device": "#E69F00", "ip": "#009E73", "partner": "#D55E00"}
FLAG_COLOURS = {True: "#D55E00", False: "#999999"}
KIND_SYMBOLS = {"account": "circle", "device": "square", "ip": "diamond", "partner": "star"}
#: Network node classes: (legend name, colour, symbol).
NODE_CLASSES = {
    "staff": ("ring account: partner staff", "#D55E00", "circle"),
    "ring": ("ring account", "#0072B2", "circle"),
    "other": ("other account (2 hops)", "#56B4E9", "circle-open"),
    "device": ("device", "#E69F00", "square"),
    "ip": ("IP address", "#009E73", "diamond"),
    "partner": ("partner", "#CC79A7", "star"),
}
DATE_AXIS = "date (UTC)"
#: Colours of rings 1, 2, 3 …: Okabe–Ito without yellow (too light on white), then dashed.
RING_COLOURS = ["#D55E00", "#0072B2", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000"]
RING_DASHES = ["solid", "dash", "dot", "dashdot"]


def ring_style(ring_id: str) -> dict:
    """The line colour and dash of a ring, the same in every chart (by its rank).

    >>> ring_style("ring-001"), ring_style("ring-008")["dash"]
    ({'color': '#D55E00', 'dash': 'solid'}, 'dash')
    """
    n = (ring_number(ring_id) or 1) - 1
    return {"color": RING_COLOURS[n % len(RING_COLOURS)],
            "dash": RING_DASHES[(n // len(RING_COLOURS)) % len(RING_DASHES)]}


def esc(value) -> str:
    """A value from the export as safe figure text ("" for missing).

    >>> esc('<img src=x onerror="alert(1)">')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
    >>> esc(None), esc(float("nan")), esc(3)
    ('', '', '3')
    """
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return html.escape(str(value), quote=True)


def _day(ts) -> str:
    return "" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d")


def _cd(columns) -> list[list]:
    """Customdata rows from columns of mixed types (keeps numbers numeric for d3 formats)."""
    cols = [list(c.tolist() if hasattr(c, "tolist") else c) for c in columns]
    return [list(row) for row in zip(*cols)]


def write_html(fig: go.Figure, path: Path | str, js_file: Path | str) -> Path:
    """Write ``fig`` as a full HTML page that loads plotly.js from ``js_file``.

    ``js_file`` (written once, when missing) sits in the output folder, so the pages
    work offline and a folder of charts carries one copy of plotly.js (~4.6 MB),
    not one per page. The page refers to it by a relative path.
    """
    import os

    import plotly.offline

    path, js_file = Path(path), Path(js_file)
    if not js_file.exists():
        js_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = js_file.with_name(f".{js_file.name}.tmp-{os.getpid()}")
        tmp.write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
        tmp.replace(js_file)
    rel = Path(os.path.relpath(js_file, path.parent)).as_posix()
    # A fixed element id (plotly's default is random): the same figure, the same bytes.
    fig.write_html(str(path), include_plotlyjs=rel, full_html=True, div_id="chart",
                   config={"displaylogo": False, "responsive": True})
    return path


def plural(n, word: str, many: str | None = None) -> str:
    """``n`` and the word, in the plural unless ``n`` is 1.

    >>> plural(1, "day"), plural(3, "day"), plural(2, "IP"), plural(2, "staff", "staff")
    ('1 day', '3 days', '2 IPs', '2 staff')
    """
    n = int(n)
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def approx(n) -> str:
    """A count as management reads it: exact under 10,000, else three significant figures.

    >>> approx(9876), approx(39132), approx(421488), approx(1105754), approx(2.5e9)
    ('9,876', '39,100', '421,000', '1.11 million', '2.5 billion')
    """
    n = int(round(float(n)))
    if abs(n) < 10_000:
        return f"{n:,}"
    for size, word in ((1_000_000_000, "billion"), (1_000_000, "million")):
        if abs(n) >= size:
            return f"{float(f'{n / size:.3g}'):g} {word}"
    return f"{int(float(f'{n:.3g}')):,}"


def about(n, word: str | None = None, many: str | None = None) -> str:
    """:func:`approx` with "about" when the number was rounded, and the word in the right
    number (plural unless the count is 1).

    >>> about(1, "ring"), about(3, "day"), about(421488, "record"), about(10000, "user")
    ('1 ring', '3 days', 'about 421,000 records', '10,000 users')
    """
    text = approx(n)
    exact = text.replace(",", "") == str(int(round(float(n))))
    out = text if exact else f"about {text}"
    if word is None:
        return out
    return f"{out} {word if int(round(float(n))) == 1 else (many or word + 's')}"


def _n(x) -> str:
    return f"{int(x):,}"


def style(fig: go.Figure, title: str, *, x: str | None = None, y: str | None = None) -> go.Figure:
    """Apply the house style: a title that states the finding, labelled axes."""
    fig.update_layout(title={"text": title, "x": 0.01}, template="plotly_white",
                      font={"family": "Arial, sans-serif", "size": 13},
                      margin={"l": 70, "r": 30, "t": 70, "b": 60}, colorway=OKABE_ITO)
    if x:
        fig.update_xaxes(title_text=x)
    if y:
        fig.update_yaxes(title_text=y)
    return fig


def empty(title: str, note: str = "nothing to show") -> go.Figure:
    """A figure that says there is nothing to show (it still draws)."""
    fig = go.Figure()
    fig.add_annotation(text=esc(note), showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font={"size": 16, "color": "#555"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=300)
    return style(fig, title)


def _date_axis(fig: go.Figure) -> None:
    fig.update_xaxes(title_text=DATE_AXIS, tickformat="%Y-%m-%d", hoverformat="%Y-%m-%d")


# -- rings (pipeline report) ---------------------------------------------------------------

def ring_ranking(rings: pd.DataFrame, top: int = 20) -> go.Figure:
    """Bar chart of the top rings by score, flagged rings highlighted."""
    r = rings.sort_values("rank").head(top) if "rank" in rings else rings.head(top)
    labels = [esc(ring_label(v)) for v in r["ring_id"]]
    fig = go.Figure()
    for flagged in (True, False):
        part = r[is_flagged(r) == flagged]
        if part.empty:
            continue
        fig.add_bar(
            x=part["score"], y=[esc(ring_label(v)) for v in part["ring_id"]], orientation="h",
            name="flagged" if flagged else "not flagged",
            marker_color=FLAG_COLOURS[flagged],
            customdata=part[["n_accounts", "profiles_read", "records_harvested"]].to_numpy(),
            hovertemplate=("%{y}: score %{x:.2f}<br>%{customdata[0]} accounts, "
                           "%{customdata[1]:,} profiles read, %{customdata[2]:,} records "
                           "harvested<extra></extra>"),
        )
    n_flag = int(is_flagged(rings).sum())
    title = (f"{n_flag} of {len(rings)} candidate rings flagged" if len(rings)
             else "No candidate rings in this export")
    fig.update_layout(barmode="overlay", height=max(300, 28 * len(r) + 140))
    # Rank 1 on top, in rank order whichever trace a ring is in.
    fig.update_yaxes(categoryorder="array", categoryarray=labels[::-1])
    return style(fig, title, x="ranking score (higher means stronger evidence)", y="ring")


# -- 01: the export -----------------------------------------------------------------------

def event_volume(volume: pd.DataFrame, freq: str = "day") -> go.Figure:
    """Stacked events per day (or week) by event type (from :func:`overview.event_volume`)."""
    if volume.empty:
        return empty("The export holds no accepted events")
    fig = go.Figure()
    for i, (et, grp) in enumerate(volume.groupby("event_type", observed=True, sort=False)):
        fig.add_bar(x=grp["period"], y=grp["events"], name=esc(et),
                    marker_color=OKABE_ITO[i % len(OKABE_ITO)],
                    hovertemplate=f"{esc(et)}<br>%{{x|%Y-%m-%d}}: %{{y:,}} events<extra></extra>")
    per = volume.groupby("period")["events"].sum()
    lo, hi = per.index.min(), per.index.max()
    title = (f"{_n(per.sum())} events from {_day(lo)} to {_day(hi)}; "
             f"busiest {freq} {_day(per.idxmax())} with {_n(per.max())}")
    fig.update_layout(barmode="stack", height=420, bargap=0.05)
    _date_axis(fig)
    return style(fig, title, y=f"events per {freq}")


def type_counts(counts: pd.DataFrame, label: str, value: str, *, unit: str | None = None,
                title: str | None = None) -> go.Figure:
    """Horizontal bars of ``value`` per ``label`` (event types, account types …)."""
    c = counts.sort_values(value)
    total = c[value].sum()
    fig = go.Figure(go.Bar(
        x=c[value], y=[esc(v) for v in c[label]], orientation="h", marker_color=OKABE_ITO[4],
        text=[f"{v / total:.1%}" if total else "" for v in c[value]], textposition="outside",
        hovertemplate="%{y}: %{x:,}<extra></extra>"))
    top = c.iloc[-1] if len(c) else None
    if title is None:
        title = (f"{esc(top[label])} is the most common: {_n(top[value])} of {_n(total)} "
                 f"{unit or value}" if top is not None and total else f"No {unit or value}")
    fig.update_layout(height=max(260, 40 * len(c) + 140))
    return style(fig, title, x=unit or value)


# -- 02: the graph -------------------------------------------------------------------------

def graph_size(size: pd.DataFrame) -> go.Figure:
    """Nodes per kind in the entity graph, with the hubs left out (from overview.graph_size)."""
    fig = go.Figure()
    fig.add_bar(x=size["kind"], y=size["nodes"] - size["hubs_left_out"], name="in the graph",
                marker_color=[KIND_COLOURS.get(k, "#999") for k in size["kind"]],
                hovertemplate="%{x}: %{y:,} nodes<extra></extra>")
    fig.add_bar(x=size["kind"], y=size["hubs_left_out"], name="hubs left out",
                marker_color="#999999", marker_pattern_shape="/",
                hovertemplate="%{x}: %{y:,} hubs left out<extra></extra>")
    hubs = int(size["hubs_left_out"].sum())
    title = (f"The entity graph: {_n(size['nodes'].sum())} nodes, {_n(size['edges'].sum())} "
             f"edges; {hubs:,} hub{'s' if hubs != 1 else ''} left out")
    fig.update_layout(barmode="stack", height=380)
    fig.update_yaxes(type="log")
    return style(fig, title, x="node kind", y="nodes (log scale)")


def degree_distribution(dist: pd.DataFrame, hub_degree: int | None = None) -> go.Figure:
    """Log–log degree distribution per node kind (from overview.degree_distribution)."""
    fig = go.Figure()
    for kind, grp in dist.groupby("kind", sort=False):
        grp = grp[grp["degree"] > 0]
        if grp.empty:
            continue
        fig.add_scatter(x=grp["degree"], y=grp["nodes"], mode="markers+lines", name=esc(kind),
                        marker={"color": KIND_COLOURS.get(kind, "#999"),
                                "symbol": KIND_SYMBOLS.get(kind, "circle"), "size": 8},
                        line={"width": 1},
                        hovertemplate=(f"{esc(kind)}: %{{y:,}} nodes with degree %{{x:,}}"
                                       "<extra></extra>"))
    if hub_degree:
        # On a log axis plotly places shapes in log10 units: x=200 would draw at 10^200.
        fig.add_vline(x=float(np.log10(hub_degree)), line_dash="dash", line_color="#555",
                      annotation_text=f"hub degree {hub_degree}", annotation_position="top")
    ent = dist[dist["kind"].isin(["device", "ip"])]
    top = int(ent["degree"].max()) if len(ent) else 0
    n_ent = int(ent["nodes"].sum())
    one = int(ent.loc[ent["degree"] == 1, "nodes"].sum())
    if not top:
        title = "Degree distribution of the entity graph"
    elif one > n_ent / 2:
        title = f"Heavy tail: most devices and IPs serve one account, the busiest {top:,}"
    else:   # the title says only what the data shows
        title = (f"{one / n_ent:.0%} of devices and IPs serve one account, the busiest "
                 f"{top:,}")
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    fig.update_layout(height=420)
    return style(fig, title, x="degree (accounts linked; links for an account)",
                 y="nodes (log scale)")


# -- 03: rings ------------------------------------------------------------------------------

def community_sizes(table: pd.DataFrame) -> go.Figure:
    """Accounts per community, communities holding a flagged ring marked (overview.community_table)."""
    if table.empty:
        return empty("No communities")
    t = table.sort_values("accounts", ascending=False).reset_index(drop=True)
    t["order"] = np.arange(1, len(t) + 1)
    fig = go.Figure()
    for flag, name in ((False, "no flagged ring"), (True, "holds a flagged ring")):
        part = t[t["flagged_ring"] == flag]
        if part.empty:
            continue
        fig.add_scatter(x=part["order"], y=part["accounts"], mode="markers", name=name,
                        marker={"color": FLAG_COLOURS[flag], "size": 9 if flag else 5,
                                "symbol": "diamond" if flag else "circle"},
                        customdata=_cd([part["community"],
                                                    [esc(r) for r in part["rings"]]]),
                        hovertemplate=("community %{customdata[0]}: %{y:,} accounts"
                                       "<br>rings: %{customdata[1]}<extra></extra>"))
    n_fl = int(t["flagged_ring"].sum())
    title = (f"{len(t):,} communities; {n_fl} hold a flagged ring")
    fig.update_yaxes(type="log")
    fig.update_layout(height=400)
    return style(fig, title, x="community, largest first", y="accounts (log scale)")


def score_vs_size(rings: pd.DataFrame) -> go.Figure:
    """Candidate rings: score against number of accounts, sized by records harvested."""
    if rings.empty:
        return empty("No candidate rings in this export")
    fig = go.Figure()
    rec = rings["records_harvested"].astype(float)
    size = 8 + 30 * np.sqrt(rec / max(rec.max(), 1))
    for flagged in (True, False):
        sel = is_flagged(rings) == flagged
        part = rings[sel]
        if part.empty:
            continue
        fig.add_scatter(
            x=part["n_accounts"], y=part["score"], mode="markers",
            name="flagged" if flagged else "not flagged",
            marker={"color": FLAG_COLOURS[flagged], "size": size[sel], "opacity": 0.8,
                    "symbol": "circle" if flagged else "x", "line": {"width": 1, "color": "#333"}},
            customdata=_cd([[esc(v) for v in part["ring_id"]],
                                        [esc(v) or "none" for v in part["partner_ids"]],
                                        part["records_harvested"].astype("int64")]),
            hovertemplate=("%{customdata[0]}: %{x} accounts, score %{y:.2f}<br>partners: "
                           "%{customdata[1]}<br>%{customdata[2]:,} records harvested"
                           "<extra></extra>"))
    fl = flagged_rings(rings)
    title = (f"Flagged rings score {fl['score'].min():.1f}–{fl['score'].max():.1f} and hold "
             f"{int(fl['n_accounts'].min())}–{int(fl['n_accounts'].max())} accounts"
             if len(fl) else f"None of {len(rings)} candidate rings is flagged")
    fig.update_xaxes(type="log")
    fig.update_layout(height=440)
    return style(fig, title, x="accounts in the ring (log scale)",
                 y="score (log10 harm ratio + signals)")


def partner_positions(positions: pd.DataFrame) -> go.Figure:
    """Where the partners sit: profiles read against the share with no business tie."""
    if positions.empty:
        return empty("The export has no partners")
    p = positions.copy()
    fig = go.Figure()
    colours = {"linked to a flagged ring": ("#D55E00", "diamond"),
               "high volume, not flagged": ("#0072B2", "square"),
               "other": ("#999999", "circle")}
    for status, (colour, symbol) in colours.items():
        part = p[p["status"] == status]
        if part.empty:
            continue
        fig.add_scatter(
            x=part["profiles_read"].clip(lower=1), y=part["untied_share"], mode="markers",
            name=status, marker={"color": colour, "symbol": symbol, "size": 11,
                                 "line": {"width": 1, "color": "#333"}},
            customdata=_cd([[esc(v) for v in part["partner_id"]],
                                        [esc(v) for v in part["name"]],
                                        [esc(v) for v in part["partner_type"]],
                                        part["accounts"].astype("int64"),
                                        part["untied_users"].astype("int64")]),
            hovertemplate=("%{customdata[0]} %{customdata[1]} (%{customdata[2]})<br>"
                           "%{customdata[3]} accounts, %{x:,} profiles read, "
                           "%{y:.0%} with no tie<br>%{customdata[4]:,} users with no tie"
                           "<extra></extra>"))
    n_hi = int((p["status"] == "high volume, not flagged").sum())
    n_fl = int((p["status"] == "linked to a flagged ring").sum())
    fl = p.loc[p["status"] == "linked to a flagged ring", "untied_share"]
    hi = p.loc[p["status"] == "high volume, not flagged", "untied_share"]

    def spread(v: pd.Series) -> str:
        lo, top = f"{v.min():.0%}", f"{v.max():.0%}"
        return lo if lo == top else f"{lo}–{top}"

    parts = []
    if n_fl:
        parts.append(f"{plural(n_fl, 'partner')} linked to flagged rings: {spread(fl)} of "
                     f"{'its' if n_fl == 1 else 'their'} profile reads had no tie")
    if n_hi:
        parts.append(f"{plural(n_hi, 'high-volume partner')} not flagged: {spread(hi)} with no tie")
    title = "; ".join(parts) or "No partner read many profiles or is linked to a flagged ring"
    fig.update_xaxes(type="log")
    fig.update_yaxes(tickformat=".0%", range=[-0.05, 1.05])
    fig.update_layout(height=440)
    return style(fig, title, x="profiles read by the partner's accounts (log scale)",
                 y="share of profile reads with no business tie")


# -- 04: one ring ---------------------------------------------------------------------------

def _node_class(r) -> str:
    if r.kind == "account":
        if r.in_ring:
            return "staff" if r.account_type == "partner_staff" else "ring"
        return "other"
    return r.kind


def _layout(sub, seed: int) -> dict[int, tuple[float, float]]:
    """Fruchterman-Reingold positions from igraph (C: thousands of nodes in a second),
    started from seeded random positions so the same ring always looks the same."""
    import igraph as ig

    ids = sub.nodes["node"].astype(int).tolist()
    if not ids:
        return {}
    index = {n: i for i, n in enumerate(ids)}
    edges = [(index[u], index[v]) for u, v in zip(sub.edges["u"].astype(int), sub.edges["v"].astype(int))
             if u in index and v in index]
    g = ig.Graph(n=len(ids), edges=edges)
    start = np.random.default_rng(seed).uniform(-1, 1, size=(len(ids), 2)).tolist()
    # igraph's layouts draw from its random number generator: a seeded one for this call.
    ig.set_random_number_generator(random.Random(seed))
    try:
        coords = g.layout_fruchterman_reingold(seed=start, niter=500).coords
    finally:
        ig.set_random_number_generator(random)
    return {n: (float(x), float(y)) for n, (x, y) in zip(ids, coords)}


def _hidden_partners(sub) -> list[str]:
    """Partners of the ring the filter hid (they stay in the title: a fact of the ring)."""
    return list(getattr(sub, "hidden_partners", None) or [])


def ring_network(sub, pseudonyms=None, *, seed: int = 7, title: str | None = None) -> go.Figure:
    """The ring's network: accounts, devices, IPs and partners, coloured and shaped by type.

    ``sub`` is a :class:`analysis.investigate.RingGraph`. With ``pseudonyms``
    the labels are pseudonyms (management); without, the raw ids (investigator).
    """
    nodes, edges = sub.nodes, sub.edges
    pos = _layout(sub, seed)

    def label(r) -> str:
        raw = r.key
        return esc(pseudonyms.node(r.kind, raw) if pseudonyms is not None else raw)

    fig = go.Figure()
    ex, ey = [], []
    for u, v in zip(edges["u"].astype(int), edges["v"].astype(int)):
        if u in pos and v in pos:
            ex += [pos[u][0], pos[v][0], None]
            ey += [pos[u][1], pos[v][1], None]
    fig.add_scatter(x=ex, y=ey, mode="lines", line={"color": "#BBBBBB", "width": 1},
                    hoverinfo="skip", showlegend=False)
    classes = nodes.assign(cls=[_node_class(r) for r in nodes.itertuples(index=False)])
    n_ring = int(nodes["in_ring"].sum())
    for cls, (name, colour, symbol) in NODE_CLASSES.items():
        part = classes[classes["cls"] == cls]
        if part.empty:
            continue
        hover, text = [], []
        for r in part.itertuples(index=False):
            lab = label(r)
            if r.kind == "account":
                hover.append(
                    f"<b>{lab}</b><br>{esc(r.account_type)}"
                    + (f" of partner {esc(r.partner_id)}" if esc(r.partner_id) else "")
                    + f"<br>{_n(r.n_events or 0)} events, {_n(r.profile_reads or 0)} profiles read"
                    f"<br>{_n(r.untied_users or 0)} users read with no tie, "
                    f"{_n(r.untied_records or 0)} records"
                    f"<br>seen {_day(r.first_seen)} to {_day(r.last_seen)}"
                    + (f"<br>{_n(getattr(r, 'own_devices', 0) or 0)} devices and "
                       f"{_n(getattr(r, 'own_ips', 0) or 0)} IPs of its own (not drawn)"
                       if (getattr(r, "own_devices", 0) or getattr(r, "own_ips", 0)) else ""))
            elif r.kind == "partner":
                hover.append(f"<b>partner {lab}</b><br>{esc(r.partner_name)}"
                             f" ({esc(r.partner_type)})<br>{_n(r.accounts)} accounts")
            else:
                what = "device" if r.kind == "device" else "IP"
                hover.append(f"<b>{what} {lab}</b><br>used by {_n(r.accounts)} account(s)")
            # Labels only where they stay readable: partners always, ring accounts in a small
            # ring, everything in a small picture; the rest on hover.
            text.append(lab if (r.kind == "partner" or len(nodes) <= 40
                                or (r.in_ring and n_ring <= 25)) else "")
        size = 16 if cls in ("staff", "ring", "partner") else 11
        fig.add_scatter(
            x=[pos[n][0] for n in part["node"].astype(int)],
            y=[pos[n][1] for n in part["node"].astype(int)],
            mode="markers+text", name=name, text=text, textposition="top center",
            textfont={"size": 10, "color": "#333"},
            marker={"color": colour, "symbol": symbol, "size": size,
                    "line": {"width": 1.5, "color": "#222" if cls in ("staff", "ring") else colour}},
            hovertext=hover, hoverinfo="text")
    c = sub.counts()
    if title is None:
        who = ring_label(sub.ring_id) if pseudonyms is not None else esc(sub.ring_id)
        # The ring's own picture: nodes opened by hand and the filter are said apart.
        opened = (nodes["opened"].fillna(False).astype(bool).to_numpy() if "opened" in nodes
                  else np.zeros(len(nodes), dtype=bool))
        hidden = dict(getattr(sub, "hidden", None) or {})
        own_nodes = nodes[~opened]
        pids = sorted(set(own_nodes.loc[own_nodes["kind"] == "partner", "key"].astype(str))
                      | set(_hidden_partners(sub)))
        totals = getattr(sub, "totals", None) or {"device": c["devices"], "ip": c["ips"]}
        n_ring = c["ring accounts"] + hidden.get("ring accounts", 0)
        title = (f"{who}: {plural(n_ring, 'account')}"
                 + (f" ({int((classes['cls'] == 'staff').sum())} partner staff)"
                    if (classes["cls"] == "staff").any() else "")
                 + f" on {plural(totals['device'], 'device')} and {plural(totals['ip'], 'IP')}"
                 + (f", linked to partner {esc(', '.join(pids))}" if pids else ""))
        if sub.hops == 2:
            title += (f"; {int(((own_nodes['kind'] == 'account') & ~own_nodes['in_ring']).sum())}"
                      f" neighbouring accounts")
            if sub.left_out:
                title += f" ({sub.left_out} more left out)"
        ents = own_nodes["kind"].isin(["device", "ip"])
        shown = int(ents.sum())
        shared = shown + hidden.get("device", 0) + hidden.get("ip", 0)
        drawn = []
        if getattr(sub, "entities_left_out", 0):
            drawn.append(f"showing {shared:,} of {shared + sub.entities_left_out:,} shared "
                         f"devices and IPs")
        else:
            drawn.append(f"showing the {plural(shared, 'shared device or IP', 'shared devices and IPs')}")
        n_hidden = sum(v for k, v in hidden.items() if k != "opened")
        if n_hidden:
            drawn.append(f"{plural(n_hidden, 'node')} of the ring's picture hidden by the filter"
                         + (f" ({hidden['ring accounts']:,} of the ring's accounts)"
                            if hidden.get("ring accounts") else ""))
        own = sum(getattr(sub, "folded", {}).values())
        if own:
            drawn.append(f"{plural(own, 'one-account device or IP', 'one-account devices and IPs')} "
                         "folded into their accounts")
        hubs = sum(totals.values()) - shared - getattr(sub, "entities_left_out", 0) - own
        if hubs > 0:
            drawn.append(f"{plural(hubs, 'hub')} (shared by more accounts than the hub degree) "
                         "left out")
        opened_keys = list(getattr(sub, "opened", None) or [])
        if opened_keys:
            names = ", ".join(f"{'IP' if k == 'ip' else k} {esc(pseudonyms.node(k, v) if pseudonyms is not None else v)}"
                              for k, v in opened_keys[-3:])
            more = len(opened_keys) - 3
            added = int(opened.sum()) + hidden.get("opened", 0)
            drawn.append(f"opened {names}{f' and {more} more' if more > 0 else ''}: "
                         f"{plural(added, 'node')} added"
                         + (f", {sub.opened_left_out:,} more left out"
                            if getattr(sub, "opened_left_out", 0) else "")
                         + (f", {hidden['opened']:,} of them hidden by the filter"
                            if hidden.get("opened") else ""))
        title += "<br><sup>" + "; ".join(drawn) + "</sup>"
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    fig.update_layout(height=640, legend={"orientation": "h", "y": -0.02}, hovermode="closest")
    return style(fig, title)


def ring_timeline(daily: pd.DataFrame, ring_id: str, *, label: str | None = None) -> go.Figure:
    """Profiles read and records harvested per day by one ring (investigate.ring_daily)."""
    who = label or esc(ring_id)
    if daily.empty:
        return empty(f"{who}: no activity in the period")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=daily["day"], y=daily["profile_reads"], name="profiles read per day",
                marker_color="#56B4E9",
                hovertemplate="%{x|%Y-%m-%d}: %{y:,} profiles read<extra></extra>",
                secondary_y=False)
    fig.add_scatter(x=daily["day"], y=daily["untied_records"], mode="lines+markers",
                    name="user records harvested per day (no business tie)",
                    line={"color": "#D55E00", "width": 2}, marker={"size": 4},
                    hovertemplate="%{x|%Y-%m-%d}: %{y:,} records harvested<extra></extra>",
                    secondary_y=True)
    active = daily[daily["events"] > 0]
    title = (f"{who} read {_n(daily['profile_reads'].sum())} user profiles and harvested "
             f"{_n(daily['untied_records'].sum())} records, active on "
             f"{plural(len(active), 'day')} from {_day(active['day'].min())} to "
             f"{_day(active['day'].max())}")
    _date_axis(fig)
    fig.update_yaxes(title_text="profiles read per day", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="records harvested per day", secondary_y=True, rangemode="tozero",
                     showgrid=False, tickmode="auto")
    fig = style(fig, title)
    fig.update_layout(height=460, legend={"orientation": "h", "y": -0.22, "x": 0.01,
                                          "yanchor": "top"}, margin={"b": 110})
    return fig


def account_timeline(table: pd.DataFrame, label: str, *, value: str = "events") -> go.Figure:
    """Accounts × days (queries.account_timeline): colour = ``value`` (events or
    strangers_read); hover gives the day's events by type and the strangers read."""
    if table.empty:
        return empty(f"{esc(label)}: no events in the period")
    from .contract import EVENT_TYPES

    accounts = list(dict.fromkeys(table["account_id"].astype(str)))
    days = pd.date_range(table["day"].min(), table["day"].max(), freq="D")
    cells = table.assign(account_id=table["account_id"].astype(str)).set_index(
        ["account_id", "day"])
    full = cells.reindex(pd.MultiIndex.from_product([accounts, days]), fill_value=0)
    z = full[value].to_numpy().reshape(len(accounts), len(days))
    types = [t for t in EVENT_TYPES if t in table and table[t].sum() > 0]
    parts = [full[t].to_numpy().reshape(len(accounts), len(days)) for t in types]
    strangers = full["strangers_read"].to_numpy().reshape(len(accounts), len(days))
    hover = [["<br>".join([f"{esc(a)} {d:%Y-%m-%d}: {_n(z[i][j])} {esc(value.replace('_', ' '))}"]
                          + [f"{esc(t)}: {_n(p[i][j])}" for t, p in zip(types, parts) if p[i][j]]
                          + [f"strangers read: {_n(strangers[i][j])}"])
              for j, d in enumerate(days)] for i, a in enumerate(accounts)]
    fig = go.Figure(go.Heatmap(z=z, x=days, y=[esc(a) for a in accounts], colorscale="Blues",
                               hovertext=hover, hoverinfo="text",
                               colorbar={"title": esc(value.replace("_", " "))}))
    top = table.loc[table[value].idxmax()]
    active = table.loc[table["events"] > 0, "day"].nunique()
    title = (f"{esc(label)}: {plural(len(accounts), 'account')} active on "
             f"{plural(active, 'day')} from {_day(days[0])} to {_day(days[-1])}; busiest "
             f"{esc(top['account_id'])} with {_n(top[value])} {esc(value.replace('_', ' '))} "
             f"on {_day(top['day'])}")
    _date_axis(fig)
    fig.update_yaxes(autorange="reversed", title_text="account")
    fig.update_layout(height=min(1200, max(300, 22 * len(accounts) + 160)))
    return style(fig, title)


def staff_comparison(staff: pd.DataFrame, ring_id: str, pseudonyms=None) -> go.Figure:
    """The ring's partner staff against the same partner's other staff (investigate.partner_staff)."""
    if staff.empty:
        return empty(f"{esc(ring_id)}: no partner staff to compare",
                     "the ring has no partner, or its partner lists no staff")
    s = staff.copy()
    s["who"] = [esc(pseudonyms.account(a) if pseudonyms is not None else a)
                for a in s["account_id"]]
    pids = sorted(s["partner_id"].astype(str).unique())
    pos = {p: i for i, p in enumerate(pids)}
    rng = np.random.default_rng(0)   # a fixed jitter, so points of one partner do not hide
    s["x"] = [pos[str(p)] for p in s["partner_id"]] + rng.uniform(-0.25, 0.25, len(s))
    fig = go.Figure()
    for in_ring, name, colour, sym in ((False, "other staff of the partner", "#999999", "circle"),
                                       (True, "staff in the ring", "#D55E00", "diamond")):
        part = s[s["in_ring"] == in_ring]
        if part.empty:
            continue
        fig.add_scatter(
            x=part["x"], y=part["untied_users"].clip(lower=0) + 1, mode="markers", name=name,
            marker={"color": colour, "symbol": sym, "size": 14 if in_ring else 9,
                    "line": {"width": 1, "color": "#333"}},
            customdata=_cd([part["who"], part["profiles_read"],
                                        np.nan_to_num(part["untied_share"].to_numpy(float)),
                                        part["untied_records"], part["devices"], part["ips"]]),
            hovertemplate=("%{customdata[0]}<br>%{customdata[1]:,} profiles read, "
                           "%{customdata[2]:.0%} with no tie<br>%{y:,} users with no tie (+1)"
                           "<br>%{customdata[3]:,} records; %{customdata[4]} devices, "
                           "%{customdata[5]} IPs<extra></extra>"))
    fig.update_xaxes(tickvals=list(range(len(pids))), ticktext=[esc(p) for p in pids],
                     range=[-0.6, len(pids) - 0.4])
    rows = []
    for pid, grp in s.groupby("partner_id"):
        ring = grp[grp["in_ring"]]
        rest = grp[~grp["in_ring"]]
        if len(ring):
            med = float(rest["untied_users"].median()) if len(rest) else 0.0
            rows.append((pid, int(ring["untied_users"].max()), med, len(rest)))
    if rows:
        pid, top, med, n_rest = max(rows, key=lambda r: r[1])
        if med > 0:
            title = (f"{esc(ring_id)}: its staff at partner {esc(pid)} read {top:,} users with no"
                     f" tie, {top / med:,.0f}× the median of the partner's "
                     f"{plural(n_rest, 'other staff', 'other staff')}")
        else:
            title = (f"{esc(ring_id)}: its staff at partner {esc(pid)} read {top:,} users with no"
                     f" tie; the partner's {plural(n_rest, 'other staff', 'other staff')}: "
                     f"a median of {med:,.0f}")
    else:
        title = f"{esc(ring_id)}: the partner's staff (none of them in the ring)"
    fig.update_yaxes(type="log")
    fig.update_layout(height=420)
    return style(fig, title, x="partner", y="users read with no business tie (+1, log scale)")


# -- 05: management ------------------------------------------------------------------------

def harm_ranking(rings: pd.DataFrame) -> go.Figure:
    """Flagged rings ranked by records harvested; the title states the top ring's harm."""
    fl = flagged_rings(rings)
    if fl.empty:
        return empty("No ring is flagged in this export", "no ring to rank")
    fl = fl.sort_values(["records_harvested", "ring_id"], ascending=[False, True])
    top = fl.iloc[0]
    days = _days_active(top)
    labels = [ring_label(r) for r in fl["ring_id"]]
    r = fl.iloc[::-1]
    fig = go.Figure(go.Bar(
        x=r["records_harvested"], y=[ring_label(v) for v in r["ring_id"]], orientation="h",
        marker_color="#D55E00", text=[f"{int(v):,}" for v in r["records_harvested"]],
        textposition="auto",
        customdata=_cd([r["untied_users"].astype("int64"),
                                    r["profiles_read"].astype("int64"),
                                    r["n_accounts"].astype("int64"),
                                    [esc(p) or "none" for p in r["partner_ids"]]]),
        hovertemplate=("%{y}: %{x:,} user records harvested<br>%{customdata[0]:,} users read "
                       "with no business tie; %{customdata[1]:,} profiles read<br>"
                       "%{customdata[2]} accounts; partner %{customdata[3]}<extra></extra>")))
    title = (f"{labels[0]} harvested the most: {about(top['records_harvested'], 'user record')}"
             f" on {plural(days, 'day')} of activity")
    fig.update_layout(height=max(280, 40 * len(fl) + 140))
    return style(fig, title, x="user records harvested with no business tie", y="ring")


def _days_active(ring) -> int:
    """A ring's days active: the facts' ``days_active`` (:mod:`analysis.facts`), else the span
    from its first to its last event."""
    v = ring.get("days_active") if hasattr(ring, "get") else None
    if v is not None and pd.notna(v):
        return int(v)
    if pd.isna(ring["first_seen"]):
        return 0
    return (pd.Timestamp(ring["last_seen"]) - pd.Timestamp(ring["first_seen"])).days + 1


def records_over_time(daily: pd.DataFrame) -> go.Figure:
    """Records harvested per day by each flagged ring (investigate.records_by_ring)."""
    if daily.empty:
        return empty("No records harvested by flagged rings", "no flagged ring")
    fig = go.Figure()
    totals = daily.groupby("ring_id")["untied_records"].sum().sort_values(ascending=False)
    for rid in totals.index:
        d = daily[daily["ring_id"] == rid].sort_values("day")
        full = pd.date_range(d["day"].min(), d["day"].max(), freq="D")
        d = d.set_index("day")[["untied_records"]].reindex(full, fill_value=0)
        fig.add_scatter(x=d.index, y=d["untied_records"], mode="lines", name=ring_label(rid),
                        line={**ring_style(rid), "width": 2},
                        hovertemplate=(f"{ring_label(rid)}<br>%{{x|%Y-%m-%d}}: %{{y:,}} records"
                                       "<extra></extra>"))
    harvesting = daily[daily["untied_records"] > 0]
    lo, hi = harvesting["day"].min(), harvesting["day"].max()
    title = (f"Flagged rings harvested {about(totals.sum(), 'user record')} between {_day(lo)} "
             f"and {_day(hi)}; {ring_label(totals.index[0])} the most")
    _date_axis(fig)
    fig.update_layout(height=420)
    fig.update_yaxes(rangemode="tozero")
    return style(fig, title, y="user records harvested per day")


def users_exposed(exposed: pd.DataFrame) -> go.Figure:
    """Cumulative distinct users exposed to the flagged rings (investigate.users_exposed)."""
    if exposed.empty:
        return empty("No user was exposed to a flagged ring", "no flagged ring")
    fig = go.Figure()
    allr = exposed[exposed["ring_id"] == "all"]
    rings = [r for r in exposed["ring_id"].unique() if r != "all"]
    for rid in sorted(rings):
        d = exposed[exposed["ring_id"] == rid]
        fig.add_scatter(x=d["day"], y=d["users"], mode="lines", name=ring_label(rid),
                        line={"shape": "hv", "width": 1.5, **ring_style(rid)},
                        hovertemplate=(f"{ring_label(rid)}<br>by %{{x|%Y-%m-%d}}: %{{y:,}} users"
                                       "<extra></extra>"))
    fig.add_scatter(x=allr["day"], y=allr["users"], mode="lines", name="all flagged rings",
                    line={"shape": "hv", "width": 4, "color": "#555555"},
                    hovertemplate="all flagged rings<br>by %{x|%Y-%m-%d}: %{y:,} users"
                                  "<extra></extra>")
    last = allr.iloc[-1]
    title = (f"{about(last['users'], 'distinct user')} had their profiles read with no "
             f"business tie by {_day(last['day'])}")
    _date_axis(fig)
    fig.update_layout(height=420)
    fig.update_yaxes(rangemode="tozero")
    return style(fig, title, y="distinct users exposed (cumulative)")


def partners_implicated(table: pd.DataFrame) -> go.Figure:
    """Partners linked to flagged rings, by records their rings harvested."""
    if table.empty:
        return empty("No partner is linked to a flagged ring", "no partner implicated")
    t = table.iloc[::-1]
    ylab = [f"{esc(p)} · {esc(n)}" if esc(n) else esc(p)
            for p, n in zip(t["partner_id"], t["name"])]
    fig = go.Figure(go.Bar(
        x=t["records_harvested"], y=ylab, orientation="h", marker_color="#CC79A7",
        text=[f"{plural(n, 'ring')}, {int(s)} staff" for n, s in zip(t["n_rings"],
                                                                   t["staff_in_rings"])],
        textposition="auto",
        customdata=_cd([[esc(v) for v in t["partner_type"]],
                                    [", ".join(ring_label(r) for r in split_ids(v))
                                     for v in t["rings"]],
                                    t["staff_in_rings"].astype("int64"),
                                    t["untied_users"].astype("int64")]),
        hovertemplate=("%{y} (%{customdata[0]})<br>rings: %{customdata[1]}<br>"
                       "%{customdata[2]} of its staff in them<br>%{x:,} records harvested, "
                       "%{customdata[3]:,} users with no tie<extra></extra>")))
    top = table.iloc[0]
    title = (f"{plural(len(table), 'partner')} linked to flagged rings; {esc(top['partner_id'])} "
             f"({esc(top['partner_type'])}) to {plural(top['n_rings'], 'ring')} that harvested "
             f"{about(top['records_harvested'], 'record')}")
    fig.update_layout(height=max(280, 44 * len(table) + 140))
    return style(fig, title, x="user records harvested by its rings", y="partner")


def _lag_words(lag: pd.DataFrame) -> list[str]:
    """Each ring's delay in words: "12 days after it started", or "before its harvest
    showed in its records" (``flagged_early``), never a negative or zero-day delay.

    >>> _lag_words(pd.DataFrame({"days_to_flag": [12, 0, None],
    ...                          "flagged_early": [False, True, False]}))
    ['12 days after it started', 'before its harvest showed in its records', 'not flagged']
    """
    early = (lag["flagged_early"].astype(bool) if "flagged_early" in lag
             else pd.Series(False, index=lag.index))
    out = []
    for days, soon in zip(lag["days_to_flag"], early):
        if soon:
            out.append("before its harvest showed in its records")
        elif pd.isna(days):
            out.append("not flagged")
        else:
            out.append(f"{plural(int(days), 'day')} after it started")
    return out


def detection_lag(lag: pd.DataFrame) -> go.Figure:
    """When each ring started harvesting, against when weekly runs first flagged it."""
    if lag.empty:
        return empty("No ring is flagged, so none was flagged late", "no flagged ring")
    d = lag.sort_values("ring_id", ascending=False)
    y = [ring_label(r) for r in d["ring_id"]]
    fig = go.Figure()
    xs, ys = [], []
    for yy, s, f in zip(y, d["started"], d["first_flagged"]):
        if pd.notna(s) and pd.notna(f):
            xs += [s, f, None]
            ys += [yy, yy, None]
    fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": "#999999", "width": 3},
                    hoverinfo="skip", showlegend=False)
    fig.add_scatter(x=d["started"], y=y, mode="markers", name="started harvesting",
                    marker={"color": "#0072B2", "size": 12, "symbol": "circle"},
                    hovertemplate="%{y} started %{x|%Y-%m-%d}<extra></extra>")
    fig.add_scatter(x=d["first_flagged"], y=y, mode="markers", name="first flagged (weekly runs)",
                    marker={"color": "#D55E00", "size": 13, "symbol": "diamond"},
                    customdata=_lag_words(d),
                    hovertemplate="%{y} flagged as of %{x|%Y-%m-%d}, %{customdata}<extra></extra>")
    days = d["days_to_flag"].dropna()
    if len(days) == 1:
        title = f"{y[0]} would have been flagged {plural(days.iloc[0], 'day')} after it started"
    elif len(days):
        ordered = sorted(int(v) for v in days)
        half = ordered[math.ceil(len(ordered) / 2) - 1]    # at least half are this quick
        title = (f"Weekly runs would have flagged half of the rings within "
                 f"{plural(half, 'day')} of their start, and all within "
                 f"{plural(ordered[-1], 'day')}")
    else:
        title = "When the rings started, and when they were flagged"
    _date_axis(fig)
    fig.update_layout(height=max(280, 44 * len(d) + 160))
    return style(fig, title, y="ring")
