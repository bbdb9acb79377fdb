"""Synthetic platform exports with planted data-harvesting rings.

``generate(out_dir)`` writes one snapshot that follows ``data/README.md``::

    out_dir/export/accounts.<ext>   partners.<ext>   events.<ext>
    out_dir/labels.csv              account_id,ring_id,scenario (planted ring members)
    out_dir/truth.json              the rings (scenario, first harvest, size, partner)
                                    and the honest look-alike groups

The answer key lives outside ``export/`` so a detector pointed at the export can
never read it. ``truth.json`` holds ``window_start`` / ``window_end`` (UTC; the end is
exclusive: midnight after the last day), ``rings`` (ring_id, scenario,
first_harvest_ts, n_accounts, partner_id or null, n_harvest_events) and
``lookalikes`` (kind, n_accounts, and account_ids or the shared ip).

Layout of the export: events are sorted by time (then account id) and written in
batches; CSV timestamps are ISO 8601 strings, mostly ``...Z`` with a few ``+08:00``
and a few without offset (UTC); Parquet uses ``timestamp[us, UTC]`` for ``ts`` and
``created_at`` and ``date32`` for ``onboarded_at``. Empty ``records`` means 1,
empty ``device_id``/``ip``/``target_id``/``partner_id``/``onboarded_at`` are missing.

The world: customers who browse, read comments, order and claim coupons at
merchants; merchants working their own shop; merchant-affiliate partners whose
staff serve the merchants. Honest look-alikes that a naive detector would flag
(API integrators, a logistics call centre, partner service desks, carrier NAT hubs,
public wifi hotspots, households, power shoppers, merchants reading their own
buyers, VPN users) sit beside one planted
ring per scenario in :data:`SCENARIOS`.

Everything is vectorised with numpy: the simulation walks the window one UTC day
at a time, and a background thread turns finished chunks into Arrow tables and
writes them (CSV through ``pyarrow.csv``, Parquet through ``pyarrow.parquet``), so
memory stays flat however many accounts are asked for. The same arguments give
byte-identical files: every random draw comes from ``numpy.random.default_rng(seed)``
and its spawned children, and every output is sorted.
"""

from __future__ import annotations

import gzip
import json
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ...contract import ACCOUNT_TYPES, EVENT_TYPES

__all__ = ["SCENARIOS", "FORMATS", "SynthResult", "add_prospecting_shops", "generate",
           # building blocks shared with the holdout generator
           "DATACENTER_B", "DAY", "HOURS_OFFICE", "HOURS_PEOPLE", "LOCAL", "RESIDENTIAL_A",
           "TsFormat", "cum_in_session", "draw_from", "hex_ids", "segment_offsets",
           "weights_cdf", "write_arrow_table"]

#: Ring tactics that can be planted, in the order their ring ids are given.
SCENARIOS: tuple[str, ...] = (
    "classic", "camouflage", "low_and_slow", "insider_staff", "external", "late_start",
)
#: Output formats (the file extension of every table).
FORMATS: tuple[str, ...] = ("csv", "csv.gz", "parquet")

# Codes of the contract's event and account types, in the contract's order.
LOGIN, SEARCH, VIEW_ITEM, VIEW_COMMENTS, VIEW_PROFILE, ORDER, COUPON = range(len(EVENT_TYPES))
CUSTOMER, MERCHANT, STAFF = range(len(ACCOUNT_TYPES))
_PARTNER_TYPES = ("promotions", "marketing", "agency", "isv", "logistics")

DAY = 86_400
LOCAL = 8 * 3600            # the platform's users live in UTC+8
_CHUNK_ROWS = 1_500_000      # events per written batch / parquet row group

# Honest behaviour mixes: probabilities of the event types (login, search, view_item,
# view_comments, view_profile, order, coupon_claim) after a session's first event, the
# chance the first event is a login, the mean session length and the median gap (s).
_MIXES: dict[str, tuple[tuple[float, ...], float, float, float]] = {
    "customer": ((.02, .22, .46, .20, .00, .06, .04), .45, 5.0, 25.0),
    "curious": ((.02, .20, .42, .20, .08, .05, .03), .45, 5.0, 25.0),
    "power": ((.01, .14, .44, .15, .00, .15, .11), .35, 11.0, 18.0),
    "merchant": ((.03, .10, .50, .37, .00, .00, .00), .60, 6.0, 40.0),
    "merchant_lookup": ((.03, .07, .35, .30, .25, .00, .00), .60, 7.0, 35.0),
    "staff": ((.02, .12, .45, .23, .18, .00, .00), .70, 9.0, 45.0),
    "service_desk": ((.01, .06, .18, .10, .65, .00, .00), .70, 22.0, 40.0),
}
_MIX_NAMES = tuple(_MIXES)
_MIX = {name: i for i, name in enumerate(_MIX_NAMES)}

# Local-hour activity weights: people (evenings), offices (working hours).
HOURS_PEOPLE = (2, 1, .6, .4, .3, .4, 1, 2, 3, 4, 4.5, 5, 5.5, 5, 4.5, 4.5, 5, 5.5, 6, 7, 8,
                 8.5, 7, 4.5)
HOURS_OFFICE = (0, 0, 0, 0, 0, 0, 0, .2, 1, 4, 5, 5, 2.5, 4, 5, 5, 4, 2, 1, .4, .1, 0, 0, 0)
_WEEK_PEOPLE = (1.0, 1.0, 1.0, 1.0, 1.05, 1.2, 1.2)   # Monday first
_WEEK_OFFICE = (1.0, 1.0, 1.0, 1.0, 1.0, .15, .08)

# Address space. Datacenter /16 blocks are shared by honest integrators, VPN users
# and rings alike; carrier NAT addresses come from mobile-carrier blocks.
RESIDENTIAL_A = (27, 36, 39, 42, 58, 59, 60, 61, 101, 106, 110, 111, 113, 114, 115, 116,
                  117, 119, 121, 122, 123, 124, 125, 171, 175, 180, 182, 183, 218, 219, 220,
                  221, 222)
_CARRIER_B = ((117, 136), (223, 104), (112, 97), (39, 144), (111, 55), (120, 229),
              (223, 72), (117, 61))
DATACENTER_B = ((47, 88), (47, 74), (8, 210), (119, 28), (43, 129), (150, 109),
                 (101, 32), (121, 40), (47, 243), (139, 224))

_NAME_A = ("Bright", "Star", "Golden", "Blue", "Swift", "Harbor", "Summit", "Lucky", "Jade",
           "Pioneer", "Red", "Silver", "Orient", "Nova", "Peak", "Unity", "Maple", "River")
_NAME_B = {"promotions": ("Promotions", "Deals", "Coupons", "Growth"),
           "marketing": ("Marketing", "Media", "Ads", "Brand Studio"),
           "agency": ("Agency", "Services", "Operations", "Partners"),
           "isv": ("Software", "Cloud", "Systems", "Data Tech"),
           "logistics": ("Logistics", "Express", "Supply Chain", "Freight")}
_NAME_C = ("Ltd", "Co., Ltd.", "Inc", "Group", "LLC", "Trading, Ltd.", "")


@dataclass(frozen=True)
class SynthResult:
    """Where :func:`generate` wrote the export and its answer key."""

    export_dir: Path
    labels_path: Path
    truth_path: Path
    n_events: int


# --------------------------------------------------------------------------- helpers

def _digits(prefix: str, nums: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded decimal of each number, as an Arrow string array."""
    nums = np.asarray(nums, dtype=np.int64)
    p = prefix.encode()
    buf = np.empty((len(nums), len(p) + width), dtype=np.uint8)
    if p:
        buf[:, :len(p)] = np.frombuffer(p, dtype=np.uint8)
    x = nums.copy()
    for k in range(width - 1, -1, -1):
        buf[:, len(p) + k] = 48 + x % 10
        x //= 10
    return pa.array(buf.view(f"S{buf.shape[1]}").ravel(), type=pa.binary()).cast(pa.string())


def hex_ids(values: np.ndarray) -> pa.Array:
    """16 lower-case hex digits per uint64 value."""
    v = np.asarray(values, dtype=np.uint64)
    nib = np.empty((len(v), 16), dtype=np.uint8)
    for k in range(16):
        nib[:, 15 - k] = ((v >> np.uint64(4 * k)) & np.uint64(15)).astype(np.uint8)
    chars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nib]
    return pa.array(chars.view("S16").ravel(), type=pa.binary()).cast(pa.string())


def _ipv4(u32: np.ndarray) -> pa.Array:
    u = np.asarray(u32, dtype=np.uint32)
    parts = [pa.array(((u >> np.uint32(s)) & np.uint32(255)).astype(np.int32)).cast(pa.string())
             for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*parts, ".")


def weights_cdf(weights) -> np.ndarray:
    c = np.cumsum(np.asarray(weights, dtype=np.float64))
    c /= c[-1]
    c[-1] = 1.0
    return c


def draw_from(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def segment_offsets(lengths: np.ndarray):
    """For sessions of the given lengths: (session of each event, position in it, starts)."""
    n = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    sess = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(n) - starts[sess]
    return sess, pos, starts


def cum_in_session(gaps: np.ndarray, pos: np.ndarray, sess: np.ndarray, starts: np.ndarray):
    """Offset of each event from its session start (gaps before first events ignored)."""
    g = np.where(pos == 0, 0.0, gaps)
    cs = np.cumsum(g)
    return cs - cs[starts][sess] if len(cs) else cs


def _records(rng: np.random.Generator, et: np.ndarray) -> np.ndarray:
    """User records returned: a profile 1, a comments page 10-50, a search 0-20, else 0."""
    rec = np.zeros(len(et), dtype=np.int32)
    m = et == SEARCH
    rec[m] = rng.integers(0, 21, int(m.sum()))
    m = et == VIEW_COMMENTS
    rec[m] = rng.integers(10, 51, int(m.sum()))
    rec[et == VIEW_PROFILE] = 1
    return rec


class _Events:
    """A batch of events as parallel numpy arrays (-1 means empty)."""

    __slots__ = ("ts", "acc", "dev", "ip", "et", "tgt", "rec", "harv")

    def __init__(self, ts, acc, dev, ip, et, tgt, rec, harv=None):
        self.ts = np.asarray(ts, dtype=np.int64)
        self.acc = np.asarray(acc, dtype=np.int32)
        self.dev = np.asarray(dev, dtype=np.int32)
        self.ip = np.asarray(ip, dtype=np.int32)
        self.et = np.asarray(et, dtype=np.int8)
        self.tgt = np.asarray(tgt, dtype=np.int32)
        self.rec = np.asarray(rec, dtype=np.int32)
        self.harv = (np.full(len(self.ts), -1, dtype=np.int8) if harv is None
                     else np.asarray(harv, dtype=np.int8))

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, idx) -> _Events:
        return _Events(*(getattr(self, f)[idx] for f in self.__slots__))

    @staticmethod
    def concat(parts: list[_Events]) -> _Events:
        parts = [p for p in parts if len(p)]
        if not parts:
            return _Events(*([np.empty(0)] * 7))
        if len(parts) == 1:
            return parts[0]
        return _Events(*(np.concatenate([getattr(p, f) for p in parts])
                         for f in _Events.__slots__))


class _OrderWindow:
    """The last ``keep`` days of orders, searchable by merchant and by partner."""

    def __init__(self, partner_of_account: np.ndarray, keep: int = 30):
        self.partner_of = partner_of_account
        self.days: deque = deque(maxlen=keep)
        self._dirty = True
        self._by_m = self._by_p = (np.empty(0, np.int32), np.empty(0, np.int32))

    def push(self, cust: np.ndarray, merch: np.ndarray) -> None:
        self.days.append((cust.astype(np.int32), merch.astype(np.int32)))
        self._dirty = True

    def _build(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if not self.days:
            return
        c = np.concatenate([d[0] for d in self.days])
        m = np.concatenate([d[1] for d in self.days])
        o = np.argsort(m, kind="stable")
        self._by_m = (m[o], c[o])
        p = self.partner_of[m]
        keep = p >= 0
        p, c = p[keep], c[keep]
        o = np.argsort(p, kind="stable")
        self._by_p = (p[o], c[o])

    @staticmethod
    def _sample(index, q: np.ndarray, u: np.ndarray) -> np.ndarray:
        keys, vals = index
        if len(keys) == 0 or len(q) == 0:
            return np.full(len(q), -1, dtype=np.int32)
        lo = np.searchsorted(keys, q, side="left")
        hi = np.searchsorted(keys, q, side="right")
        cnt = hi - lo
        i = np.minimum(lo + (u * cnt).astype(np.int64), len(vals) - 1)
        return np.where(cnt > 0, vals[i], -1).astype(np.int32)

    def buyers_of_merchant(self, merchants: np.ndarray, u: np.ndarray) -> np.ndarray:
        self._build()
        return self._sample(self._by_m, merchants, u)

    def buyers_of_partner(self, partners: np.ndarray, u: np.ndarray) -> np.ndarray:
        self._build()
        return self._sample(self._by_p, partners, u)

    def partner_orders(self, partner: int) -> int:
        self._build()
        keys = self._by_p[0]
        return int(np.searchsorted(keys, partner, "right") - np.searchsorted(keys, partner))


class TsFormat:
    """ISO 8601 strings from epoch seconds: ``Z`` (variant 0), ``+08:00`` (1), naive (2)."""

    def __init__(self):
        s = np.arange(DAY)
        hms = [f"{h:02d}:{m:02d}:{x:02d}" for h, m, x in
               zip(s // 3600, s // 60 % 60, s % 60, strict=True)]
        self.tod = pa.array([t + "Z" for t in hms] + [t + "+08:00" for t in hms] + hms)

    def __call__(self, ts: np.ndarray, variant: np.ndarray | None = None) -> pa.Array:
        ts = np.asarray(ts, dtype=np.int64)
        if variant is None:
            variant = np.zeros(len(ts), dtype=np.int64)
        variant = variant.astype(np.int64)
        t = ts + np.where(variant == 1, LOCAL, 0)
        day = t // DAY
        sod = t - day * DAY
        if len(t) == 0:
            return pa.array([], type=pa.string())
        d0 = int(day.min())
        days = np.arange(d0, int(day.max()) + 1).astype("datetime64[D]")
        prefix = pa.array(np.char.add(np.datetime_as_string(days), "T").astype(object))
        return pc.binary_join_element_wise(prefix.take(pa.array(day - d0)),
                                           self.tod.take(pa.array(sod + DAY * variant)), "")


class _Sink:
    """One table file, written batch by batch."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema, quote: bool):
        self.fmt = fmt
        self._raw = self._gz = None
        if fmt == "parquet":
            self._w = pq.ParquetWriter(path, schema, compression="zstd")
        else:
            opts = pacsv.WriteOptions(quoting_style="needed" if quote else "none")
            if fmt == "csv.gz":
                self._raw = open(path, "wb")  # noqa: SIM115 - closed in close()
                self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw,
                                         compresslevel=3, mtime=0)
                self._w = pacsv.CSVWriter(self._gz, schema, write_options=opts)
            else:
                self._w = pacsv.CSVWriter(str(path), schema, write_options=opts)

    def write(self, table: pa.Table) -> None:
        self._w.write_table(table)

    def close(self) -> None:
        self._w.close()
        if self._gz is not None:
            self._gz.close()
            self._raw.close()


def write_arrow_table(path: Path, fmt: str, table: pa.Table, quote: bool = False) -> None:
    sink = _Sink(path, fmt, table.schema, quote)
    try:
        sink.write(table)
    finally:
        sink.close()


# --------------------------------------------------------------------------- the world

@dataclass
class _Ring:
    rid: str
    scenario: str
    index: int
    partner: int                # partner index or -1
    members: np.ndarray         # account indices (customers and staff)
    staff: np.ndarray           # the staff members among them
    start_day: int
    active_from: np.ndarray     # per member: first day it harvests
    p_active: np.ndarray        # per member: chance of harvesting on a given day
    read_scale: np.ndarray      # per member: share of the ring's per-day volume
    device: np.ndarray          # per member: usual device
    device_pool: np.ndarray
    ip_pool: np.ndarray
    nat_pool: np.ndarray        # carrier NAT addresses for camouflage traffic
    style: dict


class _Sim:
    def __init__(self, seed: int, n: int, days: int, end: str, scenarios: Sequence[str]):
        root = np.random.default_rng(seed)
        (self.rng, self.rng_day, self.rng_ring, self.rng_art) = root.spawn(4)
        self.seed, self.N, self.days, self.scenarios = seed, n, days, tuple(scenarios)
        end_day = np.datetime64(str(end)[:10], "D")
        self.t0 = int((end_day - (days - 1)).astype("datetime64[s]").astype(np.int64))
        self.t1 = self.t0 + days * DAY
        self.dow0 = int((self.t0 // DAY + 3) % 7)     # 1970-01-01 was a Thursday
        self.vol = float(np.clip(np.sqrt(n / 1_000_000), 0.08, 1.0))
        self.n_dev = 0
        self._ip_v4: list[np.ndarray] = []
        self._ip_v6: list[np.ndarray] = []   # bool flags beside _ip_v4
        self.n_ip = 0
        self.lookalikes: list[dict] = []
        self._build_partners()
        self._build_accounts()
        self._build_rings()
        self._build_behaviour()
        self._build_ids()

    # -- registries -----------------------------------------------------------
    def new_devices(self, k: int) -> np.ndarray:
        out = np.arange(self.n_dev, self.n_dev + k, dtype=np.int32)
        self.n_dev += k
        return out

    def _add_ips(self, u32: np.ndarray, v6_share: float = 0.0) -> np.ndarray:
        u32 = np.asarray(u32, dtype=np.uint32)
        self._ip_v4.append(u32)
        self._ip_v6.append(self.rng.random(len(u32)) < v6_share)
        out = np.arange(self.n_ip, self.n_ip + len(u32), dtype=np.int32)
        self.n_ip += len(u32)
        return out

    def residential_ips(self, k: int, v6_share: float = 0.0) -> np.ndarray:
        a = np.asarray(RESIDENTIAL_A, dtype=np.uint32)[self.rng.integers(0, len(RESIDENTIAL_A), k)]
        rest = self.rng.integers(1, 1 << 24, k, dtype=np.uint32)
        return self._add_ips((a << np.uint32(24)) | rest, v6_share)

    def block_ips(self, blocks, k: int) -> np.ndarray:
        b = np.asarray(blocks, dtype=np.uint32)[self.rng.integers(0, len(blocks), k)]
        low = self.rng.integers(256, 65_280, k, dtype=np.uint32)
        return self._add_ips((b[:, 0] << np.uint32(24)) | (b[:, 1] << np.uint32(16)) | low)

    # -- partners -------------------------------------------------------------
    def _build_partners(self) -> None:
        rng, n = self.rng, self.N
        P = max(16, int(round(n / 2500)))
        shares = {"promotions": .28, "marketing": .18, "agency": .20, "isv": .17, "logistics": .17}
        mins = {"promotions": 4, "marketing": 2, "agency": 3, "isv": 3, "logistics": 2}
        types = np.concatenate([np.full(max(mins[t], int(round(shares[t] * P))), i)
                                for i, t in enumerate(_PARTNER_TYPES)])
        types = rng.permutation(types)
        P = len(types)
        onboard = self.t0 - rng.integers(30 * DAY, 7 * 365 * DAY, P)
        order = np.argsort(onboard, kind="stable")
        self.P, self.ptype, self.p_onboard = P, types[order], onboard[order]
        self.p_empty_onboard = rng.random(P) < 0.04
        self.p_ts_onboard = rng.random(P) < 0.12
        names = []
        for i in range(P):
            t = _PARTNER_TYPES[self.ptype[i]]
            a = _NAME_A[rng.integers(len(_NAME_A))]
            b = _NAME_B[t][rng.integers(len(_NAME_B[t]))]
            c = _NAME_C[rng.integers(len(_NAME_C))]
            names.append(" ".join(x for x in (a, b, c) if x))
        self.p_name = names

        used: set[int] = set()

        def pick(type_name: str, k: int) -> np.ndarray:
            cand = [i for i in np.flatnonzero(self.ptype == _PARTNER_TYPES.index(type_name))
                    if i not in used]
            got = rng.choice(np.asarray(cand), size=min(k, len(cand)), replace=False)
            used.update(int(x) for x in got)
            return np.sort(got)

        n_isv = int((self.ptype == 3).sum())
        n_log = int((self.ptype == 4).sum())
        self.ring_partner = {
            "classic": int(pick("promotions", 1)[0]),
            "late_start": int(pick("promotions", 1)[0]),
            "camouflage": int(pick("marketing", 1)[0]),
            "low_and_slow": int(pick("agency", 1)[0]),
            "insider_staff": int(pick("agency", 1)[0]),
        }
        self.integrators = pick("isv", max(2, int(round(0.3 * n_isv))))
        self.callcentres = pick("logistics", max(1, n_log // 12))
        desk = rng.random(P) < 0.25
        desk &= np.isin(self.ptype, [0, 2, 4])
        desk[self.ring_partner["insider_staff"]] = True
        desk[self.callcentres] = False
        desk[self.integrators] = False
        self.p_desk = desk
        # an office address per partner
        self.p_office = self.residential_ips(P)

    # -- accounts -------------------------------------------------------------
    def _build_accounts(self) -> None:
        rng, n, P = self.rng, self.N, self.P
        big = min(1.0, n / 200_000)
        staff_n = 2 + rng.poisson(1.5 + 3 * big, P)
        ins = self.ring_partner["insider_staff"]
        staff_n[ins] = max(staff_n[ins], 5)
        self.n_insiders = int(rng.integers(2, 6))
        self.api_n = {int(p): int(rng.integers(2, 5)) for p in self.integrators}
        self.agent_n = {int(p): int(np.clip(n / 25_000, 6, 40)) + int(rng.integers(0, 4))
                        for p in self.callcentres}
        # staff rows: (partner, role) role 0 ordinary, 1 api, 2 agent, 3 insider
        sp, sr = [np.repeat(np.arange(P), staff_n)], [np.zeros(int(staff_n.sum()), np.int8)]
        for p, k in self.api_n.items():
            sp.append(np.full(k, p))
            sr.append(np.full(k, 1, np.int8))
        for p, k in self.agent_n.items():
            sp.append(np.full(k, p))
            sr.append(np.full(k, 2, np.int8))
        sp.append(np.full(self.n_insiders, ins))
        sr.append(np.full(self.n_insiders, 3, np.int8))
        staff_partner = np.concatenate(sp).astype(np.int32)
        staff_role = np.concatenate(sr)
        S = len(staff_partner)
        M = max(60, int(0.03 * n))
        C = n - M - S
        if C < 0.8 * n:
            raise ValueError(f"accounts={n} is too small for the simulated world")
        self.C, self.M, self.S = C, M, S
        self.atype = np.concatenate([np.full(C, CUSTOMER), np.full(M, MERCHANT),
                                     np.full(S, STAFF)]).astype(np.int8)
        self.cust = np.arange(C, dtype=np.int32)
        self.merch = np.arange(C, C + M, dtype=np.int32)
        self.staff = np.arange(C + M, n, dtype=np.int32)
        self.staff_role = staff_role
        partner = np.full(n, -1, dtype=np.int32)
        partner[self.staff] = staff_partner

        # merchants and the partners that serve them
        w = rng.lognormal(0, 1, P)
        w[self.integrators] *= 4
        w[self.callcentres] *= 4
        for p in self.ring_partner.values():
            w[p] *= 1.5
        has = rng.random(M) < 0.55
        mp = np.where(has, draw_from(weights_cdf(w), rng.random(M)), -1)
        need = list(self.ring_partner.values()) + list(self.integrators) + list(self.callcentres)
        for p in need:
            short = 3 - int((mp == p).sum())
            if short > 0:
                free = np.flatnonzero(mp < 0)
                mp[rng.choice(free, short, replace=False)] = p
        partner[self.merch] = mp
        self.partner = partner
        pop = rng.lognormal(0, 1.3, M)
        self.merch_cdf = weights_cdf(pop)
        # partner -> its merchants (sorted by partner)
        served = np.flatnonzero(mp >= 0)
        o = np.argsort(mp[served], kind="stable")
        self.pm_key = mp[served][o]
        self.pm_val = self.merch[served][o]

        # creation times
        created = np.empty(n, dtype=np.int64)
        pre = rng.random(C) < 0.88
        age = self._ages(700, C)
        created[:C] = np.where(pre, self.t0 - DAY - age,
                               self.t0 + rng.integers(0, max(1, self.days - 1) * DAY, C))
        created[C:C + M] = self.t0 - DAY - self._ages(900, M)
        onboard = self.p_onboard[staff_partner]
        lo = onboard + 3 * DAY
        created[self.staff] = lo + (rng.random(S) * (self.t0 - DAY - lo)).astype(np.int64)
        self.created = created

    def _ages(self, mean_days: float, k: int) -> np.ndarray:
        """Account ages in seconds: mostly recent, none older than the platform (9 years)."""
        cap = 9 * 365 * DAY
        age = self.rng.exponential(mean_days * DAY, k)
        return np.where(age < cap, age, self.rng.uniform(0, cap, k)).astype(np.int64)

    def pop_merchants(self, k: int) -> np.ndarray:
        return self.merch[draw_from(self.merch_cdf, self.rng_day.random(k))]

    def partner_merchants(self, partners: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A random merchant served by each partner (-1 if it serves none)."""
        return _OrderWindow._sample((self.pm_key, self.pm_val), partners, u)

    # -- rings ----------------------------------------------------------------
    def _build_rings(self) -> None:
        rng, n, days = self.rng, self.N, self.days
        self.rings: list[_Ring] = []
        old = self.cust[self.created[self.cust] < self.t0]
        pool = iter(rng.permutation(old))
        self.ring_customers = np.zeros(n, dtype=bool)

        def take(k: int) -> np.ndarray:
            out = np.fromiter((next(pool) for _ in range(k)), dtype=np.int32, count=k)
            self.ring_customers[out] = True
            return out

        def start(lo: float, hi: float) -> int:
            return int(rng.integers(int(lo * days), max(int(lo * days) + 1, int(hi * days))))

        for k, scen in enumerate(s for s in SCENARIOS if s in self.scenarios):
            rid = f"R{k + 1}"
            partner = self.ring_partner.get(scen, -1)
            style: dict = {"mix": (0, .02, .03, .25, .70, 0, 0), "sessions": (1, 3),
                           "pace": "machine", "clock": "round", "coupon": 0.0, "ip": "dc"}
            staff = np.empty(0, np.int32)
            fresh_frac, dev_per_member = 0.0, False
            if scen in ("classic", "late_start"):
                size = int(rng.integers(10, 13 + int(28 * min(1.0, np.sqrt(n / 300_000)))))
                size = min(size, 40)
                s0 = start(0, .35) if scen == "classic" else int(
                    rng.integers(max(0, days - 30), max(max(0, days - 30) + 1, days - 5)))
                style.update(reads=1200 * self.vol, p_active=.7, tau=rng.uniform(2.5, 6),
                             jitter=.15, coupon=.06, n_ip=int(rng.integers(3, 7)),
                             n_emu=int(rng.integers(2, 6)))
                fresh_frac = .4 if scen == "classic" else .6
            elif scen == "camouflage":
                size = int(rng.integers(10, 12 + int(18 * min(1.0, np.sqrt(n / 300_000)))))
                s0 = start(.1, .5)
                style.update(reads=450 * self.vol, p_active=.6, tau=rng.uniform(4, 9),
                             jitter=.35, coupon=.03, ip="nat_dc", n_ip=int(rng.integers(3, 6)),
                             n_emu=int(rng.integers(2, 5)))
            elif scen == "low_and_slow":
                size = max(40, min(100 + int(rng.integers(0, 61)), int(0.01 * n)))
                s0 = start(0, .45)
                style.update(reads=18.0, p_active=.65, sessions=(2, 4), pace="human",
                             gap=40.0, clock="people", ip="proxy",
                             mix=(0, .08, .12, .2, .6, 0, 0), n_emu=0)
                dev_per_member = True
            elif scen == "external":
                size = int(rng.integers(8, 11 + int(15 * min(1.0, np.sqrt(n / 300_000)))))
                s0 = start(.1, .6)
                style.update(reads=1000 * self.vol, p_active=.7, tau=rng.uniform(2, 5),
                             jitter=.2, n_ip=int(rng.integers(3, 6)),
                             n_emu=int(rng.integers(2, 5)))
                fresh_frac = .5
            else:   # insider_staff: harvested through the honest staff generator
                ins = self.staff[self.staff_role == 3]
                s0 = start(.15, .6)
                self.rings.append(_Ring(rid, scen, k, partner, ins, ins, s0,
                                        np.full(len(ins), s0), np.zeros(len(ins)),
                                        np.zeros(len(ins)), np.full(len(ins), -1),
                                        np.empty(0, np.int32), np.empty(0, np.int32),
                                        np.empty(0, np.int32), {"insider": True}))
                continue
            cust = take(size)
            active_from = np.full(size, s0)
            active_from[1:] += rng.integers(0, 10, size - 1)   # members join over a few days
            n_fresh = int(round(fresh_frac * size))
            if n_fresh:
                fresh = np.arange(size - n_fresh, size)
                if scen == "classic":
                    burst = int(rng.integers(min(s0 + 5, days - 3), max(min(s0 + 5, days - 3) + 1,
                                                                        days - 10)))
                else:
                    burst = s0 - int(rng.integers(1, 4))
                t_burst = self.t0 + burst * DAY + int(rng.integers(0, DAY - 4 * 3600))
                self.created[cust[fresh]] = t_burst + np.sort(rng.integers(0, 3 * 3600, n_fresh))
                active_from[fresh] = max(s0, burst + 1)
            style["fresh"] = cust[size - n_fresh:] if n_fresh else cust[:0]
            members = cust
            p_active = np.full(size, style["p_active"])
            read_scale = np.ones(size)
            if partner >= 0:
                cand = self.staff[(self.partner[self.staff] == partner) & (self.staff_role == 0)]
                staff = np.asarray([rng.choice(cand)], dtype=np.int32)
                members = np.concatenate([cust, staff])
                active_from = np.concatenate([active_from, [s0]])
                p_active = np.concatenate([p_active, [.25]])
                read_scale = np.concatenate([read_scale, [.1]])
            if dev_per_member:
                device = self.new_devices(len(members))
                dpool = device
            else:
                dpool = self.new_devices(style["n_emu"])
                device = dpool[rng.integers(0, len(dpool), len(members))]
            if style["ip"] == "proxy":
                ips = np.empty(0, np.int32)       # filled in _build_behaviour
            else:
                ips = self.block_ips(DATACENTER_B, style["n_ip"])
            self.rings.append(_Ring(rid, scen, k, partner, members, staff, s0,
                                    active_from.astype(np.int64), p_active, read_scale,
                                    device.astype(np.int32), dpool.astype(np.int32), ips,
                                    np.empty(0, np.int32), style))

    # -- honest behaviour, devices and addresses --------------------------------
    def _build_behaviour(self) -> None:
        rng, n, C = self.rng, self.N, self.C
        mix = np.zeros(n, dtype=np.int8)
        rate = np.zeros(n)
        office = np.zeros(n, dtype=np.int8)     # 1 = office hours & weekdays
        # customers
        base = rng.lognormal(0, 1.0, C)
        base *= 0.062 / base.mean()
        base[rng.random(C) < 0.2] *= 0.05         # dormant
        rate[:C] = base
        mix[:C] = _MIX["customer"]
        free = self.cust[~self.ring_customers[self.cust]]
        free = rng.permutation(free)
        n_pow = max(5, int(0.002 * C))
        power, free = free[:n_pow], free[n_pow:]
        rate[power] = rng.uniform(0.8, 2.2, n_pow)
        mix[power] = _MIX["power"]
        n_cur = int(0.04 * C)
        mix[free[:n_cur]] = _MIX["curious"]
        free = free[n_cur:]
        # merchants
        M = self.M
        rate[self.merch] = rng.uniform(0.25, 0.9, M)
        look = rng.random(M) < 0.25
        mix[self.merch] = np.where(look, _MIX["merchant_lookup"], _MIX["merchant"])
        office[self.merch] = 1
        # staff
        st, role = self.staff, self.staff_role
        desk = self.p_desk[self.partner[st]]
        rate[st] = np.where(role == 0, rng.uniform(0.8, 1.8, len(st)), 0.0)
        mix[st] = np.where(desk, _MIX["service_desk"], _MIX["staff"])
        ins = st[role == 3]
        rate[ins] = rng.uniform(1.2, 2.0, len(ins))
        mix[ins] = _MIX["service_desk"]
        office[st] = 1
        self.untied_from = np.full(n, 1 << 30, dtype=np.int64)
        self.untied_p = 0.0
        for r in self.rings:
            if r.style.get("insider"):
                self.untied_from[r.members] = r.start_day
                self.untied_p = 0.85
            elif r.scenario == "camouflage":
                c = r.members[self.atype[r.members] == CUSTOMER]
                rate[c] = rng.uniform(0.15, 0.5, len(c))
            elif r.scenario in ("low_and_slow",):
                c = r.members[self.atype[r.members] == CUSTOMER]
                rate[c] = 0.0
            else:   # bought or compromised accounts go quiet; fresh ones never shop
                c = r.members[self.atype[r.members] == CUSTOMER]
                rate[c] *= 0.3
                rate[r.style["fresh"]] = 0.0
        self.rate, self.mix, self.office = rate, mix, office
        self.fav = np.full(n, -1, dtype=np.int32)
        self.fav[:C] = self.merch[draw_from(self.merch_cdf, rng.random(C))]

        # devices
        dev0 = self.new_devices(n)
        has1 = rng.random(n) < np.where(self.atype == CUSTOMER, .4,
                                        np.where(self.atype == MERCHANT, .5, .3))
        dev1 = np.full(n, -1, dtype=np.int32)
        dev1[has1] = self.new_devices(int(has1.sum()))
        p_dev1 = rng.uniform(0.1, 0.5, n)
        # households: 2-5 accounts sharing one phone and one home address
        n_hh_acc = int(0.03 * len(free))
        hh_acc, free = free[:n_hh_acc], free[n_hh_acc:]
        sizes = []
        left = len(hh_acc)
        while left >= 2:
            s = int(min(left, rng.integers(2, 6)))
            if left - s == 1:
                s += 1
            sizes.append(s)
            left -= s
        sizes = np.asarray(sizes, dtype=np.int64)
        hh_of = np.repeat(np.arange(len(sizes)), sizes)
        hh_acc = hh_acc[:len(hh_of)]
        hh_dev = self.new_devices(len(sizes))
        dev0[hh_acc] = hh_dev[hh_of]

        # addresses: a home per customer (a household shares one)
        home = np.empty(n, dtype=np.int32)
        home[:C] = self.residential_ips(C, v6_share=0.06)
        hh_home = self.residential_ips(len(sizes), v6_share=0.06)
        home[hh_acc] = hh_home[hh_of]
        home[self.merch] = self.residential_ips(M)
        home[st] = self.p_office[self.partner[st]]
        alt = np.full(n, -1, dtype=np.int32)
        p_alt = rng.uniform(0.3, 0.8, n)
        # carrier NAT hubs
        H = max(3, C // 1500)
        hubs = self.block_ips(_CARRIER_B, H)
        hub_w = rng.lognormal(0, 0.7, H)
        mobile = np.flatnonzero((rng.random(n) < 0.45) & (self.atype == CUSTOMER))
        mobile = np.concatenate([mobile, self.merch[rng.random(M) < 0.3]])
        hub_of = draw_from(weights_cdf(hub_w), rng.random(len(mobile)))
        alt[mobile] = hubs[hub_of]
        hub_size = np.bincount(hub_of, minlength=H)
        self.hubs, self.hub_size = hubs, hub_size
        # VPN users on datacenter addresses
        n_vpn = max(6, int(0.005 * C))
        vpn_acc, free = free[:n_vpn], free[n_vpn:]
        vpn_ips = self.block_ips(DATACENTER_B, max(3, n_vpn // 6))
        alt[vpn_acc] = vpn_ips[rng.integers(0, len(vpn_ips), n_vpn)]
        p_alt[vpn_acc] = rng.uniform(0.5, 0.9, n_vpn)
        # public hotspots (campus, cafe, office-building wifi) some customers frequent
        wifi = self.residential_ips(max(20, C // 200))
        self.hangout = np.full(n, -1, dtype=np.int32)
        goer = np.flatnonzero((rng.random(n) < 0.25) & (self.atype == CUSTOMER))
        spot = draw_from(weights_cdf(rng.lognormal(0, 0.6, len(wifi))), rng.random(len(goer)))
        self.hangout[goer] = wifi[spot]
        self.wifi, self.wifi_size = wifi, np.bincount(spot, minlength=len(wifi))

        # special staff: API integrators and call-centre agents
        self.api_groups = []
        for p in self.integrators:
            acc = st[(self.partner[st] == p) & (role == 1)]
            ips = self.block_ips(DATACENTER_B, int(rng.integers(2, 4)))
            devs = np.where(rng.random(len(acc)) < 0.5, dev0[acc], -1).astype(np.int32)
            self.api_groups.append({"partner": int(p), "acc": acc, "ips": ips,
                                    "ip_of": ips[np.arange(len(acc)) % len(ips)], "dev": devs,
                                    "phase": rng.integers(0, 600, len(acc)),
                                    "per_order": rng.uniform(0.5, 0.9)})
        self.cc_groups = []
        for p in self.callcentres:
            acc = st[(self.partner[st] == p) & (role == 2)]
            self.cc_groups.append({"partner": int(p), "acc": acc,
                                   "shift": rng.choice([9, 13], len(acc)) * 3600})

        # rings' devices and addresses
        for r in self.rings:
            if r.style.get("insider"):
                continue
            if r.style["ip"] == "proxy":
                # a rotating pool: each address lives a few days and serves a few
                # sessions; some are honest customers' home routers
                lo, hi = r.style["sessions"]
                per_day = len(r.members) * r.style["p_active"] * (lo + hi) / 2
                k = max(4, int(np.ceil(per_day / 4)))
                r.style["proxy_k"] = k
                total = k * (self.days + 1)
                n_shared = min(int(0.15 * total), int(0.05 * len(free)))
                shared = rng.choice(home[free], n_shared, replace=False)
                r.ip_pool = rng.permutation(
                    np.concatenate([shared, self.residential_ips(total - n_shared, .06)]))
                if len(r.staff):                    # the steering staff keeps its own
                    r.device[np.isin(r.members, r.staff)] = dev0[r.staff]
                dev0[r.members] = r.device          # each account its own device
            elif r.style["ip"] == "nat_dc":
                r.nat_pool = hubs[np.argsort(-hub_size, kind="stable")[:max(2, H // 10)]]
            fresh = r.style["fresh"]
            dev0[fresh] = r.device[np.isin(r.members, fresh)]
        self.dev0, self.dev1, self.p_dev1 = dev0, dev1, p_dev1
        self.home, self.alt, self.p_alt = home, alt, p_alt
        self.created_day = np.floor_divide(self.created - self.t0, DAY)

        # the look-alike groups, for truth.json
        self._lookalike_groups = {
            "power": power, "hh": (hh_acc, hh_of, len(sizes)), "vpn": vpn_acc,
            "lookup": self.merch[look],
        }

    def _build_ids(self) -> None:
        rng, n = self.rng, self.N
        order = np.lexsort((rng.random(n), self.created))
        gaps = 1 + np.where(rng.random(n) < 0.08, rng.integers(1, 5, n), 0)
        nums = 1000 + np.cumsum(gaps)
        width = max(7, len(str(int(nums[-1]))))
        self.rank = np.empty(n, dtype=np.int64)
        self.rank[order] = np.arange(n)
        self.id_num = nums[self.rank]
        self.acc_ids = _digits("a", self.id_num, width)
        self.order = order
        self.partner_ids = _digits("p", np.arange(1, self.P + 1), 5)
        self.dev_ids = hex_ids(self.rng.integers(0, np.iinfo(np.uint64).max, self.n_dev,
                                              dtype=np.uint64, endpoint=True))
        u32 = np.concatenate(self._ip_v4)
        v6 = np.concatenate(self._ip_v6)
        ips = _ipv4(u32).to_numpy(zero_copy_only=False).astype(object)
        for i in np.flatnonzero(v6):
            x = int(u32[i])
            ips[i] = f"240e:{x >> 16 & 0xfff:x}:{x & 0xffff:x}:{(x * 2654435761) & 0xffff:x}::1"
        self.ip_ids = pa.array(ips, type=pa.string())

    # -- one day of events ----------------------------------------------------
    def day(self, d: int, window: _OrderWindow) -> _Events:
        parts = [self._honest(d, window), self._integrators(d, window),
                 self._callcentre(d, window)]
        for r in self.rings:
            if not r.style.get("insider"):
                parts.append(self._ring(d, r))
        return _Events.concat(parts)

    def _honest(self, d: int, window: _OrderWindow) -> _Events:
        rng, n = self.rng_day, self.N
        day0 = self.t0 + d * DAY
        dow = (self.dow0 + d) % 7
        fac = np.array([_WEEK_PEOPLE[dow] * (2.2 if d in self.sale_days else 1.0),
                        _WEEK_OFFICE[dow]])
        lam = self.rate * fac[self.office]
        lam[self.created_day > d] = 0.0
        ns = rng.poisson(lam)
        sacc = np.repeat(np.arange(n, dtype=np.int32), ns)
        nS = len(sacc)
        off = self.office[sacc]
        hour = np.empty(nS, dtype=np.int64)
        for c, cdf in enumerate(self.hour_cdf):
            m = off == c
            hour[m] = draw_from(cdf, rng.random(int(m.sum())))
        sec = hour * 3600 + rng.integers(0, 3600, nS)
        start = day0 + (sec - LOCAL) % DAY
        cr = self.created[sacc]
        late = start <= cr
        start[late] = cr[late] + rng.integers(30, 900, int(late.sum()))
        smix = self.mix[sacc]
        L = np.minimum(rng.geometric(1.0 / self.mix_len[smix]), 200)
        es, pos, first = segment_offsets(L)
        eacc = sacc[es]
        emix = smix[es]
        gap = rng.lognormal(np.log(self.mix_gap[emix]), 1.0)
        ts = start[es] + np.rint(cum_in_session(gap, pos, es, first)).astype(np.int64)
        u = rng.random(len(es))
        et = np.empty(len(es), dtype=np.int8)
        for k, cdf in enumerate(self.mix_cdf):
            m = emix == k
            et[m] = draw_from(cdf, u[m])
        et[(pos == 0) & (rng.random(len(es)) < self.mix_login[emix])] = LOGIN
        if d in self.sale_days:
            m = (et == VIEW_ITEM) & (self.atype[eacc] == CUSTOMER) & (rng.random(len(es)) < .12)
            et[m] = COUPON
        # targets
        at = self.atype[eacc]
        tgt = np.full(len(es), -1, dtype=np.int32)
        is_m = (et == VIEW_ITEM) | (et == VIEW_COMMENTS) | (et == ORDER) | (et == COUPON)
        sm = np.where((rng.random(nS) < 0.35) & (self.fav[sacc] >= 0), self.fav[sacc],
                      self.pop_merchants(nS))
        m = is_m & (at == CUSTOMER)
        tgt[m] = np.where(rng.random(int(m.sum())) < 0.85, sm[es[m]],
                          self.pop_merchants(int(m.sum())))
        m = is_m & (at == MERCHANT)
        tgt[m] = eacc[m]
        m = is_m & (at == STAFF)
        tgt[m] = self.partner_merchants(self.partner[eacc[m]], rng.random(int(m.sum())))
        vp = et == VIEW_PROFILE
        m = vp & (at == CUSTOMER)
        tgt[m] = rng.integers(0, self.C, int(m.sum()))
        m = vp & (at == MERCHANT)
        tgt[m] = window.buyers_of_merchant(eacc[m], rng.random(int(m.sum())))
        harv = np.full(len(es), -1, dtype=np.int8)
        m = vp & (at == STAFF)
        if m.any():
            idx = np.flatnonzero(m)
            a = eacc[idx]
            untied = (self.untied_from[a] <= d) & (rng.random(len(idx)) < self.untied_p)
            t = window.buyers_of_partner(self.partner[a], rng.random(len(idx)))
            t[untied] = rng.integers(0, n, int(untied.sum()))
            tgt[idx] = t
            if untied.any():
                harv[idx[untied]] = self.insider_ring
        # nothing to look up yet: the read becomes a product view
        lost = vp & (tgt < 0)
        et[lost] = VIEW_ITEM
        tgt[lost & (at == MERCHANT)] = eacc[lost & (at == MERCHANT)]
        m = lost & (at == STAFF)
        tgt[m] = self.partner_merchants(self.partner[eacc[m]], rng.random(int(m.sum())))
        is_m = (et == VIEW_ITEM) | (et == VIEW_COMMENTS) | (et == ORDER) | (et == COUPON)
        m = is_m & (tgt < 0)
        tgt[m] = self.pop_merchants(int(m.sum()))
        # devices and addresses, per session
        d1 = self.dev1[sacc]
        sdev = np.where((d1 >= 0) & (rng.random(nS) < self.p_dev1[sacc]), d1, self.dev0[sacc])
        a1 = self.alt[sacc]
        sip = np.where((a1 >= 0) & (rng.random(nS) < self.p_alt[sacc]), a1, self.home[sacc])
        hang = self.hangout[sacc]
        trav = (hang >= 0) & (rng.random(nS) < 0.1)
        sip[trav] = hang[trav]
        rec = _records(rng, et)
        o = et == ORDER
        self._orders.append((eacc[o], tgt[o]))
        return _Events(ts, eacc, sdev[es], sip[es], et, tgt, rec, harv)

    def _integrators(self, d: int, window: _OrderWindow) -> _Events:
        rng = self.rng_day
        day0 = self.t0 + d * DAY
        parts = []
        for g in self.api_groups:
            n_ord = window.partner_orders(g["partner"])
            V = int(rng.poisson(n_ord * g["per_order"]))
            k = len(g["acc"])
            per = rng.multinomial(V, np.full(k, 1.0 / k))
            for j in range(k):
                v = int(per[j])
                logins = day0 + g["phase"][j] + np.arange(12) * 7200
                t = day0 + g["phase"][j] + (np.arange(v) * DAY) // max(v, 1) + rng.integers(0, 2, v)
                ts = np.concatenate([logins, t])
                et = np.concatenate([np.full(12, LOGIN), np.where(rng.random(v) < .92,
                                                                  VIEW_PROFILE, VIEW_ITEM)])
                tgt = np.full(len(ts), -1, dtype=np.int32)
                pp = np.full(v, g["partner"])
                prof = window.buyers_of_partner(pp, rng.random(v))
                item = self.partner_merchants(pp, rng.random(v))
                tgt[12:] = np.where(et[12:] == VIEW_PROFILE, prof, item)
                bad = tgt < 0
                bad[:12] = False
                et[bad] = VIEW_ITEM
                tgt[bad] = item[bad[12:]]
                ip = np.where(rng.random(len(ts)) < .95, g["ip_of"][j],
                              g["ips"][rng.integers(0, len(g["ips"]), len(ts))])
                parts.append(_Events(ts, np.full(len(ts), g["acc"][j]),
                                     np.full(len(ts), g["dev"][j]), ip, et, tgt,
                                     _records(rng, et)))
        return _Events.concat(parts)

    def _callcentre(self, d: int, window: _OrderWindow) -> _Events:
        rng = self.rng_day
        day0 = self.t0 + d * DAY
        dow = (self.dow0 + d) % 7
        parts = []
        for g in self.cc_groups:
            acc = g["acc"]
            p_work = .85 if dow < 5 else (.35 if dow == 5 else .1)
            work = rng.random(len(acc)) < p_work
            if not work.any():
                continue
            a = acc[work]
            n_ord = window.partner_orders(g["partner"])
            lam = float(np.clip(1.5 * n_ord / len(acc), 20, 300))
            reads = rng.poisson(lam, len(a))
            begin = day0 + g["shift"][work] - LOCAL + rng.integers(-900, 900, len(a))
            L = reads + 1
            es, pos, _ = segment_offsets(L)
            t = begin[es] + np.where(pos == 0, 0, rng.integers(60, 8 * 3600, len(es)))
            et = np.where(pos == 0, LOGIN,
                          np.where(rng.random(len(es)) < .9, VIEW_PROFILE, VIEW_ITEM))
            pp = np.full(len(es), g["partner"])
            tgt = np.where(et == VIEW_PROFILE, window.buyers_of_partner(pp, rng.random(len(es))),
                           self.partner_merchants(pp, rng.random(len(es))))
            tgt[et == LOGIN] = -1
            bad = (et == VIEW_PROFILE) & (tgt < 0)
            et[bad] = VIEW_ITEM
            tgt[bad] = self.partner_merchants(pp[bad], rng.random(int(bad.sum())))
            ac = a[es]
            parts.append(_Events(t, ac, self.dev0[ac], self.home[ac], et, tgt,
                                 _records(rng, et)))
        return _Events.concat(parts)

    def _ring(self, d: int, r: _Ring) -> _Events:
        rng, st = self.rng_ring, r.style
        day0 = self.t0 + d * DAY
        if d < r.start_day:
            return _Events.concat([])
        on = (r.active_from <= d) & (rng.random(len(r.members)) < r.p_active)
        mi = np.flatnonzero(on)
        if len(mi) == 0:
            return _Events.concat([])
        lo, hi = st["sessions"]
        ns = rng.integers(lo, hi + 1, len(mi))
        smi = np.repeat(mi, ns)
        nS = len(smi)
        per_sess = st["reads"] * r.read_scale[smi] / ((lo + hi) / 2)
        reads = 1 + rng.poisson(per_sess)
        if st["clock"] == "round":
            start = day0 + rng.integers(0, DAY, nS)
        else:
            hour = draw_from(self.hour_cdf[0], rng.random(nS))
            start = day0 + (hour * 3600 + rng.integers(0, 3600, nS) - LOCAL) % DAY
        L = reads + 1
        es, pos, first = segment_offsets(L)
        if st["pace"] == "machine":
            gap = st["tau"] * (1 + st["jitter"] * rng.uniform(-1, 1, len(es)))
        else:
            gap = rng.lognormal(np.log(st["gap"]), 0.9, len(es))
        ts = start[es] + np.rint(cum_in_session(np.maximum(gap, 1.0), pos, es, first)
                                 ).astype(np.int64)
        et = np.where(pos == 0, LOGIN, draw_from(weights_cdf(st["mix"]), rng.random(len(es)))).astype(np.int8)
        tgt = np.full(len(es), -1, dtype=np.int32)
        m = et == VIEW_PROFILE
        tgt[m] = rng.integers(0, self.N, int(m.sum()))
        m = et == VIEW_COMMENTS
        tgt[m] = self.merch[rng.integers(0, self.M, int(m.sum()))]
        m = et == VIEW_ITEM
        tgt[m] = self.pop_merchants(int(m.sum()))
        harv = np.where((et == VIEW_PROFILE) | (et == VIEW_COMMENTS), r.index, -1)
        # devices and addresses, per session
        sdev = r.device[smi].copy()
        if st["ip"] != "proxy":
            sw = rng.random(nS) < .15
            sdev[sw] = r.device_pool[rng.integers(0, len(r.device_pool), int(sw.sum()))]
        if st["ip"] == "proxy":
            k = st["proxy_k"]
            sip = r.ip_pool[rng.integers(max(0, d - 2) * k, (d + 1) * k, nS)]
        else:
            sip = r.ip_pool[rng.integers(0, len(r.ip_pool), nS)]
        if st["ip"] == "nat_dc":
            nat = rng.random(nS) < .5
            sip[nat] = r.nat_pool[rng.integers(0, len(r.nat_pool), int(nat.sum()))]
        out = [_Events(ts, r.members[smi][es], sdev[es], sip[es], et, tgt, _records(rng, et),
                       harv)]
        # cashing in: coupons at the ring partner's merchants
        if st["coupon"] > 0 and r.partner >= 0:
            cm = mi[rng.random(len(mi)) < st["coupon"]]
            if len(cm):
                k = len(cm)
                t = day0 + rng.integers(0, DAY - 600, k)
                merch = self.partner_merchants(np.full(k, r.partner), rng.random(k))
                ts = np.concatenate([t, t + rng.integers(5, 60, k), t + rng.integers(70, 300, k)])
                et = np.repeat(np.array([LOGIN, VIEW_ITEM, COUPON], np.int8), k)
                tgt = np.concatenate([np.full(k, -1), merch, merch])
                acc = np.tile(r.members[cm], 3)
                dv = np.tile(r.device[cm], 3)
                ip = np.tile(r.ip_pool[rng.integers(0, len(r.ip_pool), k)], 3)
                out.append(_Events(ts, acc, dv, ip, et, tgt, _records(rng, et)))
        return _Events.concat(out)

    # -- the whole window -----------------------------------------------------
    def prepare(self) -> None:
        self.mix_cdf = [weights_cdf(_MIXES[k][0]) for k in _MIX_NAMES]
        self.mix_login = np.array([_MIXES[k][1] for k in _MIX_NAMES])
        self.mix_len = np.array([_MIXES[k][2] for k in _MIX_NAMES])
        self.mix_gap = np.array([_MIXES[k][3] for k in _MIX_NAMES])
        self.hour_cdf = [weights_cdf(np.asarray(HOURS_PEOPLE) + 1e-9), weights_cdf(np.asarray(HOURS_OFFICE) + 1e-9)]
        self.sale_days = set(int(x) for x in self.rng.choice(self.days, min(2, self.days),
                                                              replace=False))
        self.insider_ring = next((r.index for r in self.rings if r.style.get("insider")), -1)
        self._orders: list = []
        self.bug_days = (lambda a: (a, a + max(3, self.days // 8)))(
            int(self.rng.integers(0, max(1, self.days - self.days // 8))))

    def run(self, emit) -> dict[int, int]:
        """Simulate every day; hand sorted chunks to ``emit``. Returns first harvest per ring."""
        self.prepare()
        window = _OrderWindow(self.partner)
        pending = _Events.concat([])
        first: dict[int, int] = {}
        counts: dict[int, int] = {}
        for d in range(self.days):
            self._orders = []
            ev = _Events.concat([pending, self.day(d, window)])
            for c, m in self._orders:
                window.push(c, m)
            cut = self.t0 + (d + 1) * DAY
            later = ev.ts >= cut
            pending = ev.take(later) if d + 1 < self.days else _Events.concat([])
            ev = ev.take(~later)
            if len(ev) == 0:
                continue
            ev = ev.take(np.argsort(ev.ts * self.N + self.rank[ev.acc], kind="stable"))
            for ri in np.unique(ev.harv[ev.harv >= 0]):
                ri = int(ri)
                t = int(ev.ts[ev.harv == ri].min())
                first[ri] = min(first.get(ri, t), t)
                counts[ri] = counts.get(ri, 0) + int((ev.harv == ri).sum())
            emit(self._artefacts(ev, d))
        self.harvest_counts = counts
        return first

    def _artefacts(self, ev: _Events, d: int) -> tuple:
        """What an exporter does to rows: drops fingerprints, blanks 1s, mixes offsets."""
        rng = self.rng_art
        n = len(ev)
        dev = np.where(rng.random(n) < .004, -1, ev.dev)
        ip = np.where(rng.random(n) < .002, -1, ev.ip)
        blank = (ev.rec == 1) & ((self.bug_days[0] <= d < self.bug_days[1]) |
                                 (rng.random(n) < .03))
        rec = np.where(blank, -1, ev.rec)
        u = rng.random(n)
        variant = np.where(u < .015, 1, np.where(u < .02, 2, 0)).astype(np.int8)
        return ev.ts, ev.acc, dev, ip, ev.et, ev.tgt, rec, variant


# --------------------------------------------------------------------------- output

_EVENT_TYPES_PA = pa.array(EVENT_TYPES, type=pa.string())


class _EventWriter:
    """Buffers day chunks and writes them in a background thread."""

    def __init__(self, sim: _Sim, path: Path, fmt: str):
        self.sim, self.fmt = sim, fmt
        self.tsf = TsFormat()
        ts_type = pa.timestamp("us", tz="UTC") if fmt == "parquet" else pa.string()
        self.schema = pa.schema([("ts", ts_type), ("account_id", pa.string()),
                                 ("device_id", pa.string()), ("ip", pa.string()),
                                 ("event_type", pa.string()), ("target_id", pa.string()),
                                 ("records", pa.int32())])
        self.sink = _Sink(path, fmt, self.schema, quote=False)
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.futures: deque[Future] = deque()
        self.buf: list[tuple] = []
        self.rows = 0
        self.n_events = 0

    def add(self, chunk: tuple) -> None:
        self.buf.append(chunk)
        self.rows += len(chunk[0])
        if self.rows >= _CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        cols = tuple(np.concatenate(c) for c in zip(*self.buf, strict=True))
        self.buf, self.rows = [], 0
        self.n_events += len(cols[0])
        while len(self.futures) >= 2:
            self.futures.popleft().result()
        self.futures.append(self.pool.submit(self._write, cols))

    def _write(self, cols: tuple) -> None:
        ts, acc, dev, ip, et, tgt, rec, variant = cols
        sim = self.sim
        if self.fmt == "parquet":
            tsa = pa.array(ts * 1_000_000, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        else:
            tsa = self.tsf(ts, variant)
        table = pa.Table.from_arrays([
            tsa,
            sim.acc_ids.take(pa.array(acc)),
            sim.dev_ids.take(pa.array(dev, mask=dev < 0)),
            sim.ip_ids.take(pa.array(ip, mask=ip < 0)),
            _EVENT_TYPES_PA.take(pa.array(et)),
            sim.acc_ids.take(pa.array(tgt, mask=tgt < 0)),
            pa.array(rec, mask=rec < 0, type=pa.int32()),
        ], schema=self.schema)
        self.sink.write(table)

    def close(self) -> None:
        try:
            self.flush()
            while self.futures:
                self.futures.popleft().result()
        finally:
            self.pool.shutdown(wait=True)
            self.sink.close()


def _iso(ts: int) -> str:
    return str(np.datetime64(int(ts), "s")) + "Z"


def _write_static(sim: _Sim, exp: Path, fmt: str, ext: str) -> None:
    tsf = TsFormat()
    # partners
    on = sim.p_onboard
    on_days = (on // DAY).astype("datetime64[D]")
    if fmt == "parquet":
        onb = pa.array(on_days, mask=sim.p_empty_onboard, type=pa.date32())
    else:
        txt = np.where(sim.p_ts_onboard, np.char.add(np.datetime_as_string(on_days), "T09:00:00Z"),
                       np.datetime_as_string(on_days)).astype(object)
        onb = pa.array(txt, mask=sim.p_empty_onboard, type=pa.string())
    partners = pa.table({"partner_id": sim.partner_ids, "name": pa.array(sim.p_name),
                         "partner_type": pa.array([_PARTNER_TYPES[t] for t in sim.ptype]),
                         "onboarded_at": onb})
    write_arrow_table(exp / f"partners.{ext}", fmt, partners, quote=True)
    # accounts, in account-id order
    o = sim.order
    cr = sim.created[o]
    if fmt == "parquet":
        cra = pa.array(cr * 1_000_000, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    else:
        u = sim.rng_art.random(len(o))
        cra = tsf(cr, np.where(u < .02, 1, 0))
    p = sim.partner[o]
    accounts = pa.table({
        "account_id": sim.acc_ids.take(pa.array(o)),
        "account_type": pa.array(ACCOUNT_TYPES, type=pa.string()).take(pa.array(sim.atype[o])),
        "created_at": cra,
        "partner_id": sim.partner_ids.take(pa.array(p, mask=p < 0)),
    })
    write_arrow_table(exp / f"accounts.{ext}", fmt, accounts)


def _truth(sim: _Sim, first: dict[int, int], selected: Sequence[str]) -> tuple[dict, pa.Table]:
    ids = sim.acc_ids
    pid = sim.partner_ids

    def acc_list(a) -> list[str]:
        a = np.asarray(a, dtype=np.int64)
        return sorted(ids.take(pa.array(a)).to_pylist())

    rings, lab_acc, lab_ring, lab_scen = [], [], [], []
    for r in sim.rings:
        members = acc_list(r.members)
        t = first.get(r.index)
        rings.append({
            "ring_id": r.rid, "scenario": r.scenario,
            "first_harvest_ts": _iso(t) if t is not None else None,
            "n_accounts": len(members),
            "partner_id": pid[r.partner].as_py() if r.partner >= 0 else None,
            "n_harvest_events": int(sim.harvest_counts.get(r.index, 0)),
        })
        lab_acc += members
        lab_ring += [r.rid] * len(members)
        lab_scen += [r.scenario] * len(members)
    looks = []
    for g in sim.api_groups:
        looks.append({"kind": "integrator", "partner_id": pid[g["partner"]].as_py(),
                      "n_accounts": len(g["acc"]), "account_ids": acc_list(g["acc"])})
    for g in sim.cc_groups:
        looks.append({"kind": "logistics_call_centre", "partner_id": pid[g["partner"]].as_py(),
                      "n_accounts": len(g["acc"]), "account_ids": acc_list(g["acc"])})
    in_ring = np.zeros(sim.N, dtype=bool)
    for r in sim.rings:
        in_ring[r.members] = True
    for p in np.flatnonzero(sim.p_desk):
        acc = sim.staff[(sim.partner[sim.staff] == p) & (sim.staff_role == 0)]
        acc = acc[~in_ring[acc]]
        looks.append({"kind": "service_desk", "partner_id": pid[int(p)].as_py(),
                      "n_accounts": len(acc), "account_ids": acc_list(acc)})
    ips = sim.ip_ids
    for i in np.argsort(-sim.hub_size, kind="stable"):
        if sim.hub_size[i] >= 50:
            looks.append({"kind": "carrier_nat", "ip": ips[int(sim.hubs[i])].as_py(),
                          "n_accounts": int(sim.hub_size[i])})
    for i in np.argsort(-sim.wifi_size, kind="stable"):
        if sim.wifi_size[i] >= 20:
            looks.append({"kind": "public_wifi", "ip": ips[int(sim.wifi[i])].as_py(),
                          "n_accounts": int(sim.wifi_size[i])})
    hh_acc, hh_of, n_hh = sim._lookalike_groups["hh"]
    o = np.argsort(hh_of, kind="stable")
    bounds = np.searchsorted(hh_of[o], np.arange(n_hh + 1))
    for h in range(n_hh):
        acc = hh_acc[o[bounds[h]:bounds[h + 1]]]
        looks.append({"kind": "household", "n_accounts": len(acc), "account_ids": acc_list(acc)})
    for kind, key in (("power_shoppers", "power"), ("merchant_buyer_lookup", "lookup"),
                      ("vpn_users", "vpn")):
        acc = sim._lookalike_groups[key]
        looks.append({"kind": kind, "n_accounts": len(acc), "account_ids": acc_list(acc)})
    truth = {
        "generator": "analysis.workshop.synth", "seed": sim.seed, "accounts": sim.N, "days": sim.days,
        "window_start": _iso(sim.t0), "window_end": _iso(sim.t1),
        "scenarios": list(selected), "rings": rings, "lookalikes": looks,
    }
    labels = pa.table({"account_id": lab_acc, "ring_id": lab_ring, "scenario": lab_scen})
    return truth, labels


def generate(out_dir, *, seed: int = 7, accounts: int = 5000, days: int = 120,
             fmt: str = "csv", scenarios: Sequence[str] | None = None,
             end: str = "2020-06-30") -> SynthResult:
    """Write a synthetic export to ``out_dir/export`` and its answer key beside it.

    ``accounts`` is the number of accounts, ``days`` the length of the window that
    ends with the day ``end`` (UTC), ``fmt`` one of :data:`FORMATS`, ``scenarios`` the
    rings to plant (default: all of :data:`SCENARIOS`). Deterministic in its arguments.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if scenarios is None:
        selected = list(SCENARIOS)
    else:
        selected = [str(s).strip() for s in scenarios if str(s).strip()]
        unknown = sorted(set(selected) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; "
                             f"known: {', '.join(SCENARIOS)}")
    if int(accounts) < 1000:
        raise ValueError("accounts must be at least 1000")
    if int(days) < 14:
        raise ValueError("days must be at least 14")
    try:
        np.datetime64(str(end)[:10], "D")
    except ValueError as exc:
        raise ValueError(f"end must be a date like 2020-06-30, not {end!r}") from exc

    out = Path(out_dir)
    exp = out / "export"
    exp.mkdir(parents=True, exist_ok=True)
    for name in ("accounts", "partners", "events"):
        for e in FORMATS:
            stale = exp / f"{name}.{e}"
            if e != fmt and stale.exists():
                stale.unlink()       # a table given twice is fatal to the reader

    sim = _Sim(int(seed), int(accounts), int(days), str(end), selected)
    writer = _EventWriter(sim, exp / f"events.{fmt}", fmt)
    try:
        first = sim.run(writer.add)
    finally:
        writer.close()
    _write_static(sim, exp, fmt, fmt)
    truth, labels = _truth(sim, first, selected)
    labels_path = out / "labels.csv"
    write_arrow_table(labels_path, "csv", labels)
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return SynthResult(export_dir=exp, labels_path=labels_path, truth_path=truth_path,
                       n_events=writer.n_events)


def add_prospecting_shops(export_dir, shops: int, *, seed: int = 1, reads: float = 200.0,
                          spread: float = 0.8) -> int:
    """Add an honest look-alike to a Parquet export: small shops reading strangers.

    Each shop is two merchant accounts on one PC and one address, with no
    partner, logging in every other day and reading the profiles of about
    ``reads`` customers (log-normal with sigma ``spread``) who never ordered
    from it: prospecting, every read untied. Many such shops are a platform's
    habit, not a ring; the answer key is left as it is (they are honest).
    Returns the number of events added.
    """
    exp = Path(export_dir)
    if not (exp / "events.parquet").exists():
        raise ValueError(f"{exp}: add_prospecting_shops needs a Parquet export")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5A095]))
    acc = pq.read_table(exp / "accounts.parquet")
    ev = pq.read_table(exp / "events.parquet")
    customers = np.asarray(acc.filter(pc.equal(acc.column("account_type"), "customer"))
                           .column("account_id").to_pylist(), dtype=object)
    lo, hi = pc.min_max(ev.column("ts").cast(pa.timestamp("s", tz="UTC"))).values()
    t0 = lo.value // DAY * DAY
    n_days = max((hi.value - t0) // DAY, 1)
    accounts, rows = [], []
    for s in range(int(shops)):
        dev = f"shop{int(seed):03d}{s:05d}"
        ip = f"100.{64 + s // 60_000}.{s // 250 % 240}.{s % 250 + 2}"
        for j in range(2):
            aid = f"{dev}{j}"
            accounts.append(aid)
            k = min(int(np.ceil(rng.lognormal(np.log(reads), spread))), len(customers))
            t = t0 + rng.integers(0, n_days, k) * DAY + rng.integers(3600, 10 * 3600, k)
            rows += [(int(x), aid, dev, ip, "view_profile", g, 1)
                     for x, g in zip(t, rng.choice(customers, k, replace=False))]
            rows += [(t0 + d * DAY + 3600, aid, dev, ip, "login", None, 0)
                     for d in range(0, n_days, 2)]
    created = int(np.datetime64("2018-03-01", "s").astype(np.int64))
    new_acc = {"account_id": accounts, "account_type": ["merchant"] * len(accounts),
               "created_at": [created] * len(accounts), "partner_id": [None] * len(accounts)}
    cols = list(zip(*rows)) if rows else [[]] * 7
    new_ev = dict(zip(("ts", "account_id", "device_id", "ip", "event_type", "target_id",
                       "records"), cols))

    def typed(values: dict, schema: pa.Schema) -> pa.Table:
        arrays = []
        for f in schema:
            v = values[f.name]
            if pa.types.is_timestamp(f.type):
                arrays.append(pa.array(v, pa.int64()).cast(pa.timestamp("s", tz="UTC"))
                              .cast(f.type))
            else:
                arrays.append(pa.array(v).cast(f.type) if len(v) else pa.array([], f.type))
        return pa.Table.from_arrays(arrays, schema=schema)

    pq.write_table(pa.concat_tables([acc, typed(new_acc, acc.schema)]), exp / "accounts.parquet")
    pq.write_table(pa.concat_tables([ev, typed(new_ev, ev.schema)]), exp / "events.parquet")
    return len(rows)
