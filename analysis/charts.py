"""Rings → plotly figures for analysts and management.

Every function returns a ``plotly.graph_objects.Figure`` whose title states the
finding. Colours come from the Okabe–Ito palette, which stays distinguishable
with the common forms of colour blindness. Figures meant for management never
carry raw account ids, device ids or IPs: they show ring ids, pseudonyms
(:mod:`analysis.pseudonym`) and partner ids only.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

__all__ = ["OKABE_ITO", "KIND_COLOURS", "ring_ranking", "style"]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
             "#000000"]
KIND_COLOURS = {"account": "#0072B2", "device": "#E69F00", "ip": "#009E73", "partner": "#D55E00"}
FLAG_COLOURS = {True: "#D55E00", False: "#999999"}


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


def ring_ranking(rings: pd.DataFrame, top: int = 20) -> go.Figure:
    """Bar chart of the top rings by score, flagged rings highlighted."""
    r = rings.head(top).iloc[::-1]
    fig = go.Figure()
    for flagged in (True, False):
        part = r[r["flagged"].astype(bool) == flagged]
        if part.empty:
            continue
        fig.add_bar(
            x=part["score"], y=part["ring_id"].astype(str), orientation="h",
            name="flagged" if flagged else "not flagged",
            marker_color=FLAG_COLOURS[flagged],
            customdata=part[["n_accounts", "profiles_read", "records_harvested"]].to_numpy(),
            hovertemplate=("%{y}: score %{x:.2f}<br>%{customdata[0]} accounts, "
                           "%{customdata[1]:,} profiles read, %{customdata[2]:,} records "
                           "harvested<extra></extra>"),
        )
    n_flag = int(rings["flagged"].astype(bool).sum())
    title = (f"{n_flag} of {len(rings)} candidate rings flagged" if len(rings)
             else "No candidate rings in this export")
    fig.update_layout(barmode="overlay", height=max(300, 28 * len(r) + 140))
    return style(fig, title, x="score (log10 harm ratio + corroborating signals)", y="ring")
