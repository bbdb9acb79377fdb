"""The detector on hand-built exports, with the expected answer worked out beside each.

Every export has the same honest background: 120 browsers (h000..h119), each on its
own phone and home IP, who read no profiles. Peer groups here are smaller than
``signals.MIN_PEERS``, so every account is judged against all active accounts,
whose 75th percentile of stranger reach is 0: the baseline is the floor of 1.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from conftest import ACCOUNTS_H, EVENTS_H, PARTNERS_H, write_table

from analysis.cli import main

T0 = datetime(2020, 3, 1)


def _ts(d: datetime) -> str:
    return d.isoformat() + "Z"


def _background(accounts: list, events: list) -> None:
    accounts += [[f"h{i:03d}", "customer", "2019-07-01", ""] for i in range(120)]
    for i in range(120):
        for k in range(3):
            events.append([_ts(T0 + timedelta(hours=i, minutes=17 * k)), f"h{i:03d}",
                           f"hphone{i}", f"10.1.{i // 250}.{i % 250}",
                           ("login", "search", "view_item")[k], "m1" if k == 2 else "", "0"])


def _run(tmp_path, partners, accounts, events):
    exp = tmp_path / "export"
    write_table(exp / "partners.csv", PARTNERS_H, partners)
    write_table(exp / "accounts.csv", ACCOUNTS_H, accounts)
    write_table(exp / "events.csv", EVENTS_H, events)
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--no-progress"]) == 0
    rings = pd.read_csv(out / "rings.csv")
    members = pd.read_csv(out / "ring_members.csv", dtype=str, keep_default_na=False)
    review = pd.read_csv(out / "partners_review.csv")
    flagged = rings[rings["flagged"].astype(bool)] if len(rings) else rings
    return flagged, members, review


def _the_one_flagged(flagged, members):
    """The only flagged ring and its member ids (fails unless exactly one is flagged)."""
    assert len(flagged) == 1
    ring = flagged.iloc[0]
    return ring, set(members.loc[members["ring_id"] == ring["ring_id"], "account_id"])


def test_crawler_inside_honest_api_traffic_and_an_honest_partner_with_old_clients(tmp_path):
    """Two ISV partners with the same habit, and one crawler.

    * P1's staff s1 reads its 200 clients (c000..c199, who order from m1) on 25 days:
      5,000 tied reads. Mixed in: 150 strangers (u000..u149) read once each, 2.9 % of
      its reads, under the old 3 % share floor. Its clients come back (r = 1) and none
      of its untied users does, so no clientele is taken out: reach 150 = 150× the
      floor, partner staff harvesting -> flagged, a one-account ring.
    * P2's staff t1 reads its 200 in-window clients (d000..d199) and 50 clients who
      ordered before the export (e000..e049) on 25 days. The old clients look untied
      (50 users, 20 % of its reads), but it comes back to all of them, like to its
      tied clients (r = 1): estimated old clientele 50 / 1 = 50, reach 50 - 50 = 0.
      Not a harvester; the partner review says why.
    """
    partners = [["P1", "Tool Co", "isv", "2019-01-01"], ["P2", "Other ISV", "isv", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"], ["m2", "merchant", "2019-02-01", "P2"],
                ["s1", "partner_staff", "2019-03-01", "P1"],
                ["t1", "partner_staff", "2019-03-01", "P2"]]
    accounts += [[f"c{i:03d}", "customer", "2019-06-01", ""] for i in range(200)]
    accounts += [[f"d{i:03d}", "customer", "2019-06-01", ""] for i in range(200)]
    accounts += [[f"e{i:03d}", "customer", "2019-06-01", ""] for i in range(50)]
    accounts += [[f"u{i:03d}", "customer", "2019-06-01", ""] for i in range(150)]
    events: list = []
    _background(accounts, events)
    for i in range(200):
        events.append([_ts(T0 + timedelta(minutes=i)), f"c{i:03d}", f"cp{i}", f"10.2.0.{i}",
                       "order", "m1", ""])
        events.append([_ts(T0 + timedelta(minutes=i)), f"d{i:03d}", f"dp{i}", f"10.3.0.{i}",
                       "order", "m2", ""])
    for day in range(25):
        t = T0 + timedelta(days=1 + day)
        for i in range(200):
            events.append([_ts(t + timedelta(seconds=20 * i)), "s1", "s1-pc", "192.0.2.1",
                           "view_profile", f"c{i:03d}", "50"])
            events.append([_ts(t + timedelta(seconds=20 * i)), "t1", "t1-pc", "192.0.2.2",
                           "view_profile", f"d{i:03d}", "50"])
        for i in range(50):
            events.append([_ts(t + timedelta(hours=2, seconds=20 * i)), "t1", "t1-pc",
                           "192.0.2.2", "view_profile", f"e{i:03d}", "50"])
        for i in range(6):   # the crawl: 6 new strangers a day, each read once
            u = day * 6 + i
            events.append([_ts(t + timedelta(hours=3, seconds=20 * i)), "s1", "s1-pc",
                           "192.0.2.1", "view_profile", f"u{u:03d}", "1"])
    flagged, members, review = _run(tmp_path, partners, accounts, events)
    assert len(flagged) == 1
    ring = flagged.iloc[0]
    assert set(members.loc[members["ring_id"] == ring["ring_id"], "account_id"]) == {"s1"}
    assert "reached 150 strangers" in ring["reasons"]
    p2 = review.set_index("partner_id").loc["P2"]
    assert not bool(p2["flagged"]) and p2["stranger_reach"] == 0
    assert "reached 0 strangers" in p2["why"]
    assert bool(review.set_index("partner_id").loc["P1", "flagged"])


def test_a_shared_family_phone_does_not_pull_the_family_into_a_crew(tmp_path):
    """A crew k1..k3 on an emulator reads 200 strangers each (cold users read by 3).

    k1 also logs in once on the family phone of f1, f2 (who read nothing), and k2 and k3
    crawl through the family's home IP (a residential proxy): 2 of the 4 accounts on
    that IP are the crew's, so the ring dominates it (share 0.5). Neither the phone nor
    the IP pulls f1 or f2 in: they have no harm of their own.
    Expected: one flagged ring, exactly {k1, k2, k3} (3 harvesters: crew evidence).
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"],
                ["f1", "customer", "2018-01-01", ""], ["f2", "customer", "2018-01-01", ""]]
    accounts += [[f"k{i}", "customer", f"2020-02-0{i}", ""] for i in (1, 2, 3)]
    accounts += [[f"u{i:03d}", "customer", "2019-06-01", ""] for i in range(200)]
    events: list = []
    _background(accounts, events)
    for day in range(10):
        for who in ("f1", "f2"):
            events.append([_ts(T0 + timedelta(days=day, hours=20)), who, "fam-phone", "203.0.113.1",
                           "view_item", "m1", "0"])
    events.append([_ts(T0 + timedelta(days=2, hours=21)), "k1", "fam-phone", "203.0.113.1",
                   "login", "", "0"])
    for j, k in enumerate(("k1", "k2", "k3")):
        for i in range(200):
            ip = "198.51.100.7" if k == "k1" else "203.0.113.1"
            events.append([_ts(T0 + timedelta(days=3, minutes=i, seconds=j)), k, "emu-1", ip,
                           "view_profile", f"u{i:03d}", "1"])
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    assert len(flagged) == 1
    got = set(members.loc[members["ring_id"] == flagged.iloc[0]["ring_id"], "account_id"])
    assert got == {"k1", "k2", "k3"}
    assert "3 accounts harvest on their own" in flagged.iloc[0]["reasons"]


def test_one_heavy_reader_of_popular_profiles_with_family_is_no_ring(tmp_path):
    """g1 reads 400 profiles a day of 30 popular accounts (p00..p29), each read by 40
    browsers too: 41 readers, so each counts 10 / 41 ≈ 0.24; its reach is about 7.
    It shares a phone with g2. Under 10× even alone, and one account is no crew.
    Expected: nothing flagged."""
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"], ["g1", "customer", "2018-01-01", ""],
                ["g2", "customer", "2018-01-01", ""]]
    accounts += [[f"p{i:02d}", "customer", "2019-06-01", ""] for i in range(30)]
    events: list = []
    _background(accounts, events)
    for b in range(40):
        for i in range(30):
            events.append([_ts(T0 + timedelta(days=1, minutes=b, seconds=i)), f"h{b:03d}",
                           f"hphone{b}", f"10.1.0.{b}", "view_profile", f"p{i:02d}", "1"])
    for day in range(10):
        for n in range(400):
            events.append([_ts(T0 + timedelta(days=day, seconds=60 * n)), "g1", "fam-2",
                           "203.0.113.2", "view_profile", f"p{n % 30:02d}", "1"])
        events.append([_ts(T0 + timedelta(days=day, hours=22)), "g2", "fam-2", "203.0.113.2",
                       "view_item", "m1", "0"])
    flagged, _, _ = _run(tmp_path, partners, accounts, events)
    assert flagged.empty


def test_a_coupon_crew_is_flagged_and_bargain_hunters_around_it_are_not(tmp_path):
    """Coupon claims at merchants m1..m8 (partner P1), no orders from any of them.

    * 20 of the background browsers (h000..h019) each claim at 2 merchants: over
      10 % of the active customers, so the customers' 90th percentile is 2.
    * The crew c1..c6, created within two days, claims at all 8 merchants from one
      emulator (``emu-9``) and a datacenter IP: each is 4×, 24× in all, and five or
      more accounts on infrastructure they dominate, with a new-account burst and a
      shared device -> one flagged coupon crew of exactly {c1..c6}.
    * c1 also claims once through q1's home IP (a residential proxy): q1, an honest
      bargain hunter, claims at 4 merchants (2×, under 3×, and above a third of the
      crew's median, so pruning would keep it): a mild claimer links only through
      devices, so the proxied home does not pull q1 in.
    * A household b1, b2 on one phone, aged accounts, each claims at 3 merchants: a
      pair is no crew.
    * A store kiosk used by 30 shoppers (k00..k29), 6 of whom claim at 2 merchants:
      the claimers do not dominate the kiosk, so they form no crew.
    Expected: one flagged ring, the crew; its reasons name it a coupon crew.
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    merchants = [f"m{i}" for i in range(1, 9)]
    accounts = [[m, "merchant", "2019-02-01", "P1"] for m in merchants]
    accounts += [[f"c{i}", "customer", f"2020-02-2{i % 2}", ""] for i in range(1, 7)]
    accounts += [[w, "customer", "2018-01-01", ""] for w in ("q1", "b1", "b2")]
    accounts += [[f"k{i:02d}", "customer", f"2018-0{1 + i % 9}-01", ""] for i in range(30)]
    events: list = []
    _background(accounts, events)

    def claim(t, who, device, ip, merchant):
        events.append([_ts(t), who, device, ip, "coupon_claim", merchant, "0"])

    for j in range(1, 7):
        for i, m in enumerate(merchants):
            claim(T0 + timedelta(days=2, hours=j, minutes=i), f"c{j}", "emu-9", "198.51.100.9", m)
    for i in range(20):
        for d, m in enumerate(("m7", "m8")):
            claim(T0 + timedelta(days=8 + d, hours=i % 12), f"h{i:03d}", f"hphone{i}",
                  f"10.1.0.{i}", m)
    claim(T0 + timedelta(days=3), "c1", "emu-9", "203.0.113.5", "m1")
    for d, m in enumerate(("m1", "m2", "m3", "m4")):
        claim(T0 + timedelta(days=4 + d, hours=19), "q1", "q1-phone", "203.0.113.5", m)
    for who in ("b1", "b2"):
        for d, m in enumerate(("m3", "m4", "m5")):
            claim(T0 + timedelta(days=5 + d, hours=20), who, "fam-3", "203.0.113.6", m)
    for i in range(30):
        events.append([_ts(T0 + timedelta(days=6, minutes=10 * i)), f"k{i:02d}", "kiosk-1",
                       "203.0.113.7", "view_item", "m6", "0"])
        if i < 6:
            for d, m in enumerate(("m6", "m7")):
                claim(T0 + timedelta(days=6, minutes=10 * i + d), f"k{i:02d}", "kiosk-1",
                      "203.0.113.7", m)
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {f"c{i}" for i in range(1, 7)}
    assert "coupon crew: 6 accounts" in ring["reasons"]
    assert not {"q1", "b1", "b2"} & set(members["account_id"])


def test_a_reading_crew_that_sets_its_peers_level_is_flagged_and_a_kiosk_is_not(tmp_path):
    """Profile reads of strangers, each stranger (u00000..) read by one account only.

    * 100 background browsers (h000..h099) each read 10, 20, 30, 40 or 50 strangers:
      with the readers below, the customers' 75th percentile of reach is 50.
    * A crew r1..r8 splits a crawl queue from one cloned device: 80 strangers each,
      1.6× its peers (no harvester alone: under 10×), 12.8× in all, on a device only
      it uses -> one flagged reading crew of exactly {r1..r8}.
    * A store kiosk used by 30 shoppers (k00..k29), 6 of whom read 80 strangers too:
      the readers do not dominate the kiosk, so they form no crew.
    * A household f1..f3 on one phone reading 80 each: three accounts are no crew.
    Expected: one flagged ring, the crew; its reasons name it a reading crew.
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"]]
    accounts += [[f"r{i}", "customer", "2018-05-01", ""] for i in range(1, 9)]
    accounts += [[f"f{i}", "customer", "2018-01-01", ""] for i in range(1, 4)]
    accounts += [[f"k{i:02d}", "customer", f"2018-0{1 + i % 9}-01", ""] for i in range(30)]
    events: list = []
    _background(accounts, events)
    strangers = iter(range(10 ** 6))

    def read(t, who, device, ip, n):
        for i in range(n):
            u = f"u{next(strangers):05d}"
            accounts.append([u, "customer", "2019-06-01", ""])
            events.append([_ts(t + timedelta(minutes=i)), who, device, ip, "view_profile", u, "1"])

    for i in range(100):
        read(T0 + timedelta(days=1, hours=i % 24), f"h{i:03d}", f"hphone{i}",
             f"10.1.{i // 250}.{i % 250}", 10 * (1 + i % 5))
    for j in range(1, 9):
        read(T0 + timedelta(days=2 + j), f"r{j}", "clone-1", f"198.51.100.{j}", 80)
    for i in range(30):
        events.append([_ts(T0 + timedelta(days=6, minutes=10 * i)), f"k{i:02d}", "kiosk-1",
                       "203.0.113.7", "view_item", "m1", "0"])
        if i < 6:
            read(T0 + timedelta(days=7, hours=i), f"k{i:02d}", "kiosk-1", "203.0.113.7", 80)
    for j in range(1, 4):
        read(T0 + timedelta(days=12, hours=j), f"f{j}", "fam-4", "203.0.113.8", 80)
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {f"r{i}" for i in range(1, 9)}
    assert "reading crew: 8 accounts" in ring["reasons"]
    assert not {"f1", "f2", "f3", "k00"} & set(members["account_id"])


def _strangers(accounts: list, events: list, t, who, device, ip, n, start):
    """``who`` reads the profiles of ``n`` new strangers (v<start>..), once each, a day apart."""
    for i in range(n):
        u = f"v{start + i:05d}"
        accounts.append([u, "customer", "2019-06-01", ""])
        events.append([_ts(t + timedelta(days=i % 20, minutes=i)), who, device, ip,
                       "view_profile", u, "1"])


def _background_readers(accounts: list, events: list) -> int:
    """h000..h099 read 10, 20, 30, 40 or 50 strangers each (v00000..), once each, on their
    phones and homes: the customers' 75th percentile of reach is 50. Returns the next
    stranger number."""
    start = 0
    for i in range(100):
        n = 10 * (1 + i % 5)
        _strangers(accounts, events, T0 + timedelta(days=1), f"h{i:03d}", f"hphone{i}",
                   f"10.1.{i // 250}.{i % 250}", n, start)
        start += n
    return start


def _read(events: list, t, who, device, ip, target) -> None:
    events.append([_ts(t), who, device, ip, "view_profile", target, "1"])


def _honest_readers(events: list, each: int) -> None:
    """r00..r39, each on its own phone and home, read ``each`` strangers of their own
    (u000..) once each, over ``each`` days."""
    for i in range(40):
        for k in range(each):
            _read(events, T0 + timedelta(days=1 + k, hours=i % 20), f"r{i:02d}", f"r{i}-phone",
                  f"10.4.0.{i}", f"u{each * i + k:03d}")


def _claiming_shoppers(events: list, shop=lambda i: f"m{1 + i % 15}") -> None:
    """h000..h059 (of :func:`_background`) each claim one coupon, at ``shop(i)``, among 24
    other events: focus 1/25, the median claimer's."""
    for i in range(60):
        for k in range(21):
            events.append([_ts(T0 + timedelta(days=1, hours=i, minutes=k)), f"h{i:03d}",
                           f"hphone{i}", f"10.1.{i // 250}.{i % 250}", "view_item", "m1", "0"])
        events.append([_ts(T0 + timedelta(days=1, hours=i, minutes=30)), f"h{i:03d}",
                       f"hphone{i}", f"10.1.{i // 250}.{i % 250}", "coupon_claim", shop(i), "0"])


def _spree(events: list, who, device, ip, at, shops) -> None:
    """``who`` logs in once, then views and claims a coupon at each of ``shops`` (merchant
    numbers), two minutes apart."""
    events.append([_ts(at), who, device, ip, "login", "", "0"])
    for k, shop in enumerate(shops):
        for kind in ("view_item", "coupon_claim"):
            events.append([_ts(at + timedelta(minutes=2 * k + (kind == "coupon_claim"))),
                           who, device, ip, kind, f"m{shop}", "0"])


def _works_daily(events: list, who, device, ip, shop, hour: int, days: int = 20) -> None:
    """``who`` views an item of ``shop`` (its own partner's merchant) every day of ``days``."""
    for d in range(days):
        events.append([_ts(T0 + timedelta(days=d, hours=hour)), who, device, ip, "view_item",
                       shop, "0"])


def _call_centre(accounts: list, events: list, partner: str, n: int, callers: int,
                 start: int = 100) -> None:
    """c1..c<n>, ``partner``'s staff, each read ``callers`` callers' profiles (strangers of
    their own, v<start>..), a few new ones every day over 20 days, from the office IP."""
    accounts += [[f"c{j}", "partner_staff", "2019-03-01", partner] for j in range(1, n + 1)]
    for j in range(1, n + 1):
        _strangers(accounts, events, T0 + timedelta(hours=j), f"c{j}", f"desk{j}",
                   "198.51.100.1", callers, start * j)


def test_a_call_centre_whose_agents_all_read_callers_alike_is_no_crew(tmp_path):
    """Two partners' staff reading 60 strangers each, once each (peers' level: the floor 1).

    * P1 (agency) is a call centre: its six agents a1..a6, all of its staff, each read 60
      callers from the one office IP they dominate. A crew by the numbers (six harvesters
      at 60× each, 360× in all), but the partner's whole workforce, alike, none standing
      out: not flagged, and the partner review says it is a workforce.
    * P2 (isv) has eight staff; three of them, i1..i3, each read 60 strangers from a box
      only they use, the other five read nobody. Three of eight is no workforce, and they
      stand far above every other staff account: flagged, exactly {i1, i2, i3}.
    * P3 (isv) has two staff, b1 and b2, both reading 60 strangers from their office IP:
      a pair at 120× with harvesting partner staff, but all of P3's staff, alike, none
      standing out: its workforce, not flagged, and the review says so.
    """
    partners = [["P1", "Call Co", "agency", "2019-01-01"], ["P2", "Tool Co", "isv", "2019-01-01"],
                ["P3", "Two Co", "isv", "2019-01-01"]]
    accounts = [[f"a{j}", "partner_staff", "2019-03-01", "P1"] for j in range(1, 7)]
    accounts += [[f"b{j}", "partner_staff", "2019-03-01", "P3"] for j in range(1, 3)]
    accounts += [[f"i{j}", "partner_staff", "2019-03-01", "P2"] for j in range(1, 4)]
    accounts += [[f"o{j}", "partner_staff", "2019-03-01", "P2"] for j in range(1, 6)]
    accounts += [["m1", "merchant", "2019-02-01", "P2"]]
    events: list = []
    _background(accounts, events)
    for j in range(1, 7):
        _strangers(accounts, events, T0 + timedelta(hours=j), f"a{j}", f"desk{j}",
                   "198.51.100.1", 60, 100 * j)
    for j in range(1, 4):
        _strangers(accounts, events, T0 + timedelta(hours=j), f"i{j}", f"lap{j}",
                   "203.0.113.9", 60, 1000 + 100 * j)
    for j in range(1, 3):
        _strangers(accounts, events, T0 + timedelta(hours=j), f"b{j}", f"bdesk{j}",
                   "198.51.100.3", 60, 2000 + 100 * j)
    for j in range(1, 6):
        events.append([_ts(T0 + timedelta(days=j)), f"o{j}", f"olap{j}", f"10.9.0.{j}",
                       "view_item", "m1", "0"])
    flagged, members, review = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"i1", "i2", "i3"}
    call = review.set_index("partner_id").loc["P1"]
    assert not call["flagged"]
    assert "its 6 active staff nearly all read strangers alike" in call["why"]
    pair = review.set_index("partner_id").loc["P3"]
    assert not pair["flagged"]
    assert "its 2 active staff nearly all read strangers alike" in pair["why"]


def test_staff_sweeping_in_a_burst_are_a_crew_however_many_of_the_staff_they_are(tmp_path):
    """Two partners whose every staff account reads 60 strangers (peers' level: the floor 1).

    * P1 (agency) is a call centre: its four agents c1..c4 meet their 60 callers over the
      20 days they work, a few new ones every day. Steady work: its workforce, not flagged.
    * P2 (isv) has three staff, s1..s3, who work for their merchant m2 every one of those
      20 days, and sweep their 60 strangers each in two of them. All of P2's staff, alike,
      none standing out, as a workforce would be, but they met their strangers on 2 of the
      20 days (about a tenth of the days a steady reader of as many would): a sweep, so
      three harvesting staff at 60× each, 180× in all, are flagged, exactly {s1, s2, s3}.
      The rule before this one called them P2's workforce and flagged nothing.
    """
    partners = [["P1", "Call Co", "agency", "2019-01-01"], ["P2", "Tool Co", "isv", "2019-01-01"]]
    accounts = [[f"s{j}", "partner_staff", "2019-03-01", "P2"] for j in range(1, 4)]
    accounts += [["m2", "merchant", "2019-02-01", "P2"]]
    events: list = []
    _background(accounts, events)
    _call_centre(accounts, events, "P1", 4, 60)
    for j in range(1, 4):
        _works_daily(events, f"s{j}", f"lap{j}", "203.0.113.9", "m2", hour=9 + j)
        for i in range(60):
            u = f"v{1000 + 100 * j + i:05d}"
            accounts.append([u, "customer", "2019-06-01", ""])
            events.append([_ts(T0 + timedelta(days=5 + i % 2, hours=10, minutes=i)), f"s{j}",
                           f"lap{j}", "203.0.113.9", "view_profile", u, "1"])
    flagged, members, review = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"s1", "s2", "s3"}
    assert "a sweep, not a workforce: its 3 accounts, 3 of one partner's 3 active staff" \
        in ring["reasons"]
    assert "met their strangers on 2 of their 20 active days at the median" in ring["reasons"]
    call = review.set_index("partner_id").loc["P1"]
    assert not call["flagged"]
    assert "its 4 active staff nearly all read strangers alike" in call["why"]


def test_a_whole_staff_paging_through_strangers_comments_is_no_workforce(tmp_path):
    """P2's five staff, all of its staff, work for m2 every day of 20 and page through the
    comments of 40 shops they have no tie to (P4's), five pages each, in two of those days.
    P3's 24 staff each read two comment pages of one P4 shop a day (the peers' level), and
    P1's four agents read 60 callers' profiles steadily (a workforce). Steadiness is
    measured on profiles, where a workforce reads callers: staff harvesting comment pages
    alone are no workforce -> flagged, exactly {s1..s5}; P1 is not. (Found by review: the
    rule took comment harvesters for steady.)"""
    partners = [["P1", "Call Co", "agency", "2019-01-01"], ["P2", "Tool Co", "isv", "2019-01-01"],
                ["P3", "Agency", "agency", "2019-01-01"], ["P4", "Shops", "isv", "2019-01-01"]]
    accounts = [[f"s{j}", "partner_staff", "2019-03-01", "P2"] for j in range(1, 6)]
    accounts += [[f"a{j}", "partner_staff", "2019-03-01", "P3"] for j in range(24)]
    accounts += [["m2", "merchant", "2019-02-01", "P2"]]
    accounts += [[f"x{k}", "merchant", "2019-02-01", "P4"] for k in range(40)]
    events: list = []
    _background(accounts, events)
    for j in range(24):
        for p in range(2):
            events.append([_ts(T0 + timedelta(days=j, hours=9, minutes=p)), f"a{j}",
                           f"adesk{j}", f"198.51.102.{j}", "view_comments", f"x{j % 40}", "20"])
    _call_centre(accounts, events, "P1", 4, 60)
    for j in range(1, 6):
        _works_daily(events, f"s{j}", f"lap{j}", "203.0.113.9", "m2", hour=9 + j)
        for k in range(40):
            for p in range(5):
                events.append([_ts(T0 + timedelta(days=5 + k % 2, hours=10, minutes=k * 5 + p)),
                               f"s{j}", f"lap{j}", "203.0.113.9", "view_comments", f"x{k}", "20"])
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"s1", "s2", "s3", "s4", "s5"}
    assert "harvest comment pages, not the profiles of callers a workforce reads" \
        in ring["reasons"]


def test_insiders_beside_a_call_centre_are_no_part_of_its_workforce(tmp_path):
    """P1's ten call-centre agents c1..c10 each read 40 callers over 20 days from the office
    IP; two more staff, i1 and i2, each read 100 strangers over the same days on a box only
    they use. Nobody stands out (100 is under 3× the fourth-highest staff account's 40).
    The agents are a workforce of their own; the pair's workforce would be only the
    pair and the partner's quieter readers (none: the agents are harvesters, of another
    ring), 2 of 12 -> flagged, exactly {i1, i2}. (Found by review: counting every staff
    account reading alike made the pair part of the call centre.)"""
    partners = [["P1", "Call Co", "agency", "2019-01-01"]]
    accounts = [[f"i{j}", "partner_staff", "2019-03-01", "P1"] for j in range(1, 3)]
    events: list = []
    _background(accounts, events)
    _call_centre(accounts, events, "P1", 10, 40, start=1000)
    for j in range(1, 3):
        _strangers(accounts, events, T0 + timedelta(hours=9), f"i{j}", "box", "203.0.113.7",
                   100, 20000 + 1000 * j)
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"i1", "i2"}


def test_a_comment_crawler_paging_through_one_shop_is_flagged(tmp_path):
    """Comment pages read at merchants with no tie (the peers' level: what three quarters
    of the comment readers stay under).

    * 40 background shoppers (h000..h039) each read 2 comment pages of one shop (m1..m4)
      they never ordered from: 2 pages at one merchant each.
    * A crew c1..c5 on one emulator pages through m5's comments, 200 pages each: one
      merchant each, like a shopper, but 100× the pages; five of them on a device only
      they use -> one flagged ring of exactly {c1..c5}.
    """
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", "P1"] for k in range(1, 6)]
    accounts += [[f"c{j}", "customer", "2020-02-20", ""] for j in range(1, 6)]
    events: list = []
    _background(accounts, events)
    for i in range(40):
        for p in range(2):
            events.append([_ts(T0 + timedelta(days=1, hours=i % 24, minutes=p)), f"h{i:03d}",
                           f"hphone{i}", f"10.1.{i // 250}.{i % 250}", "view_comments",
                           f"m{1 + i % 4}", "20"])
    for j in range(1, 6):
        for p in range(200):
            events.append([_ts(T0 + timedelta(days=2 + p % 10, minutes=7 * p + j)), f"c{j}",
                           "emu-1", f"198.51.100.{j}", "view_comments", "m5", "20"])
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {f"c{j}" for j in range(1, 6)}
    assert "comment pages of merchants it has no tie to" in ring["reasons"]


def test_a_sweep_of_popular_profiles_in_a_tiny_platform_is_flagged(tmp_path):
    """A platform so small that every profile is popular (weight 10 / 40 readers = 0.25).

    * 80 heavy readers (h000..h079) each read 30 popular profiles (p00..p29 for the first
      40, q00..q29 for the others) every day for five days: reach 30 × 0.25 = 7.5 each,
      and they come back to every one of them, so none of it is a sweep (fresh reach 0).
    * A crawler x1 reads all 60 of them once each, on one day: reach 15 (2× the readers,
      no harvester by reach), but a sweep of 15 where the readers' level is the floor 1:
      15×, and 15× the fourth-highest customer's -> flagged alone, exactly {x1}.
    """
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [["x1", "customer", "2020-02-25", ""]]
    accounts += [[f"p{k:02d}", "customer", "2019-06-01", ""] for k in range(30)]
    accounts += [[f"q{k:02d}", "customer", "2019-06-01", ""] for k in range(30)]
    events: list = []
    _background(accounts, events)
    for i in range(80):
        pool = "p" if i < 40 else "q"
        for day in range(5):
            for k in range(30):
                events.append([_ts(T0 + timedelta(days=1 + day, minutes=i * 40 + k)),
                               f"h{i:03d}", f"hphone{i}", f"10.1.{i // 250}.{i % 250}",
                               "view_profile", f"{pool}{k:02d}", "1"])
    for k in range(60):
        target = f"p{k:02d}" if k < 30 else f"q{k - 30:02d}"
        events.append([_ts(T0 + timedelta(days=3, minutes=k)), "x1", "xphone",
                       "198.51.100.77", "view_profile", target, "1"])
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"x1"}
    assert "once and never came back to them" in ring["reasons"]


def test_coupon_harvesters_made_the_same_week_are_a_ring_and_lone_hunters_are_not(tmp_path):
    """Coupon claims at merchants never ordered from (peers' level: the floor 1).

    * b1, b2: created two days apart, on their own phones and homes (nothing shared),
      each claims at 12 merchants it never ordered from: 12× the keenest tenth, a pair
      made the same week -> one flagged ring of exactly {b1, b2}.
    * k1, k2: keen bargain hunters at 12 merchants each too, but created months apart
      from anyone like them: each alone, not flagged.
    * 60 background shoppers claim one coupon each.
    """
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", "P1"] for k in range(1, 16)]
    accounts += [["b1", "customer", "2020-02-10", ""], ["b2", "customer", "2020-02-12", ""],
                 ["k1", "customer", "2018-03-01", ""], ["k2", "customer", "2019-01-15", ""]]
    events: list = []
    _background(accounts, events)
    for i in range(60):
        events.append([_ts(T0 + timedelta(days=1, minutes=i)), f"h{i:03d}", f"hphone{i}",
                       f"10.1.{i // 250}.{i % 250}", "coupon_claim", f"m{1 + i % 15}", "0"])
    for j, who in enumerate(("b1", "b2", "k1", "k2")):
        for k in range(12):
            events.append([_ts(T0 + timedelta(days=2 + j, minutes=k)), who, f"{who}-phone",
                           f"198.51.100.{20 + j}", "coupon_claim", f"m{1 + (k + j) % 15}", "0"])
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"b1", "b2"}
    assert "created within 7 days of one another" in ring["reasons"]


def test_a_lone_coupon_harvester_makes_no_ring_and_no_error(tmp_path):
    """One keen bargain hunter at 12 never-ordered-from merchants, no one like it: a
    candidate of no ring. The run ends normally with no ring (it once stopped with
    "need at least one array to concatenate")."""
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", "P1"] for k in range(1, 16)]
    accounts += [["k1", "customer", "2018-03-01", ""]]
    events: list = []
    _background(accounts, events)
    for k in range(12):
        events.append([_ts(T0 + timedelta(days=2, minutes=k)), "k1", "k1-phone",
                       "198.51.100.20", "coupon_claim", f"m{1 + k}", "0"])
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    assert flagged.empty and members.empty


def test_coupon_sprees_made_the_same_week_are_a_crew_and_a_festival_crowd_is_not(tmp_path):
    """Accounts that do little but claim coupons, none at harvest_factor (10) merchants.

    Background: 60 shoppers each claim one coupon among 24 other events (focus 1/25,
    the median claimer's), 12 of them at m99, a shop no partner serves. A spree is a
    claimer at 8× that share (1/3.1) or more, at 3 or more merchants it never ordered
    from. Partner P1 serves every other shop: all claims at partners' shops are its,
    so no run of sprees there is a partner's campaign.

    * c1..c4: created during a festival (below), each on its own phone and home, one
      login and four item-view + claim pairs at four shops of its own (focus 4/9,
      11×): a crew spraying claims over 15 shops (m1 is the only shop two of them
      share, and the festival's) -> one flagged ring of exactly {c1..c4}.
    * f1..f8: the festival's sign-ups the same day, each at m1, m2, m3 (the promotion)
      and one shop of its own: three quarters of each one's shops are ones half its
      run (the crew and the festival, 12) or more claimed at -> one promotion, not
      flagged; the crew, a quarter at most, keeps its own.
    * p1, p2: two sign-ups the same week, each at three shops: 6 shops together, under
      the 10 of an operation -> not flagged.
    * g1..g8: sign-ups one every 6 days, each at three shops of its own (24 in all): a
      run holds the accounts made within 7 days of its first, so no chain of them is
      one operation -> not flagged.
    """
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", "P1"] for k in range(1, 41)]
    accounts += [["m99", "merchant", "2019-02-01", ""]]     # a shop no partner serves
    accounts += [[f"c{j}", "customer", "2020-03-10", ""] for j in range(1, 5)]
    accounts += [[f"f{j}", "customer", "2020-03-10", ""] for j in range(1, 9)]
    accounts += [[f"g{j}", "customer", str(date(2020, 4, 1) + timedelta(days=6 * (j - 1))), ""]
                 for j in range(1, 9)]
    accounts += [["p1", "customer", "2020-01-05", ""], ["p2", "customer", "2020-01-07", ""]]
    events: list = []
    _background(accounts, events)
    _claiming_shoppers(events, lambda i: "m99" if i < 12 else f"m{1 + i % 15}")

    def spree(who, j, shops, day):
        _spree(events, who, f"{who}-phone", f"198.51.{100 + day}.{j}",
               T0 + timedelta(days=day, hours=j), shops)

    crew = {1: [1, 4, 40, 20], 2: [5, 6, 7, 8], 3: [9, 10, 11, 12], 4: [13, 14, 15, 1]}
    for j, shops in crew.items():
        spree(f"c{j}", j, shops, 2)
    for j in range(1, 9):
        spree(f"f{j}", j, [1, 2, 3, 3 + j], 10)
    spree("p1", 1, [10, 11, 12], 5)
    spree("p2", 2, [13, 14, 15], 5)
    for j in range(1, 9):
        spree(f"g{j}", j, [13 + 3 * j, 14 + 3 * j, 15 + 3 * j], 31 + 6 * (j - 1))
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"c1", "c2", "c3", "c4"}
    assert "did little but claim coupons" in ring["reasons"]


def test_a_festival_whose_sign_ups_try_many_of_its_shops_is_no_crew(tmp_path):
    """Coupon harvesters: claims at 10 or more merchants never ordered from (10× the
    keenest tenth of customers, who claim at one). All made on 2020-03-10, one run.

    * f01..f20: a festival's sign-ups, each on a phone and home IP of its own, each
      claiming once at 10, 11 or 12 of its 12 shops (m1..m12): every shop is one half
      the run or more claimed at, so each came for the promotion -> not flagged. The rule
      before this one judged only sprees so, and flagged these 20 made together.
    * k1..k4: made the same day, on phones of their own, claiming once at the same 12
      shops, all through one IP they dominate (a crew's datacenter address) -> no
      festival's sign-ups: flagged.
    * q1..q3: made the same day, each on a phone and home of its own, claiming at 10 of
      the shops four times each: a sign-up takes a shop's coupon once or twice, so these
      came for no promotion -> flagged with k1..k4 (coupon accounts made the same week
      are one piece): exactly {k1..k4, q1..q3}.
    """
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", "P1"] for k in range(1, 41)]
    accounts += [[f"f{j:02d}", "customer", "2020-03-10", ""] for j in range(1, 21)]
    accounts += [[f"k{j}", "customer", "2020-03-10", ""] for j in range(1, 5)]
    accounts += [[f"q{j}", "customer", "2020-03-10", ""] for j in range(1, 4)]
    events: list = []
    _background(accounts, events)
    _claiming_shoppers(events, lambda i: f"m{13 + i % 20}")
    at = T0 + timedelta(days=10)
    for j in range(1, 21):
        shops = list(range(1, 13))[: 10 + j % 3]
        _spree(events, f"f{j:02d}", f"f{j}-phone", f"198.51.100.{j}", at + timedelta(hours=j),
               shops)
    for j in range(1, 5):
        _spree(events, f"k{j}", f"k{j}-phone", "203.0.113.50", at + timedelta(hours=j),
               list(range(1, 13)))
    for j in range(1, 4):
        _spree(events, f"q{j}", f"q{j}-phone", f"198.51.101.{j}", at + timedelta(hours=j),
               list(range(1, 11)) * 4)
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"k1", "k2", "k3", "k4", "q1", "q2", "q3"}


def test_a_crews_own_few_members_are_no_festival_crowd(tmp_path):
    """k1..k4: coupon harvesters made the same day, each on a phone and home IP of its own,
    each claiming once at the same 12 shops m1..m12, where nobody else claims. Four alike
    are a crew, not a festival's crowd (a coupon harvester is judged in a run of ten or
    more): flagged, exactly {k1..k4}. (Found by review: judging harvesters in runs of
    three exempted them.)"""
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", "P1"] for k in range(1, 41)]
    accounts += [[f"k{j}", "customer", "2020-03-10", ""] for j in range(1, 5)]
    events: list = []
    _background(accounts, events)
    _claiming_shoppers(events, lambda i: f"m{13 + i % 20}")
    for j in range(1, 5):
        _spree(events, f"k{j}", f"k{j}-phone", f"198.51.100.{j}",
               T0 + timedelta(days=10, hours=j), list(range(1, 13)))
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"k1", "k2", "k3", "k4"}


def test_a_lone_harvester_made_days_before_a_festival_leaves_its_run_alone(tmp_path):
    """A festival's eight sign-ups (sprees: each at the festival's m1..m4 and four shops of
    its own), six made on 03-10 and two on 03-12, and one keen bargain hunter x (a lone
    coupon harvester at 12 shops of its own, own phone and home) made on 03-04. Runs of
    sprees are made of sprees: x does not start one, so the eight stay one run, one
    promotion; x alone is no crew. Nothing flagged. (Found by review: a run started by x
    split the festival, and its last two were flagged as a pair.)"""
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", "P1"] for k in range(1, 81)]
    accounts += [["m99", "merchant", "2019-02-01", ""]]
    accounts += [["x", "customer", "2020-03-04", ""]]
    accounts += [[f"f{j}", "customer", "2020-03-10" if j <= 6 else "2020-03-12", ""]
                 for j in range(1, 9)]
    events: list = []
    _background(accounts, events)
    _claiming_shoppers(events, lambda i: "m99" if i < 12 else f"m{41 + i % 15}")
    _spree(events, "x", "x-phone", "198.51.100.200", T0 + timedelta(days=4), list(range(60, 72)))
    for j in range(1, 9):
        day = 10 if j <= 6 else 12
        _spree(events, f"f{j}", f"f{j}-phone", f"198.51.{100 + day}.{j}",
               T0 + timedelta(days=day, hours=j), [1, 2, 3, 4] + [4 + 4 * j + q for q in range(1, 5)])
    flagged, _, _ = _run(tmp_path, partners, accounts, events)
    assert len(flagged) == 0


def test_sprees_are_no_promotion_through_a_harvester_that_claimed_at_their_shops(tmp_path):
    """s1..s3: sprees made the same day, each on a phone and home of its own, each at five
    shops of its own (m1..m15); k1, made the same day alike, claimed at m1..m12: a coupon
    harvester whose shops cover theirs. Judged in their run of sprees, the three share no
    shop: no promotion. The harvester joins their run but four are no festival's crowd
    (ten) -> one crew, flagged, exactly {s1, s2, s3, k1}. (Found by review: judging the
    sprees in a run with the harvester made its shops their promotion.)"""
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", "P1"] for k in range(1, 41)]
    accounts += [[f"s{j}", "customer", "2020-03-10", ""] for j in range(1, 4)]
    accounts += [["k1", "customer", "2020-03-10", ""]]
    events: list = []
    _background(accounts, events)
    _claiming_shoppers(events, lambda i: f"m{13 + i % 20}")
    at = T0 + timedelta(days=10)
    for j in range(1, 4):
        _spree(events, f"s{j}", f"s{j}-phone", f"198.51.100.{j}", at + timedelta(hours=j),
               [5 * (j - 1) + q for q in range(1, 6)])
    _spree(events, "k1", "k1-phone", "198.51.101.1", at + timedelta(hours=4), list(range(1, 13)))
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"s1", "s2", "s3", "k1"}


def test_a_crew_re_sweeping_a_small_platform_through_proxies_is_flagged_and_qa_rigs_are_not(
        tmp_path):
    """Profile reads that come back to the same strangers, twelve times each.

    * 100 background browsers (h000..h099) each read 10..50 strangers once, each on
      its one home IP: the customers' 75th percentile of reach is 50 and their 90th
      percentile of IPs used is 1.
    * A crew p1..p6, each on its own phone, re-reads the same 100 strangers (w000..w099)
      twelve times over 40 days, each read through the next IP of a proxy pool of 60
      that only the crew uses (60 IPs each: 60× the keenest tenth's, a proxy rotator). It reaches twice what
      its peers reach (no harvester alone), 12 reads per stranger (no sweep by depth),
      linked through proxy IPs only it uses -> one flagged reading crew {p1..p6}.
    * QA rigs q1..q6 on one emulator and one office IP re-read their 100 test
      profiles (t000..t099) twelve times too: a device they dominate, but a rig is no
      sweep and no rotator -> no crew.
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"]]
    accounts += [[f"p{i}", "customer", "2018-05-01", ""] for i in range(1, 7)]
    accounts += [[f"q{i}", "customer", "2018-05-01", ""] for i in range(1, 7)]
    accounts += [[f"w{k:03d}", "customer", "2019-06-01", ""] for k in range(100)]
    accounts += [[f"t{k:03d}", "customer", "2019-06-01", ""] for k in range(100)]
    events: list = []
    _background(accounts, events)
    _background_readers(accounts, events)
    for j in range(1, 7):
        for rnd in range(12):
            for k in range(100):
                at = T0 + timedelta(days=2 + 3 * rnd + j % 3, minutes=k + 7 * j)
                ip = f"198.18.0.{(10 * j + k) % 60}"
                events.append([_ts(at), f"p{j}", f"p{j}-phone", ip, "view_profile",
                               f"w{k:03d}", "1"])
            for k in range(100):
                at = T0 + timedelta(days=2 + 3 * rnd, hours=j, minutes=k)
                events.append([_ts(at), f"q{j}", "qa-emulator", "192.0.2.10", "view_profile",
                               f"t{k:03d}", "1"])
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {f"p{i}" for i in range(1, 7)}
    assert "rotated through" in ring["reasons"]
    assert not {f"q{i}" for i in range(1, 7)} & set(members["account_id"])


def test_harvesters_made_the_same_week_are_a_crew_and_old_heavy_readers_are_not(tmp_path):
    """Sweeps of strangers, each read once, at 12× the peers' level each.

    * 100 background browsers (h000..h099) each read 10..50 strangers: the customers'
      75th percentile of reach is 50, so 600 strangers is 12× (a harvester: 10×).
    * b1..b4, created within three days of one another in February 2020, each on its
      own phone, all on one IP only they use, sweep 600 strangers each: 48× in all,
      under the 100× a crew needs, but four harvesters bulk-made together are a crew
      made for the job (over 30×: 10× per harvester of a crew of 3) -> one flagged
      ring {b1..b4}.
    * o1..o4, created years apart, on one tablet and home IP only they use, sweep 600
      strangers each too: 48×, no burst -> not flagged.
    * s1..s4, four of a partner's ten staff, all created the same day (onboarding makes
      a team's logins together), on one office IP only they use, sweep 600 each: no
      bulk-made crew (and not its workforce, four of ten; alike, none stands out) ->
      not flagged.
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"]]
    accounts += [[f"b{j}", "customer", f"2020-02-{19 + j}", ""] for j in range(1, 5)]
    accounts += [[f"o{j}", "customer", f"201{j}-06-01", ""] for j in range(1, 5)]
    accounts += [[f"s{j}", "partner_staff", "2020-02-20", "P1"] for j in range(1, 11)]
    events: list = []
    _background(accounts, events)
    events += [[_ts(T0 + timedelta(hours=j)), f"s{j}", f"s{j}-pc", "198.51.100.71", "login",
                "", "0"] for j in range(5, 11)]
    start = _background_readers(accounts, events)
    for j in range(1, 5):
        _strangers(accounts, events, T0 + timedelta(days=2), f"b{j}", f"b{j}-phone",
                   "198.51.100.50", 600, start)
        _strangers(accounts, events, T0 + timedelta(days=2), f"o{j}", "home-tablet",
                   "198.51.100.60", 600, start + 600)
        _strangers(accounts, events, T0 + timedelta(days=2), f"s{j}", f"s{j}-pc",
                   "198.51.100.70", 600, start + 1200)
        start += 1800
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"b1", "b2", "b3", "b4"}
    assert "a crew made for the job" in ring["reasons"]


def test_weak_harvesters_on_ips_only_a_crew_uses_join_its_harvesters(tmp_path):
    """A crew on datacenter IPs of its own, few of it harvesters (peers' level: 50).

    * 100 background browsers (h000..h099) each read 10..50 strangers, each on its
      home IP: the customers' 75th percentile of reach is 50.
    * d1..d4 sweep 750 strangers each (15×: harvesters), e1..e10 sweep 249 each (5×:
      harm of their own, under 10×), each on its own phone, all through three
      datacenter IPs that nobody else uses. The harvesters are 4 of the IPs' 14 users
      (not most, so by themselves they do not pull anyone in: the ring once held
      d1..d4 only); but every user of those IPs has harm of its own (over
      ``crew_share``, 0.8), so the IPs are the crew's own and e1..e10 join -> one
      flagged ring of all 14.
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"]]
    crew = [f"d{j}" for j in range(1, 5)] + [f"e{j}" for j in range(1, 11)]
    accounts += [[who, "customer", "2018-05-01", ""] for who in crew]
    events: list = []
    _background(accounts, events)
    start = _background_readers(accounts, events)
    for j, who in enumerate(crew):
        n = 750 if who.startswith("d") else 250
        for k in range(3):
            _strangers(accounts, events, T0 + timedelta(days=2, hours=j), who,
                       f"{who}-phone", f"203.0.113.{100 + k}", n // 3, start)
            start += n // 3
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == set(crew)


@pytest.mark.parametrize("readers, flagged_rings", [(1, 1), (2, 2), (3, 0)])
def test_a_lone_reader_must_stand_nearly_alone_at_the_top(tmp_path, readers, flagged_rings):
    """Heavy readers that share nothing, each sweeping 600 strangers once.

    100 background browsers read 10..50 strangers each: the customers' 75th percentile
    of reach, and their fourth-highest without the readers, is 50. A reader at 600 is a
    harvester (12×, no crew, no staff) that stands 12× above the fourth-highest: a lone
    crawler needs 10× that and 3× the second-highest other customer as well.

    * one reader: flagged; two alike (a crawler pair that shares nothing): each has
      only the other near it, the next is at 50 -> two flagged rings;
    * three alike (a small platform's heavy readers): each has two others at its
      level -> a habit, no ring flagged.
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"]]
    heavy = [f"x{j}" for j in range(1, readers + 1)]
    accounts += [[who, "customer", f"201{j}-03-01", ""] for j, who in enumerate(heavy)]
    events: list = []
    _background(accounts, events)
    start = _background_readers(accounts, events)
    for j, who in enumerate(heavy):
        _strangers(accounts, events, T0 + timedelta(days=2), who, f"{who}-phone",
                   f"198.51.100.{j}", 600, start)
        start += 600
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    assert len(flagged) == flagged_rings
    if flagged_rings:
        assert set(members.loc[members["ring_id"].isin(flagged["ring_id"]), "account_id"]) \
            == set(heavy)


def test_a_crew_that_is_half_the_readers_on_two_cloned_devices_is_flagged(tmp_path):
    """A small platform where the crew sets its peers' level, unless peers count by device.

    * 40 honest readers (r00..r39), each on its own phone and home, read 4 strangers
      of their own once each: reach 4.
    * A store kiosk (``kiosk-1``) where 20 shoppers (k00..k19) read 4 strangers each:
      reach 4, one device.
    * A crew c00..c59 on two cloned devices (30 accounts each, one datacenter IP) splits
      a crawl queue: each reads 50 strangers nobody else reads, once: reach 50.
    Counted by account, the crew is half of the 120 readers and a quarter of the active
    customers: its peers' 75th percentile is 50, and the crew is 1× its peers. Counted
    by device and home, the kiosk is one voice and the crew one (its 60 members share
    one datacenter IP, each 1/60): 41 voices of the honest readers against 1, the 75th
    percentile is 4 and each crew member 12.5×, a harvester on a device its crew
    dominates -> one flagged ring of exactly the crew.
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"]]
    for name, n, created in (("r{:02d}", 40, "2018-05-01"), ("k{:02d}", 20, "2018-05-01"),
                             ("c{:02d}", 60, "2020-01-10"), ("u{:03d}", 240, "2019-06-01"),
                             ("w{:04d}", 3000, "2019-06-01")):
        accounts += [[name.format(i), "customer", created, ""] for i in range(n)]
    events: list = []
    _background(accounts, events)

    _honest_readers(events, 4)
    for i in range(20):
        for k in range(4):
            _read(events, T0 + timedelta(days=2, hours=9, minutes=4 * i + k), f"k{i:02d}",
                  "kiosk-1", "203.0.113.7", f"u{160 + 4 * i + k:03d}")
    for i in range(60):
        for k in range(50):
            _read(events, T0 + timedelta(days=3 + k % 10, hours=i % 24, seconds=30 * k),
                  f"c{i:02d}", f"clone-{i // 30}", "198.51.100.9", f"w{50 * i + k:04d}")
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {f"c{i:02d}" for i in range(60)}
    assert "customer account that reads profiles, counting each device or home once" in (
        ring["reasons"])
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert "stranger_reach:customer" in record["peer_baselines_counted_by_device"]


def test_a_coupon_crew_made_inside_the_window_is_judged_against_established_customers(
        tmp_path):
    """A small platform whose coupon crew sets its peers' level, unless the accounts made
    inside the export window count as one.

    * 120 established customers (e000..e119, made in 2018), each on a phone of its own
      behind one of four carrier-NAT IPs (30 each): 55 claim a coupon at one merchant
      (m1..m8, partner P1, no orders), 5 at two, 60 only browse.
    * A crew c00..c49 made on 2 and 3 March, inside the window, each on a phone of its own
      and through two of five residential proxies, claims at four merchants each.
    Counted by account, the crew is 29 % of the 170 active customers: the 90th percentile
    is 4 and each member 1× it. Counted by device and home, the NAT customers are 4 voices
    and the crew 2.5 (20 on each proxy): the percentile is still 4. With the 50 newcomers as one voice, the
    established customers' 90th percentile is 1 and each member is 4×: claimers at three
    times or more link through the proxies they dominate, 200× in all, with a
    new-account burst -> one flagged coupon crew of exactly the crew.
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    merchants = [f"m{i}" for i in range(1, 9)]
    accounts = [[m, "merchant", "2019-02-01", "P1"] for m in merchants]
    accounts += [[f"e{i:03d}", "customer", "2018-06-01", ""] for i in range(120)]
    accounts += [[f"c{i:02d}", "customer", f"2020-03-0{2 + i % 2}T10:00:00", ""]
                 for i in range(50)]
    events: list = []

    def event(t, who, device, ip, kind, merchant):
        events.append([_ts(t), who, device, ip, kind, merchant, "0"])

    for i in range(120):
        who, nat = f"e{i:03d}", f"100.64.0.{i // 30}"
        event(T0 + timedelta(hours=i), who, f"{who}-phone", nat, "view_item", "m1")
        for k in range(1 if i < 55 else 2 if i < 60 else 0):
            event(T0 + timedelta(days=5 + k, hours=i % 20), who, f"{who}-phone", nat,
                  "coupon_claim", merchants[(i + k) % 8])
    for i in range(50):
        who = f"c{i:02d}"
        for k in range(4):
            event(T0 + timedelta(days=4 + k, hours=i % 24, minutes=k), who, f"{who}-phone",
                  f"198.51.100.{(i // 10 + k % 2) % 5}", "coupon_claim", merchants[(i + k) % 8])
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {f"c{i:02d}" for i in range(50)}
    assert "coupon crew: 50 accounts" in ring["reasons"]
    # Counting by device alone left the percentile at 4: the reason credits the newcomers.
    assert ("customer account, counting the accounts made inside the export window as one"
            in ring["reasons"])
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert "coupon_merchants:customer" in record["peer_baselines_counting_newcomers_as_one"]
    assert "coupon_merchants:customer" not in record["peer_baselines_counted_by_device"]


def test_three_heavy_readers_at_a_kiosk_are_no_crew_and_three_on_their_own_phone_are(
        tmp_path):
    """Three harvesters make a crew only on devices or IPs they dominate.

    * 40 honest readers (r00..r39), each on its own phone and home, read 2 strangers
      each: the customers' 75th percentile of reach is 2.
    * A store kiosk (``kiosk-7``, one shop IP) used by 21 shoppers k00..k20, who all
      browse; three of them (k00..k02) read 100 cold strangers each: 50× their peers,
      150× together, and one community through the kiosk. But they are 3 of its 21
      users: they share a community, not infrastructure of their own. No crew
      evidence, and a lone reader or a pair needs 1,000× -> not flagged.
    * A crew c0..c2 on one cloned device (``clone-1``) and a datacenter IP only it uses
      reads 100 cold strangers each: three harvesters on a device they dominate, 150×
      -> flagged, exactly the crew.
    """
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"]]
    for name, n in (("r{:02d}", 40), ("k{:02d}", 21), ("c{}", 3), ("u{:03d}", 680)):
        accounts += [[name.format(i), "customer", "2018-05-01", ""] for i in range(n)]
    events: list = []
    _background(accounts, events)

    _honest_readers(events, 2)
    for i in range(21):
        events.append([_ts(T0 + timedelta(days=2, hours=9, minutes=10 * i)), f"k{i:02d}",
                       "kiosk-7", "203.0.113.7", "view_item", "m1", "0"])
    for i in range(3):
        for k in range(100):
            _read(events, T0 + timedelta(days=3 + k % 5, hours=10, minutes=k), f"k{i:02d}",
                  "kiosk-7", "203.0.113.7", f"u{80 + 100 * i + k:03d}")
            _read(events, T0 + timedelta(days=3 + k % 5, hours=k % 24, seconds=30 * k),
                  f"c{i}", "clone-1", "198.51.100.9", f"u{380 + 100 * i + k:03d}")
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"c0", "c1", "c2"}
    assert "3 accounts harvest on their own, together, on devices or IPs they dominate" in (
        ring["reasons"])


def test_a_pair_of_sprees_that_shares_shops_is_no_promotion(tmp_path):
    """A promotion is a crowd: it takes a run of three or more sprees.

    Background as in the festival test: 60 shoppers each claim one coupon among 24 other
    events. q1 and q2, made two days apart on phones and homes of their own, each claim
    at 7 shops they never ordered from (focus 7/15, 12× the median claimer's), 4 of them
    the same: each one's shops are 4/7 shops "half its run claimed at", which in a
    festival's crowd would mark a promotion. A run of two is no crowd: together they
    claimed at 10 shops -> one flagged ring of exactly {q1, q2}.
    """
    partners = [["P1", "Shop Co", "isv", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", "P1"] for k in range(1, 41)]
    accounts += [["q1", "customer", "2020-03-10", ""], ["q2", "customer", "2020-03-12", ""]]
    events: list = []
    _background(accounts, events)
    _claiming_shoppers(events)
    for j, (who, own) in enumerate((("q1", [25, 26, 27]), ("q2", [28, 29, 30]))):
        _spree(events, who, f"{who}-phone", f"198.51.100.{j}",
               T0 + timedelta(days=12 + 2 * j, hours=j), [21, 22, 23, 24] + own)
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"q1", "q2"}
    assert "did little but claim coupons" in ring["reasons"]


def test_a_partners_campaign_crowd_is_no_crew_and_a_crew_on_one_emulator_at_it_is(tmp_path):
    """A promotion can be one partner's campaign over many shops.

    Background as in the festival test: 60 shoppers each claim one coupon among 24 other
    events, 10 of them at P2's shops and 50 at shops no partner serves (m1..m20). P2, the
    only partner, serves 12 of the 32 shops (m21..m32) and runs a campaign there:
    * f00..f29 sign up the same day, each on a phone and home of its own, and each claims
      at 3 of the 12 shops (spread, so no shop is claimed by half of them): sprees
      (focus 3/7, 11× the median claimer's), but all their claims are at one partner's
      shops, which takes a sixth of the usual claims -> a campaign's crowd, not flagged.
    * e1..e5 sign up the same day on one emulator (``emu-4``) and claim at 4 of the
      campaign's shops each (11 in all): sprees on a device another spree uses came for
      no campaign -> one flagged ring of exactly {e1..e5}.
    """
    partners = [["P2", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [[f"m{k}", "merchant", "2019-02-01", ""] for k in range(1, 21)]
    accounts += [[f"m{k}", "merchant", "2019-02-01", "P2"] for k in range(21, 33)]
    accounts += [[f"f{j:02d}", "customer", "2020-03-10", ""] for j in range(30)]
    accounts += [[f"e{j}", "customer", "2020-03-10", ""] for j in range(1, 6)]
    events: list = []
    _background(accounts, events)
    _claiming_shoppers(events, lambda i: f"m{21 + i % 12}" if i < 10 else f"m{1 + i % 15}")
    for j in range(30):
        _spree(events, f"f{j:02d}", f"f{j}-phone", f"10.9.0.{j}",
               T0 + timedelta(days=9, minutes=7 * j), [21 + (j + 4 * k) % 12 for k in range(3)])
    for j in range(1, 6):
        _spree(events, f"e{j}", "emu-4", f"198.51.100.{j}",
               T0 + timedelta(days=9, hours=5, minutes=j), [21 + (2 * j + k) % 11 for k in range(4)])
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {f"e{j}" for j in range(1, 6)}
    assert "did little but claim coupons" in ring["reasons"]


def _readers_export():
    """One promotions partner and its merchant, the browsers and the background readers
    (:func:`_background_readers`): partners, accounts, events and the next stranger."""
    partners = [["P1", "Promo Co", "promotions", "2019-01-01"]]
    accounts = [["m1", "merchant", "2019-02-01", "P1"]]
    events: list = []
    _background(accounts, events)
    return partners, accounts, events, _background_readers(accounts, events)


def test_a_crew_that_began_its_sweep_together_is_flagged_and_a_festival_is_not(tmp_path):
    """Readers judged by when they began.

    * h000..h099 read 10-50 strangers each from day 1 (the customers' 75th percentile of
      reach is 50): honest first reads pile up on the export's first days.
    * A crew c01..c12 of aged accounts (made in 2018), each on a phone and a home of its
      own, begins on day 30: c01 and c02 read 800 strangers each (harvesters, 16×), the
      other ten 60 each (1.2× their peers), nothing shared. Twelve first reads within 3
      days where none came in the 14 days before: 12 / ((0 + 1) × 3 / 14) = 56× the rate
      before -> one flagged ring of exactly {c01..c12}, its two harvesters with it, and
      no claim that they operate together on shared devices or IPs.
    * A festival's sign-ups g01..g12, made on day 29, read 60 strangers each from day 30
      too: made a day before they began, they are no crew that began together.
    """
    partners, accounts, events, start = _readers_export()
    accounts += [[f"c{j:02d}", "customer", "2018-04-01", ""] for j in range(1, 13)]
    accounts += [[f"g{j:02d}", "customer", _ts(T0 + timedelta(days=29)), ""]
                 for j in range(1, 13)]
    for j in range(1, 13):
        n = 800 if j <= 2 else 60
        _strangers(accounts, events, T0 + timedelta(days=30, hours=j), f"c{j:02d}",
                   f"c{j}-phone", f"10.9.0.{j}", n, start)
        start += n
        _strangers(accounts, events, T0 + timedelta(days=30, hours=j), f"g{j:02d}",
                   f"g{j}-phone", f"10.9.1.{j}", 60, start)
        start += 60
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {f"c{j:02d}" for j in range(1, 13)}
    assert "swept together: 12 accounts" in ring["reasons"]
    assert "operate together" not in ring["reasons"]
    assert not {f"g{j:02d}" for j in range(1, 13)} & set(members["account_id"])


def test_a_crew_passing_through_proxied_homes_does_not_pull_their_residents_in(tmp_path):
    """A crew's sessions through residential proxies: real customers' homes.

    * h000..h099 read 10-50 strangers each: the customers' 75th percentile of reach is 50.
    * A crew c1..c4, each on a phone of its own, reads 800 strangers each (16×) from a
      datacenter IP only it uses: three or more harvesters on an IP they dominate.
    * Residents r1..r6 each read 200 strangers (4×, heavy but honest: over the join
      factor) at home, 200 events on their home IP; each crew member passed through
      every home for 5 reads. On each home the crew is 4 of its 5 users, but made 20 of
      its 220 events: passers-by, under a tenth of the resident's 200.
    Expected: one flagged ring of exactly {c1..c4}; no resident in any ring.
    """
    partners, accounts, events, start = _readers_export()
    accounts += [[f"c{j}", "customer", "2018-04-01", ""] for j in range(1, 5)]
    accounts += [[f"r{k}", "customer", "2017-04-01", ""] for k in range(1, 7)]
    for k in range(1, 7):
        _strangers(accounts, events, T0 + timedelta(days=2, hours=k), f"r{k}", f"r{k}-phone",
                   f"10.7.0.{k}", 200, start)
        start += 200
    for j in range(1, 5):
        _strangers(accounts, events, T0 + timedelta(days=3, hours=j), f"c{j}", f"c{j}-phone",
                   "198.51.100.9", 770, start)
        start += 770
        for k in range(1, 7):
            _strangers(accounts, events, T0 + timedelta(days=4 + k, hours=j), f"c{j}",
                       f"c{j}-phone", f"10.7.0.{k}", 5, start)
            start += 5
    flagged, members, _ = _run(tmp_path, partners, accounts, events)
    ring, got = _the_one_flagged(flagged, members)
    assert got == {"c1", "c2", "c3", "c4"}
    assert not {f"r{k}" for k in range(1, 7)} & set(members["account_id"])
