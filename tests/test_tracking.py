"""Rings week after week: keys, statuses, verdicts, the CLI's errors, warm starts and hand-off.

Two hand-built weekly exports (each holds one week's events) with crews the
detector flags: each crew reads strangers of its own from one emulator and one
IP nobody else uses (three or more accounts that each harvest: crew evidence).
The statuses expected in week 2 are written beside each crew.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from conftest import ACCOUNTS_H, EVENTS_H, PARTNERS_H, tiny_ring_export, write_table

from analysis import tracking
from analysis.cli import main
from analysis.params import TrackingParams

T1 = datetime(2020, 3, 2)          # week 1
T2 = T1 + timedelta(days=7)        # week 2
STRANGERS = 80                     # each crew member reaches 80 strangers: 80× the floor

#: crew → (week-1 members and device, week-2 members and device), and what week 2 is.
CREWS = {
    "A": ((["a1", "a2", "a3"], "emu-A"), (["a1", "a2", "a3"], "emu-A")),     # continuing
    "B": ((["b1", "b2", "b3"], "emu-B"),
          (["b1", "b2", "b3", "b4", "b5"], "emu-B")),                          # grown (3 → 5)
    "C": ((["c1", "c2", "c3"], "emu-C"), (["c1", "c2", "c3"], "emu-CD")),    # C and D merged
    "D": ((["d1", "d2", "d3"], "emu-D"), (["d1", "d2", "d3"], "emu-CD")),
    "E1": ((["e1", "e2", "e3"], "emu-E"), (["e1", "e2", "e3"], "emu-E1")),   # E split in two
    "E2": ((["e4", "e5", "e6"], "emu-E"), (["e4", "e5", "e6"], "emu-E2")),
    "G": ((["g1", "g2", "g3"], "emu-G"), ([], None)),                         # gone (active)
    "H": ((["h1", "h2", "h3"], "emu-H"), ([], None)),                         # dormant (silent)
    "N": (([], None), (["n1", "n2", "n3"], "emu-N")),                         # new
}



def _ip_of(device: str) -> str:
    """A documentation-range IPv6 address of the crew's own (the contract wants real IPs)."""
    import hashlib

    h = hashlib.sha256(device.encode()).hexdigest()
    return f"2001:db8::{h[0:4]}:{h[4:8]}:{h[8:12]}:{h[12:16]}"

def _ts(d: datetime) -> str:
    return d.isoformat() + "Z"


def weekly_export(root, week: int, crews=CREWS, prefix: str = "x"):
    """One week's export: the crews of ``week`` (1 or 2), a background of 150 browsers."""
    exp = root / f"export-w{week}"
    t0 = T1 if week == 1 else T2
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    members = sorted({a for w1, w2 in crews.values() for a in w1[0] + w2[0]})
    accounts = [[f"{prefix}m1", "merchant", "2019-02-01", "P1"]]
    accounts += [[f"{prefix}{a}", "customer", "2019-09-01", ""] for a in members]
    accounts += [[f"{prefix}h{i:03d}", "customer", "2019-07-01", ""] for i in range(150)]
    accounts += [[f"{prefix}u{c}{i:02d}", "customer", "2019-06-01", ""] for c in crews
                 for i in range(STRANGERS)]
    events = []
    for i in range(150):
        for k in range(3):
            events.append([_ts(t0 + timedelta(hours=i % 48, minutes=17 * k)), f"{prefix}h{i:03d}",
                           f"hphone{i}", f"10.1.0.{i}", ("login", "search", "view_item")[k],
                           f"{prefix}m1" if k == 2 else "", "0"])
    for c, weeks in crews.items():
        who, device = weeks[week - 1]
        for j, a in enumerate(who):
            for i in range(STRANGERS):
                events.append([_ts(t0 + timedelta(days=1, minutes=i, seconds=j)), f"{prefix}{a}",
                               device, _ip_of(device), "view_profile",
                               f"{prefix}u{c}{i:02d}", "1"])
    if week == 2:   # crew G is still about, but reads nothing; crew H is silent
        for a in ("g1", "g2", "g3"):
            events.append([_ts(t0 + timedelta(days=2)), f"{prefix}{a}", f"own-{a}",
                           f"10.9.0.{a[1]}", "login", "", "0"])
    write_table(exp / "partners.csv", PARTNERS_H, partners)
    write_table(exp / "accounts.csv", ACCOUNTS_H, accounts)
    write_table(exp / "events.csv", EVENTS_H, events)
    return exp


def _crew_of(members: pd.DataFrame) -> dict[str, frozenset]:
    return {r: frozenset(a[1:] for a in g["account_id"]) for r, g in members.groupby("ring_id")}


@pytest.fixture(scope="module")
def two_weeks(tmp_path_factory):
    root = tmp_path_factory.mktemp("weekly")
    out1, out2 = root / "w1", root / "w2"
    assert main(["run", str(weekly_export(root, 1)), "--out", str(out1), "--no-progress"]) == 0
    exp2 = weekly_export(root, 2)
    assert main(["run", str(exp2), "--out", str(out2), "--previous", str(out1),
                 "--no-progress"]) == 0
    return root, out1, out2, exp2


def _by_members(out):
    rings = pd.read_csv(out / "rings.csv", dtype=str, keep_default_na=False)
    members = pd.read_csv(out / "ring_members.csv", dtype=str, keep_default_na=False)
    crews = _crew_of(members)
    return {crews[r["ring_id"]]: r for _, r in rings.iterrows()}


def test_week_two_statuses_against_week_one(two_weeks):
    _, out1, out2, _ = two_weeks
    w1, w2 = _by_members(out1), _by_members(out2)
    key1 = {m: r["ring_key"] for m, r in w1.items()}
    # Week 1: eight crews, eight rings, keys RK-0001.. in rank order; E is one ring of six.
    assert set(w1) == {frozenset(x) for x in (["a1", "a2", "a3"], ["b1", "b2", "b3"],
                       ["c1", "c2", "c3"], ["d1", "d2", "d3"], ["g1", "g2", "g3"],
                       ["h1", "h2", "h3"], [f"e{i}" for i in range(1, 7)])}
    assert all(r["flagged"] == "true" for r in w1.values())
    assert sorted(key1.values()) == [f"RK-000{i}" for i in range(1, 8)]
    A, B = frozenset({"a1", "a2", "a3"}), frozenset({"b1", "b2", "b3"})
    C, D = frozenset({"c1", "c2", "c3"}), frozenset({"d1", "d2", "d3"})
    E = frozenset(f"e{i}" for i in range(1, 7))
    # continuing: same members, same key
    assert w2[A]["status"] == "continuing" and w2[A]["ring_key"] == key1[A]
    # grown: b4, b5 joined; keeps B's key (Jaccard 3/5 = 0.6)
    B2 = B | {"b4", "b5"}
    assert w2[B2]["status"] == "grown" and w2[B2]["ring_key"] == key1[B]
    # merged: C and D on one device now; the ring names both keys and keeps one of them
    CD = C | D
    assert w2[CD]["status"] == "merged"
    assert w2[CD]["status_detail"] == f"merged {', '.join(sorted([key1[C], key1[D]]))}"
    assert w2[CD]["ring_key"] in {key1[C], key1[D]}
    # split: E's halves are two rings, both "split from" E's key; one of them keeps it
    E1, E2 = frozenset({"e1", "e2", "e3"}), frozenset({"e4", "e5", "e6"})
    assert {w2[E1]["status"], w2[E2]["status"]} == {"split"}
    assert all(f"split from {key1[E]}" in w2[x]["status_detail"] for x in (E1, E2))
    assert sorted([w2[E1]["ring_key"] == key1[E], w2[E2]["ring_key"] == key1[E]]) == [False,
                                                                                       True]
    # new: crew N gets the next key after the largest ever given
    N = frozenset({"n1", "n2", "n3"})
    assert w2[N]["status"] == "new"
    keys2 = [r["ring_key"] for r in w2.values()]
    assert len(keys2) == len(set(keys2))                        # no two rings share a key
    assert sorted(k for k in keys2 if k not in key1.values()) == ["RK-0008", "RK-0009"]
    # gone and dormant, and the merged-away key, in ring_changes.csv
    ch = pd.read_csv(out2 / "ring_changes.csv", dtype=str, keep_default_na=False)
    ch = ch.set_index("ring_key")
    G, H = frozenset({"g1", "g2", "g3"}), frozenset({"h1", "h2", "h3"})
    assert ch.loc[key1[G], "status"] == "gone"
    assert "active but no longer form a ring" in ch.loc[key1[G], "detail"]
    assert ch.loc[key1[H], "status"] == "dormant"
    assert ch.loc[key1[H], "detail"].startswith("no activity of its members since 2020-03-03")
    lost = ({key1[C], key1[D]} - {w2[CD]["ring_key"]}).pop()
    assert ch.loc[lost, "status"] == "merged"
    assert ch.loc[lost, "detail"] == f"merged into {w2[CD]['ring_key']}"
    record = json.loads((out2 / "run.json").read_text())
    assert record["tracking"]["last_key"] == 9


def test_alert_counts_and_ledger(two_weeks):
    _, out1, out2, _ = two_weeks
    record = json.loads((out2 / "run.json").read_text())
    alerts = record["tracking"]["alerts"]
    # now flagged: A, B, CD, E1, E2, N = 6; before: 7 keys. New keys: N and one E half.
    assert alerts["flagged"] == 6 and alerts["new"] == 2 and alerts["continuing"] == 4
    # closed: G, H and the merged-away key of C or D
    assert alerts["closed"] == 3
    ledger = pd.read_csv(out2 / "ring_keys.csv", dtype=str, keep_default_na=False)
    gone = ledger[ledger["present"] == "false"]
    assert len(gone) == 3 and set(gone["absent_runs"]) == {"1"}


def test_unchanged_members_always_keep_the_key(tmp_path):
    exp = tiny_ring_export(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(exp), "--out", str(a)]) == 0
    assert main(["run", str(exp), "--out", str(b), "--previous", str(a)]) == 0
    ra = pd.read_csv(a / "rings.csv", dtype=str, keep_default_na=False)
    rb = pd.read_csv(b / "rings.csv", dtype=str, keep_default_na=False)
    assert ra["ring_key"].tolist() == rb["ring_key"].tolist()
    assert set(rb["status"]) == {"continuing"}
    # --previous may be the output folder itself (replaced atomically at the end)
    assert main(["run", str(exp), "--out", str(b), "--previous", str(b)]) == 0
    assert pd.read_csv(b / "rings.csv", dtype=str)["ring_key"].tolist() == ra["ring_key"].tolist()


# -- the matching on hand-built ring tables -----------------------------------------------------

def _prev(rows):
    return pd.DataFrame(rows, columns=["ring_key", "ring_id", "members", "devices", "ips",
                                       "partner_ids", "present", "absent_runs", "last_seen"])


def test_assign_keys_on_hand_built_tables():
    prev = _prev([
        ["RK-0001", "ring-001", "a1;a2;a3;a4", "", "", "", True, 0, "2020-03-03T00:00:00Z"],
        ["RK-0002", "ring-002", "b1;b2;b3", "", "", "", True, 0, "2020-03-03T00:00:00Z"],
        ["RK-0003", "ring-003", "c1;c2;c3", "", "", "", True, 0, "2020-03-03T00:00:00Z"],
        ["RK-0004", "ring-004", "d1;d2;d3", "", "", "", True, 0, "2020-03-03T00:00:00Z"],
        ["RK-0005", "ring-005", "e1;e2;e3;e4;e5;e6", "", "", "", True, 0, "2020-03-03T00:00:00Z"],
        ["RK-0006", "ring-006", "f1;f2", "", "", "", True, 0, "2020-03-03T00:00:00Z"],
        ["RK-0007", "ring-007", "g1;g2", "", "", "", True, 0, "2020-03-03T00:00:00Z"],
        ["RK-0008", "ring-008", "s1;s2;s3;s4;s5", "", "", "", True, 0, "2020-03-03T00:00:00Z"],
        ["RK-0009", "ring-009", "r1;r2", "emu-9", "", "P9", True, 0, "2020-03-03T00:00:00Z"],
        ["RK-0010", "", "z1;z2;z3", "", "", "", False, 2, "2020-02-01T00:00:00Z"],
    ])
    cur = pd.DataFrame({"ring_id": [f"ring-{i:03d}" for i in range(1, 11)], "members": [
        "a1;a2;a3;a4",           # continuing RK-0001 (identical)
        "b1;b2;b3;b4;b5",        # grown RK-0002 (J 0.6)
        "c1;c2;c3;d1;d2;d3",     # merged RK-0003, RK-0004 (keeps RK-0003: equal J, lower key)
        "e1;e2;e3",              # split from RK-0005, keeps it (equal J, first in rank)
        "e4;e5;e6",              # split from RK-0005, new key
        "s1;s2;s3",              # shrunk RK-0008 (5 -> 3)
        "r3;r4",                 # continuing RK-0009: rotated accounts, same emulator, P9
        "n1;n2;n3",              # new
        "z1;z2;z3",              # RK-0010 back after 2 runs without it
        "f1",                    # shrunk RK-0006: f1 alone is J 0.5 with {f1, f2}
    ], "devices": ["", "", "", "", "", "", "emu-9", "", "", ""],
        "partner_ids": ["", "", "", "", "", "", "P9", "", "", ""]})
    activity = {"g1": pd.Timestamp("2020-03-01")}   # g1, g2 silent since: dormant
    a, ch, last = tracking.assign_keys(cur, prev, 10, TrackingParams(), activity)
    got = dict(zip(a["ring_id"], zip(a["ring_key"], a["status"])))
    assert got == {
        "ring-001": ("RK-0001", "continuing"), "ring-002": ("RK-0002", "grown"),
        "ring-003": ("RK-0003", "merged"), "ring-004": ("RK-0005", "split"),
        "ring-005": ("RK-0011", "split"), "ring-006": ("RK-0008", "shrunk"),
        "ring-007": ("RK-0009", "continuing"), "ring-008": ("RK-0012", "new"),
        "ring-009": ("RK-0010", "continuing"), "ring-010": ("RK-0006", "shrunk")}
    assert last == 12
    detail = dict(zip(a["ring_id"], a["detail"]))
    assert detail["ring-003"] == "merged RK-0003, RK-0004"
    assert detail["ring-004"].startswith("split from RK-0005 (keeps its key")
    assert detail["ring-005"] == "split from RK-0005"
    assert "matched on the devices and IPs" in detail["ring-007"]
    assert detail["ring-009"].endswith("back after 2 runs without it")
    ch = ch.set_index("ring_key")
    assert ch.loc["RK-0004", "status"] == "merged" and ch.loc["RK-0004", "detail"] == \
        "merged into RK-0003"
    assert ch.loc["RK-0007", "status"] == "dormant"
    # Deterministic: the same answer whatever order the previous rings come in.
    a2, _, _ = tracking.assign_keys(cur, prev.iloc[::-1], 10, TrackingParams(), activity)
    assert a2[["ring_id", "ring_key", "status"]].equals(a[["ring_id", "ring_key", "status"]])


def test_identical_members_keep_their_key_even_when_another_ring_overlaps_more():
    # Previous RK-0001 = {a,b}, RK-0002 = {a,b,c,d}. Now {a,b} and {c,d,e}: {a,b} is
    # identical to RK-0001 and keeps it, though it is half of RK-0002 too.
    prev = _prev([["RK-0001", "ring-001", "a;b", "", "", "", True, 0, ""],
                  ["RK-0002", "ring-002", "a;b;c;d", "", "", "", True, 0, ""]])
    cur = pd.DataFrame({"ring_id": ["ring-001", "ring-002"], "members": ["a;b", "c;d;e"]})
    a, _, _ = tracking.assign_keys(cur, prev, 2)
    assert a["ring_key"].tolist() == ["RK-0001", "RK-0002"]


# -- verdicts -----------------------------------------------------------------------------------

def test_dismissed_stays_unflagged_unless_it_grew(two_weeks, tmp_path):
    root, out1, _, exp2 = two_weeks
    w1 = _by_members(out1)
    A, B = frozenset({"a1", "a2", "a3"}), frozenset({"b1", "b2", "b3"})
    cases = tmp_path / "cases.csv"
    tracking.record_verdict(cases, w1[A]["ring_key"], "dismissed", "a test crew",
                            "2020-03-05T10:00:00Z", run=out1)
    tracking.record_verdict(cases, w1[B]["ring_key"], "dismissed", "looked harmless",
                            "2020-03-05T10:05:00Z", run=out1)
    out = tmp_path / "w2"
    assert main(["run", str(exp2), "--out", str(out), "--previous", str(out1), "--cases",
                 str(cases), "--no-progress"]) == 0
    w2 = _by_members(out)
    a = w2[A]
    assert a["flagged"] == "false" and a["detector_flagged"] == "true"
    assert a["verdict"] == "dismissed"
    assert a["reasons"].startswith("not flagged again: dismissed on 2020-03-05 and it did not "
                                   "grow materially since (0 new members, 0 new devices or IPs")
    b = w2[B | {"b4", "b5"}]
    assert b["flagged"] == "true"
    assert b["reasons"].startswith("flagged again: dismissed on 2020-03-05, but it grew "
                                   "materially since (2 new members")


def test_confirmed_stays_in_the_queue_with_growth(two_weeks, tmp_path):
    _, out1, _, exp2 = two_weeks
    from analysis import pipeline

    key_b = _by_members(out1)[frozenset({"b1", "b2", "b3"})]["ring_key"]
    cases = tmp_path / "cases.csv"
    tracking.record_verdict(cases, key_b, "confirmed", "crawler", "2020-03-05T10:00:00Z",
                            run=out1)
    _, f = pipeline.open_findings(exp2, None, 7, previous=out1, cases=cases, progress=False)
    q = tracking.alert_queue(f)
    assert q["status"].iloc[0] == "new"                       # new first, then grown, ...
    row = q[q["ring_key"] == key_b].iloc[0]
    assert row["verdict"] == "confirmed" and row["since_verdict"].startswith("2 new members")
    # The notebook's path: record from the tracked findings, the old line kept as history.
    tracking.record_verdict(cases, key_b, "monitoring", "watch it", findings=f)
    lines = pd.read_csv(cases, dtype=str, keep_default_na=False)
    assert lines["verdict"].tolist() == ["confirmed", "monitoring"]
    assert lines["superseded_at"].iloc[0] != "" and lines["superseded_at"].iloc[1] == ""
    assert lines["n_accounts"].iloc[1] == "5"


# -- what makes a run impossible: exit 2, one line ----------------------------------------------

def test_previous_missing_or_of_another_export(two_weeks, tmp_path, capsys):
    _, out1, _, _ = two_weeks
    exp = tiny_ring_export(tmp_path)
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(tmp_path / "o"), "--previous",
                 str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --previous {tmp_path / 'nowhere'}: no such folder"
    assert main(["run", str(exp), "--out", str(tmp_path / "o"), "--previous", str(out1)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "that run is of another export" in err
    assert not (tmp_path / "o").exists()
    assert main(["run", str(exp), "--out", str(tmp_path / "o"), "--previous", str(exp)]) == 2
    assert "not a ringscope output folder" in capsys.readouterr().err


def test_cases_errors_and_unknown_key_warning(two_weeks, tmp_path, capsys, caplog):
    _, out1, _, exp2 = two_weeks
    cases = tmp_path / "cases.csv"
    cases.write_text("ring_key,verdict,note,decided_at\nRK-0099,dismissed,old,2020-03-01\n"
                     "RK-0001,maybe,?,2020-03-01\n")
    out = tmp_path / "o"
    capsys.readouterr()
    assert main(["run", str(exp2), "--out", str(out), "--previous", str(out1), "--cases",
                 str(cases), "--no-progress"]) == 0
    # Warnings: one line each through logging (the CLI shows them on stderr).
    err = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("ring_key RK-0099 is not a ring of this run or of the previous one" in e
               for e in err)
    assert any("verdict 'maybe' is not one of" in e for e in err)
    assert main(["run", str(exp2), "--out", str(out), "--cases", str(cases)]) == 2
    assert "--cases needs --previous" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("ring_key,verdict\nRK-0001,dismissed\n")
    assert main(["run", str(exp2), "--out", str(out), "--previous", str(out1), "--cases",
                 str(bad)]) == 2
    assert "missing column(s) note, decided_at" in capsys.readouterr().err


# -- warm starts and hand-off -------------------------------------------------------------------

def test_warm_start_is_recorded(two_weeks, tmp_path):
    _, out1, out2, exp2 = two_weeks
    rec = json.loads((out2 / "run.json").read_text())
    assert rec["warm_start"]["used"] is False and "takes no starting partition" in \
        rec["warm_start"]["why_not"]
    out = tmp_path / "leiden"
    assert main(["run", str(exp2), "--out", str(out), "--previous", str(out1), "--communities",
                 "leiden"]) == 0
    rec = json.loads((out / "run.json").read_text())
    assert rec["warm_start"]["used"] is True and rec["warm_start"]["seeded_nodes"] > 0


def test_handoff_writes_gexf_graphml_and_neo4j(two_weeks, tmp_path):
    import networkx as nx

    _, out1, _, exp2 = two_weeks
    out = tmp_path / "h"
    assert main(["run", str(exp2), "--out", str(out), "--previous", str(out1), "--handoff",
                 "1"]) == 0
    key = pd.read_csv(out / "rings.csv", dtype=str)["ring_key"].iloc[0]
    where = out / "handoff" / key
    g = nx.read_graphml(where / "ring.graphml")
    assert nx.read_gexf(where / "ring.gexf").number_of_nodes() == g.number_of_nodes() > 3
    nodes = pd.read_csv(where / "neo4j" / "nodes.csv", dtype=str)
    rels = pd.read_csv(where / "neo4j" / "relationships.csv", dtype=str)
    assert {"id:ID", ":LABEL"} <= set(nodes.columns)
    assert {":START_ID", ":END_ID", ":TYPE"} <= set(rels.columns)
    assert set(rels[":START_ID"]) | set(rels[":END_ID"]) <= set(nodes["id:ID"])
    assert "Account" in set(nodes[":LABEL"]) and "USES_DEVICE" in set(rels[":TYPE"])
    # real ids: the investigator's files (and never in the management page)
    assert any(i.startswith("account:x") for i in nodes["id:ID"])
    assert "handoff" not in (out / "report.html").read_text()


# -- the weekly replay of keys (workshop) -------------------------------------------------------

def test_weekly_keys_in_memory_and_through_the_cli_agree(tmp_path):
    from analysis.workshop.weekly import weekly_keys

    exp = tiny_ring_export(tmp_path)
    dates = ["2020-01-11", "2020-01-13", "2020-01-14", "2020-01-20"]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"account_id": ["s1", "k1", "k2", "k3"], "ring_id": "R1"}).to_csv(labels,
                                                                                  index=False)
    mem = weekly_keys(exp, dates, labels=labels)
    cli = weekly_keys(exp, dates, labels=labels, use_cli=True, work=tmp_path / "runs")
    # Nothing is knowable on the 11th; the ring is flagged from the 13th and keeps its key.
    assert mem.weeks["flagged"].tolist() == [0, 1, 1, 1]
    assert mem.weeks["eligible"].tolist()[2:] == [1, 1] and mem.summary["survival"] == 1.0
    assert mem.summary["shared_keys"] == 0 and mem.summary["median_key_changes"] == 0
    assert mem.rings["ring"].tolist() == ["R1"] and mem.rings["weeks"].tolist() == [3]
    assert cli.weeks.equals(mem.weeks) and cli.rings.equals(mem.rings)


def test_management_page_counts_changes_without_ids(two_weeks):
    _, _, out2, exp2 = two_weeks
    page = (out2 / "report.html").read_text(encoding="utf-8")
    assert ("Since the previous run: 2 rings newly flagged, 4 rings still flagged (2 of them "
            "grew) and 3 rings closed") in page
    from analysis.pseudonym import leaks

    acc = set(pd.read_csv(exp2 / "accounts.csv", dtype=str)["account_id"])
    assert leaks(page, acc) == set()


def test_evaluate_against_verdicts(two_weeks, tmp_path):
    from analysis.workshop.evaluate import evaluate_verdicts

    _, out1, out2, _ = two_weeks
    w1 = _by_members(out1)
    cases = tmp_path / "cases.csv"
    tracking.record_verdict(cases, w1[frozenset({"a1", "a2", "a3"})]["ring_key"], "confirmed",
                            "", "2020-03-05T10:00:00Z")
    tracking.record_verdict(cases, w1[frozenset({"g1", "g2", "g3"})]["ring_key"], "dismissed",
                            "", "2020-03-05T10:00:00Z")
    res = evaluate_verdicts(out2, cases)
    # A is flagged in week 2 (confirmed, found); G is gone from week 2.
    assert res["confirmed_flagged"] == 1 and res["recall"] == 1.0 and res["precision"] == 1.0
    assert res["not_in_run"] == [w1[frozenset({"g1", "g2", "g3"})]["ring_key"]]
