"""Widgets for the notebooks: the ring picker of notebook 04, which can record a verdict."""

from __future__ import annotations

from ..findings import Findings
from ..load import Export
from ..queries import (
    evidence_table,
    partner_staff,
    resolve_ring,
    ring_choices,
    ring_daily,
    ring_subgraph,
)

__all__ = ["ring_explorer"]


def _verdict_box(findings: Findings, cases, pick):
    """Verdict, note and a Record button: writes the picked ring's verdict into ``cases``
    (:func:`analysis.tracking.record_verdict`, atomic; the old line kept as history)."""
    import ipywidgets as w

    from ..tracking import VERDICTS, record_verdict

    rings = findings.rings.rings
    key_of = dict(zip(rings["ring_id"], rings["ring_key"])) if "ring_key" in rings else {}
    verdict = w.Dropdown(options=list(VERDICTS), description="Verdict")
    note = w.Text(placeholder="why (the decision note)", layout=w.Layout(width="360px"))
    save = w.Button(description="Record verdict")
    said = w.HTML()

    def record(_=None) -> None:
        key = key_of.get(pick.value)
        if not key:
            said.value = "<i>this run has no ring keys</i>"
            return
        path = record_verdict(cases, key, verdict.value, note.value, findings=findings)
        said.value = f"recorded {verdict.value} for {key} in {path.name}"

    save.on_click(record)
    return w.HBox([verdict, note, save, said])


def ring_explorer(export: Export, findings: Findings, ring: int | str | None = None,
                  render=None, *, draw_now: bool = False, cases=None):
    """An ipywidgets picker: choose a ring and 1 or 2 hops; ``render(ring_id, hops)`` draws it.

    ``render`` defaults to the network, the timeline, the evidence table and the
    staff comparison. Drawing starts when a ring is picked or "Show" is pressed
    (or at once with ``draw_now``): headless runs (papermill) then stay fast,
    since outputs captured in a widget travel back and forth as widget state.
    With ``cases`` (the verdicts file), a verdict and note for the picked ring can be
    recorded into it. Returns the widget (display it as the cell's last expression).
    """
    import ipywidgets as w
    from IPython.display import display

    from .. import charts

    choices = ring_choices(findings)
    if not choices:
        return w.HTML("<i>No candidate rings in this run.</i>")
    start = resolve_ring(findings, ring)
    pick = w.Dropdown(options=choices, value=start, description="Ring",
                      layout=w.Layout(width="560px"))
    hops = w.ToggleButtons(options=[("ring only", 1), ("2-hop neighbourhood", 2)], value=1,
                           description="Show")
    button = w.Button(description="Show", button_style="primary")
    out = w.Output()

    def default_render(ring_id: str, n_hops: int) -> None:
        sub = ring_subgraph(findings, ring_id, hops=n_hops)
        charts.ring_network(sub).show()
        charts.ring_timeline(ring_daily(export.con, findings, ring_id), ring_id).show()
        display(evidence_table(findings, ring_id))
        charts.staff_comparison(partner_staff(findings, ring_id), ring_id).show()

    draw = render or default_render

    def update(_=None) -> None:
        out.clear_output(wait=True)
        with out:
            draw(pick.value, hops.value)

    pick.observe(update, names="value")
    hops.observe(update, names="value")
    button.on_click(update)
    if draw_now:
        update()
    else:
        with out:
            display(w.HTML("<i>Pick a ring, or press Show, to draw its network, timeline and "
                           "evidence here.</i>"))
    rows = [w.HBox([pick, hops, button])]
    if cases:
        rows.append(_verdict_box(findings, cases, pick))
    return w.VBox(rows + [out])
