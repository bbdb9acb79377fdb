"""The export contract: fatal errors, quarantined rows, odd but valid input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import ACCOUNTS_H, EVENTS_H, PARTNERS_H, write_table

from analysis.cli import main
from analysis.contract import ExportError
from analysis.load import load_export
from analysis.workspace import open_workspace


def small_export(root: Path, events: list[list[object]] | None = None,
                 accounts: list[list[object]] | None = None) -> Path:
    exp = root / "exp"
    write_table(exp / "partners.csv", PARTNERS_H, [["P1", "Promo", "promotions", "2019-01-01"]])
    write_table(exp / "accounts.csv", ACCOUNTS_H, accounts or [
        ["a1", "customer", "2019-01-01", ""], ["a2", "partner_staff", "2019-01-01", "P1"],
        ["m1", "merchant", "2019-01-01", "P1"]])
    write_table(exp / "events.csv", EVENTS_H, events if events is not None else [
        ["2020-01-01T10:00:00Z", "a1", "d1", "10.0.0.1", "order", "m1", ""],
        ["2020-01-01T11:00:00+08:00", "a2", "d2", "10.0.0.2", "view_profile", "a1", "1"]])
    return exp


def load(exp: Path, tmp: Path, rate: float = 1.0):
    con = open_workspace()
    return load_export(exp, con, tmp / "rejects", max_reject_rate=rate), con


def test_quarantine_reasons_and_accounting(tmp_path):
    exp = small_export(tmp_path, events=[
        ["2020-01-01T10:00:00Z", "a1", "d1", "10.0.0.1", "order", "m1", ""],   # ok
        ["yesterday", "a1", "", "", "login", "", ""],                          # bad ts
        ["2020-01-01", "", "", "", "login", "", ""],                           # empty account
        ["2020-01-01", "ghost", "", "", "login", "", ""],                      # unknown account
        ["2020-01-01", "a1", "", "", "teleport", "", ""],                      # unknown type
        ["2020-01-01", "a1", "", "", "search", "", "-2"],                      # negative
        ["2020-01-01", "a1", "", "", "search", "", "2.5"],                     # non-integer
        ["2020-01-01", "a1", "", "", "Search", "", "3"],                       # ok (case)
    ], accounts=[["a1", "customer", "2019-01-01", ""], ["a1", "merchant", "2019-01-01", ""],
                 ["m1", "merchant", "2019-01-01", "P9"], ["m2", "merchant", "2019-01-01", "P1"]])
    export, con = load(exp, tmp_path)
    assert export.counts["events"].as_dict() == {"rows": 8, "accepted": 2, "rejected": 6}
    assert export.counts["accounts"].as_dict() == {"rows": 4, "accepted": 2, "rejected": 2}
    rej = pd.read_csv(tmp_path / "rejects" / "events.csv", dtype=str, keep_default_na=False)
    assert rej["reason"].tolist() == [
        "bad ts timestamp", "empty account_id", "account_id not in accounts",
        "unknown event_type", "records is not an integer >= 0", "records is not an integer >= 0"]
    assert rej["source_row"].tolist() == ["2", "3", "4", "5", "6", "7"]
    assert rej["records"].tolist()[4] == "'-2"  # neutralised, still readable
    acc = pd.read_csv(tmp_path / "rejects" / "accounts.csv", dtype=str, keep_default_na=False)
    # m1 is rejected for its unknown partner; the order targeting it stays, because
    # targets need not be accounts.
    assert sorted(acc["reason"]) == ["duplicate account_id (first row kept)",
                                     "partner_id not in partners"]


def test_odd_but_valid_csv(tmp_path):
    exp = tmp_path / "exp"
    write_table(exp / "partners.csv", PARTNERS_H, [["P1", 'Promo, "the" Co\nLtd', "promotions",
                                                    "2019-01-01T00:00:00+08:00"]])
    (exp / "accounts.csv").write_bytes(
        b"\xef\xbb\xbf Account_ID ,ACCOUNT_TYPE,created_at,partner_id,extra\r\n"
        b"a1,customer,2019-01-01T00:00:00-05:00,,x\r\n" + b"a2,customer,2019-01-01,," + b"y" * 200000 + b"\r\n")
    with gzip.open(exp / "events.csv.gz", "wt", newline="") as fh:
        fh.write("ts,account_id,device_id,ip,event_type,target_id,records\r\n"
                 "2020-01-01T10:00:00Z,a1,d1,2001:db8::1,login,,\r\n")
    export, con = load(exp, tmp_path, rate=0.0)
    assert {k: v.rejected for k, v in export.counts.items()} == {"partners": 0, "accounts": 0,
                                                                 "events": 0}
    assert con.execute("SELECT name FROM partners").fetchone()[0] == 'Promo, "the" Co\nLtd'
    created = con.execute("SELECT created_at FROM accounts ORDER BY aid").fetchall()
    assert str(created[0][0]) == "2019-01-01 05:00:00"  # offset applied, stored in UTC


@pytest.mark.parametrize("problem, setup", [
    ("missing", lambda e: (e / "events.csv").unlink()),
    ("given twice", lambda e: (e / "events.parquet").write_bytes(b"PAR1")),
    ("missing required column 'event_type'", lambda e: (e / "events.csv").write_text(
        "ts,account_id,device_id,ip,target_id,records\n")),
    ("unreadable", lambda e: ((e / "events.csv").unlink(),
                              (e / "events.csv.gz").write_bytes(
                                  gzip.compress(b"ts,account_id,event_type,target_id\n" * 500)[:60]))),
    ("empty", lambda e: (e / "accounts.csv").write_text("")),
])
def test_fatal_errors_exit_2_with_one_line(tmp_path, capsys, problem, setup):
    exp = small_export(tmp_path)
    setup(exp)
    code = main(["run", str(exp), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert problem in err and str(exp) in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_parquet_with_wrong_types_is_fatal(tmp_path, capsys):
    exp = small_export(tmp_path)
    (exp / "events.csv").unlink()
    pd.DataFrame({"ts": [1.5], "account_id": ["a1"], "event_type": ["login"],
                  "target_id": [""]}).to_parquet(exp / "events.parquet")
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "events.parquet" in err and "'ts' has type DOUBLE" in err


def test_parquet_export_matches_csv(tmp_path):
    exp = small_export(tmp_path)
    ev = pd.read_csv(exp / "events.csv", dtype=str, keep_default_na=False)
    (exp / "events.csv").unlink()
    ev["records"] = pd.array([None, 1], dtype="Int64")
    ev.to_parquet(exp / "events.parquet")
    export, con = load(exp, tmp_path, rate=0.0)
    assert export.counts["events"].accepted == 2
    assert con.execute("SELECT sum(rec) FROM ev").fetchone()[0] == 2  # empty records means 1


def test_reject_rate_limit(tmp_path, capsys):
    exp = small_export(tmp_path, events=[["bad", "a1", "", "", "login", "", ""]] * 3 + [
        ["2020-01-01", "a1", "", "", "login", "", ""]])
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 2
    assert "3 of 4 rows rejected" in capsys.readouterr().err
    assert main(["run", str(exp), "--out", str(tmp_path / "out"), "--max-reject-rate", "0.9"]) == 0
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["tables"]["events"] == {"rows": 4, "accepted": 1, "rejected": 3}


def test_header_only_events_give_an_empty_result(tmp_path):
    exp = small_export(tmp_path, events=[])
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    assert len(pd.read_csv(out / "rings.csv")) == 0
    assert "no usable events" in (out / "report.html").read_text()


def test_export_error_names_file():
    err = ExportError("x/events.csv", "missing required column 'ts'\n(really)")
    assert str(err) == "x/events.csv: missing required column 'ts' (really)"


def test_hostile_events_load_the_same_from_csv_and_parquet(tmp_path):
    # Parquet's key values are collected one column at a time, a CSV's in one scan:
    # the validated table and the quarantine must not depend on it.
    rows = [
        ["2020-01-01T10:00:00Z", " a1 ", "d1", "10.0.0.1", "ORDER", "m1", ""],
        ["2020-01-01T10:00:01Z", "a1", " d1", "10.0.0.1 ", "order", " m1", "2"],
        ["2020-01-01T10:00:02Z", "a2", "", "", "view_profile", "stranger", "1"],
        ["2020-01-01T10:00:03Z", "ghost", "d9", "10.0.0.9", "login", "", ""],
        ["2020-01-01T10:00:04Z", "", "d1", "10.0.0.1", "login", "", ""],
        ["not a time", "a1", "d1", "", "login", "", ""],
        ["2020-01-01T10:00:05Z", "a1", "d2", "", "teleport", "", ""],
        ["2020-01-01T10:00:06Z", "a2", "=cmd()", "10.0.0.2", " Search ", "", "-1"],
        ["2020-01-01T10:00:07Z", "m1", "=cmd()", "10.0.0.2", "view_comments", "a1", "7"],
    ]
    csv_dir = small_export(tmp_path / "csv", events=rows)
    pq_dir = small_export(tmp_path / "pq", events=rows)
    ev = pd.read_csv(pq_dir / "events.csv", dtype=str, keep_default_na=False)
    (pq_dir / "events.csv").unlink()
    ev.to_parquet(pq_dir / "events.parquet")
    seen = []
    for exp in (csv_dir, pq_dir):
        export, con = load(exp, exp)
        tables = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                  for t in ("ev", "devices", "ips", "targets")}
        seen.append((tables, export.reject_reasons["events"], export.counts["events"]))
    assert seen[0] == seen[1]
    assert seen[0][2].accepted == 4 and seen[0][2].rejected == 5


RELATIONSHIPS_H = ["merchant_id", "customer_id", "first_order_at"]


def test_relationships_are_optional_and_validated(tmp_path):
    exp = small_export(tmp_path)
    export, con = load(exp, tmp_path)
    assert "relationships" not in export.counts
    assert con.execute("SELECT count(*) FROM relationships").fetchone()[0] == 0
    write_table(exp / "relationships.csv", RELATIONSHIPS_H, [
        ["m1", "a1", "2018-05-01"],                # ok: an order from before the window
        ["m1", "a1", "2018-06-01"],                # duplicate pair
        ["", "a1", "2018-05-01"],                  # empty merchant
        ["ghost", "a1", "2018-05-01"],             # unknown merchant
        ["a2", "a1", "2018-05-01"],                # staff, not a merchant
        ["m1", "", "2018-05-01"],                  # empty customer
        ["m1", "nobody", "2018-05-01"],            # unknown customer
        ["m1", "a2", "soon"],                      # bad date
        [" m1 ", "a2", "2019-02-03T04:05:06+08:00"],  # ok (trimmed, offset)
    ])
    export, con = load(exp, tmp_path / "second")
    assert export.counts["relationships"].as_dict() == {"rows": 9, "accepted": 2, "rejected": 7}
    rej = pd.read_csv(tmp_path / "second" / "rejects" / "relationships.csv", dtype=str,
                      keep_default_na=False)
    assert rej["reason"].tolist() == [
        "duplicate merchant_id, customer_id (first row kept)", "empty merchant_id",
        "merchant_id not in accounts", "merchant_id is not a merchant account",
        "empty customer_id", "customer_id not in accounts", "bad first_order_at timestamp"]
    kept = con.execute("""SELECT m.account_id, c.account_id, r.first_order_at FROM relationships r
                          JOIN accounts m ON m.aid = r.merchant JOIN accounts c ON c.aid = r.buyer
                          ORDER BY 2""").fetchall()
    assert [(m, c, str(t)) for m, c, t in kept] == [
        ("m1", "a1", "2018-05-01 00:00:00"), ("m1", "a2", "2019-02-02 20:05:06")]


def test_relationships_tie_pre_window_clients(tmp_path):
    """A staff account of the merchant's partner re-reads a client whose only order is from
    before the window: untied without the platform's order history, tied with it, and not
    from a first order after the as-of date."""
    from analysis.aggregate import aggregate

    exp = small_export(tmp_path, events=[
        ["2020-01-01T10:00:00Z", "a1", "d1", "10.0.0.1", "login", "", ""],
        ["2020-01-02T11:00:00Z", "a2", "d2", "10.0.0.2", "view_profile", "a1", "1"]])

    def staff_reads(folder):
        _, con = load(exp, folder)
        acc = aggregate(con, "2020-01-05").accounts.set_index("account_id")
        return acc.loc["a2", "tied_users"], acc.loc["a2", "untied_users"]

    assert staff_reads(tmp_path / "without") == (0, 1)
    write_table(exp / "relationships.csv", RELATIONSHIPS_H, [["m1", "a1", "2019-03-01"]])
    assert staff_reads(tmp_path / "with") == (1, 0)
    write_table(exp / "relationships.csv", RELATIONSHIPS_H, [["m1", "a1", "2020-02-01"]])
    assert staff_reads(tmp_path / "later") == (0, 1)


def test_a_folder_holding_an_export_subfolder_gets_a_pointer(tmp_path, capsys):
    exp = small_export(tmp_path)
    parent = exp.parent / "case"
    exp.rename(parent / "export") if parent.mkdir() is None else None
    code = main(["run", str(parent), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"did you mean {parent / 'export'}?" in err


# -- issue 13: line accounting, the exact contract ---------------------------------------------

def _events_lines(n: int) -> list[list[object]]:
    return [[f"2020-01-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z", "a1", "d1", "10.0.0.1", "login",
              "", "0"] for i in range(n)]


@pytest.mark.parametrize("column", [2, 6])   # device_id in the middle, records at the end
def test_an_unterminated_quote_mid_file_is_fatal_naming_its_line(tmp_path, capsys, column):
    exp = small_export(tmp_path, events=_events_lines(40))
    ev = exp / "events.csv"
    lines = ev.read_text().splitlines(keepends=True)
    cells = lines[20].split(",")
    cells[column] = '"' + cells[column]
    lines[20] = ",".join(cells)
    ev.write_text("".join(lines))
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "events.csv: line 21:" in err and "never closed" in err and "21 lines" in err


def test_a_stray_quote_pair_spanning_lines_is_fatal(tmp_path, capsys):
    exp = small_export(tmp_path, events=_events_lines(30))
    ev = exp / "events.csv"
    lines = ev.read_text().splitlines(keepends=True)
    lines[5] = lines[5].replace(",d1,", ',"d1,', 1)
    lines[9] = lines[9].replace(",d1,", ',d1",', 1)
    ev.write_text("".join(lines))
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "events.csv: line 6 (data row 5): column 'device_id' holds a line break" in err


def test_rows_match_the_lines_allowing_multiline_fields_and_blank_lines(tmp_path):
    exp = small_export(tmp_path, events=_events_lines(12))
    write_table(exp / "partners.csv", PARTNERS_H, [["P1", "Promo\nCo\r\nLtd", "promo", ""],
                                                   ["P2", 'say "hi"', "isv", ""]])
    ev = exp / "events.csv"
    text = ev.read_text()
    ev.write_text(text.replace("\n", "\n\n", 1) + "\n")      # a blank line after the header
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--max-reject-rate", "0"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["tables"]["events"]["rows"] == 12
    for name, acc in record["lines"].items():
        assert acc["lines"] == (acc["header_lines"] + acc["records"] + acc["blank_lines"]
                                + acc["lines_in_fields"]), name
    assert record["lines"]["partners"]["lines_in_fields"] == 2
    assert record["lines"]["events"]["blank_lines"] == 2


def test_broken_lines_are_numbered_as_data_rows(tmp_path):
    exp = small_export(tmp_path)
    (exp / "events.csv").write_text(
        ",".join(EVENTS_H) + "\n"
        "2020-01-01T10:00:00Z,a1,d1,10.0.0.1,login,,\n"          # 1 ok
        "2020-01-01T10:00:00Z,a1\n"                               # 2 broken
        "yesterday,a1,d1,10.0.0.1,login,,\n"                      # 3 bad ts
        "2020-01-01T10:00:00Z,a1,d1\n")                           # 4 broken
    export, _ = load(exp, tmp_path)
    rej = pd.read_csv(tmp_path / "rejects" / "events.csv", dtype=str, keep_default_na=False)
    assert rej["source_row"].tolist() == ["2", "3", "4"]
    assert rej["reason"].str.startswith("unparseable").tolist() == [True, False, True]
    assert export.counts["events"].as_dict() == {"rows": 4, "accepted": 1, "rejected": 3}


BAD_VALUES = [
    ("records", "1e3"), ("records", "1_000"), ("records", "+3"), ("records", "3.0"),
    ("records", "0x10"), ("ts", "epoch"), ("ts", "2020-01-01T10:00:00+25:00"),
    ("ts", "2020-01-01T10:00:00 UTC"), ("ts", "2020-01-01 10:00:00 Europe/Berlin"),
    ("ts", "infinity"), ("ip", "999.1.1.1"), ("ip", "1.2.3"), ("ip", "home-router"),
    ("ip", "01.2.3.4"), ("ip", "2001:db8::g"), ("ts", "2099-12-31T00:00:00Z"),
]
GOOD_VALUES = [("records", " 3 "), ("records", "0"), ("ts", "2020-01-01T10:00:00+14:00"),
               ("ts", "2020-01-01T10:00:00.123Z"), ("ts", "2020-01-01"), ("ip", "::1"),
               ("ip", "2001:db8::1"), ("ip", " 10.0.0.1 "), ("ip", "")]
REASON = {"records": "records is not an integer >= 0", "ts": "bad ts timestamp",
          "ip": "ip is not an IPv4 or IPv6 address"}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_contract_is_exact_in_csv_and_parquet(tmp_path, fmt):
    col = {c: i for i, c in enumerate(EVENTS_H)}
    rows = []
    for name, value in BAD_VALUES + GOOD_VALUES:
        row = ["2020-01-01T10:00:00Z", "a1", "d1", "10.0.0.1", "login", "", "1"]
        row[col[name]] = value
        rows.append(row)
    exp = small_export(tmp_path, events=rows)
    if fmt == "parquet":
        ev = pd.read_csv(exp / "events.csv", dtype=str, keep_default_na=False)
        (exp / "events.csv").unlink()
        ev.to_parquet(exp / "events.parquet")
    export, _ = load(exp, tmp_path)
    rej = pd.read_csv(tmp_path / "rejects" / "events.csv", dtype=str, keep_default_na=False)
    expected = [REASON[n] for n, _ in BAD_VALUES]
    expected[-1] = "ts after the export's newest plausible time"
    assert rej["reason"].tolist() == expected
    assert rej["source_row"].tolist() == [str(i) for i in range(1, len(BAD_VALUES) + 1)]
    assert export.counts["events"].accepted == len(GOOD_VALUES)


def test_future_rows_beyond_the_exports_own_time_are_quarantined(tmp_path):
    # 2,000 events over a month of 2020 and two stray rows a year on: implausible by the
    # data itself (2021 is not in the future of the run).
    from datetime import datetime, timedelta

    t0 = datetime(2020, 3, 1)
    rows = [[(t0 + timedelta(minutes=20 * i)).isoformat() + "Z", "a1", "d1", "10.0.0.1",
             "login", "", "0"] for i in range(2000)]
    rows[700][0] = "2021-03-01T00:00:00Z"
    rows.append(["2021-04-01T00:00:00Z", "a1", "d1", "10.0.0.1", "login", "", "0"])
    exp = small_export(tmp_path, events=rows)
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["reject_reasons"]["events"] == {
        "ts after the export's newest plausible time": 2}
    assert record["newest_plausible_ts"].startswith("2020-03-28")
    rej = pd.read_csv(out / "rejects" / "events.csv", dtype=str)
    assert rej["source_row"].tolist() == ["701", "2001"]


def test_parquet_with_a_doubled_column_is_fatal_like_csv(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    exp = small_export(tmp_path)
    (exp / "events.csv").unlink()
    table = pa.table([pa.array(["2020-01-01T10:00:00Z"]), pa.array(["a1"]),
                      pa.array(["login"]), pa.array(["2021-01-01T10:00:00Z"])],
                     names=["ts", "account_id", "event_type", "TS"])
    pq.write_table(table, exp / "events.parquet")
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "events.parquet" in err and "column 'ts' appears twice" in err
