"""report.html and the charts: pseudonymised, hostile values shown as text, and they draw.

The hostile export is the tiny ring export of conftest with its partner, partner
type, a ring member and a device renamed to HTML payloads: values written by the
very people under investigation.
"""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis import case as ring_case
from analysis import charts, pipeline, report
from analysis.cli import main
from analysis.notebook import runner
from analysis.pseudonym import leaks
from analysis.replay import first_flagged
from analysis.workshop import screens

EVIL_PARTNER = 'P1<script>alert("partner")</script>'
EVIL_NAME = '<img src=x onerror="document.title=\'pwned-name\'">'
EVIL_TYPE = "<script>document.title='pwned-type'</script>"
EVIL_ACCOUNT = "<img src=y onerror=alert(3)>k1"
EVIL_DEVICE = "<b>emu</b>-1"
PAYLOADS = [EVIL_PARTNER, EVIL_NAME, EVIL_TYPE, EVIL_ACCOUNT, EVIL_DEVICE]


def _rewrite(path: Path, fn) -> None:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    rows = [rows[0]] + [fn(r) for r in rows[1:]]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


def make_hostile(export: Path) -> Path:
    sub = {"P1": EVIL_PARTNER, "k1": EVIL_ACCOUNT, "emu-1": EVIL_DEVICE}
    _rewrite(export / "partners.csv",
             lambda r: [EVIL_PARTNER, EVIL_NAME, EVIL_TYPE, r[3]] if r[0] == "P1" else r)
    _rewrite(export / "accounts.csv", lambda r: [sub.get(c, c) for c in r])
    _rewrite(export / "events.csv", lambda r: [sub.get(c, c) for c in r])
    return export


def raw_ids(export: Path) -> set[str]:
    acc = pd.read_csv(export / "accounts.csv", dtype=str, keep_default_na=False)
    ev = pd.read_csv(export / "events.csv", dtype=str, keep_default_na=False)
    return {x for x in set(acc["account_id"]) | set(ev["device_id"]) | set(ev["ip"]) if x}


@pytest.fixture
def hostile_run(ring_export, tmp_path):
    export = make_hostile(ring_export)
    exp, findings = pipeline.open_findings(export)
    mgmt = report.management(exp, findings, lag=first_flagged(exp.con, findings))
    out = tmp_path / "out"
    written = runner.export_charts(mgmt.figures, out / "charts", formats=())
    page = report.write_report(findings, exp, out / "report.html",
                               figures=list(mgmt.figures.values()), lines=mgmt.lines,
                               pseudonyms=mgmt.pseudonyms)
    return export, findings, mgmt, page, written


def test_hostile_export_still_finds_the_ring(hostile_run):
    _, findings, _, _, _ = hostile_run
    flagged = findings.flagged
    assert len(flagged) == 1
    assert EVIL_PARTNER in flagged["partner_ids"].iloc[0]
    members = findings.rings.members
    assert EVIL_ACCOUNT in set(members["account_id"])


def test_hostile_values_are_text_in_report_and_charts(hostile_run):
    _, _, mgmt, page, written = hostile_run
    text = page.read_text(encoding="utf-8")
    for path in [page] + written:
        body = path.read_text(encoding="utf-8")
        for payload in PAYLOADS:
            assert payload not in body, (path.name, payload)
        assert "<img src=" not in body and "onerror=\"document" not in body
    # the partner (a firm) is named, escaped; the account and device are not named at all
    assert html.escape(EVIL_PARTNER) in text
    assert "Ring 1" in text
    for fig in mgmt.figures.values():
        blob = json.dumps(fig.to_plotly_json(), default=str)
        for payload in PAYLOADS:
            assert payload not in blob


def test_no_raw_ids_for_management(hostile_run):
    export, _, _, page, written = hostile_run
    ids = raw_ids(export)
    for path in [page] + written:
        assert leaks(path.read_text(encoding="utf-8"), ids) == set(), path.name
    net = (page.parent / "charts" / "ring_network.html").read_text(encoding="utf-8")
    assert re.search(r"R1-A0\d", net) and "R1-D0" in net and "R1-IP01" in net


@pytest.mark.slow
def test_hostile_report_renders_as_text_in_chromium(hostile_run):
    _, _, mgmt, page, _ = hostile_run
    res = screens.chromium(page, dump_dom=True, window=(1200, 2000))
    assert res.errors == [], res.errors
    dom = res.dom
    assert "<title>Data-harvesting rings: findings</title>" in dom      # no onerror ran
    assert "pwned" not in re.sub(r"&[^;]+;", "", dom.split("<body")[0])
    assert '<img src="x"' not in dom and '<img src="y"' not in dom
    assert dom.count('class="main-svg"') >= len(mgmt.figures)
    # plotly drew the escaped partner id as text (in the partners chart)
    assert "P1&lt;script&gt;alert" in dom


def test_pipeline_report_keeps_working_and_has_no_raw_ids(ring_export, tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(ring_export), "--out", str(out)]) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    # Management reads one name per ring, "Ring 1", in the text and in every chart.
    assert "Ring 1" in text and "ring-001" not in text
    assert leaks(text, raw_ids(ring_export)) == set()
    # the investigator's file keeps the real ids
    assert {"k1", "k2", "k3", "s1"} <= set(pd.read_csv(out / "ring_members.csv")["account_id"])


def test_a_run_without_rings_still_reports(ring_export, tmp_path):
    # As of the 11th the ring has not started: nothing to flag.
    exp, findings = pipeline.open_findings(ring_export, as_of="2020-01-11")
    assert findings.flagged.empty
    mgmt = report.management(exp, findings)
    page = report.write_report(findings, exp, tmp_path / "report.html",
                               figures=list(mgmt.figures.values()), lines=mgmt.lines)
    assert "No ring is flagged." in page.read_text(encoding="utf-8")
    assert mgmt.figures["rings_by_harm"].layout.title.text.startswith("No ring")
    case = ring_case.case(exp, findings, None)
    assert set(case.figures()) == {"network", "neighbourhood", "timeline", "staff"}
    assert case.write(tmp_path / "inv") == []


def test_empty_findings_still_chart(tmp_path):
    figs = [charts.harm_ranking(pd.DataFrame(columns=["ring_id", "flagged", "records_harvested"])),
            charts.records_over_time(pd.DataFrame()), charts.users_exposed(pd.DataFrame()),
            charts.partners_implicated(pd.DataFrame()), charts.detection_lag(pd.DataFrame())]
    for fig in figs:
        assert fig.layout.title.text
        assert fig.layout.annotations


# -- issue 13: ids of the export inside free text ----------------------------------------------

ID_NAME = "Contact h001 at 10.1.5.1 / dev hphone7, k1 (ip:198.51.100.7)"
ID_TYPE = "promotions via emu-1"


def test_ids_inside_partner_free_text_never_reach_management(ring_export, tmp_path):
    """A partner's name and type holding account ids, device ids and IPs of the export (a
    ring member's and outsiders'): the summary, every chart (labels, hover text) and the
    page show them scrubbed, the same way everywhere."""
    _rewrite(ring_export / "partners.csv",
             lambda r: [r[0], ID_NAME, ID_TYPE, r[3]] if r[0] == "P1" else r)
    ids = ["h001", "10.1.5.1", "hphone7", "k1", "198.51.100.7", "emu-1"]
    exp, findings = pipeline.open_findings(ring_export, progress=False)
    mgmt = report.management(exp, findings)
    written = runner.export_charts(mgmt.figures, tmp_path / "charts", formats=())
    page = report.write_report(findings, exp, tmp_path / "report.html",
                               figures=list(mgmt.figures.values()), lines=mgmt.lines,
                               pseudonyms=mgmt.pseudonyms)
    default = report.write_report(findings, exp, tmp_path / "default.html")
    for path in [page, default] + written:
        assert leaks(path.read_text(encoding="utf-8"), ids) == set(), path.name
    for name, fig in mgmt.figures.items():
        blob = json.dumps(fig.to_plotly_json(), default=str)
        assert [i for i in ids if i in blob] == [], name
    ps = mgmt.pseudonyms
    clean = ps.scrub(ID_NAME)
    assert clean.startswith(f"Contact {ps.account('h001')} at {ps.ip('10.1.5.1')} / dev "
                            f"{ps.device('hphone7')}, R1-A0")
    assert "(ip:R1-IP01)" in clean
    text = page.read_text(encoding="utf-8")
    assert html.escape(clean) in text                   # the partner is still named
    net = json.dumps(mgmt.figures["ring_network"].to_plotly_json(), default=str)
    assert html.escape(clean) in net and html.escape(ps.scrub(ID_TYPE)) in net
    # the investigator's files keep the real text
    assert ID_NAME in set(findings.aggregates.partners["name"])


def test_report_and_charts_are_byte_identical_across_reruns(ring_export, tmp_path):
    """Issue 13 point 9: the same export and seed give the same report.html and chart
    pages byte for byte: no wall-clock time, no random plotly div ids. The page's time is
    the export's newest event (or --as-of), and it says so."""
    exp, findings = pipeline.open_findings(ring_export, progress=False)
    mgmt = report.management(exp, findings)
    pages, charts_written = [], []
    for name in ("a", "b"):
        charts_written.append(runner.export_charts(mgmt.figures, tmp_path / name / "charts",
                                                   formats=()))
        pages.append(report.write_report(findings, exp, tmp_path / name / "report.html",
                                         figures=list(mgmt.figures.values()),
                                         lines=mgmt.lines, pseudonyms=mgmt.pseudonyms))
        pages.append(report.write_report(findings, exp, tmp_path / name / "default.html"))
    assert pages[0].read_bytes() == pages[2].read_bytes()
    assert pages[1].read_bytes() == pages[3].read_bytes()
    for a, b in zip(*charts_written):
        assert a.read_bytes() == b.read_bytes(), a.name
    text = pages[0].read_text(encoding="utf-8")
    newest = exp.con.execute("SELECT max(ts) FROM ev").fetchone()[0]
    assert "Generated" not in text
    assert f"Data up to {newest:%Y-%m-%d %H:%M} UTC (the newest event in the export)" in text
    assert mgmt.data_time == newest
    exp2, findings2 = pipeline.open_findings(ring_export, as_of="2020-01-05", progress=False)
    page = report.write_report(findings2, exp2, tmp_path / "asof.html").read_text()
    assert "Data up to the end of 2020-01-05 UTC (--as-of)" in page


def test_pdf_charts_carry_the_data_time_not_the_clock(tmp_path):
    """Chromium stamps a PDF with the time it printed it; export_charts replaces that with
    the data time (bytes in place, so the file stays valid), or 1970-01-01 without one."""
    import datetime as dt

    import plotly.graph_objects as go

    if runner.chromium_path() is None:
        pytest.skip("no Chromium")
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    when = dt.datetime(2020, 6, 30, 12, 34, 56)
    pdf = [p for p in runner.export_charts({"x": fig}, tmp_path / "a", formats=("pdf",),
                                           stamp=when) if p.suffix == ".pdf"][0]
    data = pdf.read_bytes()
    assert b"/CreationDate (D:20200630123456" in data and b"/ModDate (D:20200630123456" in data
    pdf2 = [p for p in runner.export_charts({"x": fig}, tmp_path / "b", formats=("pdf",))
            if p.suffix == ".pdf"][0]
    assert b"/CreationDate (D:19700101000000" in pdf2.read_bytes()
    assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")


def test_a_report_folder_carries_one_plotly_js_that_every_page_finds(ring_export, tmp_path):
    """Issue 14 item 8: the charts' and the case files' pages load the folder's one
    plotly.min.js by a relative path that resolves (offline); report.html, the page sent on
    its own, carries its own copy inline, and is the only page that does."""
    from conftest import plotly_copies, script_sources

    exp, findings = pipeline.open_findings(ring_export, progress=False)
    mgmt = report.management(exp, findings, lag=first_flagged(exp.con, findings))
    out = tmp_path / "out"
    js = out / charts.PLOTLY_JS
    made = runner.export_charts(mgmt.figures, out / "charts", formats=(), plotly_js=js)
    made += ring_case.write_investigations(exp, findings, out / "investigation", plotly_js=js)
    page = report.write_report(findings, exp, out / "report.html",
                               figures=list(mgmt.figures.values()), lines=mgmt.lines,
                               pseudonyms=mgmt.pseudonyms)
    files, inline = plotly_copies(out)
    assert files == [js] and inline == [page]
    pages = [p for p in made if p.suffix == ".html"]
    assert len(pages) >= len(mgmt.figures) + 4      # charts, and one ring's four pages
    for p in pages:
        (src,) = script_sources(p)
        assert not src.startswith(("/", "http")) and (p.parent / src).resolve() == js
    assert script_sources(page) == []
    # Without plotly_js each folder keeps its own copy, as before.
    solo = tmp_path / "solo"
    runner.export_charts(mgmt.figures, solo, formats=())
    assert plotly_copies(solo)[0] == [solo / charts.PLOTLY_JS]
