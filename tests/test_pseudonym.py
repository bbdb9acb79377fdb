"""Pseudonyms: consistent within a run, rings told apart, raw ids never shown."""

from analysis import pipeline
from analysis.pseudonym import Pseudonyms, leaks, ring_label


def test_ring_members_are_numbered_per_ring_in_member_order():
    ps = Pseudonyms.from_rings(
        members=[("ring-001", "u9"), ("ring-001", "u2"), ("ring-003", "u5")],
        entities=[("ring-001", "device", "d1"), ("ring-001", "device", "d7"),
                  ("ring-003", "ip", "10.0.0.1"), ("ring-003", "device", "d1")],
        key=b"fixed")
    assert [ps.account(a) for a in ("u9", "u2", "u5")] == ["R1-A01", "R1-A02", "R3-A01"]
    # d1 is used by both rings: the better-ranked ring names it.
    assert [ps.device("d1"), ps.device("d7"), ps.ip("10.0.0.1")] == ["R1-D01", "R1-D02",
                                                                    "R3-IP01"]


def test_consistent_within_a_run_and_keyed_outside_rings():
    a = Pseudonyms.from_rings([("ring-001", "x")], key=b"run-1")
    b = Pseudonyms.from_rings([("ring-001", "x")], key=b"run-2")
    # the same id gets the same token every time within a run ...
    assert a.account("outsider") == a.account("outsider")
    assert a.account("outsider").startswith("A-") and "outsider" not in a.account("outsider")
    # ... distinct ids get distinct tokens, and another run's key gives other tokens
    assert a.account("outsider") != a.account("outsider2")
    assert a.account("outsider") != b.account("outsider")
    assert a.ip("192.0.2.1").startswith("IP-") and a.device("dev").startswith("D-")
    # kinds do not collide: an account and a device with the same raw id differ
    assert a.account("same") != a.device("same")


def test_for_findings_covers_the_ring_and_scrubs_text(ring_export):
    export, findings = pipeline.open_findings(ring_export)
    ps = Pseudonyms.for_findings(findings)
    key = ps.table()
    assert set(key.loc[key["kind"] == "account", "raw_id"]) == {"k1", "k2", "k3", "s1"}
    assert set(key.loc[key["kind"] == "device", "raw_id"]) == {"emu-1", "s1-laptop"}
    assert set(key.loc[key["kind"] == "ip", "raw_id"]) == {"198.51.100.7"}
    assert all(p.startswith("R1-") for p in key["pseudonym"])
    assert key["pseudonym"].is_unique
    text = ps.scrub("k1 and s1 used emu-1 on 198.51.100.7; k10 is someone else")
    assert text == (f"{ps.account('k1')} and {ps.account('s1')} used {ps.device('emu-1')} on "
                    f"{ps.ip('198.51.100.7')}; k10 is someone else")
    assert ring_label("ring-001") == "Ring 1"


def test_hostile_ids_get_plain_pseudonyms():
    evil = '<img src=x onerror="alert(1)">'
    ps = Pseudonyms.from_rings([("ring-002", evil)], key=b"k")
    assert ps.account(evil) == "R2-A01"
    assert "<" not in ps.account("<script>") and ">" not in ps.device("a>b")


def test_leaks_finds_whole_ids_only():
    page = "<p>R1-A01 read a0001 from 10.0.0.9; not a00011</p>"
    assert leaks(page, ["a0001", "a000", "10.0.0.9", "0.0.9"]) == {"a0001", "10.0.0.9"}
    bundle = "<script>" + "var a0001;" * 20000 + "</script>"
    assert leaks(bundle + "<p>clean</p>", ["a0001"]) == set()
