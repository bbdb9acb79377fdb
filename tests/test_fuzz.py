"""Fuzzing: mutated small exports end in exit 0 or exit 2 with one line, never a traceback."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_ring_export
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.cli import main

#: Slow tier (`make test` runs it after the fast tier).
pytestmark = pytest.mark.slow

TABLES = ("accounts", "partners", "events")


def _mutate(exp: Path, table: str, kind: str, rnd: random.Random) -> None:
    path = exp / f"{table}.csv"
    data = path.read_bytes()
    if kind == "drop_column":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df = df.drop(columns=[rnd.choice(list(df.columns))])
        df.to_csv(path, index=False)
    elif kind == "shuffle_types":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        cols = list(df.columns)
        for _ in range(rnd.randint(1, 3)):
            c = rnd.choice(cols)
            vals = df[c].tolist()
            junk = [rnd.choice(["", "-1", "3.5", "NaN", "2020-13-45", "=1+1", "ï»¿", "\u202e",
                                "<script>alert(1)</script>", "9" * 30, "true"])
                    for _ in vals]
            df[c] = [j if rnd.random() < 0.3 else v for v, j in zip(vals, junk)]
        df.to_csv(path, index=False)
    elif kind == "random_bytes":
        b = bytearray(data)
        for _ in range(rnd.randint(1, 20)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        path.write_bytes(bytes(b))
    elif kind == "truncate":
        path.write_bytes(data[: rnd.randrange(len(data))])
    elif kind == "gzip_truncate":
        path.unlink()
        z = gzip.compress(data)
        (exp / f"{table}.csv.gz").write_bytes(z[: rnd.randrange(10, len(z))])
    elif kind == "parquet_retype":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        c = rnd.choice(list(df.columns))
        df[c] = [rnd.random() for _ in range(len(df))]
        path.unlink()
        df.to_parquet(exp / f"{table}.parquet")
    elif kind == "duplicate_table":
        shutil.copy(path, exp / f"{table}.csv.gz")
    elif kind == "garbage_file":
        path.write_bytes(bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 400))))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=st.sampled_from(TABLES),
       kind=st.sampled_from(["drop_column", "shuffle_types", "random_bytes", "truncate",
                             "gzip_truncate", "parquet_retype", "duplicate_table",
                             "garbage_file"]),
       seed=st.integers(0, 10**6))
def test_mutated_exports_never_crash(tmp_path_factory, capsys, table, kind, seed):
    root = tmp_path_factory.mktemp("fuzz")
    exp = tiny_ring_export(root)
    _mutate(exp, table, kind, random.Random(seed))
    out = root / "out"
    code = main(["run", str(exp), "--out", str(out), "--max-reject-rate", "0.5"])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
        # nothing, or only the quarantine of a reject-rate stop, where the message says
        assert not out.exists() or sorted(p.name for p in out.iterdir()) == [
            ".ringscope-output.json", "rejects"]
        if out.exists():
            assert f"see {out / 'rejects'}/" in err
    else:
        record = json.loads((out / "run.json").read_text())
        for t, c in record["tables"].items():
            assert c["accepted"] + c["rejected"] == c["rows"], (t, c)
    shutil.rmtree(root, ignore_errors=True)


def _physical_lines(data: bytes) -> int:
    breaks = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    return breaks + (1 if data and data[-1:] not in (b"\n", b"\r") else 0)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(["stray_quote", "quote_pair", "multiline_extra", "blank_lines",
                             "crlf", "multiline_partner"]),
       seed=st.integers(0, 10**6))
def test_no_physical_line_goes_unaccounted(tmp_path_factory, capsys, kind, seed):
    """Rows equal the file's physical lines, allowing for multi-line quoted fields and blank
    lines (run.json says how many); or exit 2 naming the line where the quote opened."""
    rnd = random.Random(seed)
    root = tmp_path_factory.mktemp("lines")
    exp = tiny_ring_export(root)
    table = "partners" if kind == "multiline_partner" else "events"
    path = exp / f"{table}.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    i = rnd.randrange(1, len(lines))
    if kind == "stray_quote":
        cells = lines[i].split(b",")
        c = rnd.randrange(len(cells))
        cells[c] = b'"' + cells[c]
        lines[i] = b",".join(cells)
    elif kind == "quote_pair":
        j = min(len(lines) - 1, i + rnd.randint(1, 5))
        lines[i] = lines[i].replace(b",", b',"', 1)
        lines[j] = lines[j].replace(b",", b'",', 1)
    elif kind == "multiline_extra":
        lines[0] = lines[0].rstrip(b"\r\n") + b",note\n"
        for k in range(1, len(lines)):
            note = b'"a\nb, ""c""\r\nd"' if rnd.random() < 0.05 else b"x"
            lines[k] = lines[k].rstrip(b"\r\n") + b"," + note + b"\n"
    elif kind == "blank_lines":
        for _ in range(rnd.randint(1, 4)):
            lines.insert(rnd.randrange(1, len(lines) + 1), rnd.choice([b"\n", b"\r\n"]))
    elif kind == "crlf":
        lines = [ln.rstrip(b"\n") + b"\r\n" for ln in lines]
    else:
        lines[1] = lines[1].replace(b"Promo Co", b'"Promo\nCo\r\n""Ltd"""', 1)
    data = b"".join(lines)
    path.write_bytes(data)
    out = root / "out"
    code = main(["run", str(exp), "--out", str(out), "--max-reject-rate", "0.5"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1
        assert f"{table}.csv: line " in err or "rows rejected" in err, err
    else:
        assert code == 0, err
        record = json.loads((out / "run.json").read_text())
        acc = record["lines"][table]
        assert acc["lines"] == _physical_lines(data)
        assert acc["records"] == record["tables"][table]["rows"]
        assert acc["lines"] == (acc["header_lines"] + acc["records"] + acc["blank_lines"]
                                + acc["lines_in_fields"])
        if kind in ("blank_lines", "crlf"):
            assert acc["lines_in_fields"] == 0
    shutil.rmtree(root, ignore_errors=True)


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(picks=st.lists(st.sampled_from(["k1", "k2", "s1", "h007", "c03", "emu-1", "hphone3",
                                       "198.51.100.7", "10.1.4.1", "office-pc"]),
                      min_size=1, max_size=4),
       seps=st.lists(st.sampled_from([" ", "/", ":", "(", ")", ", ", "-", "=", "\n", "'s "]),
                     min_size=5, max_size=5),
       where=st.sampled_from(["name", "partner_type"]))
def test_no_raw_id_in_management_outputs_for_ids_inside_free_text(tmp_path_factory, picks,
                                                                  seps, where):
    from analysis import pipeline, report
    from analysis.notebook.runner import export_charts
    from analysis.pseudonym import leaks

    root = tmp_path_factory.mktemp("ids")
    exp = tiny_ring_export(root)
    text = "x" + "".join(s + p for s, p in zip(seps, picks)) + seps[-1]
    p = pd.read_csv(exp / "partners.csv", dtype=str, keep_default_na=False)
    p.loc[p["partner_id"] == "P1", where] = text
    p.to_csv(exp / "partners.csv", index=False)
    ex, findings = pipeline.open_findings(exp, progress=False)
    mgmt = report.management(ex, findings)
    written = export_charts(mgmt.figures, root / "charts", formats=())
    page = report.write_report(findings, ex, root / "report.html",
                               figures=list(mgmt.figures.values()), lines=mgmt.lines,
                               pseudonyms=mgmt.pseudonyms)
    for path in [page] + written:
        body = path.read_text(encoding="utf-8")
        assert leaks(body, picks) == set(), (path.name, text)
    ex.con.close()
    shutil.rmtree(root, ignore_errors=True)
