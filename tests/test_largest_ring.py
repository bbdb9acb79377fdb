"""The largest flagged ring opens: in notebook 04's code path within 10 seconds with every
account drawn, and through ``report --ring`` (slow: the notebooks run headless)."""

from __future__ import annotations

import time

import nbformat
import pytest

from analysis import case as ring_case
from analysis import charts

RING_CLASSES = {charts.NODE_CLASSES["ring"][0], charts.NODE_CLASSES["staff"][0]}


def _largest(findings):
    fl = findings.flagged.sort_values(["n_accounts", "rank"], ascending=[False, True])
    return fl.iloc[0]


def _ring_accounts_drawn(fig) -> int:
    return sum(len(t.x) for t in fig.data if t.name in RING_CLASSES)


def test_the_largest_flagged_ring_opens_in_seconds_with_its_accounts(small_world):
    from analysis.notebook import widgets

    exp, findings = small_world["exp"], small_world["findings"]
    ring = _largest(findings)
    assert ring["n_accounts"] > findings.flagged["n_accounts"].min()
    t0 = time.perf_counter()
    # notebook 04: the case, its figures, the picker drawing at once, the explorer
    case = ring_case.case(exp, findings, int(ring["rank"]))
    figures = case.figures()
    for fig in figures.values():
        fig.to_json()
    widgets.ring_explorer(exp, findings, ring["ring_id"], draw_now=True)
    box = widgets.network_explorer(findings, ring["ring_id"], draw_now=True)
    seconds = time.perf_counter() - t0
    assert seconds < 10, f"{ring['ring_id']} took {seconds:.1f} s"
    assert case.ring_id == ring["ring_id"]
    assert _ring_accounts_drawn(figures["network"]) == int(ring["n_accounts"])
    assert _ring_accounts_drawn(figures["neighbourhood"]) == int(ring["n_accounts"])
    assert _ring_accounts_drawn(charts.ring_network(box.view.graph())) == int(ring["n_accounts"])


@pytest.mark.slow
def test_report_ring_runs_the_largest_ring(small_world, tmp_path):
    from analysis.notebook.runner import run_notebooks

    ring = _largest(small_world["findings"])
    res = run_notebooks(small_world["export"], tmp_path / "out", ring=int(ring["rank"]),
                        notebooks=["01_load_and_validate", "04_investigate_ring"])
    # notebook 04 loads what 01 analysed: the ring opens in seconds (a kernel start included)
    assert res.seconds["04_investigate_ring"] < 30, res.seconds
    nb = nbformat.read(res.out / "notebooks" / "04_investigate_ring.ipynb", as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not any(o.output_type == "error" for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"{ring['ring_id']} (rank {ring['rank']}" in text
    assert "ringscope: loaded from" in "".join(str(o) for o in outputs)   # not analysed again
    net = next(o["data"]["application/vnd.plotly.v1+json"] for o in outputs
               if "application/vnd.plotly.v1+json" in o.get("data", {}))
    drawn = sum(len(t.get("x", [])) for t in net["data"] if t.get("name") in RING_CLASSES)
    assert drawn == int(ring["n_accounts"])
    assert (res.out / "investigation" / ring["ring_id"] / "network.html").exists()
