"""Widgets for the notebooks: the ring picker of notebook 04, which can record a verdict; a
ring's network to expand on demand and filter by node type and score; search by id; and a
per-account timeline with a date range. Real ids: investigator only."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..findings import Findings
from ..load import Export
from ..queries import (
    account_timeline,
    evidence_table,
    expand_node,
    filter_graph,
    find_id,
    partner_staff,
    resolve_ring,
    ring_choices,
    ring_daily,
    ring_subgraph,
    strangers_read,
)

__all__ = ["ring_explorer", "network_explorer", "NetworkView", "show_lookup", "search_box",
           "timeline_explorer"]


def _headless(what: str):
    """In a headless report's kernel (:data:`analysis.config.HEADLESS_ENV`), the widget as a
    note; None elsewhere. Nobody can click in an executed notebook, and a cell that builds
    these widgets (output captured in a widget) sometimes lost the kernel's reply there, so
    papermill waited for ever: 4 of about 60 headless runs of notebook 04, none of 70 without
    them (see README)."""
    import os

    from .. import config

    if not os.environ.get(config.HEADLESS_ENV):
        return None
    from IPython.display import HTML

    return HTML(f"<i>{what}: interactive when this notebook is opened in JupyterLab "
                f"(<code>make lab</code>).</i>")


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
    note = _headless("The ring picker")
    if note is not None:
        return note
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


KINDS = (("accounts", "account"), ("devices", "device"), ("IPs", "ip"), ("partners", "partner"))


@dataclass
class NetworkView:
    """The state behind :func:`network_explorer`: a ring's network, the nodes opened so far,
    and the filter. ``graph()`` is what is drawn; each call works on the ring's own
    (capped, folded) subgraph, so it stays quick on a ring of thousands of entities."""

    findings: Findings
    ring_id: str
    hops: int = 1
    opened: list = field(default_factory=list)
    kinds: tuple = ("account", "device", "ip", "partner")
    min_score: float = 0.0

    def __post_init__(self) -> None:
        self._base = ring_subgraph(self.findings, self.ring_id, hops=self.hops)
        self._expanded = self._base

    def open(self, node) -> None:
        """Add ``node``'s neighbours (a raw id or a graph node number)."""
        self._expanded = expand_node(self.findings, self._expanded, node)
        self.opened.append(node)

    def reset(self) -> None:
        self._expanded = self._base
        self.opened.clear()

    def graph(self):
        return filter_graph(self._expanded, kinds=self.kinds, min_score=self.min_score)

    def choices(self, limit: int = 500) -> list[tuple[str, str]]:
        """(label, raw id) of the drawn nodes to open, highest score first (at most ``limit``)."""
        n = self.graph().nodes
        n = n.sort_values(["score", "in_ring"], ascending=[False, False], kind="stable")
        return [(f"{'IP' if r.kind == 'ip' else r.kind} {r.key} · score {r.score:.1f}"
                 + (" · ring" if r.in_ring else ""), str(r.key))
                for r in n.head(limit).itertuples(index=False)]


def network_explorer(findings: Findings, ring: int | str | None = None, *, hops: int = 1,
                     draw_now: bool = False):
    """A ring's network to explore: pick a drawn node and press "Open" to add its neighbours
    (the highest-scoring 100 per opening, the rest counted in the title), show only some node
    types, and hide nodes below a score (an account's score is how many times its type's
    baseline it harvested; a device's, IP's or partner's the highest of its accounts').
    Returns the widget, with ``.view`` (:class:`NetworkView`) for code."""
    note = _headless("The network explorer")
    if note is not None:
        return note
    import html

    import ipywidgets as w

    from .. import charts

    ring_id = resolve_ring(findings, ring)
    if ring_id is None:
        return w.HTML("<i>No candidate rings in this run.</i>")
    view = NetworkView(findings, ring_id, hops=hops)
    node = w.Dropdown(options=view.choices(), description="Node",
                      layout=w.Layout(width="460px"))
    open_button = w.Button(description="Open neighbours", button_style="primary")
    reset = w.Button(description="Reset")
    kinds = w.SelectMultiple(options=list(KINDS), value=view.kinds, description="Show",
                             rows=4)
    score = w.BoundedFloatText(value=0.0, min=0.0, max=1e9, step=1.0,
                               description="Score ≥", layout=w.Layout(width="200px"))
    out = w.Output()

    def draw(_=None) -> None:
        view.kinds, view.min_score = tuple(kinds.value), float(score.value or 0.0)
        node.options = view.choices()
        out.clear_output(wait=True)
        with out:
            charts.ring_network(view.graph()).show()

    said = w.HTML()

    def do_open(_=None) -> None:
        said.value = ""
        if node.value:
            try:
                view.open(node.value)
            except ValueError as exc:     # an id the graph does not hold: say so, keep the view
                said.value = f"<i>{html.escape(str(exc))}</i>"
        draw()

    def do_reset(_=None) -> None:
        view.reset()
        draw()

    open_button.on_click(do_open)
    reset.on_click(do_reset)
    kinds.observe(draw, names="value")
    score.observe(draw, names="value")
    if draw_now:
        draw()
    else:
        with out:
            from IPython.display import display

            display(w.HTML("<i>Open a node, or change the filter, to draw the network here.</i>"))
    box = w.VBox([w.HBox([node, open_button, reset]), w.HBox([kinds, score]), said, out])
    box.view = view
    return box


def show_lookup(findings: Findings, value: str) -> None:
    """Display what the run knows about an id (:func:`analysis.queries.find_id`)."""
    import html

    from IPython.display import HTML, display

    hit = find_id(findings, value)
    display(HTML(f"<b>{html.escape(hit.summary())}</b>"))
    for name, table in (("rings", hit.rings), ("neighbours", hit.neighbours),
                        ("evidence", hit.evidence)):
        if len(table):
            display(HTML(f"<i>{name}</i>"), table)


def search_box(findings: Findings, value: str = ""):
    """A text box: type an account id, device id, IP or partner id and press Enter (or
    Search) to see its ring or community, its neighbours and its evidence."""
    note = _headless("Search by id")
    if note is not None:
        return note
    import ipywidgets as w

    box = w.Text(value=value, placeholder="account id, device id, IP or partner id",
                 description="Search", continuous_update=False,     # on Enter or leaving it
                 layout=w.Layout(width="460px"))
    button = w.Button(description="Search")
    out = w.Output()

    def go(_=None) -> None:
        out.clear_output(wait=True)
        if box.value.strip():
            with out:
                show_lookup(findings, box.value)

    box.observe(go, names="value")
    button.on_click(go)
    if value:
        go()
    return w.VBox([w.HBox([box, button]), out])


def timeline_explorer(export: Export, findings: Findings, ring: int | str | None = None, *,
                      draw_now: bool = False):
    """The per-account timeline of a ring with a date range and a colour measure; pick an
    account to list the strangers it read in the range. Drawing starts on the first change
    (or at once with ``draw_now``), so headless runs stay light."""
    note = _headless("The timeline explorer")
    if note is not None:
        return note
    import ipywidgets as w
    from IPython.display import display

    from .. import charts

    choices = ring_choices(findings)
    if not choices:
        return w.HTML("<i>No candidate rings in this run.</i>")
    pick = w.Dropdown(options=choices, value=resolve_ring(findings, ring), description="Ring",
                      layout=w.Layout(width="460px"))
    start, end = w.DatePicker(description="From"), w.DatePicker(description="To")
    value = w.ToggleButtons(options=[("events", "events"), ("strangers read", "strangers_read")],
                            value="events", description="Colour")
    who = w.Dropdown(options=[("(an account: its strangers)", "")], value="",
                     description="Account", layout=w.Layout(width="460px"))
    out = w.Output()

    def draw(_=None) -> None:
        out.clear_output(wait=True)
        with out:
            table = account_timeline(export.con, findings, pick.value, start=start.value,
                                     end=end.value)
            ids = list(dict.fromkeys(table["account_id"].astype(str)))
            who.options = [("(an account: its strangers)", "")] + [(a, a) for a in ids]
            charts.account_timeline(table, pick.value, value=value.value).show()
            if who.value:
                display(strangers_read(export.con, findings, who.value, start=start.value,
                                       end=end.value))

    for control in (pick, start, end, value, who):
        control.observe(draw, names="value")
    if draw_now:
        draw()
    else:
        with out:
            display(w.HTML("<i>Pick a ring, dates or an account to draw the timeline here.</i>"))
    return w.VBox([w.HBox([pick, value]), w.HBox([start, end, who]), out])
