"""The five notebooks: committed clean, and run headless end to end on a synthetic export.

One papermill run of all five notebooks (``python -m analysis report``, what
``make report`` calls) on a 2,500-account synthetic export, shared by the
tests below. The export is made hostile first: a partner linked to a ring gets
an HTML payload as its name and type, and a ring member's account id becomes
one. The tests check what the run produced: executed notebooks, investigator
files with real ids, charts as HTML, PNG and PDF, and a report.html that draws
in headless Chromium and carries no raw account id, device id or IP.
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import plotly_copies, script_sources

from analysis import config
from analysis.cli import main
from analysis.notebook.runner import NOTEBOOKS
from analysis.pseudonym import leaks
from analysis.workshop.screens import chromium, png_summary

#: Slow tier (`make test` runs it after the fast tier).
pytestmark = pytest.mark.slow

PARAMETERS = {"EXPORTS", "OUT", "AS_OF", "SEED", "RING", "PREVIOUS", "CASES"}
EVIL_NAME = '<img src=x onerror="document.title=\'pwned\'">'
EVIL_TYPE = "<script>alert('type')</script>"
EVIL_ACCOUNT = "<script>alert('acct')</script>"
CHARTS = ("rings_by_harm", "records_over_time", "users_exposed", "partners_implicated",
          "detection_lag", "ring_ranking", "ring_network")


# -- committed notebooks ------------------------------------------------------------------------

@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean_and_thin(name):
    nb = nbformat.read(config.NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [], f"{name}: outputs stored"
        assert cell.execution_count is None, f"{name}: execution count stored"
        assert "../" not in cell.source and "..\\\\" not in cell.source
        assert len(cell.source.splitlines()) <= 12, f"{name}: logic belongs in analysis/"
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), f"{name}: first code cell untagged"
    assigned = set(re.findall(r"^(\w+)\s*=", first.source, flags=re.M))
    assert assigned == PARAMETERS
    imports = re.findall(r"^(?:from|import)\s+([\w.]+)", "\n".join(c.source for c in code),
                         flags=re.M)
    assert set(imports) <= {"analysis", "analysis.notebook", "pandas", "tqdm.auto"}, imports
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_notebooks_are_numbered_in_pipeline_order():
    found = sorted(p.stem for p in config.NOTEBOOKS.glob("*.ipynb"))
    assert found == list(NOTEBOOKS)


# -- one headless run of all five ---------------------------------------------------------------

def _rewrite(path: Path, fn) -> None:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0])
        w.writerows(fn(r) for r in rows[1:])


@pytest.fixture(scope="session")
def report_run(tmp_path_factory):
    from analysis.workshop.synth import generate

    root = tmp_path_factory.mktemp("nbrun")
    res = generate(root / "synth", seed=7, accounts=2500, days=60)
    export = Path(res.export_dir)
    truth = json.loads((root / "synth" / "truth.json").read_text())
    labels = pd.read_csv(res.labels_path, dtype=str)
    ring_partner = next(r["partner_id"] for r in truth["rings"] if r.get("partner_id"))
    victim = labels["account_id"].iloc[0]
    _rewrite(export / "partners.csv",
             lambda r: [r[0], EVIL_NAME, EVIL_TYPE, r[3]] if r[0] == ring_partner else r)
    _rewrite(export / "accounts.csv",
             lambda r: [EVIL_ACCOUNT if c == victim else c for c in r])
    _rewrite(export / "events.csv",
             lambda r: [EVIL_ACCOUNT if c == victim else c for c in r])
    out = root / "out"
    t0 = time.perf_counter()
    rc = main(["report", str(export), "--out", str(out), "--seed", "7", "--no-progress"])
    seconds = time.perf_counter() - t0
    assert rc == 0
    return {"export": export, "out": out, "seconds": seconds, "partner": ring_partner}


def _outputs(nb):
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            yield cell, o


def test_all_five_notebooks_executed(report_run):
    out = report_run["out"]
    for name in NOTEBOOKS:
        nb = nbformat.read(out / "notebooks" / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count is not None for c in code), name
        assert not any(o.output_type == "error" for _, o in _outputs(nb)), name
        # papermill injected the run's parameters after the parameters cell
        injected = code[1]
        assert "injected-parameters" in injected.metadata.get("tags", [])
        assert str(report_run["export"]) in injected.source
        figures = sum("application/vnd.plotly.v1+json" in o.get("data", {})
                      for _, o in _outputs(nb))
        assert figures >= 2, f"{name}: {figures} figures"


def test_the_report_analyses_once(report_run):
    # 01 analyses and keeps the findings in OUT/.ringscope; 02-05 load them.
    out = report_run["out"]
    for i, name in enumerate(NOTEBOOKS):
        nb = nbformat.read(out / "notebooks" / f"{name}.ipynb", as_version=4)
        said = "".join(o.get("text", "") + json.dumps(o.get("data", {}))
                       for _, o in _outputs(nb))
        assert ("ringscope: loaded from" in said) == (i > 0), name


def test_outputs_of_the_run(report_run):
    out = report_run["out"]
    for f in ("rings.csv", "ring_members.csv", "partners_review.csv", "report.html",
              "rejects/accounts.csv", "rejects/partners.csv", "rejects/events.csv"):
        assert (out / f).exists(), f
    rings = pd.read_csv(out / "rings.csv")
    assert rings["flagged"].any()
    top = rings.loc[rings["flagged"], "ring_id"].iloc[0]
    evidence = pd.read_csv(out / "investigation" / top / "evidence.csv", dtype=str)
    members = pd.read_csv(out / "ring_members.csv", dtype=str)
    # the investigator's evidence keeps the real ids
    assert set(evidence["account_id"]) == set(members.loc[members["ring_id"] == top,
                                                          "account_id"])
    nb4 = nbformat.read(out / "notebooks" / "04_investigate_ring.ipynb", as_version=4)
    html_out = "".join(o["data"].get("text/html", "") for _, o in _outputs(nb4)
                       if "data" in o)
    plain = [a for a in evidence["account_id"] if re.fullmatch(r"[\w.-]+", a)]
    assert plain and all(a in html_out for a in plain)
    # Every flagged ring has its case folder, all loading the report folder's one plotly.js.
    cases = sorted(p.name for p in (out / "investigation").iterdir() if p.is_dir())
    assert set(rings.loc[rings["flagged"], "ring_id"]) <= set(cases)
    assert script_sources(out / "investigation" / top / "network.html") == ["../../plotly.min.js"]


def test_one_plotly_js_per_report_folder(report_run):
    """Issue 14 item 8: one plotly.min.js at the report folder's root, which every page of
    charts/ and investigation/ loads by a relative path that resolves (offline); report.html
    is sent on its own, so it carries its copy inline, and no other page does."""
    out = report_run["out"]
    files, inline = plotly_copies(out)
    assert files == [out / "plotly.min.js"] and inline == [out / "report.html"]
    pages = sorted((out / "charts").glob("*.html")) + sorted((out / "investigation").rglob(
        "*.html"))
    assert len(pages) >= len(CHARTS) + 4
    for page in pages:
        (src,) = script_sources(page)
        assert (page.parent / src).resolve() == out / "plotly.min.js", page
    assert script_sources(out / "report.html") == []


def test_report_ring_on_the_same_report_runs_notebook_04_only(report_run, tmp_path, capsys):
    """Issue 14: ``report --ring R`` into a folder holding this export's report (same
    parameters, notebooks and code) keeps notebooks 01-03 and 05 and everything they wrote,
    and runs notebook 04 only, on the kept findings: the largest flagged ring opens with
    every account drawn, in one kernel's time instead of five notebooks'."""
    import shutil

    from analysis import charts, outdir

    export = report_run["export"]
    out = tmp_path / "out"
    shutil.copytree(report_run["out"], out, symlinks=True)
    rings = pd.read_csv(out / "rings.csv")
    largest = rings[rings["flagged"]].sort_values(["n_accounts", "rank"],
                                                  ascending=[False, True]).iloc[0]
    before = {p.name: p.read_bytes() for p in (out / "notebooks").glob("*.ipynb")}
    charts_before = {p.name: p.read_bytes() for p in (out / "charts").iterdir()}
    t0 = time.perf_counter()
    rc = main(["report", str(export), "--out", str(out), "--seed", "7", "--ring",
               str(int(largest["rank"])), "--no-progress"])
    seconds = time.perf_counter() - t0
    assert rc == 0
    said = capsys.readouterr().out
    assert "1 notebook executed" in said and "4 kept from the report already there" in said
    assert seconds < 30, seconds
    for name, data in before.items():
        same = (out / "notebooks" / name).read_bytes() == data
        assert same == (name != "04_investigate_ring.ipynb"), name
    assert {p.name: p.read_bytes() for p in (out / "charts").iterdir()} == charts_before
    nb4 = nbformat.read(out / "notebooks" / "04_investigate_ring.ipynb", as_version=4)
    outputs = [o for _, o in _outputs(nb4)]
    assert not any(o.output_type == "error" for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"{largest['ring_id']} (rank {largest['rank']}" in text
    assert "ringscope: loaded from" in json.dumps([o.get("data", {}) for o in outputs]) + text
    # headless: the explorers are notes, not widgets nobody can click
    notes = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})
             and "interactive when this notebook is opened in JupyterLab" in o["data"]["text/html"]]
    assert len(notes) == 4
    net = next(o["data"]["application/vnd.plotly.v1+json"] for o in outputs
               if "application/vnd.plotly.v1+json" in o.get("data", {}))
    ring_classes = {charts.NODE_CLASSES["ring"][0], charts.NODE_CLASSES["staff"][0]}
    drawn = sum(len(t.get("x", [])) for t in net["data"] if t.get("name") in ring_classes)
    assert drawn == int(largest["n_accounts"])
    assert (out / "investigation" / largest["ring_id"] / "network.html").exists()
    marker = outdir.read_marker(out)
    assert marker["report"]["kept"] == [n for n in NOTEBOOKS if n != "04_investigate_ring"]
    assert marker["report"]["made_from"] == outdir.read_marker(report_run["out"])["report"][
        "made_from"]
    # every file is listed as the tool's: the folder can be replaced again
    assert outdir.check_out(out, export=export).earlier is not None


def test_charts_exported_as_html_png_pdf(report_run):
    charts = report_run["out"] / "charts"
    for name in CHARTS:
        page = (charts / f"{name}.html").read_text(encoding="utf-8")
        assert "Plotly.newPlot" in page and len(page) < 1_000_000     # plotly.js not in it
        # Offline: the one script it loads is the report folder's copy of plotly.js.
        assert script_sources(charts / f"{name}.html") == ["../plotly.min.js"]
        assert (charts / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        png = png_summary(charts / f"{name}.png")
        assert png["width"] >= 1600 and png["height"] >= 500    # 2x scale for slides
        assert png["colours"] > 20 and png["top_share"] < 0.97, (name, png["colours"])
    assert (charts.parent / "plotly.min.js").stat().st_size > 1_000_000


def test_report_renders_in_chromium(report_run, tmp_path):
    page = report_run["out"] / "report.html"
    shot = tmp_path / "report.png"
    res = chromium(page, dump_dom=True, window=(1200, 3000))
    assert res.errors == [], res.errors
    assert res.dom.count('class="main-svg"') >= len(CHARTS)
    assert res.dom.count('class="point"') + res.dom.count('class="trace') > 10
    chromium(page, screenshot=shot, window=(1200, 3000))
    png = png_summary(shot)
    assert png["colours"] > 50 and png["top_share"] < 0.97
    # the charts' colours were painted (vermillion bars and markers)
    assert png["palette"].get("#D55E00", 0) > 500


def test_no_raw_identifiers_for_management(report_run):
    export, out = report_run["export"], report_run["out"]
    acc = pd.read_csv(export / "accounts.csv", dtype=str, keep_default_na=False)
    ev = pd.read_csv(export / "events.csv", dtype=str, keep_default_na=False,
                     usecols=["device_id", "ip"])
    ids = {x for x in set(acc["account_id"]) | set(ev["device_id"]) | set(ev["ip"]) if x}
    assert len(ids) > 2000
    pages = [out / "report.html"] + sorted((out / "charts").glob("*.html"))
    for page in pages:
        assert leaks(page.read_text(encoding="utf-8"), ids) == set(), page.name
    # rings can still be told apart: pseudonyms carry the ring number
    assert re.search(r"R1-A\d\d", (out / "charts" / "ring_network.html").read_text())


def test_hostile_values_show_as_text(report_run):
    out = report_run["out"]
    payloads = (EVIL_NAME, EVIL_TYPE, EVIL_ACCOUNT)
    for page in [out / "report.html"] + sorted((out / "charts").glob("*.html")):
        body = page.read_text(encoding="utf-8")
        for p in payloads:
            assert p not in body, (page.name, p)
    for name in NOTEBOOKS:
        nb = nbformat.read(out / "notebooks" / f"{name}.ipynb", as_version=4)
        for _, o in _outputs(nb):
            data = o.get("data", {})
            rich = data.get("text/html", "") + json.dumps(
                data.get("application/vnd.plotly.v1+json", {}))
            for p in payloads:
                assert p not in rich, (name, p)
    # the hostile account was caught in a ring: the investigator's file names it ...
    members = pd.read_csv(out / "ring_members.csv", dtype=str, keep_default_na=False)
    assert EVIL_ACCOUNT in set(members["account_id"])
    # ... and the partner's hostile name reached the report as text (escaped)
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=" in report
    dom = chromium(out / "report.html", dump_dom=True, window=(1200, 1500)).dom
    assert "<title>Data-harvesting rings: findings</title>" in dom and '<img src="x"' not in dom


def test_a_lost_kernel_reply_after_the_last_cell_is_retried_once_then_named(tmp_path):
    """papermill waits for a closing kernel_info reply; a lost one (nteract/papermill#711)
    now times out (None comes back). The notebook runs once more; twice lost is one line."""
    from analysis.notebook import runner

    class FakePapermill:
        def __init__(self, fails):
            self.fails, self.calls = fails, []

        def execute_notebook(self, src, dst, **kw):
            self.calls.append(kw)
            if len(self.calls) <= self.fails:
                raise TypeError("'NoneType' object is not subscriptable")

    once = FakePapermill(1)
    runner._execute(once, tmp_path / "01_x.ipynb", tmp_path / "out.ipynb", cwd="x")
    assert len(once.calls) == 2
    # cells keep no time limit; only requests outside a cell wait a bounded time
    kw = once.calls[0]
    assert kw["execution_timeout"] == runner.KERNEL_REPLY_TIMEOUT and kw["cwd"] == "x"
    assert kw["timeout_func"]({"cell_type": "code"}) is None and kw["interrupt_on_timeout"]
    with pytest.raises(runner.NotebookError, match="notebook 01_x: the kernel did not answer"):
        runner._execute(FakePapermill(2), tmp_path / "01_x.ipynb", tmp_path / "out.ipynb")

    class Broken(FakePapermill):
        def execute_notebook(self, src, dst, **kw):
            raise TypeError("unsupported operand")

    with pytest.raises(TypeError, match="unsupported operand"):
        runner._execute(Broken(0), tmp_path / "01_x.ipynb", tmp_path / "out.ipynb")


@pytest.mark.slow
def test_a_kernel_stuck_idle_in_a_cell_is_stopped_and_the_notebook_run_once_more(
        tmp_path, monkeypatch):
    """Both sides waiting on a lost message look like a kernel idle in a cell. A cell that
    sleeps is idle too: with the limit at 3 s the watch stops its kernel, the notebook
    runs once more, and twice idle is one line naming the notebook. A busy cell is left
    alone."""
    import nbformat
    import papermill as pm

    from analysis.notebook import runner

    def notebook(code: str) -> Path:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                     "display_name": "Python 3"}
        src = tmp_path / f"n{len(list(tmp_path.iterdir()))}.ipynb"
        nbformat.write(nb, src)
        return src

    monkeypatch.setattr(runner, "KERNEL_IDLE_LIMIT", 3.0)
    monkeypatch.setattr(runner, "KERNEL_WATCH_POLL", 0.5)
    calls = []
    real = pm.execute_notebook

    class Counting:
        def execute_notebook(self, *a, **kw):
            calls.append(1)
            return real(*a, **kw)

    idle = notebook("import time\ntime.sleep(60)")
    with pytest.raises(runner.NotebookError, match=r"notebook n\d: its kernel sat idle"):
        runner._execute(Counting(), idle, tmp_path / "out.ipynb", progress_bar=False,
                        log_output=False)
    assert len(calls) == 2
    busy = notebook("x = 0\nfor i in range(40_000_000):\n    x += i")
    runner._execute(pm, busy, tmp_path / "out2.ipynb", progress_bar=False, log_output=False)
