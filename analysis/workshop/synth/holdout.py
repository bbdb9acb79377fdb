"""A holdout synthetic export: rings planted with tactics :mod:`analysis.workshop.synth` never uses.

``generate_holdout(out_dir)`` writes the same layout as :func:`analysis.workshop.synth.generate`::

    out_dir/export/accounts.csv   partners.csv   events.csv
    out_dir/labels.csv            account_id,ring_id,scenario (planted ring members)
    out_dir/truth.json            rings and honest look-alike groups

It is built the way an independent team with its own export might build one: the
honest world comes from :func:`analysis.workshop.synth.generate` with no scenario planted, then
this module reads those tables back, adds its own rings and its own honest look-alikes
(new accounts and events, and a few rewritten honest events), renumbers every account
in creation order (so new accounts get ids that fit the base scheme) and writes the
export again. Ring tactics, in ring-id order (:data:`HOLDOUT_SCENARIOS`):

* ``comment_scraper``   - harvesting mostly through comment pages of many merchants,
  from rotating datacenter addresses, with a partner staff account in the crew;
* ``merchant_abuse``    - a partner's staff harvesting while logged in as merchants the
  partner serves, reading users who never bought from those merchants;
* ``device_rotation``   - fresh accounts made in a burst, a new device id on every
  request, few addresses, cashing in coupons at the partner's merchants;
* ``slow_insider``      - one partner staff account doing a heavy tied job and mixing in
  a small share of untied reads for months;
* ``nat_household``     - members behind busy carrier NAT addresses, a few accounts per
  device, with a partner staff account on one of those devices.

Honest look-alikes (:data:`LOOKALIKE_KINDS`): a night-shift customer-service agency, a
price-comparison integrator crawling its own merchants, and big families on one phone.
Labels are written for rings only. Deterministic in its arguments.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ...contract import EVENT_TYPES
from .generator import (
    DATACENTER_B,
    DAY,
    HOURS_OFFICE,
    HOURS_PEOPLE,
    LOCAL,
    RESIDENTIAL_A,
    SynthResult,
    TsFormat,
    cum_in_session,
    draw_from,
    generate,
    hex_ids,
    segment_offsets,
    weights_cdf,
    write_arrow_table,
)

__all__ = ["HOLDOUT_SCENARIOS", "LOOKALIKE_KINDS", "generate_holdout"]

HOLDOUT_SCENARIOS: tuple[str, ...] = (
    "comment_scraper", "merchant_abuse", "device_rotation", "slow_insider", "nat_household",
)
LOOKALIKE_KINDS: tuple[str, ...] = ("night_agency", "price_comparison", "big_family")

LOGIN, SEARCH, VIEW_ITEM, VIEW_COMMENTS, VIEW_PROFILE, ORDER, COUPON = range(len(EVENT_TYPES))
_END = "2020-06-30"
# more cloud blocks besides the base generator's
_CLOUD_B = tuple(DATACENTER_B) + ((106, 14), (182, 92), (114, 55), (49, 232), (42, 193),
                                   (123, 57), (81, 68), (152, 136))
_SALT = 0x401D_5EED


def _read_csv(path: Path) -> pd.DataFrame:
    with open(path, "rb") as fh:
        names = [c.strip().strip('"') for c in fh.readline().decode().strip().split(",")]
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in names}, strings_can_be_null=False))
    return table.to_pandas()


def _epoch(s: pd.Series) -> np.ndarray:
    """Seconds since the epoch of ISO strings ending in ``Z``, ``+08:00`` or nothing."""
    core = pd.to_datetime(s.str.slice(0, 19), format="%Y-%m-%dT%H:%M:%S")
    off = np.where(s.str.endswith("+08:00").to_numpy(), LOCAL, 0)
    return core.to_numpy().astype("datetime64[s]").astype(np.int64) - off


def _iso(ts: int) -> str:
    return str(np.datetime64(int(ts), "s")) + "Z"


def _mode_by(keys: np.ndarray, vals: np.ndarray) -> dict:
    df = pd.DataFrame({"k": keys, "v": vals})
    df = df[df["v"] != ""]
    c = df.groupby(["k", "v"], sort=True).size().reset_index(name="n")
    c = c.sort_values(["k", "n", "v"], ascending=[True, False, True], kind="stable")
    return dict(c.drop_duplicates("k")[["k", "v"]].itertuples(index=False, name=None))


class _Holdout:
    def __init__(self, base: Path, seed: int, accounts: int, days: int):
        self.rng_root = np.random.default_rng(np.random.SeedSequence([int(seed), _SALT]))
        (self.rng, self.rng_ev, self.rng_art, self.rng_ids) = self.rng_root.spawn(4)
        self.seed, self.n, self.days = seed, accounts, days
        self.vol = float(np.clip(np.sqrt(accounts / 1_000_000), 0.08, 1.0))
        self.scale = (accounts / 20_000) ** 0.25
        exp = base / "export"
        self.truth0 = json.loads((base / "truth.json").read_text(encoding="utf-8"))
        self.t0 = int(pd.Timestamp(self.truth0["window_start"]).timestamp())
        self.t1 = int(pd.Timestamp(self.truth0["window_end"]).timestamp())
        self.dow0 = int((self.t0 // DAY + 3) % 7)
        self.partners_path = exp / "partners.csv"
        self.partners = _read_csv(self.partners_path)
        acc = _read_csv(exp / "accounts.csv")
        self.acc = acc
        self.ids = acc["account_id"].to_numpy(dtype=object)
        self.idx = {a: i for i, a in enumerate(self.ids)}
        self.atype = acc["account_type"].to_numpy(dtype=object)
        self.apartner = acc["partner_id"].to_numpy(dtype=object)
        self.created = _epoch(acc["created_at"])
        ev = _read_csv(exp / "events.csv")
        ev["_t"] = _epoch(ev["ts"])
        self.ev = ev
        self.ev_acc = pd.Index(self.ids).get_indexer(ev["account_id"])
        self.devices = set(ev["device_id"].unique())
        self.ips = set(ev["ip"].unique())
        # who is who
        self.cust = np.flatnonzero(self.atype == "customer")
        self.merch = np.flatnonzero(self.atype == "merchant")
        self.staff = np.flatnonzero(self.atype == "partner_staff")
        self.n_events = np.bincount(self.ev_acc, minlength=len(self.ids))
        self.busy: set[int] = set()
        special: set[str] = set()
        self.special_partners: set[str] = set()
        for g in self.truth0["lookalikes"]:
            for a in g.get("account_ids", []):
                special.add(a)
            if g["kind"] in ("integrator", "logistics_call_centre"):
                self.special_partners.add(g["partner_id"])
        self.special = np.isin(self.ids, list(special))
        self.nat_ips = [g["ip"] for g in sorted(
            (g for g in self.truth0["lookalikes"] if g["kind"] == "carrier_nat"),
            key=lambda g: -g["n_accounts"])]
        if len(self.nat_ips) < 2:      # fall back: the addresses most accounts share
            u = ev.loc[ev["ip"] != "", ["ip", "account_id"]].drop_duplicates()
            self.nat_ips = list(u["ip"].value_counts().index[:3])
        # orders (ts, customer, merchant), and usual device / address per account
        o = ev[ev["event_type"] == "order"]
        self.o_t = o["_t"].to_numpy()
        self.o_c = pd.Index(self.ids).get_indexer(o["account_id"])
        self.o_m = pd.Index(self.ids).get_indexer(o["target_id"])
        self.usual_dev = _mode_by(self.ev_acc, ev["device_id"].to_numpy(dtype=object))
        self.usual_ip = _mode_by(self.ev_acc, ev["ip"].to_numpy(dtype=object))
        # new accounts and events
        self.new_acc: list[tuple[str, str, int, str]] = []
        self.parts: list[dict] = []
        self.rings: list[dict] = []
        self.looks: list[dict] = []
        self.used_partners: set[str] = set()
        self.ev_dev_override: dict[int, np.ndarray] = {}

    # -- registries -----------------------------------------------------------
    def new_devices(self, k: int) -> np.ndarray:
        out = np.asarray(hex_ids(self.rng_ids.integers(0, np.iinfo(np.uint64).max, k,
                                                    dtype=np.uint64, endpoint=True)
                              ).to_pylist(), dtype=object)
        clash = np.fromiter((d in self.devices for d in out), dtype=bool, count=k)
        if clash.any():
            out[clash] = self.new_devices(int(clash.sum()))
        self.devices.update(out.tolist())
        return out

    def new_ips(self, k: int, kind: str) -> np.ndarray:
        rng = self.rng_ids
        if kind == "cloud":
            b = np.asarray(_CLOUD_B)[rng.integers(0, len(_CLOUD_B), k)]
            parts = [b[:, 0], b[:, 1], rng.integers(0, 256, k), rng.integers(2, 254, k)]
        else:
            a = np.asarray(RESIDENTIAL_A)[rng.integers(0, len(RESIDENTIAL_A), k)]
            parts = [a, rng.integers(0, 256, k), rng.integers(0, 256, k), rng.integers(2, 254, k)]
        out = np.asarray([f"{w}.{x}.{y}.{z}" for w, x, y, z in zip(*parts, strict=True)],
                         dtype=object)
        clash = np.fromiter((i in self.ips for i in out), dtype=bool, count=k)
        if clash.any() or len(set(out)) < k:
            return self.new_ips(k, kind) if k else out
        self.ips.update(out.tolist())
        return out

    def add_account(self, atype: str, created: int, partner: str = "") -> int:
        tmp = f"new{len(self.new_acc):07d}"
        self.new_acc.append((tmp, atype, int(created), partner))
        i = len(self.ids)
        self.ids = np.append(self.ids, tmp)
        self.idx[tmp] = i
        self.atype = np.append(self.atype, atype)
        self.apartner = np.append(self.apartner, partner)
        self.created = np.append(self.created, int(created))
        self.special = np.append(self.special, True)
        self.n_events = np.append(self.n_events, 0)
        return i

    def emit(self, ts, acc, dev, ip, et, tgt, rec=None, harv=-1) -> None:
        ts = np.asarray(ts, dtype=np.int64)
        n = len(ts)
        et = np.asarray(et, dtype=np.int8)
        if rec is None:
            rec = self.records(et)
        self.parts.append({
            "ts": ts, "acc": np.broadcast_to(np.asarray(acc, dtype=np.int64), (n,)).copy(),
            "dev": np.broadcast_to(np.asarray(dev, dtype=object), (n,)).copy(),
            "ip": np.broadcast_to(np.asarray(ip, dtype=object), (n,)).copy(),
            "et": et, "tgt": np.asarray(tgt, dtype=np.int64),
            "rec": np.asarray(rec, dtype=np.int64),
            "harv": np.broadcast_to(np.asarray(harv, dtype=np.int64), (n,)).copy()})

    def records(self, et: np.ndarray, comments=(10, 51)) -> np.ndarray:
        rng = self.rng_ev
        rec = np.zeros(len(et), dtype=np.int64)
        m = et == SEARCH
        rec[m] = rng.integers(0, 21, int(m.sum()))
        m = et == VIEW_COMMENTS
        rec[m] = rng.integers(comments[0], comments[1], int(m.sum()))
        rec[et == VIEW_PROFILE] = 1
        return rec

    # -- picking ----------------------------------------------------------------
    def partner_merchants(self, pid: str) -> np.ndarray:
        return self.merch[self.apartner[self.merch] == pid]

    def ordinary_staff(self, pid: str) -> np.ndarray:
        s = self.staff[(self.apartner[self.staff] == pid) & ~self.special[self.staff]]
        return s[[i not in self.busy for i in s]] if len(s) else s

    def pick_partner(self, prefs, need_merch=0, need_staff=0) -> str:
        p = self.partners
        order = self.rng.permutation(len(p))
        rows = [(str(p["partner_id"].iat[i]), str(p["partner_type"].iat[i])) for i in order]

        def ok(pid, strict):
            if strict and (pid in self.used_partners or pid in self.special_partners):
                return False
            return (len(self.partner_merchants(pid)) >= need_merch
                    and len(self.ordinary_staff(pid)) >= need_staff)

        for strict in (True, False):
            for t in list(prefs) + [None]:
                for pid, pt in rows:
                    if (t is None or pt == t) and ok(pid, strict):
                        self.used_partners.add(pid)
                        return pid
        raise ValueError("no partner fits")

    def recruit(self, k: int, min_events: int = 0) -> np.ndarray:
        c = self.cust[(self.created[self.cust] < self.t0 - 30 * DAY) & ~self.special[self.cust]
                      & (self.n_events[self.cust] >= min_events)]
        c = c[[i not in self.busy for i in c]]
        got = np.sort(self.rng.choice(c, k, replace=False))
        self.busy.update(int(x) for x in got)
        return got

    def buyers_before(self, pid: str, t: np.ndarray, keep: int = 30) -> np.ndarray:
        """A recent buyer of a merchant the partner serves, per time (-1: none yet)."""
        m = np.isin(self.o_m, self.partner_merchants(pid))
        ot, oc = self.o_t[m], self.o_c[m]
        o = np.argsort(ot, kind="stable")
        ot, oc = ot[o], oc[o]
        hi = np.searchsorted(ot, t, side="left")
        lo = np.searchsorted(ot, t - keep * DAY, side="left")
        lo = np.where(hi - lo > 0, lo, 0)
        cnt = hi - lo
        i = lo + (self.rng_ev.random(len(t)) * cnt).astype(np.int64)
        return np.where(cnt > 0, oc[np.minimum(i, max(len(oc) - 1, 0))] if len(oc) else -1, -1)

    def untied_targets(self, k: int, exclude: np.ndarray) -> np.ndarray:
        ex = np.zeros(len(self.ids), dtype=bool)
        ex[exclude] = True
        pool = self.cust[~ex[self.cust]]
        return pool[self.rng_ev.integers(0, len(pool), k)]

    # -- time -------------------------------------------------------------------
    def is_workday(self, d: np.ndarray) -> np.ndarray:
        return (self.dow0 + np.asarray(d)) % 7 < 5

    def starts(self, d: np.ndarray, clock: str) -> np.ndarray:
        rng = self.rng_ev
        d = np.asarray(d, dtype=np.int64)
        day0 = self.t0 + d * DAY
        k = len(d)
        if clock == "round":
            return day0 + rng.integers(0, DAY, k)
        w = HOURS_PEOPLE if clock == "people" else HOURS_OFFICE
        hour = draw_from(weights_cdf(np.asarray(w) + 1e-9), rng.random(k))
        return day0 + (hour * 3600 + rng.integers(0, 3600, k) - LOCAL) % DAY

    def grid(self, k: int, first_day, p_active: float, lo: int, hi: int,
             workdays: bool = False):
        """Sessions of k members: (member, day) of each session."""
        rng = self.rng_ev
        first_day = np.broadcast_to(np.asarray(first_day), (k,))
        d = np.arange(self.days)
        on = (rng.random((self.days, k)) < p_active) & (d[:, None] >= first_day[None, :])
        if workdays:
            on &= self.is_workday(d)[:, None]
        dd, mm = np.nonzero(on)
        ns = rng.integers(lo, hi + 1, len(dd))
        return np.repeat(mm, ns), np.repeat(dd, ns)

    def expand(self, start: np.ndarray, length: np.ndarray, gap_med: float, sigma: float):
        es, pos, first = segment_offsets(np.asarray(length, dtype=np.int64))
        gap = np.maximum(self.rng_ev.lognormal(np.log(gap_med), sigma, len(es)), 1.0)
        ts = start[es] + np.rint(cum_in_session(gap, pos, es, first)).astype(np.int64)
        return es, pos, ts

    def types(self, pos: np.ndarray, mix) -> np.ndarray:
        kinds, w = zip(*mix.items(), strict=True)
        et = np.asarray(kinds, dtype=np.int8)[draw_from(weights_cdf(w), self.rng_ev.random(len(pos)))]
        et[pos == 0] = LOGIN
        return et

    def start_day(self, lo: float, hi: float) -> int:
        return int(self.rng.integers(int(lo * self.days), max(int(lo * self.days) + 1,
                                                              int(hi * self.days))))

    def ring(self, scenario: str, members: np.ndarray, partner: str | None) -> int:
        r = len(self.rings)
        self.rings.append({"ring_id": f"R{r + 1}", "scenario": scenario,
                           "members": np.asarray(members, dtype=np.int64), "partner_id": partner})
        return r

    # -- the rings ----------------------------------------------------------------
    def comment_scraper(self) -> None:
        rng = self.rng
        k = int(np.clip(round(12 * self.scale), 8, max(8, int(0.009 * self.n) - 1)))
        pid = self.pick_partner(("marketing", "promotions"), need_staff=1)
        boss = int(rng.choice(self.ordinary_staff(pid)))
        self.busy.add(boss)
        crew = self.recruit(k)
        s0 = self.start_day(.1, .4)
        r = self.ring("comment_scraper", np.append(crew, boss), pid)
        per_day = 4
        pool = self.new_ips(per_day * (self.days + 2), "cloud")
        life = 10                                     # a scraper VM lives ~10 days
        devs = self.new_devices(k * (self.days // life + 1)).reshape(k, -1)
        first = s0 + rng.integers(0, 6, k)
        sm, sd = self.grid(k, first, .75, 2, 5)
        reads = 700 * self.vol / 3.5
        L = 1 + 1 + rng.poisson(reads, len(sm))
        start = self.starts(sd, "round")
        es, pos, ts = self.expand(start, L, 4.0, .35)
        et = self.types(pos, {VIEW_COMMENTS: .88, VIEW_ITEM: .08, VIEW_PROFILE: .03, SEARCH: .01})
        tgt = np.full(len(es), -1, dtype=np.int64)
        m = (et == VIEW_COMMENTS) | (et == VIEW_ITEM)
        tgt[m] = self.merch[self.rng_ev.integers(0, len(self.merch), int(m.sum()))]
        m = et == VIEW_PROFILE
        tgt[m] = self.untied_targets(int(m.sum()), np.empty(0, np.int64))
        sip = pool[sd * per_day + self.rng_ev.integers(0, per_day + 2, len(sd))]
        sdev = devs[sm, sd // life]
        harv = np.where((et == VIEW_COMMENTS) | (et == VIEW_PROFILE), r, -1)
        self.emit(ts, crew[sm][es], sdev[es], sip[es], et, tgt,
                  self.records(et, comments=(20, 51)), harv)
        # the partner's staff account logs in through the scraper set-up now and then
        bd = np.flatnonzero((np.arange(self.days) >= s0)
                            & (self.rng_ev.random(self.days) < .25))
        if len(bd):
            L = 1 + self.rng_ev.integers(15, 50, len(bd))
            es, pos, ts = self.expand(self.starts(bd, "round"), L, 4.0, .35)
            et = self.types(pos, {VIEW_COMMENTS: .9, VIEW_ITEM: .1})
            tgt = np.where(et == LOGIN, -1,
                           self.merch[self.rng_ev.integers(0, len(self.merch), len(es))])
            sip = pool[bd * per_day + self.rng_ev.integers(0, per_day + 2, len(bd))]
            sdev = devs[self.rng_ev.integers(0, k, len(bd)), bd // life]
            self.emit(ts, boss, sdev[es], sip[es], et, tgt, self.records(et, (20, 51)),
                      np.where(et == VIEW_COMMENTS, r, -1))

    def merchant_abuse(self) -> None:
        rng = self.rng
        pid = self.pick_partner(("agency", "isv", "marketing"), need_merch=3, need_staff=2)
        merchants = self.partner_merchants(pid)
        merchants = merchants[[i not in self.busy for i in merchants]]
        km = int(min(len(merchants), rng.integers(3, 6)))
        shops = np.sort(rng.choice(merchants, km, replace=False))
        crew = np.sort(rng.choice(self.ordinary_staff(pid), 2, replace=False))
        self.busy.update(int(x) for x in np.concatenate([shops, crew]))
        s0 = self.start_day(.1, .45)
        r = self.ring("merchant_abuse", np.concatenate([shops, crew]), pid)
        wdev = np.asarray([self.usual_dev.get(int(c)) or self.new_devices(1)[0] for c in crew],
                          dtype=object)
        office = self.usual_ip.get(int(crew[0])) or self.new_ips(1, "home")[0]
        sm, sd = self.grid(km, s0, .8, 1, 3, workdays=True)
        L = 1 + 1 + self.rng_ev.poisson(350 * self.vol / 2, len(sm))
        es, pos, ts = self.expand(self.starts(sd, "office"), L, 15.0, .8)
        et = self.types(pos, {VIEW_PROFILE: .8, VIEW_ITEM: .15, SEARCH: .05})
        acc = shops[sm][es]
        tgt = np.full(len(es), -1, dtype=np.int64)
        m = et == VIEW_ITEM
        tgt[m] = acc[m]
        for shop in shops:
            m = (et == VIEW_PROFILE) & (acc == shop)
            buyers = np.unique(self.o_c[self.o_m == shop])
            tgt[m] = self.untied_targets(int(m.sum()), buyers)
        sdev = wdev[self.rng_ev.integers(0, 2, len(sm))]
        self.emit(ts, acc, sdev[es], office, et, tgt, None,
                  np.where(et == VIEW_PROFILE, r, -1))
        # the staff's own accounts pick up a few untied reads too
        sm, sd = self.grid(2, s0, .5, 1, 1, workdays=True)
        L = 1 + self.rng_ev.integers(2, 7, len(sm))
        es, pos, ts = self.expand(self.starts(sd, "office"), L, 30.0, .8)
        et = np.where(pos == 0, LOGIN, VIEW_PROFILE).astype(np.int8)
        tgt = np.where(et == LOGIN, -1, self.untied_targets(len(es), np.empty(0, np.int64)))
        self.emit(ts, crew[sm][es], wdev[sm][es], office, et, tgt, None,
                  np.where(et == VIEW_PROFILE, r, -1))

    def device_rotation(self) -> None:
        rng = self.rng
        k = int(np.clip(round(16 * self.scale), 10, max(10, int(0.009 * self.n) - 1)))
        pid = self.pick_partner(("promotions",), need_merch=2)
        shops = self.partner_merchants(pid)
        s0 = self.start_day(.3, .6)
        burst = self.t0 + (s0 - int(rng.integers(1, 4))) * DAY + int(rng.integers(0, DAY - 7200))
        born = burst + np.sort(rng.integers(0, 5400, k))
        crew = np.asarray([self.add_account("customer", int(t)) for t in born])
        r = self.ring("device_rotation", crew, pid)
        ips = self.new_ips(int(rng.integers(2, 4)), "home")
        sm, sd = self.grid(k, s0, .75, 2, 4)
        L = 1 + 1 + self.rng_ev.poisson(800 * self.vol / 3, len(sm))
        es, pos, ts = self.expand(self.starts(sd, "round"), L, 5.0, .4)
        et = self.types(pos, {VIEW_PROFILE: .86, VIEW_ITEM: .10, SEARCH: .04})
        tgt = np.full(len(es), -1, dtype=np.int64)
        m = et == VIEW_PROFILE
        tgt[m] = self.untied_targets(int(m.sum()), np.empty(0, np.int64))
        m = et == VIEW_ITEM
        tgt[m] = self.merch[self.rng_ev.integers(0, len(self.merch), int(m.sum()))]
        sip = ips[self.rng_ev.integers(0, len(ips), len(sm))]
        self.emit(ts, crew[sm][es], self.new_devices(len(es)), sip[es], et, tgt, None,
                  np.where(et == VIEW_PROFILE, r, -1))
        # coupons at the partner's merchants
        cm, cd = self.grid(k, s0, .3, 1, 1)
        if len(cm):
            n = len(cm)
            t = self.starts(cd, "people")
            shop = shops[self.rng_ev.integers(0, len(shops), n)]
            ts = np.concatenate([t, t + self.rng_ev.integers(5, 40, n),
                                 t + self.rng_ev.integers(50, 200, n)])
            et = np.repeat(np.array([LOGIN, VIEW_ITEM, COUPON], np.int8), n)
            tgt = np.concatenate([np.full(n, -1), shop, shop])
            ip = np.tile(ips[self.rng_ev.integers(0, len(ips), n)], 3)
            self.emit(ts, np.tile(crew[cm], 3), self.new_devices(3 * n), ip, et, tgt)

    def slow_insider(self) -> None:
        rng = self.rng
        pid = self.pick_partner(("agency", "logistics", "promotions"), need_merch=2, need_staff=1)
        me = int(rng.choice(self.ordinary_staff(pid)))
        self.busy.add(me)
        r = self.ring("slow_insider", [me], pid)
        s0 = self.start_day(.05, .3)
        frac = float(rng.uniform(.05, .15))
        dev = self.usual_dev.get(me) or self.new_devices(1)[0]
        ip = self.usual_ip.get(me) or self.new_ips(1, "home")[0]
        shops = self.partner_merchants(pid)
        sm, sd = self.grid(1, 0, .95, 3, 5, workdays=True)
        L = 1 + self.rng_ev.poisson(float(rng.uniform(60, 140)) / 4, len(sm))
        es, pos, ts = self.expand(self.starts(sd, "office"), L, 45.0, .9)
        et = self.types(pos, {VIEW_PROFILE: .8, VIEW_ITEM: .15, SEARCH: .05})
        tgt = np.full(len(es), -1, dtype=np.int64)
        m = et == VIEW_PROFILE
        tied = self.buyers_before(pid, ts)
        untied = m & (sd[es] >= s0) & (self.rng_ev.random(len(es)) < frac)
        buyers = np.unique(self.o_c[np.isin(self.o_m, shops)])
        tgt[m] = tied[m]
        tgt[untied] = self.untied_targets(int(untied.sum()), buyers)
        lost = m & (tgt < 0)
        et[lost] = VIEW_ITEM
        m = et == VIEW_ITEM
        tgt[m] = shops[self.rng_ev.integers(0, len(shops), int(m.sum()))]
        self.emit(ts, me, dev, ip, et, tgt, None, np.where(untied, r, -1))

    def nat_household(self) -> None:
        rng = self.rng
        k = int(np.clip(round(15 * self.scale), 9, max(9, int(0.009 * self.n) - 1)))
        pid = self.pick_partner(("marketing", "promotions", "agency"), need_staff=1)
        inside = int(rng.choice(self.ordinary_staff(pid)))
        self.busy.add(inside)
        crew = self.recruit(k, min_events=1)
        r = self.ring("nat_household", np.append(crew, inside), pid)
        sizes = []
        left = k
        while left > 0:
            s = int(min(left, rng.integers(2, 4)))
            if left - s == 1:
                s += 1 if s < 3 else -1
            sizes.append(s)
            left -= s
        hh = np.repeat(np.arange(len(sizes)), sizes)[rng.permutation(k)]
        hdev = self.new_devices(len(sizes))
        nats = np.asarray(self.nat_ips[:3], dtype=object)
        home = np.asarray([self.usual_ip.get(int(c)) or nats[0] for c in crew], dtype=object)
        s0 = self.start_day(.15, .5)
        sm, sd = self.grid(k, s0 + rng.integers(0, 8, k), .7, 2, 5)
        L = 1 + 1 + self.rng_ev.poisson(300 * self.vol / 3.5, len(sm))
        es, pos, ts = self.expand(self.starts(sd, "people"), L, 25.0, .8)
        et = self.types(pos, {VIEW_PROFILE: .68, VIEW_COMMENTS: .12, VIEW_ITEM: .14, SEARCH: .06})
        tgt = np.full(len(es), -1, dtype=np.int64)
        m = et == VIEW_PROFILE
        tgt[m] = self.untied_targets(int(m.sum()), np.empty(0, np.int64))
        m = (et == VIEW_COMMENTS) | (et == VIEW_ITEM)
        tgt[m] = self.merch[self.rng_ev.integers(0, len(self.merch), int(m.sum()))]
        sip = np.where(self.rng_ev.random(len(sm)) < .88,
                       nats[self.rng_ev.integers(0, len(nats), len(sm))], home[sm])
        self.emit(ts, crew[sm][es], hdev[hh[sm]][es], sip[es], et, tgt, None,
                  np.where((et == VIEW_PROFILE) | (et == VIEW_COMMENTS), r, -1))
        # the partner's staff account on one of the household phones, some evenings
        bd = np.flatnonzero((np.arange(self.days) >= s0) & (self.rng_ev.random(self.days) < .3))
        if len(bd):
            L = 1 + self.rng_ev.integers(5, 21, len(bd))
            es, pos, ts = self.expand(self.starts(bd, "people"), L, 25.0, .8)
            et = np.where(pos == 0, LOGIN, VIEW_PROFILE).astype(np.int8)
            tgt = np.where(et == LOGIN, -1, self.untied_targets(len(es), np.empty(0, np.int64)))
            sip = nats[self.rng_ev.integers(0, len(nats), len(bd))]
            self.emit(ts, inside, hdev[0], sip[es], et, tgt, None,
                      np.where(et == VIEW_PROFILE, r, -1))

    # -- honest look-alikes ---------------------------------------------------------
    def night_agency(self) -> None:
        rng = self.rng
        pid = self.pick_partner(("agency", "logistics"), need_merch=2)
        shops = self.partner_merchants(pid)
        k = int(np.clip(round(6 * self.scale), 4, 12))
        agents = np.asarray([self.add_account("partner_staff",
                                              self.t0 - int(rng.integers(20, 400)) * DAY
                                              - int(rng.integers(0, DAY)), pid)
                             for _ in range(k)])
        devs = self.new_devices(k)
        office = self.new_ips(1, "home")[0]
        d = np.arange(self.days)
        night = (self.rng_ev.random((self.days, k)) < np.where(self.is_workday(d), .9, .35)[:, None])
        dd, mm = np.nonzero(night)
        reads = self.rng_ev.integers(80, 200, len(dd))
        begin = self.t0 + dd * DAY + (22 * 3600 - LOCAL) + self.rng_ev.integers(-900, 900, len(dd))
        es, pos, _ = segment_offsets(reads + 1)
        ts = begin[es] + np.where(pos == 0, 0, self.rng_ev.integers(60, 8 * 3600, len(es)))
        et = np.where(pos == 0, LOGIN, np.where(self.rng_ev.random(len(es)) < .85,
                                                 VIEW_PROFILE, VIEW_ITEM)).astype(np.int8)
        tgt = np.full(len(es), -1, dtype=np.int64)
        m = et == VIEW_PROFILE
        tgt[m] = self.buyers_before(pid, ts[m])
        lost = m & (tgt < 0)
        et[lost] = VIEW_ITEM
        m = et == VIEW_ITEM
        tgt[m] = shops[self.rng_ev.integers(0, len(shops), int(m.sum()))]
        self.emit(ts, agents[mm][es], devs[mm][es], office, et, tgt)
        self.looks.append({"kind": "night_agency", "partner_id": pid, "members": agents})

    def price_comparison(self) -> None:
        rng = self.rng
        pid = self.pick_partner(("isv", "marketing"), need_merch=2)
        shops = self.partner_merchants(pid)
        k = int(rng.integers(2, 4))
        bots = np.asarray([self.add_account("partner_staff",
                                            self.t0 - int(rng.integers(20, 300)) * DAY, pid)
                           for _ in range(k)])
        ips = self.new_ips(2, "cloud")
        devs = np.where(rng.random(k) < .5, self.new_devices(k), "")
        phase = rng.integers(0, 900, k)
        for j in range(k):
            for d in range(self.days):
                day0 = self.t0 + d * DAY + int(phase[j])
                v = int(self.rng_ev.poisson(1500 * self.vol))
                logins = day0 + np.arange(6) * 4 * 3600
                t = day0 + (np.arange(v) * DAY) // max(v, 1) + self.rng_ev.integers(0, 3, v)
                ts = np.concatenate([logins, t])
                et = np.concatenate([np.full(6, LOGIN), np.where(
                    self.rng_ev.random(v) < .55, VIEW_ITEM, VIEW_COMMENTS)]).astype(np.int8)
                tgt = np.where(et == LOGIN, -1, shops[self.rng_ev.integers(0, len(shops), len(ts))])
                ip = np.where(self.rng_ev.random(len(ts)) < .9, ips[j % 2], ips[(j + 1) % 2])
                keep = ts < self.t1
                self.emit(ts[keep], bots[j], devs[j], ip[keep], et[keep], tgt[keep])
        self.looks.append({"kind": "price_comparison", "partner_id": pid, "members": bots})

    def big_family(self) -> None:
        n_fam = max(1, int(round(2 * self.scale)))
        ev = self.ev
        for _ in range(n_fam):
            size = int(self.rng.integers(5, 8))
            fam = self.recruit(size, min_events=20)
            phone = self.new_devices(1)[0]
            router = self.new_ips(1, "home")[0]
            rows = np.flatnonzero(np.isin(self.ev_acc, fam))
            dev = ev["device_id"].to_numpy(dtype=object)[rows]
            ip = ev["ip"].to_numpy(dtype=object)[rows]
            nat = set(self.nat_ips)
            home = np.asarray([self.usual_ip.get(int(a), "") for a in self.ev_acc[rows]],
                              dtype=object)
            home = np.where([h in nat for h in home], "-", home)
            # one shared phone for nearly everything, one home router
            u = self.rng_ev.random(len(rows))
            dev = np.where((dev != "") & (u < .92), phone, dev)
            ip = np.where((ip != "") & (ip == home), router, ip)
            ev.iloc[rows, ev.columns.get_loc("device_id")] = dev
            ev.iloc[rows, ev.columns.get_loc("ip")] = ip
            self.looks.append({"kind": "big_family", "members": fam})

    # -- output -----------------------------------------------------------------
    def write(self, out: Path) -> SynthResult:
        exp = out / "export"
        exp.mkdir(parents=True, exist_ok=True)
        for name in ("accounts", "partners", "events"):
            for e in ("csv", "csv.gz", "parquet"):
                p = exp / f"{name}.{e}"
                if e != "csv" and p.exists():
                    p.unlink()
        # renumber accounts in creation order, like the base scheme
        rng = self.rng_ids
        N = len(self.ids)
        order = np.lexsort((rng.random(N), self.created))
        gaps = 1 + np.where(rng.random(N) < 0.08, rng.integers(1, 5, N), 0)
        nums = 1000 + np.cumsum(gaps)
        width = max(7, len(str(int(nums[-1]))))
        rank = np.empty(N, dtype=np.int64)
        rank[order] = np.arange(N)
        new_ids = np.asarray([f"a{x:0{width}d}" for x in nums[rank]], dtype=object)
        tsf = TsFormat()

        # accounts
        nb = len(self.acc)
        u = self.rng_art.random(N)
        created_new = tsf(self.created, np.where(u < .02, 1, 0)).to_numpy(zero_copy_only=False)
        created_s = np.concatenate([self.acc["created_at"].to_numpy(dtype=object),
                                    created_new[nb:]])
        accounts = pa.table({
            "account_id": pa.array(new_ids[order].tolist(), pa.string()),
            "account_type": pa.array(self.atype[order].tolist(), pa.string()),
            "created_at": pa.array(created_s[order].tolist(), pa.string()),
            "partner_id": pa.array([p or None for p in self.apartner[order]], pa.string()),
        })
        write_arrow_table(exp / "accounts.csv", "csv", accounts)
        (exp / "partners.csv").write_bytes(self.partners_path.read_bytes())

        # events: the base rows (with rewrites) and the new ones
        P = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
        keep = (P["ts"] >= np.maximum(self.t0, self.created[P["acc"]])) & (P["ts"] < self.t1)
        P = {k: v[keep] for k, v in P.items()}
        n = len(P["ts"])
        art = self.rng_art
        dev = np.where(art.random(n) < .004, "", P["dev"])
        ip = np.where(art.random(n) < .002, "", P["ip"])
        rec = P["rec"]
        blank = (rec == 1) & (art.random(n) < .03)
        rec_s = np.where(blank, "", rec.astype(str)).astype(object)
        u = art.random(n)
        ts_s = tsf(P["ts"], np.where(u < .015, 1, np.where(u < .02, 2, 0))
                   ).to_numpy(zero_copy_only=False)
        base = self.ev
        tg = pd.Index(self.ids).get_indexer(base["target_id"])
        b_tgt = np.where(tg >= 0, new_ids[np.maximum(tg, 0)], "")
        et_names = np.asarray(EVENT_TYPES, dtype=object)
        t_all = np.concatenate([base["_t"].to_numpy(), P["ts"]])
        a_all = np.concatenate([self.ev_acc, P["acc"]])
        o = np.lexsort((rank[a_all], t_all))
        cols = {
            "ts": np.concatenate([base["ts"].to_numpy(dtype=object), ts_s]),
            "account_id": new_ids[a_all],
            "device_id": np.concatenate([base["device_id"].to_numpy(dtype=object), dev]),
            "ip": np.concatenate([base["ip"].to_numpy(dtype=object), ip]),
            "event_type": np.concatenate([base["event_type"].to_numpy(dtype=object),
                                          et_names[P["et"]]]),
            "target_id": np.concatenate([b_tgt, np.where(P["tgt"] >= 0,
                                                         new_ids[np.maximum(P["tgt"], 0)], "")]),
            "records": np.concatenate([base["records"].to_numpy(dtype=object), rec_s]),
        }
        events = pa.table({k: pa.array(v[o].tolist(), pa.string()) for k, v in cols.items()})
        write_arrow_table(exp / "events.csv", "csv", events)

        # answer key
        harv = P["harv"]
        lab = []
        rings = []
        for i, r in enumerate(self.rings):
            members = sorted(new_ids[r["members"]].tolist())
            h = harv == i
            rings.append({"ring_id": r["ring_id"], "scenario": r["scenario"],
                          "first_harvest_ts": _iso(int(P["ts"][h].min())) if h.any() else None,
                          "n_accounts": len(members), "partner_id": r["partner_id"],
                          "n_harvest_events": int(h.sum())})
            lab += [(a, r["ring_id"], r["scenario"]) for a in members]
        planted = {a for a, _, _ in lab}
        looks = []
        for g in self.looks:
            item = {"kind": g["kind"]}
            if "partner_id" in g:
                item["partner_id"] = g["partner_id"]
            ids = sorted(new_ids[g["members"]].tolist())
            item.update(n_accounts=len(ids), account_ids=ids, holdout=True)
            looks.append(item)
        remap = dict(zip(self.acc["account_id"], new_ids[:nb], strict=True))
        for g in self.truth0["lookalikes"]:
            g = dict(g)
            if "account_ids" in g:
                ids = sorted(a for a in (remap[x] for x in g["account_ids"]) if a not in planted)
                if not ids:
                    continue
                g["account_ids"], g["n_accounts"] = ids, len(ids)
            looks.append(g)
        truth = {"generator": "analysis.workshop.synth.holdout", "seed": self.seed, "accounts": N,
                 "days": self.days, "window_start": self.truth0["window_start"],
                 "window_end": self.truth0["window_end"],
                 "scenarios": list(HOLDOUT_SCENARIOS), "rings": rings, "lookalikes": looks}
        labels = pa.table({"account_id": [a for a, _, _ in lab], "ring_id": [b for _, b, _ in lab],
                           "scenario": [c for _, _, c in lab]})
        labels_path = out / "labels.csv"
        write_arrow_table(labels_path, "csv", labels)
        truth_path = out / "truth.json"
        truth_path.write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
        return SynthResult(export_dir=exp, labels_path=labels_path, truth_path=truth_path,
                           n_events=len(o))


def generate_holdout(out_dir, *, seed: int = 1, accounts: int = 20000,
                     days: int = 120) -> SynthResult:
    """Write a holdout export to ``out_dir/export`` and its answer key beside it.

    The honest world is :func:`analysis.workshop.synth.generate` with no scenario (window ending
    2020-06-30); ``accounts`` counts the base accounts, the rings and look-alikes add a
    few dozen. Deterministic in its arguments.
    """
    if int(accounts) < 2000:
        raise ValueError("accounts must be at least 2000")
    if int(days) < 30:
        raise ValueError("days must be at least 30")
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="holdout-base-") as tmp:
        generate(Path(tmp) / "base", seed=int(seed), accounts=int(accounts), days=int(days),
                 fmt="csv", scenarios=[], end=_END)
        h = _Holdout(Path(tmp) / "base", int(seed), int(accounts), int(days))
        # the rings first (ring ids follow HOLDOUT_SCENARIOS), then the look-alikes
        h.comment_scraper()
        h.merchant_abuse()
        h.device_rotation()
        h.slow_insider()
        h.nat_household()
        h.night_agency()
        h.price_comparison()
        h.big_family()
        return h.write(out)
