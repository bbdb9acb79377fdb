"""Mixed worlds: the project's own two generators, randomised per seed.

(:mod:`analysis.workshop.synth.worlds` is the detector-blind generator; these worlds
keep the older generators' tactics in the quality table at randomised sizes.)

Each seed draws, with its own random generator:

* the generator: the demo generator (:func:`generate`, a random non-empty subset
  of its six ring scenarios) or the independent tactics generator
  (:func:`generate_holdout`, written by a session that never read the detector);
* 1,000-100,000 accounts (log-uniform; capped so that accounts x days stays
  under :data:`MAX_ACCOUNT_DAYS`, about 3M events) and a window of 30-365 days
  ending on a random day of 2020-2026;
* the file format (CSV, gzipped CSV, Parquet);
* for Parquet worlds, sometimes an honest look-alike of many small shops that
  prospect strangers' profiles (0-3 % of the accounts, 50-400 reads each).

Limits, stated plainly: the tactics and look-alikes inside a world are those of
the two generators above, so these worlds widen sizes, windows, mixes and
formats, not the catalogue of behaviours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .generator import FORMATS, SCENARIOS, add_prospecting_shops, generate
from .holdout import generate_holdout

__all__ = ["World", "draw_params", "generate_world", "MAX_ACCOUNT_DAYS"]

#: Largest accounts x days a world may have (about 3M events with the demo generator).
MAX_ACCOUNT_DAYS = 4_000_000
MIN_ACCOUNTS, MAX_ACCOUNTS = 1000, 100_000
MIN_DAYS, MAX_DAYS = 30, 365


@dataclass
class World:
    export_dir: Path
    labels_path: Path
    truth_path: Path
    params_path: Path
    params: dict


def draw_params(seed: int, *, accounts: int | None = None, days: int | None = None) -> dict:
    """The drawn parameters of world ``seed`` (deterministic).

    >>> p = draw_params(3)
    >>> MIN_DAYS <= p["days"] <= MAX_DAYS and p["accounts"] * p["days"] <= MAX_ACCOUNT_DAYS
    True
    >>> draw_params(3) == p
    True
    """
    rng = np.random.default_rng([20261202, int(seed)])
    d = int(days) if days is not None else int(rng.integers(MIN_DAYS, MAX_DAYS + 1))
    if accounts is not None:
        n = int(accounts)
    else:
        n = int(np.exp(rng.uniform(np.log(MIN_ACCOUNTS), np.log(MAX_ACCOUNTS))))
        n = max(MIN_ACCOUNTS, min(n, MAX_ACCOUNT_DAYS // d))
    kind = "holdout" if (n >= 2000 and rng.random() < 0.35) else "demo"
    k = int(rng.integers(1, len(SCENARIOS) + 1))
    scenarios = sorted(rng.choice(SCENARIOS, size=k, replace=False).tolist())
    end = np.datetime64("2020-01-01") + int(rng.integers(0, 7 * 365))
    fmt = str(rng.choice(FORMATS))
    shops = int(rng.uniform(0, 0.03) * n) if (fmt == "parquet" and rng.random() < 0.5) else 0
    return {"seed": int(seed), "generator": kind, "accounts": n, "days": d,
            "scenarios": scenarios if kind == "demo" else "holdout tactics",
            "end": str(end), "format": fmt, "prospecting_shops": shops,
            "shop_reads": round(float(rng.uniform(50, 400)), 1), "gen_seed": int(rng.integers(1, 10**6))}


def generate_world(out_dir, *, seed: int, accounts: int | None = None, days: int | None = None,
                   fmt: str | None = None) -> World:
    """Write world ``seed`` to ``out_dir`` (export/, labels.csv, truth.json, world.json)."""
    p = draw_params(seed, accounts=accounts, days=days)
    if fmt is not None:
        p["format"] = fmt
        if fmt != "parquet":
            p["prospecting_shops"] = 0
    out = Path(out_dir)
    if p["generator"] == "holdout":
        res = generate_holdout(out, seed=p["gen_seed"], accounts=p["accounts"], days=p["days"])
    else:
        res = generate(out, seed=p["gen_seed"], accounts=p["accounts"], days=p["days"],
                       fmt=p["format"], scenarios=p["scenarios"], end=p["end"])
    if p["prospecting_shops"] and (res.export_dir / "events.parquet").exists():
        add_prospecting_shops(res.export_dir, p["prospecting_shops"], seed=p["gen_seed"],
                              reads=p["shop_reads"])
    params_path = out / "world.json"
    params_path.write_text(json.dumps(p, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return World(export_dir=res.export_dir, labels_path=res.labels_path,
                 truth_path=res.truth_path, params_path=params_path, params=p)
