"""Management reads short sentences with rounded, plural-correct numbers; the analyst's
reasons keep the full measures."""

from __future__ import annotations

import re

import pandas as pd
from conftest import page_text

from analysis import pipeline, report
from analysis.charts import about, approx

JARGON = ("×", "percentile", "median", "baseline", "ratio", "peer", "harm ")
NOUNS = ("accounts", "days", "rings", "users", "records", "devices", "IPs", "partners", "events",
         "rows", "user records", "distinct users")


def management_text(findings, mgmt) -> list[str]:
    """Every sentence management reads: the summary, each ring's why, the chart titles."""
    texts = list(mgmt.lines)
    texts += [report.management_why(findings, r) for r in findings.flagged["ring_id"]]
    texts += [page_text(f.layout.title.text) for f in mgmt.figures.values()]
    return texts


def problems(text: str) -> list[str]:
    found = [w for w in JARGON if w in text]
    found += re.findall(r"\d\.\d{3,}|\b\d+\.0\b", text)                       # raw floats
    found += re.findall(r"\b1 (?:%s)\b" % "|".join(map(re.escape, NOUNS)), text)  # 1 accounts
    found += re.findall(r"\b1 of its accounts are\b|\b1 of them are\b", text)
    for num in re.findall(r"\b\d{1,3}(?:,\d{3})+\b", text):               # unrounded counts
        digits = num.replace(",", "")
        if int(digits) >= 10_000 and digits[3:].strip("0"):
            found.append(num)
    for sentence in re.split(r"(?<=[.;])\s+", text):
        if len(sentence.split()) > 32:
            found.append(f"long sentence: {sentence[:60]}…")
    return found


def test_the_checker_catches_what_the_issue_quoted():
    bad = ("39,132× the 95th-percentile account; the median customer read 0.0",
           "1 of its accounts are partner staff", "14694.0", "0.180890", "read 421,488 records",
           "holding 1 accounts")
    for text in bad:
        assert problems(text), text
    assert problems("Ring 1: 14 accounts. It harvested about 421,000 user records.") == []


def test_rounding_and_plurals():
    assert approx(421_488) == "421,000" and approx(1_105_754) == "1.11 million"
    assert about(1, "account") == "1 account" and about(2, "account") == "2 accounts"
    assert about(39_132, "user") == "about 39,100 users" and about(40_000, "user") == "40,000 users"


def test_management_text_is_plain_on_a_synthetic_export(small_world):
    findings, mgmt = small_world["findings"], small_world["mgmt"]
    texts = management_text(findings, mgmt)
    assert len(texts) >= 10
    for text in texts:
        assert problems(text) == [], text
    # the page's table says the same plain why, not the analyst's reasons
    page = small_world["page"]
    assert "percentile" not in page and "×" not in page
    # ... which keep the full measures for the analyst
    reasons = " ".join(pd.read_csv(small_world["out"] / "rings.csv")["reasons"])
    assert "×" in reasons and "percentile" in reasons


def test_one_account_and_one_staff_read_in_the_singular(ring_export):
    # The tiny ring: four accounts, one of them partner staff.
    _, findings = pipeline.open_findings(ring_export, progress=False)
    why = report.management_why(findings, "ring-001")
    assert "1 of its accounts is partner staff." in why
    assert "All 4 of its accounts harvest on their own." in why
    lines = report.ring_lines(findings)
    assert lines[0].startswith("Ring 1: 4 accounts, 1 of them partner staff, linked to partner P1")
    for text in lines + [why]:
        assert problems(text) == [], text


def test_rejected_rows_read_plainly(ring_export):
    with open(ring_export / "events.csv", "a", encoding="utf-8") as fh:
        fh.write("not-a-date,k1,emu-1,198.51.100.7,view_profile,u01,1\n")
    exp, findings = pipeline.open_findings(ring_export, progress=False)
    lines = report.summary_lines(findings, exp)
    n = exp.counts["events"].rows
    assert f"1 of {n:,} event rows was rejected at validation." in lines
    for text in lines:
        assert problems(text) == [], text
