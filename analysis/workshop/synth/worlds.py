"""Randomised worlds: a detector-blind generator of whole platform exports.

Written without reading the detector: only the export contract
(``data/README.md``, :mod:`analysis.contract`) and the scoring rules
(:mod:`analysis.workshop.evaluate`) were used. Every seed draws every parameter
from wide ranges (:func:`draw_params`), then :func:`generate_world` writes::

    out_dir/export/{partners,accounts,events}.csv[.gz]|.parquet  (+ relationships in ~40 %)
    out_dir/labels.csv     account_id, ring_id, scenario - ONLY planted ring accounts
    out_dir/truth.json     per ring: scenario, accounts, partner, first harvest, tactic
                           parameters, per look-alike: kind, accounts, parameters
    out_dir/world.json     the drawn parameters (== draw_params(seed, ...) plus format)

The world
---------
* 500-100,000 accounts (log-uniform; golden-ratio stratified over consecutive
  seeds so any 40 seeds span the range), a window of 30-365 days ending on a
  random day of 2024-2026. Total events stay under about 3.5M: honest activity
  per account is scaled down in big worlds, ring and look-alike volumes are capped.
* Honest customers browse, search, read comments, order and claim coupons at
  merchants; most read few or no profiles. Merchants read the profiles of their
  own buyers; partners (promotions, isv, logistics, agency) have staff who read
  the clients of the merchants they serve. 0-30 % of those honest reads go to
  pre-window clientele (customers whose orders predate the window: they are in
  ``relationships`` when that table is written, nowhere else). Honest readers
  return to the same clients over days. isv staff are API integrators returning
  1-100 records per call.
* Planted rings (:data:`TACTICS`), 1-6 per world: insiders at promotions
  partners sweeping never-read strangers (crawl share 0.5-100 %, ramping or
  steady, to the window's end or in a burst of 2-20 days; a quarter of them
  are the partner's whole staff) or hiding 1-3 % stranger calls in heavy honest API traffic; external
  crews of fresh, aged or taken-over customer accounts crawling profiles and/or
  comments with emulator/cloned/rotating/own devices, datacenter IPs or
  residential proxies (real customers' home IPs), split queues, synchronised or
  independent schedules, low-and-slow and late-start variants; coupon-abuse
  crews claiming coupons with harvested identities.
* Honest look-alikes (:data:`LOOKALIKES`), a random subset per world.
* Formats: id styles, device id styles, IPv4/IPv6, timestamp offsets, optional
  milliseconds, records left empty where 1, column order and header case.

Deterministic: everything comes from ``numpy.random.default_rng([SALT, seed])``;
the same seed writes byte-identical files.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ...contract import ACCOUNT_TYPES, EVENT_TYPES

__all__ = ["World", "draw_params", "generate_world", "TACTICS", "LOOKALIKES", "DEVICE_MODES",
           "IP_MODES", "TARGET_MODES", "MIN_ACCOUNTS", "MAX_ACCOUNTS", "MIN_DAYS", "MAX_DAYS",
           "MAX_EVENTS"]

SALT = 20260417
MIN_ACCOUNTS, MAX_ACCOUNTS = 500, 100_000
MIN_DAYS, MAX_DAYS = 30, 365
#: Soft cap on the events of one world.
MAX_EVENTS = 3_500_000

TACTICS = ("insider_sweep", "insider_hidden", "external_fresh", "external_aged",
           "external_takeover", "coupon_abuse")
_TACTIC_WEIGHTS = (0.17, 0.13, 0.18, 0.14, 0.16, 0.22)
LOOKALIKES = ("integrator", "prewindow_rereader", "call_centre", "carrier_nat", "campus_nat",
              "office_ip", "family_phone", "kiosk", "popular_reader", "qa_rig", "signup_burst",
              "cs_shifts")
DEVICE_MODES = ("emulator", "cloned", "rotating", "own")
IP_MODES = ("datacenter", "residential_proxy", "mixed")
TARGET_MODES = ("profiles", "comments", "both")
PARTNER_TYPES = ("promotions", "isv", "logistics", "agency")
ID_STYLES = ("prefixed", "uuid", "numeric", "dashed")
DEVICE_STYLES = ("hex16", "uuid", "fp")
TS_OFFSETS = ("Z", "+08:00", "", "-05:00")

MS = 1
SEC = 1000
HOUR = 3_600_000
DAY = 86_400_000
YEAR = 365 * DAY
LOGIN, SEARCH, ITEM, COMMENTS, PROFILE, ORDER, COUPON = range(7)
CUSTOMER, MERCHANT, STAFF = range(3)
# kinds of IP address (only used to shape the strings)
RES, MOBILE, NAT, DC, OFFICE, CAMPUS, STORE, VENUE = range(8)

_H = {
    "evening": [1, .6, .4, .3, .3, .5, 1, 2, 3, 3.5, 3.5, 4, 4.5, 4, 4, 4, 4.5, 5, 6, 7, 7.5, 7, 5,
                2.5],
    "office": [.05] * 8 + [2, 6, 7, 7, 5, 6, 7, 7, 6, 3] + [.3, .1, .05, .05, .05, .05],
    "store": [0] * 9 + [3, 5, 6, 6, 6, 6, 6, 6, 6, 5, 4, 2] + [0] * 3,
    "allday": [1] * 24,
}
HOURS = {k: np.asarray(v, float) / np.sum(v) for k, v in _H.items()}


@dataclass
class World:
    export_dir: Path
    labels_path: Path
    truth_path: Path
    params_path: Path
    params: dict


# --------------------------------------------------------------------------- parameters

def _lu(rng, lo, hi):
    """Log-uniform draw in [lo, hi]."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _crew_size(rng) -> int:
    """2-300, skewed small (median ~6, ~10 % above 100)."""
    return int(round(2 * 150 ** (rng.random() ** 2.2)))


def _r(x, k=4):
    return round(float(x), k)


def _draw_rings(rng, n: int, d: int) -> list[dict]:
    rings = []
    for i in range(int(rng.integers(1, 7))):
        sc = str(rng.choice(TACTICS, p=_TACTIC_WEIGHTS))
        r: dict = {"ring_id": f"R{i + 1}", "scenario": sc}
        late = bool(rng.random() < 0.3)
        r["late_start"] = late
        r["start_frac"] = _r(rng.uniform(0.6, 0.92) if late else rng.uniform(0.0, 0.5))
        r["cold_share"] = _r(rng.uniform(0.1, 0.9))
        if sc == "insider_sweep":
            r["size"] = 1 + int(rng.random() ** 2 * 4.999)
            r["crawl_share"] = _r(_lu(rng, 0.005, 1.0))
            r["distinct_targets"] = int(_lu(rng, 100, 8000))
            r["ramp"] = str(rng.choice(["ramp", "steady"]))
            r["hours"] = str(rng.choice(["office", "allday"]))
            r["crawl_ip"] = str(rng.choice(["office", "office", "vpn_datacenter"]))
            r["reads_per_target"] = int(rng.choice([1, 1, 1, 2]))
            r["helpers"] = 0 if rng.random() < 0.75 else int(_lu(rng, 2, 20))
            r["honest_colleagues"] = int(rng.integers(2, 9))
            # Drawn from a side stream (seeded by this ring's own draws), so that a world
            # drawn before these two keeps every other parameter: a sweep can be the
            # partner's whole staff, and can last a few days instead of to the window's end.
            side = np.random.default_rng([r["distinct_targets"], r["size"], i])
            if side.random() < 0.25 and r["size"] >= 2:   # a one-account staff is no crew
                r["honest_colleagues"] = 0
            r["burst_days"] = int(side.integers(2, 21)) if side.random() < 0.5 else 0
        elif sc == "insider_hidden":
            r["size"] = 1 + int(rng.random() ** 2 * 2.999)
            r["start_frac"] = _r(rng.uniform(0.0, 0.4) if not late else rng.uniform(0.5, 0.8))
            r["honest_calls_per_day"] = int(_lu(rng, 300, 2500))
            r["crawl_share"] = _r(rng.uniform(0.01, 0.03))
            r["records"] = [1, 100]
            r["honest_colleagues"] = int(rng.integers(1, 4))
            r["helpers"] = 0
        elif sc.startswith("external"):
            r["size"] = _crew_size(rng)
            r["target_mode"] = str(rng.choice(TARGET_MODES))
            r["device_mode"] = str(rng.choice(DEVICE_MODES))
            r["ip_mode"] = str(rng.choice(IP_MODES))
            r["queue_overlap"] = _r(rng.uniform(0.0, 0.3))
            r["synchronised"] = bool(rng.random() < 0.4)
            slow = bool(rng.random() < 0.35)
            r["low_and_slow"] = slow
            r["reads_per_member_day"] = _r(_lu(rng, 2, 30) if slow else _lu(rng, 40, 1500), 2)
            r["duration_frac"] = _r(rng.uniform(0.5, 1.0) if slow else rng.uniform(0.05, 0.6))
            r["reads_per_session"] = int(rng.integers(1, 7) if slow else rng.integers(20, 300))
            r["comment_merchant_share"] = _r(rng.uniform(0.2, 1.0))
            r["page_records"] = int(rng.integers(10, 51))
            r["cover_traffic"] = bool(rng.random() < 0.5)
            r["hours"] = str(rng.choice(["allday", "evening"]))
            r["rotate_ip_per_request"] = bool(rng.random() < 0.5)
            r["proxy_pool"] = int(_lu(rng, 30, 3000))
            r["datacenter_ips"] = int(rng.integers(1, 31))
            if sc == "external_fresh":
                r["created_days_before"] = _r(rng.uniform(0, 21), 2)
                r["warmup"] = bool(rng.random() < 0.5)
            elif sc == "external_aged":
                r["age_years"] = _r(rng.uniform(1, 6), 2)
                r["prior_activity"] = str(rng.choice(["none", "minimal"]))
            else:
                r["honest_continues"] = bool(rng.random() < 0.4)
        else:  # coupon_abuse
            r["size"] = _crew_size(rng)
            r["bursts"] = int(rng.integers(1, 4))
            r["burst_days"] = _r(rng.uniform(0.3, 3), 2)
            r["merchants_per_member"] = [int(rng.integers(2, 6)), int(rng.integers(6, 31))]
            r["claims_per_merchant"] = int(rng.integers(1, 4))
            r["order_prob"] = _r(rng.uniform(0.05, 0.5))
            r["device_mode"] = str(rng.choice(DEVICE_MODES[:3]))
            r["ip_mode"] = str(rng.choice(IP_MODES))
            r["datacenter_ips"] = int(rng.integers(1, 21))
            r["proxy_pool"] = int(_lu(rng, 30, 1000))
            r["verify_reads"] = int(rng.integers(0, 6))
            r["link_to_crawl_ring"] = bool(rng.random() < 0.5)
            r["active_days"] = _r(rng.uniform(1, 20), 2)
        rings.append(r)
    # ring accounts at most ~25 % of the accounts
    cap = max(4, int(0.25 * n))
    tot = sum(r["size"] + r.get("helpers", 0) for r in rings)
    if tot > cap:
        f = cap / tot
        for r in rings:
            lo = 1 if r["scenario"].startswith("insider") else 2
            r["size"] = max(lo, int(r["size"] * f))
            if r.get("helpers"):
                r["helpers"] = max(2, int(r["helpers"] * f))
    # event caps: one ring at most ~8 % of MAX_EVENTS (insider_hidden ~14 %)
    for r in rings:
        sc = r["scenario"]
        hdays = d * (1 - r["start_frac"])
        if sc.startswith("external"):
            hd = max(1.0, hdays * r["duration_frac"])
            per = 1 + 1 / r["reads_per_session"] + (1.5 / r["reads_per_session"] if r[
                "cover_traffic"] else 0)
            est = r["size"] * r["reads_per_member_day"] * hd * per
            if est > 0.08 * MAX_EVENTS:
                r["reads_per_member_day"] = _r(r["reads_per_member_day"] * 0.08 * MAX_EVENTS / est, 3)
        elif sc == "insider_hidden":
            est = (r["size"] + r["honest_colleagues"]) * r["honest_calls_per_day"] * d
            if est > 0.14 * MAX_EVENTS:
                r["honest_calls_per_day"] = int(r["honest_calls_per_day"] * 0.14 * MAX_EVENTS / est)
        elif sc == "insider_sweep":
            crawl = r["distinct_targets"] * r["reads_per_target"]
            est = crawl / r["crawl_share"]
            if est > 0.08 * MAX_EVENTS:   # too much honest cover: raise the share
                r["crawl_share"] = _r(min(1.0, crawl / (0.08 * MAX_EVENTS)), 5)
    return rings


def _draw_lookalikes(rng, n: int, d: int) -> list[dict]:
    out = []

    def want(p):
        return bool(rng.random() < p)

    if want(0.5):
        cpd = _lu(rng, 200, 3000)
        cpd = min(cpd, 0.08 * MAX_EVENTS / d)
        out.append({"kind": "integrator", "staff": int(rng.integers(1, 5)),
                    "calls_per_day": int(cpd), "records": [int(rng.integers(20, 51)), 100]})
    if want(0.45):
        out.append({"kind": "prewindow_rereader", "staff": int(rng.integers(1, 7)),
                    "pre_share": _r(rng.uniform(0.5, 0.95)), "clients": int(_lu(rng, 100, 3000)),
                    "returns": _r(rng.uniform(1.5, 6)),
                    "partner_type": str(rng.choice(["agency", "logistics", "promotions"]))})
    if want(0.45):
        out.append({"kind": "call_centre", "staff": int(rng.integers(10, 81)),
                    "reads_per_agent_day": _r(_lu(rng, 10, 120), 2),
                    "partner_type": str(rng.choice(["logistics", "agency"]))})
    if want(0.5):
        out.append({"kind": "carrier_nat", "ips": int(rng.integers(1, 7)),
                    "subscriber_share": _r(rng.uniform(0.2, 0.7))})
    if want(0.4):
        out.append({"kind": "campus_nat", "students": int(_lu(rng, 30, 1500)),
                    "ips": int(rng.integers(1, 4)), "campus_session_share": _r(rng.uniform(0.5, 0.95))})
    if want(0.45):
        out.append({"kind": "office_ip", "offices": int(rng.integers(1, 6)),
                    "workers": [int(rng.integers(5, 15)), int(rng.integers(15, 61))],
                    "office_session_share": _r(rng.uniform(0.3, 0.7))})
    if want(0.5):
        out.append({"kind": "family_phone", "families": int(_lu(rng, 5, 300)),
                    "members": [2, int(rng.integers(3, 7))]})
    if want(0.4):
        out.append({"kind": "kiosk", "kiosks": int(rng.integers(1, 6)),
                    "users_per_kiosk": int(_lu(rng, 20, 400)),
                    "kiosk_session_share": _r(rng.uniform(0.3, 1.0))})
    if want(0.45):
        out.append({"kind": "popular_reader", "readers": int(_lu(rng, 3, 100)),
                    "pool": int(_lu(rng, 100, 2000)), "reads_per_session": _r(rng.uniform(5, 40), 2),
                    "sessions_per_day": _r(rng.uniform(0.3, 2.0), 3),
                    "shares_device": str(rng.choice(["none", "family_phone", "kiosk"]))})
    if want(0.4):
        out.append({"kind": "qa_rig", "accounts": int(rng.integers(2, 9)),
                    "test_accounts": int(rng.integers(2, 11)),
                    "events_per_day": int(min(_lu(rng, 50, 1000), 0.03 * MAX_EVENTS / d)),
                    "emulators": int(rng.integers(1, 4)),
                    "network": str(rng.choice(["office", "datacenter"]))})
    if want(0.4):
        out.append({"kind": "signup_burst", "accounts": int(_lu(rng, 100, 5000)),
                    "burst_days": int(rng.integers(1, 5)), "venue_ips": int(rng.integers(1, 5)),
                    "festival_merchants": int(rng.integers(1, 4)),
                    "at": _r(rng.uniform(0.05, 0.9))})
    if want(0.4):
        out.append({"kind": "cs_shifts", "staff": 3 * int(rng.integers(2, 11)),
                    "reads_per_agent_day": _r(_lu(rng, 10, 100), 2)})
    return out


def draw_params(seed: int, *, accounts: int | None = None, days: int | None = None) -> dict:
    """The drawn parameters of world ``seed`` (deterministic, cheap: nothing is generated).

    >>> p = draw_params(3)
    >>> MIN_DAYS <= p["days"] <= MAX_DAYS and MIN_ACCOUNTS <= p["accounts"] <= MAX_ACCOUNTS
    True
    >>> draw_params(3) == p and draw_params(3, accounts=800, days=40)["accounts"] == 800
    True
    """
    seed = int(seed)
    rng = np.random.default_rng([SALT, seed])
    # golden-ratio stratified quantiles: consecutive seeds spread over the whole range
    ua = (seed * 0.6180339887498949 + rng.uniform(0.0, 0.05)) % 1.0
    ud = (seed * 0.7548776662466927 + rng.uniform(0.0, 0.05)) % 1.0
    n = int(round(math.exp(math.log(MIN_ACCOUNTS) + ua * math.log(MAX_ACCOUNTS / MIN_ACCOUNTS))))
    d = int(round(MIN_DAYS + ud * (MAX_DAYS - MIN_DAYS)))
    if accounts is not None:
        n = int(accounts)
    if days is not None:
        d = int(days)
    if n < 200 or d < 7:
        raise ValueError("a world needs at least 200 accounts and 7 days")
    end = np.datetime64("2024-01-02") + int(rng.integers(0, 910))   # up to mid-2026: never future-dated
    start = end - d
    fmt = {
        "id_style": str(rng.choice(ID_STYLES)),
        "partner_id_style": str(rng.choice(["P%03d", "slug", "numeric", "uuid"])),
        "device_style": str(rng.choice(DEVICE_STYLES)),
        "ipv6_share": _r(0.0 if rng.random() < 0.5 else rng.uniform(0.05, 0.6)),
        "ts_offset": str(rng.choice(TS_OFFSETS)),
        "ts_millis": bool(rng.random() < 0.3),
        "records_style": str(rng.choice(["full", "blank_ones"])),
        "created_style": str(rng.choice(["timestamp", "timestamp", "date"])),
        "onboarded_style": str(rng.choice(["date", "timestamp", "some_empty"])),
        "gzip": bool(rng.random() < 0.3),
        "relationships": bool(rng.random() < 0.4),
        "shuffle_columns": bool(rng.random() < 0.25),
        "header_case": str(rng.choice(["lower", "lower", "lower", "title", "upper"])),
        "parquet_ts": str(rng.choice(["string", "timestamp"])),
    }
    pop = {
        "merchant_share": _r(rng.uniform(0.01, 0.05)),
        "served_share": _r(rng.uniform(0.3, 0.9)),
        "dormant_share": _r(rng.uniform(0.1, 0.6)),
        "signup_share": _r(rng.uniform(0.0, 0.15)),
        "sessions_per_day": _r(_lu(rng, 0.05, 0.8)),
        "searches_per_session": _r(rng.uniform(0.2, 2.0)),
        "items_per_session": _r(rng.uniform(0.5, 4.0)),
        "comments_per_session": _r(rng.uniform(0.1, 1.5)),
        "profile_reader_share": _r(rng.uniform(0.05, 0.4)),
        "profile_reads_per_session": _r(rng.uniform(0.1, 1.0)),
        "order_prob": _r(rng.uniform(0.03, 0.25)),
        "coupon_prob": _r(rng.uniform(0.01, 0.1)),
        "history_merchants": _r(rng.uniform(0.3, 3.0)),
        "prewindow_share": _r(rng.uniform(0.0, 0.3)),
        "merchant_reader_share": _r(rng.uniform(0.2, 0.9)),
        "merchant_read_prob": _r(rng.uniform(0.1, 0.7)),
        "merchant_returns": _r(rng.uniform(1.2, 4.0)),
        "popularity_zipf": _r(rng.uniform(0.6, 1.2)),
        "mobile_share": _r(rng.uniform(0.1, 0.7)),
        "local_utc_offset_h": float(rng.choice([8, -5, 0, 1, 5.5, -3, 9])),
        "popular_profiles": int(_lu(rng, 20, 300)),
    }
    rings = _draw_rings(rng, n, d)
    looks = _draw_lookalikes(rng, n, d)
    # partners: dedicated ones for insiders and partner look-alikes, then ordinary ones
    partners = []
    for r in rings:
        if r["scenario"].startswith("insider"):
            r["partner"] = len(partners)
            partners.append({"type": "promotions", "role": f"insider:{r['ring_id']}",
                             "staff": r["honest_colleagues"] + r["size"],
                             "api": r["scenario"] == "insider_hidden"})
    for lk in looks:
        if lk["kind"] in ("integrator", "prewindow_rereader", "call_centre", "cs_shifts"):
            lk["partner"] = len(partners)
            ptype = {"integrator": "isv", "cs_shifts": "agency"}.get(lk["kind"], lk.get("partner_type"))
            partners.append({"type": ptype, "role": lk["kind"], "staff": lk["staff"],
                             "api": lk["kind"] == "integrator"})
    n_merch = int(round(n * pop["merchant_share"]))
    for _ in range(int(np.clip(round(n_merch * rng.uniform(0.03, 0.2)), 2, 40))):
        t = str(rng.choice(PARTNER_TYPES))
        partners.append({"type": t, "role": "ordinary",
                         "staff": int(rng.integers(1, 4) if t == "isv" else rng.integers(1, 9)),
                         "api": t == "isv"})
    for pt in partners:
        if pt["role"] == "ordinary" and pt["api"]:
            pt["calls_per_day"] = int(min(_lu(rng, 20, 400) * pt["staff"], 0.03 * MAX_EVENTS / d))
        pt["read_share"] = _r(rng.uniform(0.1, 0.9))
        pt["returns"] = _r(rng.uniform(1.2, 4.5))
        pt["office_ips"] = 1 if pt["role"] in ("call_centre", "cs_shifts") else int(rng.integers(1, 4))
    # staff at most ~12 % of the accounts: shrink big teams first
    staff_cap = max(6, int(0.12 * n))
    while sum(pt["staff"] for pt in partners) > staff_cap:
        big = max(range(len(partners)), key=lambda i: (partners[i]["staff"], -i))
        if partners[big]["staff"] <= 2:
            break
        partners[big]["staff"] = max(2, int(partners[big]["staff"] * 0.8))
    for r in rings:    # keep crawlers inside their partner's (possibly shrunk) team
        if r["scenario"].startswith("insider"):
            pt = partners[r["partner"]]
            whole = r.get("honest_colleagues") == 0
            r["size"] = min(r["size"], max(1, pt["staff"] - (0 if whole else 1)))
            r["honest_colleagues"] = pt["staff"] - r["size"]
    for lk in looks:
        if "partner" in lk:
            lk["staff"] = partners[lk["partner"]]["staff"]
    n_merch = max(len(partners) + 3, n_merch)
    n_staff = sum(pt["staff"] for pt in partners)
    new_ring = sum(r["size"] for r in rings if r["scenario"] in (
        "external_fresh", "external_aged", "coupon_abuse")) + sum(r.get("helpers", 0) for r in rings)
    n_cust = n - n_merch - n_staff - new_ring
    if n_cust < 0.5 * n:
        raise ValueError(f"world {seed}: too few customers ({n_cust} of {n})")
    # look-alike customer groups: together at most ~45 % of the customers
    groups = {"campus_nat": "students", "signup_burst": "accounts", "popular_reader": "readers"}
    want = 0
    for lk in looks:
        if lk["kind"] in groups:
            want += lk[groups[lk["kind"]]]
        elif lk["kind"] == "family_phone":
            want += lk["families"] * (lk["members"][0] + lk["members"][1]) / 2
        elif lk["kind"] == "kiosk":
            want += lk["kiosks"] * lk["users_per_kiosk"]
        elif lk["kind"] == "office_ip":
            want += lk["offices"] * (lk["workers"][0] + lk["workers"][1]) / 2
        elif lk["kind"] == "qa_rig":
            want += lk["accounts"] + lk["test_accounts"]
    if want > 0.45 * n_cust:
        f = 0.45 * n_cust / want
        for lk in looks:
            k = lk["kind"]
            if k in groups:
                lk[groups[k]] = max(3, int(lk[groups[k]] * f))
            elif k == "family_phone":
                lk["families"] = max(2, int(lk["families"] * f))
            elif k == "kiosk":
                lk["users_per_kiosk"] = max(5, int(lk["users_per_kiosk"] * f))
            elif k == "office_ip":
                lk["workers"] = [max(3, int(lk["workers"][0] * f)), max(4, int(lk["workers"][1] * f))]
    return {"seed": seed, "accounts": n, "days": d, "start": str(start), "end": str(end),
            "format": fmt, "population": pop, "partners": partners, "rings": rings,
            "lookalikes": looks,
            "sizes": {"merchants": n_merch, "partners": len(partners), "staff": n_staff,
                      "ring_new_accounts": new_ring, "customers": n_cust},
            "tactics": sorted({r["scenario"] for r in rings}),
            "lookalike_kinds": sorted({lk["kind"] for lk in looks}),
            "relationships": fmt["relationships"]}


# --------------------------------------------------------------------------- generation

def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element among the elements of its group (input order)."""
    n = groups.size
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    lens = np.diff(np.r_[starts, n])
    rank_sorted = np.arange(n) - np.repeat(starts, lens)
    rank = np.empty(n, np.int64)
    rank[order] = rank_sorted
    return rank


class _Builder:
    def __init__(self, p: dict):
        self.p = p
        self.rng = np.random.default_rng([SALT, p["seed"], 7])
        self.S = int(np.datetime64(p["start"], "ms").astype(np.int64))
        self.E = int(np.datetime64(p["end"], "ms").astype(np.int64))
        self.D = p["days"]
        self.local = int(p["population"]["local_utc_offset_h"] * HOUR)
        self.N = p["accounts"]
        self.typ = np.full(self.N, -1, np.int8)
        self.created = np.zeros(self.N, np.int64)
        self.partner = np.full(self.N, -1, np.int32)
        self.dev_of = np.full(self.N, -1, np.int64)
        self.ip_of = np.full(self.N, -1, np.int64)
        self.n_acc = 0
        self.n_dev = 0
        self._ipk: list[np.ndarray] = []
        self.n_ip = 0
        self._ev: list[tuple] = []
        self.rings_truth: list[dict] = []
        self.looks_truth: list[dict] = []

    # ---- entities
    def new_accounts(self, n, typ, created, partner=-1) -> np.ndarray:
        idx = np.arange(self.n_acc, self.n_acc + n)
        assert self.n_acc + n <= self.N, "account plan overflow"
        self.typ[idx] = typ
        self.created[idx] = np.asarray(created, np.int64)
        self.partner[idx] = partner
        self.n_acc += n
        return idx

    def new_devices(self, n) -> np.ndarray:
        idx = np.arange(self.n_dev, self.n_dev + int(n))
        self.n_dev += int(n)
        return idx

    def new_ips(self, n, kind) -> np.ndarray:
        idx = np.arange(self.n_ip, self.n_ip + int(n))
        self._ipk.append(np.full(int(n), kind, np.int8))
        self.n_ip += int(n)
        return idx

    def emit(self, ts, acc, dev, ip, et, tgt=-1, rec=0, tag=0):
        ts = np.asarray(ts, np.int64).ravel()
        n = ts.size
        if n == 0:
            return

        def b(x, dt):
            return np.broadcast_to(np.asarray(x, dt), (n,))

        self._ev.append((ts, b(acc, np.int32), b(dev, np.int32), b(ip, np.int32), b(et, np.int8),
                         b(tgt, np.int32), b(rec, np.int32), b(tag, np.int16)))

    # ---- time helpers
    def rehour(self, t, lo, hi, hours=None, weekdays=False):
        """Keep each time's local day, redraw its hour from ``hours``; stay inside [lo, hi)."""
        t = np.asarray(t, np.float64)
        if hours is None or t.size == 0:
            return t.astype(np.int64)
        rng = self.rng
        h = rng.choice(24, size=t.size, p=HOURS[hours])
        day0 = np.floor((t + self.local) / DAY) * DAY - self.local
        if weekdays:
            dow = (np.floor((day0 + self.local) / DAY).astype(np.int64) + 3) % 7
            day0 = day0 - np.where(dow == 5, DAY, 0) + np.where(dow == 6, DAY, 0)
        t2 = day0 + (h + rng.random(t.size)) * HOUR
        ok = (t2 >= lo) & (t2 < hi)
        return np.where(ok, t2, t).astype(np.int64)

    def times(self, n, lo, hi, hours=None, weekdays=False):
        lo = np.broadcast_to(np.asarray(lo, np.float64), (n,))
        hi = np.broadcast_to(np.asarray(hi, np.float64), (n,))
        t = lo + self.rng.random(n) * np.maximum(hi - lo, 0)
        return self.rehour(t, lo, hi, hours, weekdays)

    # ---- events assembly
    def events(self):
        cols = list(zip(*self._ev))
        ts, acc, dev, ip, et, tgt, rec, tag = (np.concatenate(c) for c in cols)
        keep = (ts >= self.S) & (ts < self.E) & (ts >= self.created[acc])
        has_t = tgt >= 0
        keep &= ~has_t | (self.created[np.where(has_t, tgt, 0)] <= ts)
        keep &= ~has_t | (tgt != acc) | (et != PROFILE)
        ts, acc, dev, ip, et, tgt, rec, tag = (a[keep] for a in (ts, acc, dev, ip, et, tgt, rec,
                                                                     tag))
        order = np.lexsort((rec, ip, dev, tgt, et, acc, ts))
        return tuple(a[order] for a in (ts, acc, dev, ip, et, tgt, rec, tag))

    def profile_targets_so_far(self):
        """Read counts per account (view_profile targets) and own-event counts so far."""
        reads = np.zeros(self.N, np.int64)
        own = np.zeros(self.N, np.int64)
        for ch in self._ev:
            et, tgt, acc = ch[4], ch[5], ch[1]
            m = (et == PROFILE) & (tgt >= 0)
            if m.any():
                reads += np.bincount(tgt[m], minlength=self.N)
            own += np.bincount(acc, minlength=self.N)
        return reads, own


def _zipf(rng, n, a):
    w = 1.0 / np.arange(1, n + 1) ** a
    w = w[rng.permutation(n)]
    return w / w.sum()


def _records(rng, n, lo, hi):
    """Records per API call: mostly small, a long tail up to ``hi``."""
    x = np.exp(rng.uniform(math.log(lo), math.log(hi + 1), n))
    return np.clip(x.astype(np.int64), lo, hi)


class _Gen(_Builder):
    # ------------------------------------------------------------------ population
    def populate(self):
        p, rng = self.p, self.rng
        pop = p["population"]
        S, E = self.S, self.E
        sz = p["sizes"]
        M = sz["merchants"]
        # partners
        self.partners = p["partners"]
        P = len(self.partners)
        self.p_onboard = (S - rng.uniform(0.1, 6.0, P) * YEAR).astype(np.int64)
        # merchants
        m_created = (S - 30 * DAY - rng.exponential(3 * YEAR, M)).astype(np.int64)
        self.merchants = self.new_accounts(M, MERCHANT, m_created)
        self.m_pop = _zipf(rng, M, pop["popularity_zipf"])
        served = rng.random(M) < pop["served_share"]
        w = rng.lognormal(0, 0.8, P)
        w[[i for i, pt in enumerate(self.partners) if pt["role"] != "ordinary"]] *= 2.5
        m_partner = np.where(served, rng.choice(P, size=M, p=w / w.sum()), -1)
        by_pop = np.argsort(-self.m_pop, kind="stable")
        pick = by_pop[rng.permutation(min(M, 3 * P))[:P]]
        m_partner[pick] = np.arange(P)       # every partner serves at least one merchant
        self.m_partner = m_partner
        self.partner[self.merchants] = m_partner
        self.dev_of[self.merchants] = self.new_devices(M)
        self.ip_of[self.merchants] = self.new_ips(M, OFFICE)
        # partner staff
        self.staff_of = []
        self.office_ips = []
        for i, pt in enumerate(self.partners):
            k = pt["staff"]
            cr = np.maximum(self.p_onboard[i] + DAY, (S - rng.uniform(0.05, 3.0, k) * YEAR)).astype(
                np.int64)
            cr = np.minimum(cr, S - DAY)
            st = self.new_accounts(k, STAFF, cr, partner=i)
            self.staff_of.append(st)
            ips = self.new_ips(pt["office_ips"], OFFICE)
            self.office_ips.append(ips)
            self.dev_of[st] = self.new_devices(k)
            self.ip_of[st] = ips[rng.integers(0, len(ips), k)]
        # customers
        C = sz["customers"]
        signup = rng.random(C) < pop["signup_share"]
        cr = np.where(signup, S + rng.random(C) * (E - S - DAY),
                      S - DAY - rng.exponential(1.5 * YEAR, C))
        cr = np.maximum(cr, S - 8 * YEAR).astype(np.int64)
        self.cust = self.new_accounts(C, CUSTOMER, cr)
        self.active = np.zeros(self.N, bool)
        self.active[self.cust] = signup | (rng.random(C) >= pop["dormant_share"])
        # households share a home IP
        hs = rng.choice([1, 2, 3, 4], size=C, p=[0.7, 0.15, 0.1, 0.05])
        hh = np.repeat(np.arange(C), hs)[:C]
        H = int(hh[-1]) + 1
        hh = hh[rng.permutation(C)]
        self.home_ip_of_hh = self.new_ips(H, RES)
        self.hh = np.full(self.N, -1, np.int64)
        self.hh[self.cust] = hh
        self.ip_of[self.cust] = self.home_ip_of_hh[hh]
        self.dev_of[self.cust] = self.new_devices(C)
        self.dev2 = np.full(self.N, -1, np.int64)
        two = self.cust[rng.random(C) < 0.3]
        self.dev2[two] = self.new_devices(two.size)
        self.mobile_ip = np.full(self.N, -1, np.int64)
        self.mobile_ip[self.cust] = self.new_ips(C, MOBILE)
        self.fav = np.full((self.N, 3), -1, np.int64)
        self.fav[self.cust] = self.merchants[rng.choice(M, size=(C, 3), p=self.m_pop)]
        self.used = np.zeros(self.N, bool)     # customers given a special role
        self.takeover_at = np.full(self.N, np.iinfo(np.int64).max, np.int64)
        self.keep_after_takeover = np.zeros(self.N, bool)
        # ring-owned new accounts are allocated later (remaining account slots)

    def pick_customers(self, k, mask=None, rng=None):
        rng = rng or self.rng
        ok = ~self.used[self.cust]
        if mask is not None:
            ok &= mask[self.cust]
        cand = self.cust[ok]
        k = int(min(k, cand.size))
        out = np.sort(rng.choice(cand, size=k, replace=False)) if k else cand[:0]
        self.used[out] = True
        return out

    # ------------------------------------------------------------------ plan rings before honest
    def plan_rings(self):
        p, rng = self.p, self.rng
        S, E = self.S, self.E
        for r in p["rings"]:
            start = S + int(r["start_frac"] * (E - S))
            r["_start"] = start
            if r["scenario"] == "external_takeover":
                elig = self.active & (self.created < S - 60 * DAY)
                cap = max(2, int(0.3 * np.count_nonzero(elig[self.cust] & ~self.used[self.cust])))
                k = max(2, min(r["size"], cap))
                vic = self.pick_customers(k, elig)
                r["_members"] = vic
                self.takeover_at[vic] = start - rng.uniform(0, 3 * DAY, vic.size).astype(np.int64)
                self.keep_after_takeover[vic] = bool(r["honest_continues"])

    # ------------------------------------------------------------------ look-alike customer groups
    def plan_lookalike_groups(self):
        p, rng = self.p, self.rng
        S, E = self.S, self.E
        self.look = {lk["kind"]: lk for lk in p["lookalikes"]}
        n_act = self.active.copy()
        C = self.cust.size
        self.sess_override = {}
        # carrier NAT: subscribers' mobile sessions come from a handful of NAT IPs
        if "carrier_nat" in self.look:
            lk = self.look["carrier_nat"]
            ips = self.new_ips(lk["ips"], NAT)
            subs = self.cust[rng.random(C) < lk["subscriber_share"]]
            self.mobile_ip[subs] = ips[rng.integers(0, ips.size, subs.size)]
            self.looks_truth.append({"kind": "carrier_nat", "accounts": subs, "ips": ips,
                                     "params": lk})
        if "family_phone" in self.look:
            lk = self.look["family_phone"]
            fams = []
            for _ in range(lk["families"]):
                k = int(rng.integers(lk["members"][0], lk["members"][1] + 1))
                mem = self.pick_customers(k, n_act)
                if mem.size < 2:
                    break
                dev = self.new_devices(1)[0]
                self.dev_of[mem] = dev
                self.dev2[mem] = -1
                self.ip_of[mem] = self.ip_of[mem[0]]
                self.mobile_ip[mem] = self.mobile_ip[mem[0]]
                fams.append(mem)
            self.families = fams
            self.looks_truth.append({"kind": "family_phone",
                                     "accounts": np.concatenate(fams) if fams else np.zeros(0, int),
                                     "params": lk})
        if "kiosk" in self.look:
            lk = self.look["kiosk"]
            self.kiosk_of = np.full(self.N, -1, np.int64)
            ks = []
            for i in range(lk["kiosks"]):
                users = self.pick_customers(lk["users_per_kiosk"], n_act)
                store = self.merchants[rng.choice(self.merchants.size, p=self.m_pop)]
                dev = self.new_devices(1)[0]
                ip = self.new_ips(1, STORE)[0]
                ks.append({"users": users, "store": store, "device": dev, "ip": ip})
                self.kiosk_of[users] = i
            self.kiosks = ks
            self.looks_truth.append({"kind": "kiosk", "accounts": np.concatenate(
                [k["users"] for k in ks]), "stores": [int(k["store"]) for k in ks], "params": lk})
        if "campus_nat" in self.look:
            lk = self.look["campus_nat"]
            st = self.pick_customers(lk["students"], n_act)
            ips = self.new_ips(lk["ips"], CAMPUS)
            self.campus = (st, ips, lk["campus_session_share"])
            self.looks_truth.append({"kind": "campus_nat", "accounts": st, "ips": ips, "params": lk})
        if "office_ip" in self.look:
            lk = self.look["office_ip"]
            offs = []
            for _ in range(lk["offices"]):
                w = self.pick_customers(int(rng.integers(lk["workers"][0], lk["workers"][1] + 1)),
                                        n_act)
                offs.append((w, self.new_ips(1, OFFICE)[0]))
            self.offices = (offs, lk["office_session_share"])
            self.looks_truth.append({"kind": "office_ip", "accounts": np.concatenate(
                [o[0] for o in offs]), "ips": [int(o[1]) for o in offs], "params": lk})
        if "popular_reader" in self.look:
            lk = self.look["popular_reader"]
            mode = lk["shares_device"]
            k = lk["readers"]
            rd = np.zeros(0, np.int64)
            if mode == "family_phone" and getattr(self, "families", None):
                rd = np.concatenate([f[:1] for f in self.families])[:k]
            elif mode == "kiosk" and getattr(self, "kiosks", None):
                rd = np.concatenate([kk["users"][:3] for kk in self.kiosks])[:k]
            rest = self.pick_customers(k - rd.size, n_act & (self.created < S))
            self.popular_readers = np.sort(np.concatenate([rd, rest]).astype(np.int64))
            self.looks_truth.append({"kind": "popular_reader", "accounts": self.popular_readers,
                                     "params": lk})
        if "qa_rig" in self.look:
            lk = self.look["qa_rig"]
            old = self.created < S - 30 * DAY
            qa = self.pick_customers(lk["accounts"], old)
            tests = self.pick_customers(lk["test_accounts"], old)
            self.active[qa] = False
            self.active[tests] = False
            self.qa = (qa, tests)
            self.looks_truth.append({"kind": "qa_rig", "accounts": qa, "test_accounts": tests,
                                     "params": lk})
        if "signup_burst" in self.look:
            lk = self.look["signup_burst"]
            acc = self.pick_customers(lk["accounts"])
            t0 = S + int(lk["at"] * (E - S))
            self.created[acc] = t0 + (rng.random(acc.size) * lk["burst_days"] * DAY).astype(np.int64)
            self.active[acc] = True
            fm = self.merchants[rng.choice(self.merchants.size, size=lk["festival_merchants"],
                                           replace=False, p=self.m_pop)]
            self.festival = (acc, fm, self.new_ips(lk["venue_ips"], VENUE))
            self.looks_truth.append({"kind": "signup_burst", "accounts": acc,
                                     "merchants": fm, "params": lk})
        # popular profiles: accounts many people read
        k = min(self.p["population"]["popular_profiles"], max(5, self.cust.size // 10))
        pool_c = rng.choice(self.cust[self.created[self.cust] < S], size=k, replace=False)
        pm = self.merchants[rng.choice(self.merchants.size, size=min(self.merchants.size, k // 4 + 1),
                                       replace=False)]
        self.popular = np.concatenate([pool_c, pm]).astype(np.int64)
        self.popular_w = _zipf(rng, self.popular.size, 0.9)
        if "popular_reader" in self.look:
            lk = self.look["popular_reader"]
            extra = self.cust[self.created[self.cust] < S]
            extra = extra[~np.isin(extra, self.popular)]
            extra = rng.choice(extra, size=min(extra.size, max(0, lk["pool"] - self.popular.size)),
                               replace=False)
            self.feed_pool = np.concatenate([self.popular, extra]).astype(np.int64)

    # ------------------------------------------------------------------ honest customers
    def customers(self, budget: float):
        p, rng = self.p, self.rng
        pop = p["population"]
        S, E = self.S, self.E
        cust = self.cust
        C = cust.size
        act = self.active[cust]
        lo = np.maximum(self.created[cust], S)
        days = np.maximum(E - lo, 0) / DAY
        rate = pop["sessions_per_day"] * rng.lognormal(-0.4, 0.9, C) * act
        lam_p = np.where(rng.random(C) < pop["profile_reader_share"],
                         pop["profile_reads_per_session"] * rng.lognormal(0, 0.6, C), 0.0)
        per_sess = (1.75 + pop["searches_per_session"] + pop["items_per_session"] +
                    pop["comments_per_session"] + lam_p.mean() + pop["order_prob"] + pop["coupon_prob"])
        natural = float((rate * days).sum() * per_sess)
        scale = min(1.0, budget / max(natural, 1.0))
        self.activity_scale = scale
        rate = rate * scale
        pr = getattr(self, "popular_readers", None)
        lam_p_acc = np.zeros(self.N)
        lam_p_acc[cust] = lam_p
        if pr is not None:
            lk = self.look["popular_reader"]
            i = np.searchsorted(cust, pr)
            rate[i] = np.maximum(rate[i], lk["sessions_per_day"] * max(scale, 0.2))
            lam_p_acc[pr] = lk["reads_per_session"]
        fest = getattr(self, "festival", None)
        if fest is not None:
            i = np.searchsorted(cust, fest[0])
            rate[i] *= 0.3
        n_s = rng.poisson(rate * days)
        s_acc = np.repeat(cust, n_s)
        s_lo = np.repeat(lo, n_s)
        s_t = self.times(s_acc.size, s_lo, E, "evening")
        # takeovers: the owner's sessions stop (or thin out) at the takeover
        after = s_t >= self.takeover_at[s_acc]
        drop = after & ~(self.keep_after_takeover[s_acc] & (rng.random(s_acc.size) < 0.3))
        s_acc, s_t, s_lo = s_acc[~drop], s_t[~drop], s_lo[~drop]
        n = s_acc.size
        s_dev = np.where((self.dev2[s_acc] >= 0) & (rng.random(n) < 0.25), self.dev2[s_acc],
                         self.dev_of[s_acc])
        mob = rng.random(n) < pop["mobile_share"]
        s_ip = np.where(mob, self.mobile_ip[s_acc], self.ip_of[s_acc])
        fav = self.fav[s_acc, rng.integers(0, 3, n)]
        s_m = np.where(rng.random(n) < 0.7, fav,
                       self.merchants[rng.choice(self.merchants.size, size=n, p=self.m_pop)])
        s_store = np.zeros(n, bool)
        # look-alike overrides at session level
        if hasattr(self, "campus"):
            st, ips, share = self.campus
            m = np.isin(s_acc, st) & (rng.random(n) < share)
            s_ip[m] = ips[rng.integers(0, ips.size, m.sum())]
        if hasattr(self, "offices"):
            offs, share = self.offices
            for w, ip in offs:
                m = np.isin(s_acc, w) & (rng.random(n) < share)
                s_t[m] = self.rehour(s_t[m], s_lo[m], E, "office", weekdays=True)
                s_ip[m] = ip
        if hasattr(self, "kiosks"):
            share = self.look["kiosk"]["kiosk_session_share"]
            kio = self.kiosk_of[s_acc]
            m = (kio >= 0) & (rng.random(n) < share)
            for i, k in enumerate(self.kiosks):
                mm = m & (kio == i)
                s_dev[mm] = k["device"]
                s_ip[mm] = k["ip"]
                s_m[mm] = k["store"]
                s_t[mm] = self.rehour(s_t[mm], s_lo[mm], E, "store")
                s_store |= mm
        # the festival: a first session at sign-up, at the venue
        f_extra = None
        if fest is not None:
            acc, fm, vips = fest
            t = self.created[acc] + rng.uniform(60 * SEC, 2 * HOUR, acc.size).astype(np.int64)
            venue = rng.random(acc.size) < 0.6
            f_extra = (acc, t, self.dev_of[acc],
                       np.where(venue, vips[rng.integers(0, vips.size, acc.size)],
                                self.mobile_ip[acc]), fm[rng.integers(0, fm.size, acc.size)])
        self._expand_sessions(s_acc, s_t, s_dev, s_ip, s_m, lam_p_acc, s_store)
        if f_extra is not None:
            acc, t, dev, ip, m = f_extra
            k = acc.size
            self.emit(t, acc, dev, ip, LOGIN)
            self.emit(t + 20 * SEC, acc, dev, ip, ITEM, m)
            nclaim = 1 + (rng.random(k) < 0.4)
            rep = np.repeat(np.arange(k), nclaim)
            self.emit(t[rep] + 60 * SEC + np.arange(rep.size) % 2 * 30 * SEC, acc[rep], dev[rep],
                      ip[rep], COUPON, fest[1][rng.integers(0, fest[1].size, rep.size)])
            o = rng.random(k) < 0.3
            self.emit(t[o] + 150 * SEC, acc[o], dev[o], ip[o], ORDER, m[o])

    def _expand_sessions(self, s_acc, s_t, s_dev, s_ip, s_m, lam_p_acc, s_store):
        rng = self.rng
        pop = self.p["population"]
        n = s_acc.size
        if n == 0:
            return
        counts = [
            (rng.random(n) < 0.75).astype(np.int64),
            rng.poisson(pop["searches_per_session"], n),
            1 + rng.poisson(pop["items_per_session"], n),
            rng.poisson(pop["comments_per_session"], n),
            rng.poisson(lam_p_acc[s_acc]),
            (rng.random(n) < np.where(s_store, 0.5, pop["order_prob"])).astype(np.int64),
            (rng.random(n) < np.where(s_store, 0.3, pop["coupon_prob"])).astype(np.int64),
        ]
        sess = np.concatenate([np.repeat(np.arange(n), c) for c in counts])
        et = np.concatenate([np.full(int(c.sum()), t, np.int8) for t, c in enumerate(counts)])
        order = np.lexsort((et, sess))
        sess, et = sess[order], et[order]
        rank = _rank_within(sess)
        k = sess.size
        ts = s_t[sess] + rank * 40 * SEC + (rng.random(k) * 30 * SEC).astype(np.int64)
        acc = s_acc[sess]
        tgt = np.full(k, -1, np.int64)
        shop = (et == ITEM) | (et == COMMENTS)
        buy = (et == ORDER) | (et == COUPON)
        popm = self.merchants[rng.choice(self.merchants.size, size=k, p=self.m_pop)]
        u = rng.random(k)
        tgt = np.where(shop, np.where(u < 0.65, s_m[sess], popm), tgt)
        tgt = np.where(buy, np.where(u < 0.85, s_m[sess], popm), tgt)
        tgt = np.where(s_store[sess] & (shop | buy), s_m[sess], tgt)
        prof = et == PROFILE
        np_ = int(prof.sum())
        ptgt = np.empty(np_, np.int64)
        v = rng.random(np_)
        ptgt[:] = self.popular[rng.choice(self.popular.size, size=np_, p=self.popular_w)]
        m2 = v >= 0.55
        ptgt[m2] = s_m[sess[prof]][m2]
        m3 = v >= 0.75
        ptgt[m3] = self.cust[rng.integers(0, self.cust.size, int(m3.sum()))]
        pr = getattr(self, "popular_readers", None)
        if pr is not None:
            feed = np.isin(acc[prof], pr)
            pool = self.feed_pool
            ptgt[feed] = pool[rng.choice(pool.size, size=int(feed.sum()), p=_zipf(
                np.random.default_rng(1), pool.size, 0.5))]
        tgt[prof] = ptgt
        rec = np.zeros(k, np.int64)
        srch = et == SEARCH
        rec[srch] = np.where(rng.random(int(srch.sum())) < 0.8, 0,
                             rng.integers(1, 11, int(srch.sum())))
        com = et == COMMENTS
        rec[com] = rng.integers(3, 21, int(com.sum()))
        rec[prof] = 1
        self.emit(ts, acc, s_dev[sess], s_ip[sess], et, tgt, rec)

    # ------------------------------------------------------------------ relationships
    def relationships(self):
        """Pre-window pairs (merchant, customer, first order) and the in-window first orders."""
        p, rng = self.p, self.rng
        S = self.S
        pop = p["population"]
        old = self.cust[self.created[self.cust] < S - DAY]
        k = rng.poisson(pop["history_merchants"], old.size)
        c = np.repeat(old, k)
        n = c.size
        fav = self.fav[c, rng.integers(0, 3, n)]
        m = np.where(rng.random(n) < 0.6, fav,
                     self.merchants[rng.choice(self.merchants.size, size=n, p=self.m_pop)])
        lo = np.maximum(self.created[c], self.created[m])
        t = (lo + rng.random(n) * (S - lo)).astype(np.int64)
        ok = lo < S
        self.pre = self._dedupe_pairs(m[ok], c[ok], t[ok])

    def _dedupe_pairs(self, m, c, t):
        key = m.astype(np.int64) * self.N + c
        order = np.lexsort((t, key))
        key, t = key[order], t[order]
        first = np.r_[True, key[1:] != key[:-1]]
        key, t = key[first], t[first]
        return key // self.N, key % self.N, t

    def window_orders(self):
        ms, cs, ts = [], [], []
        for ch in self._ev:
            mk = ch[4] == ORDER
            if mk.any():
                ms.append(ch[5][mk].astype(np.int64))
                cs.append(ch[1][mk].astype(np.int64))
                ts.append(ch[0][mk])
        if not ms:
            z = np.zeros(0, np.int64)
            return z, z, z
        m, c, t = (np.concatenate(x) for x in (ms, cs, ts))
        ok = (t >= self.S) & (t < self.E)
        return self._dedupe_pairs(m[ok], c[ok], t[ok])

    def tie_pairs(self):
        """New in-window pairs (not already tied before the window) and the pre-window pairs."""
        wm, wc, wt = self.window_orders()
        pm, pc_, pt = self.pre
        wkey = wm * self.N + wc
        pkey = pm * self.N + pc_
        new = ~np.isin(wkey, pkey)
        self.win = (wm[new], wc[new], wt[new])

    # ------------------------------------------------------------------ honest readers
    def pool_reads(self, pool_reader, pool_c, pool_t0, n_reads, returns, horizon, first_delay):
        """About ``n_reads`` reads of clients in the pool, each chosen client read
        1 + Poisson(returns - 1) times (honest readers come back); returns (t, reader, client,
        earliest allowed time)."""
        rng = self.rng
        S, E = self.S, self.E
        n_pool = pool_c.size
        if n_reads < 1 or n_pool == 0:
            z = np.zeros(0, np.int64)
            return z, z, z, z
        R = max(returns, n_reads / n_pool)
        k = int(min(n_pool, max(1, round(n_reads / R))))
        sel = np.sort(rng.choice(n_pool, size=k, replace=False))
        c, t0, rd = pool_c[sel], pool_t0[sel], pool_reader[sel]
        cnt = 1 + rng.poisson(R - 1, k)
        rep = np.repeat(np.arange(k), cnt)
        first = np.r_[True, rep[1:] != rep[:-1]]
        pre = t0 < S
        base = np.where(pre, S + rng.random(k) * (E - S), t0 + rng.exponential(first_delay, k))
        hor = np.clip(np.minimum(horizon, E - base), 0, None)
        t = base[rep] + np.where(first, 0.0, rng.random(rep.size) * hor[rep])
        lo = np.maximum(np.maximum(t0, S), self.created[rd])
        return t.astype(np.int64), rd[rep], c[rep], lo[rep]

    def merchant_reads(self):
        p, rng = self.p, self.rng
        pop = p["population"]
        M = self.merchants
        reading = np.zeros(self.N, bool)
        reading[M[rng.random(M.size) < pop["merchant_reader_share"]]] = True
        wm, wc, wt = self.win
        sel = reading[wm]
        R = pop["merchant_returns"]
        n_in = pop["merchant_read_prob"] * sel.sum() * R
        t1, r1, c1, l1 = self.pool_reads(wm[sel], wc[sel], wt[sel], n_in, R, 30 * DAY, 12 * HOUR)
        pm, pc_, pt = self.pre
        psel = reading[pm]
        share = pop["prewindow_share"]
        n_pre = t1.size * share / max(1e-9, 1 - share)
        t2, r2, c2, l2 = self.pool_reads(pm[psel], pc_[psel], pt[psel], n_pre, R, 30 * DAY,
                                         12 * HOUR)
        t, r, c, lo = np.r_[t1, t2], np.r_[r1, r2], np.r_[c1, c2], np.r_[l1, l2]
        t = self.rehour(t, lo, self.E, "office")
        self.emit(t, r, self.dev_of[r], self.ip_of[r], PROFILE, c, 1)
        # merchants log in on many days
        k = rng.poisson(0.6 * self.D, M.size) * reading[M]
        acc = np.repeat(M, k)
        self.emit(self.times(acc.size, self.S, self.E, "office"), acc, self.dev_of[acc],
                  self.ip_of[acc], LOGIN)

    def partner_pool(self, i):
        """Clients of the merchants partner ``i`` serves: (client, tie start) for new
        in-window clients and for pre-window clients."""
        served = np.zeros(self.N, bool)
        served[self.merchants[self.m_partner == i]] = True
        out = []
        for m, c, t in (self.win, self.pre):
            s = served[m]
            cc, tt = c[s], t[s]
            o = np.lexsort((tt, cc))
            cc, tt = cc[o], tt[o]
            f = np.r_[True, cc[1:] != cc[:-1]] if cc.size else np.zeros(0, bool)
            out.append((cc[f], tt[f]))
        return out

    def staff_reads(self, i, staff, n_reads, pre_share, returns, horizon, first_delay, hours,
                    assign="affinity", api_records=None, weekdays=True):
        """Honest reads by ``staff`` of partner ``i``'s clients; returns the emitted count."""
        rng = self.rng
        if staff.size == 0 or n_reads < 1:
            return 0
        (ic, it), (pc_, pt) = self.partner_pool(i)
        if ic.size == 0:
            pre_share = 1.0
        if pc_.size == 0:
            pre_share = 0.0
        parts = []
        for (cc, tt), nr in (((ic, it), n_reads * (1 - pre_share)), ((pc_, pt), n_reads * pre_share)):
            if cc.size == 0 or nr < 1:
                continue
            h = (cc.astype(np.uint64) * np.uint64(2654435761) + np.uint64(i)) % np.uint64(2 ** 32)
            reader = staff[(h % np.uint64(staff.size)).astype(np.int64)]
            parts.append(self.pool_reads(reader, cc, tt, nr, returns, horizon, first_delay))
        if not parts:
            return 0
        t = np.concatenate([x[0] for x in parts])
        rd = np.concatenate([x[1] for x in parts])
        c = np.concatenate([x[2] for x in parts])
        lo = np.concatenate([x[3] for x in parts])
        t = self.rehour(t, lo, self.E, hours, weekdays=weekdays)
        if assign == "random":
            rd = staff[rng.integers(0, staff.size, t.size)]
        elif assign == "shift":
            hour = ((t + self.local) // HOUR) % 24
            shift = (hour // 8).astype(np.int64)
            per = staff.size // 3
            rd = staff[shift * per + rng.integers(0, per, t.size)]
        if api_records is not None:
            rec = _records(rng, t.size, *api_records)
            srch = rng.random(t.size) < 0.2
            self.emit(t[~srch], rd[~srch], self.dev_of[rd[~srch]], self.ip_of[rd[~srch]], PROFILE,
                      c[~srch], rec[~srch])
            self.emit(t[srch], rd[srch], self.dev_of[rd[srch]], self.ip_of[rd[srch]], SEARCH, -1,
                      rec[srch])
        else:
            self.emit(t, rd, self.dev_of[rd], self.ip_of[rd], PROFILE, c, 1)
        return int(t.size)

    def partner_logins(self, staff, hours="office", weekdays=True):
        k = self.rng.poisson(0.8 * self.D, staff.size)
        acc = np.repeat(staff, k)
        t = self.times(acc.size, np.maximum(self.created[acc], self.S), self.E, hours, weekdays)
        self.emit(t, acc, self.dev_of[acc], self.ip_of[acc], LOGIN)

    def partners_honest(self):
        pop = self.p["population"]
        D = self.D
        TYPE = {  # read_delay, horizon, hours
            "promotions": (2 * DAY, 30 * DAY), "logistics": (3 * HOUR, 5 * DAY),
            "agency": (3 * DAY, 60 * DAY), "isv": (HOUR, 365 * DAY)}
        self.partner_truth = []
        for i, pt in enumerate(self.partners):
            staff = self.staff_of[i]
            role = pt["role"]
            ring = None
            if role.startswith("insider:"):
                ring = next(r for r in self.p["rings"] if r["ring_id"] == role.split(":")[1])
                crawl = staff[-ring["size"]:]
                ring["_members"] = crawl
                staff_h = staff[:-ring["size"]]
            else:
                staff_h = staff
            delay, horizon = TYPE[pt["type"]]
            (ic, _), (pc_, _) = self.partner_pool(i)
            pool = ic.size + pc_.size
            pre_share = pop["prewindow_share"]
            hours, wk, assign = "office", True, "affinity"
            api = None
            if role == "integrator":
                lk = self.look["integrator"]
                n_reads = lk["calls_per_day"] * D
                api = lk["records"]
            elif pt["api"] and role.startswith("insider:"):
                n_reads = ring["honest_calls_per_day"] * D * staff_h.size
                api = ring["records"]
            elif pt["api"]:
                n_reads = pt["calls_per_day"] * D
                api = (1, 100)
            elif role == "prewindow_rereader":
                lk = self.look["prewindow_rereader"]
                pre_share = lk["pre_share"]
                n_pre = min(pc_.size, lk["clients"]) * lk["returns"]
                n_reads = n_pre / pre_share
                pt["returns"] = lk["returns"]
            elif role == "call_centre":
                lk = self.look["call_centre"]
                n_reads = min(lk["reads_per_agent_day"] * staff.size * D, 0.06 * MAX_EVENTS)
                assign = "random"
            elif role == "cs_shifts":
                lk = self.look["cs_shifts"]
                n_reads = min(lk["reads_per_agent_day"] * staff.size * D, 0.06 * MAX_EVENTS)
                hours, wk, assign = "allday", False, "shift"
            else:
                n_reads = pt["read_share"] * pool * pt["returns"]
            if role == "cs_shifts":   # seats: each workstation is shared by the three shifts
                per = staff.size // 3
                seats = self.new_devices(per)
                self.dev_of[staff] = seats[np.arange(staff.size) % per]
            n = self.staff_reads(i, staff_h, n_reads, pre_share, pt["returns"], horizon, delay,
                                 "allday" if api else hours, assign=assign, api_records=api,
                                 weekdays=wk and not api)
            self.partner_logins(staff_h, "allday" if role == "cs_shifts" else "office", wk)
            if role in ("integrator", "prewindow_rereader", "call_centre", "cs_shifts"):
                self.looks_truth.append({"kind": role, "accounts": staff, "partner": i,
                                         "params": dict(self.look[role], reads=n)})

    # ------------------------------------------------------------------ qa rigs
    def qa_rig(self):
        if not hasattr(self, "qa"):
            return
        rng = self.rng
        lk = self.look["qa_rig"]
        qa, tests = self.qa
        emus = self.new_devices(lk["emulators"])
        ip = self.new_ips(1, OFFICE if lk["network"] == "office" else DC)[0]
        n = int(rng.poisson(lk["events_per_day"] * self.D))
        acc = qa[rng.integers(0, qa.size, n)]
        t = self.times(n, self.S, self.E, "office" if lk["network"] == "office" else "allday",
                       weekdays=lk["network"] == "office")
        et = rng.choice([LOGIN, SEARCH, ITEM, PROFILE], size=n, p=[0.4, 0.4, 0.1, 0.1])
        tgt = np.where(et == PROFILE, tests[rng.integers(0, tests.size, n)],
                       np.where(et == ITEM, self.merchants[rng.integers(0, 3, n) %
                                                           self.merchants.size], -1))
        rec = np.where(et == PROFILE, 1, np.where(et == SEARCH, rng.integers(0, 4, n), 0))
        self.emit(t, acc, emus[rng.integers(0, emus.size, n)], ip, et, tgt, rec)
        # the test accounts log in now and then from the same rig
        k = rng.poisson(0.2 * self.D, tests.size)
        ta = np.repeat(tests, k)
        self.emit(self.times(ta.size, self.S, self.E, "office"), ta,
                  emus[rng.integers(0, emus.size, ta.size)], ip, LOGIN)

    # ------------------------------------------------------------------ rings
    def ring_accounts(self, n, created):
        return self.new_accounts(n, CUSTOMER, created)

    def strangers(self, k, exclude, cold_share, reads, own, before, never_read=True):
        """``k`` distinct customers not in ``exclude``: ``cold_share`` of them cold (no own
        events, never read), the rest preferably never read before."""
        rng = self.rng
        ok = np.zeros(self.N, bool)
        ok[self.cust] = True
        ok &= self.created < before
        ok[exclude] = False
        cold = ok & (own == 0) & (reads == 0)
        warm = ok & (own > 0) & ((reads == 0) if never_read else True)
        rest = ok & ~cold & ~warm
        k = int(min(k, ok.sum()))
        kc = int(min(cold.sum(), round(k * cold_share)))
        kw = int(min(warm.sum(), k - kc))
        kr = int(min(rest.sum(), k - kc - kw))
        kc = int(min(cold.sum(), k - kw - kr))
        out = np.concatenate([
            rng.choice(np.flatnonzero(cold), size=kc, replace=False),
            rng.choice(np.flatnonzero(warm), size=kw, replace=False),
            rng.choice(np.flatnonzero(rest), size=kr, replace=False)]).astype(np.int64)
        return out[rng.permutation(out.size)]

    def rings(self):
        p = self.p
        self.ring_members = np.zeros(self.N, bool)
        for r in p["rings"]:
            if "_members" in r:
                self.ring_members[r["_members"]] = True
        reads, own = self.profile_targets_so_far()
        self.crawled: dict[str, np.ndarray] = {}
        self.infra: dict[str, tuple] = {}
        for k, r in enumerate(p["rings"], start=1):
            sc = r["scenario"]
            if sc == "insider_sweep":
                self.insider_sweep(k, r, reads, own)
            elif sc == "insider_hidden":
                self.insider_hidden(k, r, reads, own)
            elif sc.startswith("external"):
                self.external(k, r, reads, own)
        for k, r in enumerate(p["rings"], start=1):
            if r["scenario"] == "coupon_abuse":
                self.coupon_abuse(k, r, reads, own)

    def _tied_clients(self, i):
        (ic, _), (pc_, _) = self.partner_pool(i)
        return np.r_[ic, pc_]

    def insider_sweep(self, tag, r, reads, own):
        rng = self.rng
        E = self.E
        i = r["partner"]
        crawl = r["_members"]
        start = r["_start"]
        excl = np.r_[self._tied_clients(i), np.flatnonzero(self.ring_members)]
        T = self.strangers(r["distinct_targets"], excl, r["cold_share"], reads, own, start)
        rpt = r["reads_per_target"]
        queue = T[np.repeat(np.arange(T.size), rpt)]   # a re-read right after the first
        n = queue.size
        u = np.sort(rng.random(n))
        end = min(E, start + r.get("burst_days", 0) * DAY) if r.get("burst_days") else E
        t = start + (np.sqrt(u) if r["ramp"] == "ramp" else u) * (end - start)
        t = self.rehour(t, start, end, r["hours"], weekdays=r["hours"] == "office")
        who = crawl[np.arange(n) % crawl.size]
        if r["crawl_ip"] == "vpn_datacenter":
            ips = self.new_ips(int(rng.integers(1, 4)), DC)
            ip = ips[rng.integers(0, ips.size, n)]
        else:
            ip = self.ip_of[who]
        self.emit(t, who, self.dev_of[who], ip, PROFILE, queue, 1, tag=tag)
        helpers = np.zeros(0, np.int64)
        if r["helpers"]:
            h = r["helpers"]
            helpers = self.ring_accounts(h, start - rng.uniform(0, 7 * DAY, h).astype(np.int64))
            emu = self.new_devices(max(1, h // 4))
            dcs = self.new_ips(int(rng.integers(1, 6)), DC)
            m = int(n * rng.uniform(0.2, 0.6))
            q = T[rng.integers(0, T.size, m)] if T.size else T
            hw = helpers[rng.integers(0, h, m)]
            th = self.times(m, start, end, "allday")
            self.emit(th, hw, emu[rng.integers(0, emu.size, m)], dcs[rng.integers(0, dcs.size, m)],
                      PROFILE, q, 1, tag=tag)
            ls = np.repeat(helpers, rng.poisson(0.5 * (end - start) / DAY, h))
            self.emit(self.times(ls.size, start, end, "allday"), ls, emu[0], dcs[0], LOGIN)
            self.ring_members[helpers] = True
        # the crawlers' honest work (so crawl share = crawl / all their reads)
        s = r["crawl_share"]
        n_h = n * (1 - s) / s if s < 1 else 0
        got = self.staff_reads(i, crawl, n_h, self.p["population"]["prewindow_share"],
                               self.partners[i]["returns"], 30 * DAY, 2 * DAY, "office")
        self.partner_logins(crawl)
        r["_actual_crawl_share"] = n / max(1, n + got)
        self.crawled[r["ring_id"]] = T
        self.rings_truth.append({"ring": r, "tag": tag, "accounts": np.r_[crawl, helpers], "partner": i,
                                 "extra": {"distinct_strangers": int(T.size),
                                           "crawl_reads": int(n), "honest_reads": int(got),
                                           "actual_crawl_share": _r(r["_actual_crawl_share"])}})

    def insider_hidden(self, tag, r, reads, own):
        rng = self.rng
        E = self.E
        i = r["partner"]
        crawl = r["_members"]
        start = r["_start"]
        n_h = r["honest_calls_per_day"] * self.D * crawl.size
        got = self.staff_reads(i, crawl, n_h, self.p["population"]["prewindow_share"],
                               self.partners[i]["returns"], 365 * DAY, HOUR, "allday",
                               api_records=tuple(r["records"]), weekdays=False)
        self.partner_logins(crawl, "allday", False)
        s = r["crawl_share"]
        n_c = int(got * (E - start) / (E - self.S) * s / (1 - s))
        excl = np.r_[self._tied_clients(i), np.flatnonzero(self.ring_members)]
        T = self.strangers(n_c, excl, r["cold_share"], reads, own, start)
        n = T.size
        t = np.sort(self.times(n, start, E))
        who = crawl[rng.integers(0, crawl.size, n)]
        self.emit(t, who, self.dev_of[who], self.ip_of[who], PROFILE, T,
                  _records(rng, n, *r["records"]), tag=tag)
        self.crawled[r["ring_id"]] = T
        self.rings_truth.append({"ring": r, "tag": tag, "accounts": crawl, "partner": i,
                                 "extra": {"distinct_strangers": int(n), "crawl_calls": int(n),
                                           "honest_calls": int(got),
                                           "actual_crawl_share": _r(n / max(1, n + got))}})

    def _crew_infra(self, r, k):
        """Devices and IPs for a crew of ``k``: (device pool, device mode, ip pool)."""
        rng = self.rng
        mode = r["device_mode"]
        if mode == "emulator":
            dev = self.new_devices(max(1, k // int(rng.integers(3, 11))))
        elif mode == "cloned":
            dev = self.new_devices(int(rng.integers(1, 3)))
        else:
            dev = None
        im = r["ip_mode"]
        pools = []
        if im in ("datacenter", "mixed"):
            pools.append(self.new_ips(r["datacenter_ips"], DC))
        if im in ("residential_proxy", "mixed"):   # homes of real, active customers
            hh_ips = np.unique(self.ip_of[self.cust[self.active[self.cust]]])
            pools.append(rng.choice(hh_ips, size=min(hh_ips.size, r["proxy_pool"]), replace=False))
        return dev, mode, np.concatenate(pools)

    def _session_devices(self, mode, dev_pool, s_member, members):
        rng = self.rng
        n = s_member.size
        if mode == "rotating":
            return self.new_devices(n)
        if mode == "own":
            return self.dev_of[members][s_member]
        return dev_pool[rng.integers(0, dev_pool.size, n)]

    def external(self, tag, r, reads, own):
        rng = self.rng
        S, E = self.S, self.E
        sc = r["scenario"]
        start = r["_start"]
        end = int(min(E, start + max(DAY, r["duration_frac"] * (E - start))))
        k = r["size"]
        if sc == "external_takeover":
            members = r["_members"]
            k = members.size
        elif sc == "external_fresh":
            cr = start - rng.uniform(0, r["created_days_before"] * DAY + HOUR, k)
            members = self.ring_accounts(k, cr.astype(np.int64))
        else:
            cr = S - rng.uniform(0.8, 1.2, k) * r["age_years"] * YEAR
            members = self.ring_accounts(k, cr.astype(np.int64))
        if sc != "external_takeover":
            self.dev_of[members] = self.new_devices(k)
            self.ip_of[members] = self.new_ips(k, RES)
        self.ring_members[members] = True
        dev_pool, dmode, ip_pool = self._crew_infra(r, k)
        self.infra[r["ring_id"]] = (dev_pool, dmode, ip_pool)
        # reads per member, grouped into sessions
        hdays = (end - start) / DAY
        n_reads = rng.poisson(r["reads_per_member_day"] * hdays * rng.lognormal(0, 0.5, k))
        rps = r["reads_per_session"]
        n_sess = np.where(n_reads > 0, np.ceil(n_reads / rps), 0).astype(np.int64)
        s_member = np.repeat(np.arange(k), n_sess)
        ns = s_member.size
        lo = np.maximum(start, self.created[members][s_member] + HOUR)
        if r["synchronised"]:
            n_slots = max(3, int(n_sess.max(initial=1) * rng.uniform(1.0, 1.5)))
            slots = np.sort(self.times(n_slots, start, end, r["hours"]))
            s_t = slots[rng.integers(0, n_slots, ns)] + rng.integers(0, 90 * SEC, ns)
        else:
            s_t = self.times(ns, lo, end, r["hours"])
        s_dev = self._session_devices(dmode, dev_pool, s_member, members)
        s_ip = ip_pool[rng.integers(0, ip_pool.size, ns)]
        # reads: each read in a random session of its member, sequential in the session
        rd_member = np.repeat(np.arange(k), n_reads)
        first_s = np.r_[0, np.cumsum(n_sess)[:-1]]
        sess = first_s[rd_member] + (rng.random(rd_member.size) * n_sess[rd_member]).astype(np.int64)
        sess = np.sort(sess)
        rank = _rank_within(sess)
        gap = (rng.uniform(20, 300, sess.size) if r["low_and_slow"] else
               rng.uniform(1, 8, sess.size)) * SEC
        t = s_t[sess] + 10 * SEC + (rank * gap).astype(np.int64)
        member = s_member[sess]
        acc = members[member]
        n = t.size
        mode = r["target_mode"]
        is_prof = np.ones(n, bool) if mode == "profiles" else (
            np.zeros(n, bool) if mode == "comments" else rng.random(n) < 0.5)
        tgt = np.full(n, -1, np.int64)
        rec = np.ones(n, np.int64)
        npf = int(is_prof.sum())
        T = np.zeros(0, np.int64)
        if npf:
            excl = np.flatnonzero(self.ring_members)
            T = self.strangers(max(1, int(npf * rng.uniform(0.6, 1.0))), excl, r["cold_share"],
                               reads, own, start, never_read=False)
            # split queue: member j sweeps T[j], T[j+k], ...; with queue_overlap a random entry
            pos = _rank_within(member[is_prof])
            idx = (member[is_prof] + k * pos) % max(1, T.size)
            ov = rng.random(npf) < r["queue_overlap"]
            idx[ov] = rng.integers(0, max(1, T.size), int(ov.sum()))
            tgt[is_prof] = T[idx] if T.size else -1
        ncm = n - npf
        if ncm:
            ms = self.merchants[rng.choice(self.merchants.size, size=max(1, int(
                self.merchants.size * r["comment_merchant_share"])), replace=False)]
            tgt[~is_prof] = ms[rng.integers(0, ms.size, ncm)]
            rec[~is_prof] = r["page_records"]
        et = np.where(is_prof, PROFILE, COMMENTS).astype(np.int8)
        ip = s_ip[sess]
        if r["rotate_ip_per_request"]:
            ip = ip_pool[rng.integers(0, ip_pool.size, n)]
        self.emit(t, acc, s_dev[sess], ip, et, tgt, rec, tag=tag)
        # a login at every session start, and some cover traffic
        self.emit(s_t, members[s_member], s_dev, s_ip, LOGIN)
        if r["cover_traffic"]:
            c = rng.poisson(1.5, ns)
            cs = np.repeat(np.arange(ns), c)
            ct = s_t[cs] + rng.integers(5 * SEC, 20 * 60 * SEC, cs.size)
            cet = np.where(rng.random(cs.size) < 0.6, ITEM, SEARCH).astype(np.int8)
            ctg = np.where(cet == ITEM, self.merchants[rng.choice(self.merchants.size,
                                                                  size=cs.size, p=self.m_pop)], -1)
            self.emit(ct, members[s_member[cs]], s_dev[cs], s_ip[cs], cet, ctg, 0)
        # before the harvest
        if sc == "external_fresh" and r["warmup"]:
            w = np.repeat(np.arange(k), rng.integers(1, 6, k))
            wt = self.times(w.size, self.created[members][w], start, "evening")
            we = np.where(rng.random(w.size) < 0.5, ITEM, SEARCH)
            wtg = np.where(we == ITEM, self.merchants[rng.integers(0, self.merchants.size, w.size)],
                           -1)
            self.emit(wt, members[w], self.dev_of[members][w], self.ip_of[members][w], we, wtg, 0)
        if sc == "external_aged" and r["prior_activity"] == "minimal":
            w = np.repeat(np.arange(k), rng.integers(1, 4, k))
            wt = self.times(w.size, S, start, "evening")
            self.emit(wt, members[w], self.dev_of[members][w], self.ip_of[members][w], LOGIN)
        self.crawled[r["ring_id"]] = T
        self.rings_truth.append({"ring": r, "tag": tag, "accounts": members, "partner": None,
                                 "extra": {"reads": int(n), "distinct_profiles": int(T.size),
                                           "sessions": int(ns), "harvest_end": end}})

    def coupon_abuse(self, tag, r, reads, own):
        rng = self.rng
        E = self.E
        k = r["size"]
        start = r["_start"]
        centres = np.sort(start + rng.random(r["bursts"]) * max(DAY, (E - start - DAY)))
        b = rng.integers(0, r["bursts"], k)
        cr = (centres[b] + rng.random(k) * r["burst_days"] * DAY).astype(np.int64)
        cr = np.minimum(cr, E - HOUR)
        members = self.ring_accounts(k, cr)
        self.ring_members[members] = True
        self.dev_of[members] = self.new_devices(k)
        self.ip_of[members] = self.new_ips(k, RES)
        link = None
        if r["link_to_crawl_ring"]:
            linked = [x for x in self.infra if self.crawled.get(x, np.zeros(0)).size]
            link = linked[0] if linked else None
        dev_pool, dmode, ip_pool = self._crew_infra(r, k)
        if link is not None:    # the crew works from the crawl crew's infrastructure
            ldev, lmode, lip = self.infra[link]
            ip_pool = lip
            if ldev is not None:
                dev_pool, dmode = ldev, lmode
        # sessions: a few per member within active_days of creation
        ns_m = rng.integers(1, 7, k)
        s_member = np.repeat(np.arange(k), ns_m)
        ns = s_member.size
        lo = cr[s_member]
        hi = np.minimum(E, lo + int(r["active_days"] * DAY))
        s_t = self.times(ns, lo, hi)
        s_dev = self._session_devices(dmode, dev_pool, s_member, members)
        s_ip = ip_pool[rng.integers(0, ip_pool.size, ns)]
        acc_s = members[s_member]
        self.emit(s_t, acc_s, s_dev, s_ip, LOGIN)
        # each member's merchants; claims spread over its sessions
        lo_m, hi_m = r["merchants_per_member"]
        nm = rng.integers(lo_m, hi_m + 1, k)
        cm = np.repeat(np.arange(k), nm * r["claims_per_merchant"])
        tgt = self.merchants[rng.choice(self.merchants.size, size=cm.size, p=self.m_pop)]
        first_s = np.r_[0, np.cumsum(ns_m)[:-1]]
        sess = first_s[cm] + (rng.random(cm.size) * ns_m[cm]).astype(np.int64)
        t = s_t[sess] + rng.integers(20 * SEC, 15 * 60 * SEC, cm.size)
        self.emit(t, acc_s[sess], s_dev[sess], s_ip[sess], COUPON, tgt, 0, tag=tag)
        self.emit(t - 10 * SEC, acc_s[sess], s_dev[sess], s_ip[sess], ITEM, tgt, 0)
        o = rng.random(cm.size) < r["order_prob"]
        self.emit(t[o] + 60 * SEC, acc_s[sess][o], s_dev[sess][o], s_ip[sess][o], ORDER, tgt[o], 0)
        # checking the harvested identities: a few profile reads of the victims
        victims = self.crawled.get(link) if link else None
        if victims is None or victims.size == 0:
            victims = self.cust
        v = rng.integers(0, r["verify_reads"] + 1, k)
        vm = np.repeat(np.arange(k), v)
        vs = first_s[vm] + (rng.random(vm.size) * ns_m[vm]).astype(np.int64)
        self.emit(s_t[vs] + rng.integers(5 * SEC, 60 * SEC, vs.size), acc_s[vs], s_dev[vs],
                  s_ip[vs], PROFILE, victims[rng.integers(0, victims.size, vm.size)], 1, tag=tag)
        self.rings_truth.append({"ring": r, "tag": tag, "accounts": members, "partner": None,
                                 "extra": {"claims": int(cm.size), "linked_ring": link}})


# --------------------------------------------------------------------------- output

_B32 = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
_HEX = np.array(list("0123456789abcdef"))


def _chars(rng, n, k, alphabet):
    d = rng.integers(0, alphabet.size, (n, k))
    return alphabet[d].view(f"<U{k}").ravel().tolist()


def _uuids(rng, n, upper=False):
    b = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    out = []
    for row in b:
        h = row.tobytes().hex()
        s = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        out.append(s.upper() if upper else s)
    return out


def _unique(make, n):
    ids = make(n)
    seen = set(ids)
    while len(seen) < n:   # rare collisions: redraw until unique (deterministic)
        out, s2 = [], set()
        for x in ids:
            if x in s2:
                x = make(1)[0]
                while x in s2:
                    x = make(1)[0]
            s2.add(x)
            out.append(x)
        ids, seen = out, s2
    return ids


def _account_ids(rng, n, style):
    if style == "prefixed":
        return [f"a{x:07d}" for x in rng.choice(10 ** 7, size=n, replace=False)]
    if style == "numeric":
        return [str(x) for x in 10 ** 6 + rng.choice(9 * 10 ** 8, size=n, replace=False)]
    if style == "uuid":
        return _unique(lambda k: _uuids(rng, k), n)
    return _unique(lambda k: ["U-" + s for s in _chars(rng, k, 8, _B32)], n)


def _partner_ids(rng, n, style):
    if style == "P%03d":
        return [f"P{x:03d}" for x in rng.choice(1000, size=n, replace=False)]
    if style == "numeric":
        return [str(x) for x in 10_000 + rng.choice(90_000, size=n, replace=False)]
    if style == "uuid":
        return _unique(lambda k: _uuids(rng, k, upper=True), n)
    return _unique(lambda k: ["partner-" + s for s in _chars(rng, k, 6, _HEX)], n)


def _device_ids(rng, n, style):
    if style == "hex16":
        return _unique(lambda k: _chars(rng, k, 16, _HEX), n)
    if style == "uuid":
        return _unique(lambda k: _uuids(rng, k, upper=True), n)
    alph = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"))
    return _unique(lambda k: ["fp_" + s for s in _chars(rng, k, 22, alph)], n)


_V4_FIRST = {RES: [24, 47, 67, 68, 71, 73, 76, 82, 86, 90, 92, 98, 108, 109, 151, 174, 176, 188],
             MOBILE: [37, 39, 94, 117, 166, 172, 174, 223], NAT: [100],
             DC: [3, 13, 18, 34, 35, 52, 54, 104, 138, 139, 159, 165, 167, 178],
             OFFICE: [62, 80, 81, 193, 195, 212, 217], CAMPUS: [128, 129, 130, 131, 141, 155],
             STORE: [63, 64, 66, 69, 75], VENUE: [45, 46, 185]}
_V6_PREFIX = {RES: "2a02", MOBILE: "2607", NAT: "2600", DC: "2600:1f18", OFFICE: "2001",
              CAMPUS: "2001", STORE: "2605", VENUE: "2a01"}


def _ip_strings(rng, kinds: np.ndarray, v6_share: float):
    n = kinds.size
    v6 = (rng.random(n) < v6_share) & (kinds != NAT)
    a = np.empty(n, np.int64)
    for k, firsts in _V4_FIRST.items():
        m = kinds == k
        a[m] = np.asarray(firsts)[rng.integers(0, len(firsts), int(m.sum()))]
    b = rng.integers(0, 256, n)
    b = np.where(kinds == NAT, 64 + b % 64, b)
    c = rng.integers(0, 256, n)
    d = rng.integers(1, 255, n)
    g = rng.integers(0, 65536, (n, 6))
    out = []
    for i in range(n):
        if v6[i]:
            pre = _V6_PREFIX[int(kinds[i])]
            parts = [f"{x:x}" for x in g[i]]
            groups = pre.split(":") + parts[: 8 - pre.count(":") - 1]
            groups += ["1"] * (8 - len(groups))     # eight groups: a valid IPv6 address
            out.append(":".join(groups))
        else:
            out.append(f"{a[i]}.{b[i]}.{c[i]}.{d[i]}")
    # collisions: append distinct last parts deterministically
    seen: dict[str, int] = {}
    for i, s in enumerate(out):
        while s in seen:
            if ":" in s:
                s = s.rsplit(":", 1)[0] + f":{int(rng.integers(0, 65536)):x}"
            else:
                s = s.rsplit(".", 1)[0] + f".{int(rng.integers(1, 255))}"
                if s in seen:
                    s = ".".join(s.split(".")[:2]) + f".{int(rng.integers(0, 256))}." \
                        f"{int(rng.integers(1, 255))}"
        seen[s] = i
        out[i] = s
    return out


class _Fmt:
    def __init__(self, fmt: dict):
        self.off = fmt["ts_offset"]
        self.millis = fmt["ts_millis"]
        self.off_ms = 0 if self.off in ("Z", "") else (
            (1 if self.off[0] == "+" else -1) * (int(self.off[1:3]) * HOUR + int(self.off[4:6]) * 60000))

    def ts(self, ms: np.ndarray, date_only=False) -> pa.Array:
        local = np.asarray(ms, np.int64) + self.off_ms
        if date_only:
            return pc.strftime(pa.array((local // DAY).astype(np.int32), pa.date32()),
                               format="%Y-%m-%d")
        if self.millis:
            s = pc.strftime(pa.array(local, pa.timestamp("ms")), format="%Y-%m-%dT%H:%M:%S")
        else:
            s = pc.strftime(pa.array(local // 1000, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S")
        if self.off:
            s = pc.binary_join_element_wise(s, pa.scalar(self.off), "")
        return s


def _header(names, case):
    if case == "upper":
        return [n.upper() for n in names]
    if case == "title":
        return ["_".join(w.capitalize() for w in n.split("_")) for n in names]
    return list(names)


def _write_table(table: pa.Table, path_base: Path, fmt: str, gz: bool, case: str,
                 quoting="none", ts_cols=(), ts_raw=None):
    """Write ``table`` as CSV (optionally gzipped) or Parquet; returns the path."""
    if fmt == "parquet":
        path = path_base.with_suffix(".parquet")
        if ts_raw:
            for col, arr in ts_raw.items():
                table = table.set_column(table.column_names.index(col), col, arr)
        pq.write_table(table, path, compression="snappy")
        return path
    buf = io.BytesIO()
    buf.write((",".join(_header(table.column_names, case)) + "\n").encode())
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style=quoting,
                                                   batch_size=1 << 16))
    data = buf.getvalue()
    if gz:
        path = path_base.with_name(path_base.name + ".csv.gz")
        path.write_bytes(gzip.compress(data, compresslevel=1, mtime=0))
    else:
        path = path_base.with_suffix(".csv")
        path.write_bytes(data)
    return path


_NAME_A = ["Blue", "North", "Bright", "Prime", "Swift", "Urban", "Golden", "Silver", "Green",
           "Metro", "Pacific", "Summit", "Orbit", "Harbor", "Vertex"]
_NAME_B = ["Promotions", "Logistics", "Digital", "Partners", "Systems", "Commerce", "Media",
           "Express", "Labs", "Agency", "Solutions", "Connect"]
_NAME_C = ["Ltd", "Inc.", "GmbH", "Co., Ltd", "LLC", "Pte Ltd", "S.A."]


def generate_world(out_dir, *, seed: int, accounts: int | None = None, days: int | None = None,
                   fmt: str = "csv") -> World:
    """Write world ``seed`` to ``out_dir`` (export/, labels.csv, truth.json, world.json)."""
    if fmt not in ("csv", "parquet"):
        raise ValueError("fmt must be csv or parquet")
    p = draw_params(seed, accounts=accounts, days=days)
    p["file_format"] = fmt
    g = _Gen(p)
    g.populate()
    g.plan_rings()
    g.plan_lookalike_groups()
    g.customers(budget=0.42 * MAX_EVENTS)
    g.relationships()
    g.tie_pairs()
    g.merchant_reads()
    g.partners_honest()
    g.qa_rig()
    g.rings()
    # ring-owned accounts beyond the plan never happen; unused slots become dormant customers
    if g.n_acc < g.N:
        rest = g.N - g.n_acc
        cr = (g.S - DAY - g.rng.exponential(1.5 * YEAR, rest)).astype(np.int64)
        idx = g.new_accounts(rest, CUSTOMER, cr)
        g.dev_of[idx] = -1
    ts, acc, dev, ip, et, tgt, rec, tag = g.events()
    return _write(g, p, Path(out_dir), fmt, (ts, acc, dev, ip, et, tgt, rec, tag))


def _write(g: _Gen, p: dict, out: Path, fmt: str, ev) -> World:
    ts, acc, dev, ip, et, tgt, rec, tag = ev
    f = p["format"]
    rng = np.random.default_rng([SALT, p["seed"], 11])
    export = out / "export"
    export.mkdir(parents=True, exist_ok=True)
    for old in export.iterdir():
        if old.is_file():
            old.unlink()
    F = _Fmt(f)
    gz = f["gzip"] and fmt == "csv"
    acc_ids = _account_ids(rng, g.N, f["id_style"])
    pid = _partner_ids(rng, len(g.partners), f["partner_id_style"])
    dev_ids = _device_ids(rng, g.n_dev, f["device_style"])
    ip_ids = _ip_strings(rng, np.concatenate(g._ipk), f["ipv6_share"])
    A = pa.array(acc_ids, pa.string())
    ids = np.array(acc_ids)
    id_order = np.argsort(ids, kind="stable")
    id_rank = np.empty(g.N, np.int64)
    id_rank[id_order] = np.arange(g.N)
    # partners
    names = [f"{_NAME_A[rng.integers(len(_NAME_A))]} {_NAME_B[rng.integers(len(_NAME_B))]} "
             f"{_NAME_C[rng.integers(len(_NAME_C))]}" for _ in pid]
    ob = F.ts(g.p_onboard, date_only=f["onboarded_style"] == "date")
    if f["onboarded_style"] == "some_empty":
        ob = pc.if_else(pa.array(rng.random(len(pid)) < 0.2), pa.nulls(len(pid), pa.string()), ob)
    order = np.argsort(np.array(pid), kind="stable")
    pt = pa.table({"partner_id": pa.array(pid).take(pa.array(order)),
                   "name": pa.array(names).take(pa.array(order)),
                   "partner_type": pa.array([x["type"] for x in g.partners]).take(pa.array(order)),
                   "onboarded_at": ob.take(pa.array(order))})
    _write_table(pt, export / "partners", fmt, gz, f["header_case"], quoting="needed")
    # accounts
    order = id_order
    created = g.created[order]
    ctext = F.ts(created, date_only=f["created_style"] == "date")
    part = g.partner[order]
    at = pa.table({
        "account_id": A.take(pa.array(order)),
        "account_type": pa.array(list(ACCOUNT_TYPES)).take(pa.array(g.typ[order].astype(np.int64))),
        "created_at": ctext,
        "partner_id": pa.array(pid).take(pa.array(part.astype(np.int64), mask=part < 0))})
    raw = None
    if fmt == "parquet" and f["parquet_ts"] == "timestamp":
        raw = {"created_at": pa.array(created, pa.timestamp("ms", tz="UTC"))}
    _write_table(at, export / "accounts", fmt, gz, f["header_case"], ts_raw=raw)
    # events
    n_ev = ts.size
    recs = pa.array(rec.astype(np.int64), mask=(rec == 1) if f["records_style"] == "blank_ones"
                    else None)
    cols = {
        "ts": F.ts(ts),
        "account_id": A.take(pa.array(acc.astype(np.int64))),
        "device_id": pa.array(dev_ids, pa.string()).take(pa.array(dev.astype(np.int64),
                                                                   mask=dev < 0)),
        "ip": pa.array(ip_ids, pa.string()).take(pa.array(ip.astype(np.int64), mask=ip < 0)),
        "event_type": pa.array(list(EVENT_TYPES)).take(pa.array(et.astype(np.int64))),
        "target_id": A.take(pa.array(tgt.astype(np.int64), mask=tgt < 0)),
        "records": recs,
    }
    names = list(cols)
    if f["shuffle_columns"]:
        names = [names[i] for i in rng.permutation(len(names))]
    evt = pa.table({k: cols[k] for k in names})
    raw = None
    if fmt == "parquet" and f["parquet_ts"] == "timestamp":
        raw = {"ts": pa.array(ts, pa.timestamp("ms", tz="UTC"))}
    _write_table(evt, export / "events", fmt, gz, f["header_case"], ts_raw=raw)
    # relationships: the platform's whole order history
    if f["relationships"]:
        o = et == ORDER
        pm, pc_, ptm = g.pre
        m, c, t = g._dedupe_pairs(np.r_[pm, tgt[o]], np.r_[pc_, acc[o]], np.r_[ptm, ts[o]])
        key = np.lexsort((id_rank[c], id_rank[m]))
        m, c, t = m[key], c[key], t[key]
        rt = pa.table({"merchant_id": A.take(pa.array(m)), "customer_id": A.take(pa.array(c)),
                       "first_order_at": F.ts(t)})
        raw = None
        if fmt == "parquet" and f["parquet_ts"] == "timestamp":
            raw = {"first_order_at": pa.array(t, pa.timestamp("ms", tz="UTC"))}
        _write_table(rt, export / "relationships", fmt, gz, f["header_case"], ts_raw=raw)
    # labels and truth

    def idl(a):
        return sorted(ids[np.asarray(a, np.int64)].tolist())

    rows, rings_t = [], []
    for rt_ in g.rings_truth:
        r = rt_["ring"]
        harvest = ts[tag == rt_["tag"]]
        members = idl(rt_["accounts"])
        rows += [(a, r["ring_id"], r["scenario"]) for a in members]
        rings_t.append({
            "ring_id": r["ring_id"], "scenario": r["scenario"], "accounts": members,
            "partner": pid[rt_["partner"]] if rt_["partner"] is not None else None,
            "first_harvest": (str(np.datetime64(int(harvest.min()), "ms")) + "Z") if harvest.size
            else None,
            "first_harvest_date": str(np.datetime64(int(harvest.min()) // DAY, "D")) if harvest.size
            else None,
            "harvest_events": int(harvest.size),
            "params": {k2: v for k2, v in r.items() if not k2.startswith("_") and k2 != "partner"},
            "observed": {k2: (pid[v] if k2 == "partner" else v) for k2, v in rt_["extra"].items()
                         if k2 != "harvest_end"},
        })
    rows.sort(key=lambda x: (int(x[1][1:]), x[0]))
    lab = out / "labels.csv"
    with open(lab, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("account_id,ring_id,scenario\n")
        for a, r, s in rows:
            fh.write(f"{a},{r},{s}\n")
    looks_t = []
    for lt in g.looks_truth:
        d = {"kind": lt["kind"], "accounts": idl(lt["accounts"])}
        if "ips" in lt:
            d["ips"] = sorted(ip_ids[int(x)] for x in np.atleast_1d(lt["ips"]))
        if "partner" in lt:
            d["partner"] = pid[lt["partner"]]
        if "test_accounts" in lt:
            d["test_accounts"] = idl(lt["test_accounts"])
        if "stores" in lt:
            d["stores"] = sorted(ids[lt["stores"]].tolist())
        if "merchants" in lt:
            d["merchants"] = idl(lt["merchants"])
        d["params"] = {k2: v for k2, v in lt["params"].items() if k2 != "partner"}
        looks_t.append(d)
    looks_t.sort(key=lambda d: d["kind"])
    counts = np.bincount(et, minlength=len(EVENT_TYPES))
    truth = {"seed": p["seed"], "window": {"start": p["start"], "end": p["end"]},
             "accounts": g.N, "events": int(n_ev),
             "event_counts": {EVENT_TYPES[i]: int(counts[i]) for i in range(len(EVENT_TYPES))},
             "activity_scale": _r(g.activity_scale, 6), "rings": rings_t, "lookalikes": looks_t,
             "ring_accounts": len(rows)}
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=1, sort_keys=True, default=_json) + "\n",
                          encoding="utf-8")
    pp = {k2: v for k2, v in p.items()}
    pp["events"] = int(n_ev)
    params_path = out / "world.json"
    params_path.write_text(json.dumps(_clean(pp), indent=1, sort_keys=True, default=_json) + "\n",
                           encoding="utf-8")
    return World(export_dir=export, labels_path=lab, truth_path=truth_path,
                 params_path=params_path, params=_clean(pp))


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def _json(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))
