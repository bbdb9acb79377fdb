"""Detection quality per scenario on held-out seeds → ``benchmarks/quality.md``.

``make quality`` runs this. For each held-out seed it generates a synthetic
export with every ring scenario and the honest look-alikes, runs the pipeline
with default parameters, and measures:

* account precision and recall, rings found and false-alert rings;
* per scenario: share of the ring's accounts flagged, the precision of the
  flagged rings that point at it, and the days from its first harvest to the
  first weekly replay run that flags it;
* stability: the Jaccard overlap of the flagged accounts across 5 seeds;
* small exports (1,000 to 2,000 accounts), where the rings are 5 to 11 % of
  the accounts and the population baselines must not be taken inside them.

The seeds here were never used to tune the detector (tuning used seeds 7 and 11).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from ..findings import flagged_accounts, flagged_rings
from ..params import RunParams
from ..pipeline import run
from .evaluate import at_least_half, evaluate, read_labels
from .replay import replay

HELD_OUT_SEEDS = (101, 202, 303)
#: Seeds of the independent tactics generator (analysis.workshop.synth.holdout) never looked at.
HOLDOUT_TACTIC_SEEDS = (3, 4)
STABILITY_SEEDS = (1, 2, 3, 4, 5)
#: Small exports: sizes (accounts) and held-out seeds.
SMALL_SIZES = (1000, 1500, 2000)
SMALL_SEEDS = (404, 505)
#: Small exports with an honest habit: (accounts, seed, prospecting shops, rings planted).
SMALL_SHOPS = ((2000, 404, 110, False), (2000, 404, 110, True))


def _flagged_accounts(out: Path) -> set[str]:
    rings = pd.read_csv(out / "rings.csv")
    members = pd.read_csv(out / "ring_members.csv", dtype=str, keep_default_na=False)
    return flagged_accounts(rings, members)


def jaccard(a: set, b: set) -> float:
    """Overlap of two sets; 1.0 when both are empty.

    >>> jaccard({1, 2}, {2, 3}), jaccard(set(), set())
    (0.3333333333333333, 1.0)
    """
    return len(a & b) / len(a | b) if (a | b) else 1.0


def assess_seed(seed: int, work: Path, accounts: int, days: int) -> dict:
    from .synth import generate

    res = generate(work / f"synth-{seed}", seed=seed, accounts=accounts, days=days)
    t0 = time.perf_counter()
    out = work / f"run-{seed}"
    run(res.export_dir, out, RunParams(seed=7))
    runtime = time.perf_counter() - t0
    ev = evaluate(out, res.labels_path)
    labels = read_labels(res.labels_path)
    members = pd.read_csv(out / "ring_members.csv", dtype=str, keep_default_na=False)
    rings = pd.read_csv(out / "rings.csv")
    flagged_ids = set(flagged_rings(rings)["ring_id"])
    fm = members[members["ring_id"].isin(flagged_ids)]
    planted = dict(zip(labels["account_id"], labels["ring_id"]))
    fm = fm.assign(owner=fm["account_id"].map(planted))
    timing = replay(res.export_dir, res.labels_path, truth=res.truth_path, seed=7)
    rows = []
    for r in ev.per_ring:
        ring = r["ring_id"]
        # Flagged rings whose members are mostly this planted ring.
        pointing = [g for _, g in fm.groupby("ring_id")
                    if at_least_half((g["owner"] == ring).sum(), len(g))]
        n_point = sum(len(g) for g in pointing)
        prec = (sum((g["owner"] == ring).sum() for g in pointing) / n_point) if n_point else 0.0
        t = timing[timing["ring_id"] == ring].iloc[0]
        rows.append({"seed": seed, "scenario": r["scenario"], "ring_accounts": r["accounts"],
                     "recall": r["flagged"] / r["accounts"], "precision": prec,
                     "found": r["found"], "days_to_flag": t["days_to_flag"],
                     "flagged_at_14d": t["flagged_at_14d"]})
    flagged_sets = []
    for s in STABILITY_SEEDS:
        o = work / f"stab-{seed}-{s}"
        run(res.export_dir, o, RunParams(seed=s))
        flagged_sets.append(_flagged_accounts(o))
    pairs = [jaccard(a, b) for a, b in itertools.combinations(flagged_sets, 2)]
    runs = timing.attrs["runs"]
    weekly = runs[runs["weekly"]]
    return {"seed": seed, "eval": ev, "per_scenario": rows, "runtime_s": runtime,
            "jaccard_min": min(pairs), "false_alerts_per_weekly_run_max":
            int(weekly["false_alerts"].max()) if len(weekly) else 0}


def assess_holdout(seed: int, work: Path, accounts: int) -> dict:
    """Run the detector on the independent-tactics generator (other rings, other look-alikes)."""
    from .synth.holdout import generate_holdout

    res = generate_holdout(work / f"holdout-{seed}", seed=seed, accounts=accounts)
    out = work / f"holdout-run-{seed}"
    run(res.export_dir, out, RunParams(seed=7))
    return {"seed": seed, "eval": evaluate(out, res.labels_path)}


def assess_small(accounts: int, seed: int, work: Path, days: int, shops: int = 0,
                 rings: bool = True) -> dict:
    """Run the detector on a small export, where the rings are a sizeable share of accounts.

    ``shops`` adds that many honest prospecting shops (:func:`synth.add_prospecting_shops`).
    """
    from .synth import add_prospecting_shops, generate

    name = f"small-{accounts}-{seed}-{shops}-{int(rings)}"
    res = generate(work / name, seed=seed, accounts=accounts, days=days, fmt="parquet",
                   scenarios=None if rings else [])
    if shops:
        add_prospecting_shops(res.export_dir, shops, seed=seed)
    out = work / f"{name}-run"
    run(res.export_dir, out, RunParams(seed=7))
    labels = read_labels(res.labels_path)
    record = json.loads((out / "run.json").read_text())
    active = pd.read_parquet(res.export_dir / "events.parquet", columns=["account_id"])[
        "account_id"].nunique()
    return {"accounts": accounts, "seed": seed, "shops": shops,
            "eval": evaluate(out, res.labels_path),
            "ring_share": labels["account_id"].nunique() / active,
            "set_aside": record["baselines_set_aside"]}


#: Randomised worlds (:mod:`analysis.workshop.synth.worlds`): seeds looked at while
#: tuning the detector, and seeds held out of tuning (run only for the table). Seeds 19
#: and 20 were never run while tuning; 81-100 were first run for the tables of
#: 2026-12-07, 121-140 for the table after peer voices (2026-12-07, third session), and
#: 141-160 for the table of the fourth session.
WORLD_TUNING_SEEDS = tuple(range(1, 19)) + tuple(range(21, 81))
WORLD_HELD_OUT_SEEDS = (19, 20) + tuple(range(81, 101)) + tuple(range(121, 161))
#: Small, skewed platforms, the shape of the issue's export D (500 customers, 40 days):
#: every world drawn at SMALL_WORLD_ACCOUNTS accounts over SMALL_WORLD_DAYS days, where
#: rings are a large share of the accounts.
SMALL_WORLD_ACCOUNTS, SMALL_WORLD_DAYS = 600, 40
#: Small tuning worlds 241-280 were added in the fourth session; small held-out worlds
#: 136-160 were first run then, for their totals only.
SMALL_WORLD_TUNING_SEEDS = tuple(range(201, 281))
SMALL_WORLD_HELD_OUT_SEEDS = tuple(range(101, 161))


def seed_ranges(seeds) -> str:
    """Seeds as compact ranges.

    >>> seed_ranges([1, 2, 3, 5, 19, 20, 21])
    '1-3, 5, 19-21'
    >>> seed_ranges([])
    '-'
    """
    out, run = [], []
    for s in sorted(seeds):
        if run and s == run[-1] + 1:
            run.append(s)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [s]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out) or "-"


def average_precision(rings: pd.DataFrame, members: pd.DataFrame, labels: pd.DataFrame) -> float:
    """Average precision of the candidate-ring ranking (best score first).

    A candidate ring is relevant when at least half its members are planted; AP is
    the mean, over the relevant rings, of the precision among the rings ranked up to
    it. 1.0 when every real ring ranks above every false one (and when there is
    nothing relevant to rank).

    >>> r = pd.DataFrame({"ring_id": ["a", "b", "c"], "rank": [1, 2, 3]})
    >>> m = pd.DataFrame({"ring_id": ["a", "b", "c"], "account_id": ["x", "h", "y"]})
    >>> lab = pd.DataFrame({"account_id": ["x", "y"], "ring_id": ["R1", "R2"]})
    >>> round(average_precision(r, m, lab), 3)   # relevant at 1 and 3: (1/1 + 2/3) / 2
    0.833
    """
    if rings.empty:
        return 1.0
    planted = set(labels["account_id"].astype(str))
    share = (members.assign(p=members["account_id"].astype(str).isin(planted))
             .groupby("ring_id")["p"].mean())
    order = rings.sort_values("rank")["ring_id"].astype(str)
    rel = [at_least_half(2 * share.get(r, 0.0), 2) for r in order]   # share >= 0.5
    hits, total = 0, 0.0
    for k, is_rel in enumerate(rel, start=1):
        if is_rel:
            hits += 1
            total += hits / k
    return total / hits if hits else 1.0


def assess_world(seed: int, work: Path, kind: str = "worlds", accounts: int | None = None,
                 days: int | None = None) -> dict:
    """Generate world ``seed`` (``kind``: ``worlds``, the detector-blind generator, or
    ``mixed``, the project's own generators randomised; at ``accounts`` and ``days``
    when given) and run the default detector."""
    import importlib

    generate_world = importlib.import_module(f"{__package__}.synth.{kind}").generate_world
    size = {k: v for k, v in (("accounts", accounts), ("days", days)) if v is not None}
    name = f"{kind}-{seed}" + "".join(f"-{v}" for v in size.values())
    world = generate_world(work / name, seed=seed, **size)
    out = work / f"{name}-run"
    t0 = time.perf_counter()
    run(world.export_dir, out, RunParams(seed=7))
    runtime = time.perf_counter() - t0
    ev = evaluate(out, world.labels_path)
    rings = pd.read_csv(out / "rings.csv")
    members = pd.read_csv(out / "ring_members.csv", dtype=str, keep_default_na=False)
    labels = read_labels(world.labels_path)
    events = json.loads((out / "run.json").read_text())["tables"]["events"]["rows"]
    p = world.params
    return {"seed": seed, "eval": ev, "ap": average_precision(rings, members, labels),
            "runtime_s": runtime, "events": events,
            "accounts": p.get("accounts"), "days": p.get("days"),
            "false_from": false_alert_sources(rings, members, labels, world.truth_path),
            "missed": [f"{r['scenario']} {r['flagged']}/{r['accounts']}" for r in ev.per_ring
                       if not r["found"]]}


def false_alert_sources(rings: pd.DataFrame, members: pd.DataFrame, labels: pd.DataFrame,
                        truth_path: Path) -> dict[str, int]:
    """Flagged accounts that are not planted, counted by the honest look-alike they
    belong to in the world's truth file (``other`` for plain honest accounts)."""
    flagged = flagged_accounts(rings, members) - set(labels["account_id"].astype(str))
    kind_of: dict[str, str] = {}
    try:
        truth = json.loads(Path(truth_path).read_text())
    except (OSError, ValueError):
        truth = {}
    for look in truth.get("lookalikes", []) if isinstance(truth, dict) else []:
        for acc in look.get("accounts", []) or []:
            kind_of.setdefault(str(acc), str(look.get("kind", "look-alike")))
    counts: dict[str, int] = {}
    for acc in flagged:
        k = kind_of.get(acc, "other")
        counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


#: Held-out worlds run again at as-of dates 14 days after each ring's first harvest.
EARLY_SEEDS = tuple(range(81, 91))


def assess_early(seed: int, work: Path) -> dict:
    """World ``seed``, run at 14 days after each planted ring's first harvest: is it
    flagged by then? (Rings whose +14 days fall after the export's end are left out.)"""
    from .synth.worlds import generate_world

    world = generate_world(work / f"early-{seed}", seed=seed)
    table = replay(world.export_dir, world.labels_path, truth=world.truth_path, seed=7,
                   weekly=False)
    rings = pd.DataFrame(table[table["flagged_at_14d"].notna()]).reset_index(drop=True)
    rings.attrs = {}   # the replay's per-run table stays behind (concat compares attrs)
    return {"seed": seed, "rings": rings}


def render_early(rows: list[dict]) -> str:
    if not rows:
        return ""
    t = pd.concat([r["rings"].assign(seed=r["seed"]) for r in rows], ignore_index=True)
    lines = ["## Flagged 14 days after the first harvest", "",
             f"Worlds {seed_ranges(r['seed'] for r in rows)} (held out), each planted ring "
             "run at `--as-of` its first harvest + 14 days (rings whose +14 days fall after "
             "the export's end are left out). Flagged: a flagged ring of that run has at least "
             "half its members from the planted ring.", "",
             "| ring tactic | flagged at +14 days |", "|---|---|"]
    for scen, g in t.groupby("scenario", sort=True):
        lines.append(f"| {scen} | {int(g['flagged_at_14d'].astype(bool).sum())} of {len(g)} |")
    lines.append(f"| all | {int(t['flagged_at_14d'].astype(bool).sum())} of {len(t)} |")
    return "\n".join(lines) + "\n"


#: Held-out worlds replayed week by week for ring-key survival (capped in size: one run a week).
WEEKLY_SEEDS = (21, 23, 25, 27, 29, 31)
WEEKLY_MAX_ACCOUNTS, WEEKLY_MAX_DAYS = 6000, 120


def assess_weekly(seed: int, work: Path) -> dict:
    """World ``seed`` (capped), run weekly with --previous chaining: do ring keys survive?"""
    from .synth.worlds import draw_params, generate_world
    from .weekly import weekly_keys

    p = draw_params(seed)
    world = generate_world(work / f"weekly-{seed}", seed=seed,
                           accounts=min(p["accounts"], WEEKLY_MAX_ACCOUNTS),
                           days=min(p["days"], WEEKLY_MAX_DAYS))
    w = weekly_keys(world.export_dir, labels=world.labels_path, params=RunParams(seed=7))
    return {"seed": seed, "accounts": world.params["accounts"], "days": world.params["days"],
            **w.summary}


def render_weekly(rows: list[dict]) -> str:
    if not rows:
        return ""
    lines = ["## Week after week: ring keys", "",
             "Worlds (accounts capped at "
             f"{WEEKLY_MAX_ACCOUNTS:,}, windows at {WEEKLY_MAX_DAYS} days), run at weekly as-of "
             "dates, each run with `--previous` the run before "
             "(`analysis.workshop.weekly.weekly_keys`). *Eligible*: flagged rings whose members "
             "overlap a ring of the previous week by Jaccard >= 0.5; *kept*: of those, the ones "
             "that kept that ring's key. Key changes count, per planted ring, how often its key "
             "changed over the weeks it was flagged.", "",
             "| seed | accounts | days | weeks | eligible | kept | survival | shared keys | "
             "key changes (median / max) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        surv = "-" if r["survival"] is None else f"{r['survival']:.3f}"
        med = "-" if r["median_key_changes"] is None else f"{r['median_key_changes']:g}"
        mx = "-" if r["max_key_changes"] is None else str(r["max_key_changes"])
        lines.append(f"| {r['seed']} | {r['accounts']:,} | {r['days']} | {r['weeks']} | "
                     f"{r['eligible']} | {r['kept']} | {surv} | {r['shared_keys']} | "
                     f"{med} / {mx} |")
    meds = [r["median_key_changes"] for r in rows if r["median_key_changes"] is not None]
    if meds:
        lines += ["", f"Median over worlds of the per-world median key changes: "
                      f"{pd.Series(meds).median():g}."]
    return "\n".join(lines) + "\n"


def _summary_row(name: str, rows: list[dict]) -> list[str]:
    if not rows:
        return []
    prec = [r["eval"].precision for r in rows]
    rec = [r["eval"].recall for r in rows]
    fa = [r["eval"].false_alert_rings for r in rows]
    ap = [r["ap"] for r in rows]
    med = pd.Series
    return [f"| {name} ({len(rows)} worlds) | {med(prec).median():.3f} / {min(prec):.3f} | "
            f"{med(rec).median():.3f} / {min(rec):.3f} | {med(fa).median():g} / {max(fa)} | "
            f"{med(ap).median():.3f} / {min(ap):.3f} | "
            f"{sum(r['eval'].rings_found for r in rows)} of "
            f"{sum(r['eval'].rings_planted for r in rows)} |"]


WORLD_KINDS = {
    "worlds": ("Each seed of `analysis.workshop.synth.worlds` draws a world from a generator "
               "written by a session that never read the detector, from the export contract "
               "and the scoring rules only: 500-100,000 accounts (log-uniform), 30-365 days "
               "ending on a random day of 2024 to mid-2026, id, device and IP styles (IPv6 in some), "
               "timestamp offsets, gzip or Parquet, column order and header case, and in about "
               "40 % of worlds a `relationships` table. It plants 1-6 rings of its own tactics "
               "(insiders sweeping strangers or hiding 1-3 % stranger calls in honest API "
               "traffic, external crews of fresh, aged or taken-over accounts on emulators, "
               "cloned or rotating devices, datacenter IPs or residential proxies, coupon-abuse "
               "crews) among a random subset of twelve honest look-alikes (integrators, "
               "partners re-reading pre-window clients, call centres, carrier and campus NAT, "
               "office IPs, family phones, kiosks, popular-profile readers, QA rigs, sign-up "
               "bursts, customer-service shifts)."),
    "mixed": ("Each seed of `analysis.workshop.synth.mixed` draws a world from the project's "
              "own generators: the demo generator with a random non-empty subset of its six "
              "ring scenarios, or the independent tactics generator, 1,000-100,000 accounts "
              "(capped at about 3M events), 30-365 days ending on a random day of 2020-2026, "
              "the file format, and for Parquet worlds sometimes many small shops prospecting "
              "strangers' profiles. These worlds widen sizes, windows, mixes and formats, not "
              "the catalogue of tactics."),
}


def render_worlds(tuning: list[dict], held_out: list[dict], kind: str = "worlds") -> str:
    title = "Detector-blind worlds" if kind == "worlds" else "Randomised worlds of our generators"
    lines = [f"## {title}", "",
             WORLD_KINDS[kind] + " Seeds "
             f"{seed_ranges(r['seed'] for r in tuning)} were looked at while tuning; seeds "
             f"{seed_ranges(r['seed'] for r in held_out)} were held out of tuning. Default "
             "parameters throughout. Average precision (AP) is that of the candidate-ring "
             "ranking. *False alerts from* counts the flagged accounts that are not planted by "
             "the look-alike they belong to (*other*: plain honest accounts).", "",
             "| worlds | account precision (median / worst) | recall (median / worst) | "
             "false-alert rings (median / worst) | AP (median / worst) | rings found |",
             "|---|---|---|---|---|---|"]
    lines += _summary_row("tuning seeds", tuning)
    lines += _summary_row("held-out seeds", held_out)
    lines += _summary_row("all", tuning + held_out)
    per = pd.DataFrame([{"scenario": r["scenario"], "found": r["found"], "held": w in held_out}
                        for w in tuning + held_out for r in w["eval"].per_ring],
                       columns=["scenario", "found", "held"])
    if len(per):
        lines += ["", "| ring tactic | found (tuning) | found (held out) |", "|---|---|---|"]
        for scen, g in per.groupby("scenario", sort=True):
            t, h = g[~g["held"]], g[g["held"]]
            lines.append(f"| {scen} | {int(t['found'].sum())} of {len(t)} | "
                         f"{int(h['found'].sum())} of {len(h)} |")
    lines += ["", "| seed | held out | accounts | days | events | precision | recall | "
              "rings found | false-alert rings | AP | run (s) | missed | false alerts from |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_world_row(r, r in held_out) for r in tuning + held_out]
    return "\n".join(lines) + "\n"


def _world_row(r: dict, held: bool) -> str:
    e = r["eval"]
    src = ", ".join(f"{k} {v}" for k, v in r.get("false_from", {}).items()) or "-"
    return (f"| {r['seed']} | {'yes' if held else 'no'} | "
            f"{r['accounts'] or 0:,} | {r['days']} | {r['events']:,} | "
            f"{e.precision:.3f} | {e.recall:.3f} | {e.rings_found} of "
            f"{e.rings_planted} | {e.false_alert_rings} | {r['ap']:.3f} | "
            f"{r['runtime_s']:.1f} | {', '.join(r['missed']) or '-'} | {src} |")


def _in_parallel(jobs: int, groups: list[list[tuple]]) -> list[list[dict]]:
    """Run each group's ``(function, args)`` calls, ``jobs`` at once in separate processes
    (each world is independent), and return the results group by group, in order."""
    if jobs <= 1:
        return [[fn(*args) for fn, args in group] for group in groups]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [[pool.submit(fn, *args) for fn, args in group] for group in groups]
        return [[f.result() for f in group] for group in futures]


def render_small_worlds(tuning: list[dict], held_out: list[dict], accounts: int,
                        days: int) -> str:
    """The detector-blind worlds drawn small: the shape of the issue's export D."""
    if not tuning and not held_out:
        return ""
    lines = ["## Small, skewed platforms", "",
             f"The same generator with every world drawn at {accounts:,} accounts over {days} "
             f"days (the shape of export D in the detection issue: rings are a large share "
             f"of the accounts, and of the readers and claimers their peers are measured "
             f"against). Seeds {seed_ranges(r['seed'] for r in tuning) or '-'} were looked "
             f"at while tuning; seeds {seed_ranges(r['seed'] for r in held_out) or '-'} were "
             f"held out.", "",
             "| worlds | account precision (median / worst) | recall (median / worst) | "
             "false-alert rings (median / worst) | AP (median / worst) | rings found |",
             "|---|---|---|---|---|---|"]
    lines += _summary_row("tuning seeds", tuning)
    lines += _summary_row("held-out seeds", held_out)
    lines += ["", "| seed | held out | accounts | days | events | precision | recall | "
              "rings found | false-alert rings | AP | run (s) | missed | false alerts from |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_world_row(r, r in held_out) for r in tuning + held_out]
    return "\n".join(lines) + "\n"


def render(results: list[dict], accounts: int, days: int,
           holdout: list[dict] | None = None, holdout_accounts: int = 0,
           small: list[dict] | None = None) -> str:
    lines = ["# Detection quality on held-out seeds", "",
             f"Produced by `make quality` (`python -m analysis.workshop.quality`): synthetic exports of "
             f"{accounts:,} accounts over {days} days, every ring scenario and the honest "
             f"look-alikes in each, default parameters. Seeds "
             f"{', '.join(str(r['seed']) for r in results)} were never used for tuning.", "",
             "## Per run", "",
             "| seed | precision | recall | rings found | false-alert rings | max false alerts "
             "in a weekly replay run | flagged-set Jaccard over 5 seeds (min) | run time (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        e = r["eval"]
        lines.append(f"| {r['seed']} | {e.precision:.3f} | {e.recall:.3f} | {e.rings_found} of "
                     f"{e.rings_planted} | {e.false_alert_rings} | "
                     f"{r['false_alerts_per_weekly_run_max']} | {r['jaccard_min']:.3f} | "
                     f"{r['runtime_s']:.1f} |")
    lines += ["", "## Per scenario (all held-out seeds)", "",
              "| scenario | rings found | recall (mean) | precision (mean) | days to flag "
              "(max, weekly replay) | flagged at start + 14 days |",
              "|---|---|---|---|---|---|"]
    per = pd.DataFrame([row for r in results for row in r["per_scenario"]],
                       columns=["scenario", "found", "recall", "precision", "days_to_flag",
                                "flagged_at_14d"])
    for scen, g in per.groupby("scenario", sort=True):
        days_max = g["days_to_flag"].max()
        lines.append(f"| {scen} | {int(g['found'].sum())} of {len(g)} | {g['recall'].mean():.3f} "
                     f"| {g['precision'].mean():.3f} | "
                     f"{'never' if pd.isna(days_max) else int(days_max)} | "
                     f"{int(g['flagged_at_14d'].fillna(False).astype(bool).sum())} of {len(g)} |")
    if holdout:
        lines += ["", "## Independent tactics (`analysis.workshop.synth.holdout`)", "",
                  f"Five other ring tactics and three more look-alikes, written by a separate "
                  f"session that never read the detector; {holdout_accounts:,} accounts, "
                  f"seeds {', '.join(str(h['seed']) for h in holdout)}.", "",
                  "| seed | precision | recall | rings found | false-alert rings | per ring |",
                  "|---|---|---|---|---|---|"]
        for h in holdout:
            e = h["eval"]
            per = ", ".join(f"{r['scenario']} {r['flagged']}/{r['accounts']}" for r in e.per_ring)
            lines.append(f"| {h['seed']} | {e.precision:.3f} | {e.recall:.3f} | {e.rings_found} "
                         f"of {e.rings_planted} | {e.false_alert_rings} | {per} |")
    if small:
        lines += ["", "## Small exports", "",
                  f"Synthetic exports of {', '.join(f'{n:,}' for n in sorted({r['accounts'] for r in small}))} "
                  f"accounts over {days} days with all six ring scenarios (seeds "
                  f"{', '.join(str(s) for s in sorted({r['seed'] for r in small}))}): the rings are "
                  f"a larger share of the active accounts than the 5 % above the 95th "
                  f"percentile, so the harm baselines are taken below them "
                  f"(`analysis.signals.bulk_baseline`). The rows with shops add an honest "
                  f"habit instead: two-account shops each reading ~200 profiles of "
                  f"customers who never ordered from them "
                  f"(`analysis.workshop.synth.add_prospecting_shops`); they are not crews, so the "
                  f"baseline stays the plain percentile and they must not be flagged.", "",
                  "| accounts | seed | honest shops | ring accounts / active accounts | "
                  "precision | recall | rings found | flagged rings | false-alert rings | "
                  "baselines set aside (share of active accounts) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in small:
            e = r["eval"]
            aside = ", ".join(f"{k} {v:.1%}" for k, v in r["set_aside"].items()) or "none"
            lines.append(f"| {r['accounts']:,} | {r['seed']} | {r['shops']} | "
                         f"{r['ring_share']:.1%} | {e.precision:.3f} | {e.recall:.3f} | "
                         f"{e.rings_found} of {e.rings_planted} | {e.flagged_rings} | "
                         f"{e.false_alert_rings} | {aside} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.workshop.quality")
    p.add_argument("--out", type=Path, default=Path("benchmarks/quality.md"))
    p.add_argument("--seeds", default=",".join(map(str, HELD_OUT_SEEDS)))
    p.add_argument("--accounts", type=int, default=6000)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--holdout-seeds", default=",".join(map(str, HOLDOUT_TACTIC_SEEDS)))
    p.add_argument("--holdout-accounts", type=int, default=20000)
    p.add_argument("--small-sizes", default=",".join(map(str, SMALL_SIZES)))
    p.add_argument("--small-seeds", default=",".join(map(str, SMALL_SEEDS)))
    p.add_argument("--world-seeds", default=",".join(map(str, WORLD_TUNING_SEEDS)),
                   help="randomised worlds looked at while tuning")
    p.add_argument("--world-held-out", default=",".join(map(str, WORLD_HELD_OUT_SEEDS)),
                   help="randomised worlds held out of tuning")
    p.add_argument("--weekly-seeds", default=",".join(map(str, WEEKLY_SEEDS)),
                   help="held-out worlds replayed week by week for ring-key survival")
    p.add_argument("--early-seeds", default=",".join(map(str, EARLY_SEEDS)),
                   help="held-out worlds run at each ring's first harvest + 14 days")
    p.add_argument("--small-world-seeds", default=",".join(map(str, SMALL_WORLD_TUNING_SEEDS)),
                   help=f"worlds drawn at {SMALL_WORLD_ACCOUNTS} accounts over "
                        f"{SMALL_WORLD_DAYS} days, looked at while tuning")
    p.add_argument("--small-world-held-out",
                   default=",".join(map(str, SMALL_WORLD_HELD_OUT_SEEDS)),
                   help="small worlds held out of tuning")
    p.add_argument("--world-kind", choices=["worlds", "mixed"], default="worlds",
                   help="worlds: the detector-blind generator; mixed: the project's own "
                        "generators at randomised sizes")
    p.add_argument("--jobs", type=int, default=2,
                   help="worlds generated and run at once (each in its own process)")
    p.add_argument("--worlds-only", action="store_true",
                   help="only the randomised worlds (the old generators' rows are skipped)")
    a = p.parse_args(argv)
    def seeds(text: str) -> list[int]:
        return [int(x) for x in text.split(",") if x]

    with tempfile.TemporaryDirectory(prefix="ringscope-worlds-") as tmp:
        work = Path(tmp)
        small = (SMALL_WORLD_ACCOUNTS, SMALL_WORLD_DAYS)
        tune, held, small_tune, small_held, weekly, early = _in_parallel(a.jobs, [
            [(assess_world, (s, work, a.world_kind)) for s in seeds(a.world_seeds)],
            [(assess_world, (s, work, a.world_kind)) for s in seeds(a.world_held_out)],
            [(assess_world, (s, work, a.world_kind, *small)) for s in seeds(a.small_world_seeds)],
            [(assess_world, (s, work, a.world_kind, *small))
             for s in seeds(a.small_world_held_out)],
            [(assess_weekly, (s, work)) for s in seeds(a.weekly_seeds)],
            [(assess_early, (s, work)) for s in seeds(a.early_seeds)]])
        small = [small_tune, small_held]
    worlds = (render_worlds(tune, held, a.world_kind) + "\n"
              + render_small_worlds(*small, SMALL_WORLD_ACCOUNTS, SMALL_WORLD_DAYS) + "\n"
              + render_weekly(weekly)
              + ("\n" + render_early(early) if early else ""))
    if a.worlds_only:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text("# Detection quality\n\n" + worlds)
        sys.stdout.write(worlds)
        return 0
    seeds = [int(s) for s in a.seeds.split(",") if s]
    holdout_seeds = [int(s) for s in a.holdout_seeds.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="ringscope-quality-") as tmp:
        results = [assess_seed(s, Path(tmp), a.accounts, a.days) for s in seeds]
        holdout = [assess_holdout(s, Path(tmp), a.holdout_accounts) for s in holdout_seeds]
        small = [assess_small(n, s, Path(tmp), a.days)
                 for n in (int(x) for x in a.small_sizes.split(",") if x)
                 for s in (int(x) for x in a.small_seeds.split(",") if x)]
        if a.small_sizes:
            small += [assess_small(n, s, Path(tmp), a.days, shops=k, rings=r)
                      for n, s, k, r in SMALL_SHOPS]
    text = render(results, a.accounts, a.days, holdout, a.holdout_accounts, small)
    text = text.replace("# Detection quality on held-out seeds\n",
                        "# Detection quality\n\n" + worlds + "\n## The demo generator\n", 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
