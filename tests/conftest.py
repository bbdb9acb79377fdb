"""Shared fixtures: tiny hand-built exports with the expected answer beside them."""

from __future__ import annotations

import csv
import hashlib
import html
import re
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest


def write_table(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_table(path: Path) -> pd.DataFrame:
    """A CSV table as text, empty cells as empty strings."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder``, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


ACCOUNTS_H = ["account_id", "account_type", "created_at", "partner_id"]
PARTNERS_H = ["partner_id", "name", "partner_type", "onboarded_at"]
EVENTS_H = ["ts", "account_id", "device_id", "ip", "event_type", "target_id", "records"]


def tiny_ring_export(root: Path) -> Path:
    """A hand-built export with one harvesting ring and one honest look-alike.

    * partner P1 (promotions) serves merchant m1; its staff s1 steers crawlers
      k1..k3, which share one emulator device and one datacenter IP and read the
      profiles of 40 users (u00..u39) who never ordered from m1: the ring.
    * partner P2 (logistics) serves merchant m2; its call-centre agent s2 reads
      the profiles of m2's 30 buyers (c00..c29), thousands of times in all:
      alarming volume, but every read is tied. Not a ring.
    * customers c00..c29 order from m2 and 120 more (h000..h119) browse, each on
      their own phone and home IP: the honest population the baselines come from.

    Expected: exactly one flagged ring, {s1, k1, k2, k3}.
    """
    exp = root / "export"
    write_table(exp / "partners.csv", PARTNERS_H, [
        ["P1", "Promo Co", "promotions", "2019-01-01"],
        ["P2", "Fast Logistics", "logistics", "2019-01-01"],
    ])
    accounts = [["m1", "merchant", "2019-02-01", "P1"], ["m2", "merchant", "2019-02-01", "P2"],
                ["s1", "partner_staff", "2019-03-01", "P1"], ["s2", "partner_staff", "2019-03-01", "P2"]]
    accounts += [[f"k{i}", "customer", f"2020-01-0{i}", ""] for i in (1, 2, 3)]
    accounts += [[f"c{i:02d}", "customer", "2019-06-01", ""] for i in range(30)]
    accounts += [[f"u{i:02d}", "customer", "2019-06-01", ""] for i in range(40)]
    accounts += [[f"h{i:03d}", "customer", "2019-07-01", ""] for i in range(120)]
    write_table(exp / "accounts.csv", ACCOUNTS_H, accounts)
    t0 = datetime(2020, 1, 10)
    ev = []
    for i in range(30):  # honest buyers
        ts = t0 + timedelta(hours=i * 5)
        ev.append([ts.isoformat() + "Z", f"c{i:02d}", f"phone{i}", f"10.0.{i}.1", "order", "m2", ""])
        ev.append([(ts + timedelta(minutes=3)).isoformat() + "Z", f"c{i:02d}", f"phone{i}",
                   f"10.0.{i}.1", "login", "", "0"])
    for i in range(120):  # honest browsers
        for k in range(3):
            ts = t0 + timedelta(hours=i, minutes=17 * k)
            ev.append([ts.isoformat() + "Z", f"h{i:03d}", f"hphone{i}", f"10.1.{i}.1",
                       ("login", "search", "view_item")[k], "m1" if k == 2 else "", "0"])
    for rep in range(40):  # the call centre: tied reads
        for i in range(30):
            ts = t0 + timedelta(days=2 + rep // 10, minutes=rep * 37 + i)
            ev.append([ts.isoformat() + "Z", "s2", "office-pc", "192.0.2.10", "view_profile",
                       f"c{i:02d}", "1"])
    for j, crawler in enumerate(["k1", "k2", "k3", "s1"]):  # the ring
        for i in range(40):
            ts = t0 + timedelta(days=3, minutes=10 * i + j)
            dev, ip = ("emu-1", "198.51.100.7") if crawler != "s1" else ("s1-laptop", "198.51.100.7")
            ev.append([ts.isoformat() + "Z", crawler, dev, ip, "view_profile", f"u{i:02d}", "1"])
    write_table(exp / "events.csv", EVENTS_H, ev)
    return exp


@pytest.fixture
def ring_export(tmp_path: Path) -> Path:
    return tiny_ring_export(tmp_path)


#: The banner plotly.js starts with: a file or a page holding it carries a copy.
PLOTLY_BANNER = "* plotly.js v"


def plotly_copies(folder: Path) -> tuple[list[Path], list[Path]]:
    """Every copy of plotly.js below ``folder``: the ``.js`` files holding it, and the HTML
    pages that carry it inline."""
    files = [p for p in sorted(folder.rglob("*.js")) if PLOTLY_BANNER in p.read_text("utf-8")]
    pages = [p for p in sorted(folder.rglob("*.html")) if PLOTLY_BANNER in p.read_text("utf-8")]
    return files, pages


def script_sources(page: Path) -> list[str]:
    """The ``src`` of every ``<script>`` a page loads."""
    return re.findall(r'<script[^>]*\bsrc="([^"]+)"', page.read_text(encoding="utf-8"))


def page_text(s: str) -> str:
    """A title or page as text: tags dropped, entities decoded, on one line."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", s)).split())


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A small synthetic export run end to end: ``rings.csv`` by the CLI, then in memory the
    findings, the weekly replay, the management charts and text, report.html and the
    investigation folders (1,200 accounts, 30 days; several flagged rings, partner staff)."""
    from analysis import case as ring_case
    from analysis import pipeline, report
    from analysis.cli import main
    from analysis.replay import first_flagged
    from analysis.workshop.synth import generate

    root = tmp_path_factory.mktemp("small_world")
    export = Path(generate(root / "synth", seed=3, accounts=1200, days=30).export_dir)
    out = root / "run"
    assert main(["run", str(export), "--out", str(out), "--no-progress"]) == 0
    exp, findings = pipeline.open_findings(export, progress=False)
    assert len(findings.flagged) >= 2
    lag = first_flagged(exp.con, findings)
    mgmt = report.management(exp, findings, lag=lag)
    page = report.write_report(findings, exp, root / "report.html",
                               figures=list(mgmt.figures.values()), lines=mgmt.lines,
                               pseudonyms=mgmt.pseudonyms)
    ring_case.write_investigations(exp, findings, out / "investigation")
    rings = pd.read_csv(out / "rings.csv", keep_default_na=False)
    yield {"export": export, "exp": exp, "findings": findings, "out": out, "mgmt": mgmt,
           "rings": rings, "page": page_text(re.sub(r"<script.*?</script>", " ",
                                                     page.read_text(encoding="utf-8"),
                                                     flags=re.S)),
           "facts": findings.facts.set_index("ring_id")}
    exp.con.close()
