"""Hostile values never act; runs are atomic, deterministic and leak no rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_ring_export

from analysis.cli import main
from analysis.safe import FORMULA_PREFIXES
from analysis.workshop.__main__ import main as workshop_main

HOSTILE = {
    "P1": "<script>alert(1)</script>",
    "s1": '=HYPERLINK("http://evil.example","x")',
    "k1": "+cmd|' /C calc'!A0",
    "k2": "@SUM(1+1)",
    "k3": "-2+3",
}


def hostile_export(root: Path) -> Path:
    exp = tiny_ring_export(root)
    for name in ("partners", "accounts", "events"):
        df = pd.read_csv(exp / f"{name}.csv", dtype=str, keep_default_na=False)
        df = df.replace(HOSTILE)
        if name == "partners":
            df.loc[df["partner_id"] == HOSTILE["P1"], "name"] = "<img src=x onerror=alert(2)>"
            df.loc[df["partner_id"] == HOSTILE["P1"], "partner_type"] = "\t=1+1"
        df.to_csv(exp / f"{name}.csv", index=False)
    return exp


def all_cells(out: Path):
    for path in sorted(out.rglob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    yield path, cell


def test_hostile_ids_are_neutralised_and_still_found(tmp_path):
    exp = hostile_export(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    for path, cell in all_cells(out):
        assert not cell.startswith(FORMULA_PREFIXES), (path.name, cell)
    members = pd.read_csv(out / "ring_members.csv", dtype=str, keep_default_na=False)
    # Readable evidence: the apostrophe is the only change.
    assert "'" + HOSTILE["s1"] in set(members["account_id"])
    rings = pd.read_csv(out / "rings.csv")
    assert rings["flagged"].sum() == 1
    page = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_evaluate_reads_neutralised_ids(tmp_path, capsys):
    exp = hostile_export(tmp_path)
    out = tmp_path / "out"
    main(["run", str(exp), "--out", str(out)])
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"account_id": [HOSTILE["s1"], HOSTILE["k1"], HOSTILE["k2"], HOSTILE["k3"]],
                  "ring_id": "R1"}).to_csv(labels, index=False)
    assert workshop_main(["evaluate", str(out), "--labels", str(labels)]) == 0
    assert "precision 1.000  recall 1.000" in capsys.readouterr().out
    # The evaluation lies beside the run, not in it: the next run into OUT (make demo
    # twice) is not refused for a file the tool did not write.
    assert (tmp_path / "out.evaluation.json").exists() and not (out / "evaluation.json").exists()
    assert main(["run", str(exp), "--out", str(out)]) == 0


def test_a_run_that_dies_leaves_the_previous_output(tmp_path, monkeypatch):
    exp = tiny_ring_export(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def die(*args, **kwargs):
        raise RuntimeError("killed halfway")
    monkeypatch.setattr("analysis.report.write_report", die)
    assert main(["run", str(exp), "--out", str(out), "--seed", "99"]) == 1
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if ".part-" in p.name] == []


def test_same_export_and_seed_give_identical_csvs(tmp_path):
    from analysis.workshop.synth import generate

    res = generate(tmp_path / "s", seed=3, accounts=2000, days=30)
    # Break some rows so rejects are compared too.
    ev = res.export_dir / "events.csv"
    lines = ev.read_text().splitlines(keepends=True)
    lines[5] = "not-a-time" + lines[5][lines[5].index(","):]
    ev.write_text("".join(lines))
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["run", str(res.export_dir), "--out", str(out), "--seed", "4"]) == 0
        runs.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*.csv")})
    assert runs[0].keys() == runs[1].keys() and len(runs[0]) >= 6
    for key in runs[0]:
        assert runs[0][key] == runs[1][key], key


def test_run_record_holds_no_raw_rows(tmp_path):
    exp = hostile_export(tmp_path)
    out = tmp_path / "out"
    (exp / "events.csv").write_text((exp / "events.csv").read_text()
                                    + "garbage-ts,secret-account-xyz,dev,1.2.3.4,login,,\n")
    assert main(["run", str(exp), "--out", str(out)]) == 0
    text = (out / "run.json").read_text()
    record = json.loads(text)
    assert record["tables"]["events"]["rejected"] == 1
    for raw in ["secret-account-xyz", "garbage-ts", "1.2.3.4", "emu-1", "k1", *HOSTILE.values()]:
        assert raw not in text, raw


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@A1", "\tx", "\rx"])
def test_formula_prefixes_are_neutralised(value):
    from analysis.safe import neutralise

    assert neutralise(value) == "'" + value
