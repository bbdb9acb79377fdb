"""The one path through the tool: export → validated tables → graph → communities
→ signals → rings → report.

:func:`analyse` runs the analysis steps on a loaded workspace and returns
:class:`Findings`; :func:`run` wraps it with loading and writes every output
atomically into ``OUT_DIR``. The CLI and the notebooks call these same steps.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import date
from importlib import metadata
from pathlib import Path

import pandas as pd

from . import config, outdir, tracking
from .aggregate import Aggregates, aggregate
from .communities import WARM_ENGINES, detect_communities, seed_membership
from .facts import add_facts
from .findings import STEPS, Findings
from .graph import EntityGraph, build_graph
from .load import Export, RejectRateError, load_export
from .params import ENGINES, RunParams
from .rings import find_rings, partner_review
from .safe import write_csv
from .signals import account_signals
from .workspace import Workspace, open_workspace

__all__ = ["RunParams", "Findings", "STEPS", "StepTimer", "analyse", "detect", "findings_key",
           "notebook_params", "open_findings", "run", "write_findings"]

log = logging.getLogger(__name__)

PACKAGES = ("duckdb", "pandas", "numpy", "networkx", "python-louvain", "igraph", "plotly",
            "kaleido", "pyarrow", "pyspark", "sqlglot")


#: A step hook: ``on_step(name)`` returns a context manager that wraps the step
#: (the benchmark measures each step's memory through it).
StepHook = Callable[[str], AbstractContextManager]


class StepTimer:
    """Times named steps into ``timings``.

    ``bar`` (a tqdm-like bar) shows the running step and ticks once per step of
    :data:`STEPS`; ``on_step(name)``, when given, wraps each step.
    """

    def __init__(self, timings: dict[str, float], bar=None, on_step: StepHook | None = None):
        self.timings = timings
        self.bar = bar
        self.on_step = on_step

    def starting(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(f"ringscope {name}")

    def done(self, name: str) -> None:
        if self.bar is not None and name in STEPS:
            self.bar.update(1)

    @contextmanager
    def step(self, name: str):
        self.starting(name)
        with self.on_step(name) if self.on_step is not None else nullcontext():
            t0 = time.perf_counter()
            yield
            took = time.perf_counter() - t0
        self.timings[name] = round(self.timings.get(name, 0.0) + took, 3)
        log.info("step %s: %.2fs", name, self.timings[name])
        self.done(name)


def analyse(con: Workspace, params: RunParams, timings: dict[str, float] | None = None, *,
            spark=None, bar=None, on_step: StepHook | None = None,
            initial_communities: pd.DataFrame | None = None) -> Findings:
    """Run aggregate → graph → communities → signals → rings on a loaded workspace.

    The aggregate step runs on ``params.engine``. For Spark, ``spark`` is a
    :class:`analysis.spark.SparkAggregator` already staged from ``con``; without
    one, one is made (and its staged files removed) for this call. ``bar`` is a
    tqdm-like progress bar advanced once per step of :data:`STEPS`; ``on_step``
    wraps each step (see :class:`StepTimer`). ``initial_communities`` (the previous
    run's ``communities.parquet``) starts community detection from it where the
    engine allows (:data:`analysis.communities.WARM_ENGINES`); ``Findings.warm_start``
    says whether it did.
    """
    timings = {} if timings is None else timings
    timer = StepTimer(timings, bar, on_step)
    if params.engine not in ENGINES:
        raise ValueError(f"unknown engine {params.engine!r} (expected one of {', '.join(ENGINES)})")
    own = None
    if params.engine == "spark" and spark is None:
        from .engines.spark import SparkAggregator

        spark = own = SparkAggregator(con, params.spark_staging, master=params.spark_master,
                                      driver_memory=params.memory_limit, timings=timings)
    try:
        with timer.step("aggregate"):
            agg = (spark.aggregate(params.as_of) if params.engine == "spark"
                   else aggregate(con, params.as_of))
    finally:
        if own is not None:
            own.close()
    with timer.step("graph"):
        devices = con.execute("SELECT device_id FROM devices ORDER BY did").df()["device_id"]
        ips = con.execute("SELECT ip FROM ips ORDER BY iid").df()["ip"]
        graph = build_graph(agg, devices, ips, hub_degree=params.hub_degree)
    with timer.step("communities"):
        initial = seed_membership(graph, initial_communities)
        communities = detect_communities(graph, engine=params.communities,
                                         resolution=params.resolution, seed=params.seed,
                                         initial=initial)
    warm = {"used": initial is not None and params.communities in WARM_ENGINES
            and bool((initial >= 0).any())}
    if initial is not None:
        warm["seeded_nodes"] = int((initial >= 0).sum())
        if params.communities not in WARM_ENGINES:
            warm["why_not"] = (f"the {params.communities} engine takes no starting partition "
                               f"(warm starts: {', '.join(WARM_ENGINES)})")
    sig, base, rings, review = detect(agg, graph, communities, params, timer)
    findings = Findings(params=params, aggregates=agg, graph=graph, communities=communities,
                        signals=sig, baselines=base, rings=rings, review=review,
                        timings=timings, warm_start=warm)
    t0 = time.perf_counter()
    findings = add_facts(con, findings)
    timings["facts"] = round(time.perf_counter() - t0, 3)   # part of the rings step's output
    return findings


def detect(agg: Aggregates, graph: EntityGraph, communities: pd.Series, params: RunParams,
           timer: StepTimer | None = None):
    """Communities → signals → rings and the partner review: the detector as every run uses it.

    Returns ``(signals, baselines, rings, review)``. The benchmark's engine
    comparison calls this too, so each engine is judged by the product's detector.
    """
    timer = timer or StepTimer({})
    with timer.step("signals"):
        sig, base = account_signals(agg, graph, communities, params.signals)
    with timer.step("rings"):
        rings = find_rings(sig, base, graph, communities, agg, params.ring)
        review = partner_review(sig, base, rings, params.ring)
    return sig, base, rings, review


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _iso(ts) -> str:
    return "" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_findings(findings: Findings, out: Path) -> None:
    """Write rings.csv, ring_members.csv and partners_review.csv into ``out``; with ring
    tracking also ring_keys.csv, ring_changes.csv and communities.parquet."""
    rings = findings.rings.rings.copy()
    for col in ("first_seen", "last_seen"):
        rings[col] = rings[col].map(_iso)
    rings["flagged"] = rings["flagged"].astype(bool)
    write_csv(rings, out / "rings.csv")
    write_csv(findings.rings.members.drop(columns=["aid"]), out / "ring_members.csv")
    write_csv(findings.review, out / "partners_review.csv")
    tracking.write_tracking(findings, out)


def run(export_dir: Path | str, out_dir: Path | str, params: RunParams | None = None,
        *, progress=None, on_step: StepHook | None = None, force: bool = False
        ) -> tuple[Export, Findings]:
    """Load, analyse and report one export into ``out_dir`` (atomically).

    The outputs are written to a temporary folder beside ``out_dir`` and moved
    into place at the end, so a run that dies halfway leaves the previous
    output as it was. ``out_dir`` must pass :func:`analysis.outdir.check_out`
    (``force``: a folder the tool did not write is moved aside first). A run
    stopped by too many rejected rows keeps them in ``out_dir/rejects/``
    (:meth:`analysis.outdir.OutputFolder.keep_rejects`).
    """
    from .report import write_report

    params = params or RunParams()
    if params.as_of is not None:
        date.fromisoformat(str(params.as_of))  # fail early on a bad date
    plan = outdir.check_out(out_dir, export=export_dir, previous=params.previous, force=force)
    # The previous run and the verdicts: read first, so a bad one fails before any work.
    prev = tracking.load_previous(params.previous) if params.previous else None
    cases = tracking.read_cases(params.cases) if params.cases else None
    if cases is not None and not params.previous:
        raise tracking.TrackingError("--cases needs --previous (ring keys are only stable "
                                     "along a chain of runs)")
    timings: dict[str, float] = {}
    timer = StepTimer(timings, None, on_step)
    t_start = time.perf_counter()
    con = spark = None
    stop_watch = None
    with outdir.OutputFolder(plan, "run") as folder:
        tmp = folder.tmp
        bar = progress(total=len(STEPS)) if progress else None
        timer.bar = bar
        try:
            con = open_workspace(memory_limit=params.memory_limit,
                                 spill_dir=tmp / "workspace.tmp")
            stop_watch = outdir.on_interrupt(con.interrupt)
            with timer.step("read_validate"):
                try:
                    export = load_export(export_dir, con, tmp / "rejects",
                                         max_reject_rate=params.max_reject_rate, timer=timer)
                except RejectRateError as exc:
                    con.close()
                    con = None
                    where = folder.keep_rejects(exc.note())
                    raise exc.kept_in(where) from None
            if params.engine == "spark":
                from .engines.spark import SparkAggregator

                spark = SparkAggregator(con, params.spark_staging or (tmp / "workspace.spark"),
                                        master=params.spark_master,
                                        driver_memory=params.memory_limit, timings=timings)
            identity = tracking.export_identity(con, params.tracking.sketch_size)
            tracking.check_same_export(prev, identity, params.tracking)
            findings = analyse(con, params, timings, spark=spark, bar=bar, on_step=on_step,
                               initial_communities=prev.communities if prev else None)
            with timer.step("tracking"):
                findings = add_facts(con, tracking.follow(findings, prev, cases, identity=identity))
            with timer.step("report"):
                write_findings(findings, tmp)
                if params.handoff:
                    from .handoff import export_ring

                    for ring in params.handoff:
                        export_ring(findings, ring, tmp / "handoff")
                n_after = 0
                if params.as_of is not None:
                    n_after = con.execute("SELECT count(*) FROM ev WHERE ts >= ?",
                                          [findings.aggregates.as_of]).fetchone()[0]
                write_report(findings, export, tmp / "report.html")
            if bar:
                bar.close()
            record = {
                "tool": "ringscope",
                "parameters": params.record(),
                "communities_engine": params.communities,
                "engine": params.engine,
                **({"spark": {"master": spark.master, "version": spark.version}} if spark else {}),
                "versions": _versions(),
                "inputs": export.fingerprints,
                "tables": {k: v.as_dict() for k, v in export.counts.items()},
                "lines": export.lines,
                "reject_reasons": export.reject_reasons,
                "newest_plausible_ts": export.horizon,
                "events_after_as_of": int(n_after),
                "events_used": int(export.n_events - n_after),
                "graph": {"nodes": int(len(findings.graph.nodes)),
                          "edges": int(len(findings.graph.edges)),
                          "hubs": int(len(findings.graph.hubs))},
                "baselines": {k: (round(float(v), 4) if math.isfinite(v) else None)
                              for k, v in findings.baselines.value.items()},
                # Harm baselines taken below a separate top group: that group's share of accounts.
                "baselines_set_aside": findings.baselines.set_aside,
                # Harm is judged against peers: per measure and account type.
                "peer_baselines": {m: {k: round(float(v), 4) for k, v in d.items()}
                                   for m, d in findings.baselines.peer.items()},
                "peer_baselines_set_aside": findings.baselines.peer_set_aside,
                # Peer baselines that count each device (a customer's: or IP) once.
                "peer_baselines_counted_by_device": sorted(findings.baselines.counted),
                "peer_baselines_counting_newcomers_as_one": sorted(
                    findings.baselines.counted_newcomers),
                # Weekly runs: the export's identity (hashed account-id sketch, no raw ids), the
                # warm start, and the ring keys against the previous run.
                "export_identity": identity,
                "warm_start": findings.warm_start,
                "tracking": findings.tracking.record(),
                "rings": int(len(findings.rings.rings)),
                "flagged_rings": int(len(findings.flagged)),
                "timings_s": {**export.timings, **timings,
                              "total": round(time.perf_counter() - t_start, 3)},
            }
            con.close()
            con = None
            for f in tmp.glob("workspace.*"):
                if f.is_dir():
                    shutil.rmtree(f, ignore_errors=True)
                else:
                    f.unlink()
            (tmp / "run.json").write_text(json.dumps(record, indent=2, sort_keys=True,
                                                     default=str) + "\n")
            folder.commit()
        finally:
            if stop_watch is not None:
                stop_watch()
            if spark is not None:
                spark.close()
            if con is not None:
                con.close()
    for note in folder.notes:
        log.warning(note)
    return export, findings


def notebook_params(as_of: str | None = None, seed: int = 7, *,
                    previous: str | Path | None = None, cases: str | Path | None = None,
                    params: RunParams | None = None) -> RunParams:
    """The run parameters of the notebooks' :func:`open_findings` (``params`` with the
    notebooks' AS_OF, SEED, PREVIOUS and CASES)."""
    return replace(params or RunParams(), as_of=as_of or None, seed=int(seed),
                   previous=str(previous) if previous else None,
                   cases=str(cases) if cases else None)


def findings_key(export_dir: Path | str, params: RunParams) -> dict:
    """What findings kept in an output folder must have been made from, for ``params``
    (:func:`analysis.store.key`; with the previous run's communities when the engine starts
    from them)."""
    from . import store

    warm = (Path(params.previous) / "communities.parquet"
            if params.previous and params.communities in WARM_ENGINES else None)
    return store.key(export_dir, params, warm)


def open_findings(exports: str | Path | None = None, as_of: str | None = None, seed: int = 7,
                  *, rejects_dir: str | Path | None = None, workspace: str | Path | None = None,
                  params: RunParams | None = None, progress: bool = True,
                  previous: str | Path | None = None, cases: str | Path | None = None,
                  out: str | Path | None = None) -> tuple[Export, Findings]:
    """Load and validate an export into a fresh workspace, then analyse it; or, with ``out``,
    load the findings kept there when they were made from the same export, as-of and
    parameters (:mod:`analysis.store`).

    Parameters
    ----------
    exports : folder of the export (default: :data:`analysis.config.DEMO_EXPORT`)
    as_of : "YYYY-MM-DD" or None; only events up to the end of that day are used
    seed : seed of community detection
    rejects_dir : where quarantined rows go (default: ``out/rejects``, else a temporary folder)
    workspace : a DuckDB file for big exports (default: in memory)
    params : full run parameters (``as_of`` and ``seed`` override theirs)
    progress : show a progress bar, one tick per step (a widget in JupyterLab)
    previous, cases : the previous run's output folder and the verdicts file, as
        ``run --previous --cases``: ring keys, statuses and verdicts
    out : the output folder: findings are kept in ``out/.ringscope`` and loaded from there
        while the export's fingerprints, the as-of, the parameters and the code are the same
        (ring tracking and verdicts are applied afresh each time)

    Returns
    -------
    (export, findings); ``export.con`` is the workspace, kept open for the
    functions of this module that read events.
    """
    from . import store

    params = notebook_params(as_of, seed, previous=previous, cases=cases, params=params)
    if params.as_of is not None:
        date.fromisoformat(str(params.as_of))
    prev = tracking.load_previous(params.previous) if params.previous else None
    verdicts = tracking.read_cases(params.cases) if params.cases else None
    export_dir = config.export_dir(exports)
    if out is not None:     # the notebooks' OUT: never the export, nor around or inside it
        outdir.check_not_export(out, export_dir, "OUT")
    if rejects_dir is not None:
        outdir.check_not_export(rejects_dir, export_dir, "rejects_dir")
    if rejects_dir is None:
        rejects_dir = (Path(out) / "rejects" if out is not None
                       else Path(tempfile.mkdtemp(prefix="ringscope-rejects-")))
    key = kept = None
    if out is not None:
        key = findings_key(export_dir, params)
        kept = store.load(out, key, memory_limit=params.memory_limit, workspace=workspace)
    if kept is not None:
        export, findings = kept
        log.info("findings loaded from %s (same export, as-of and parameters)",
                 Path(out) / store.FOLDER)
        if progress:    # the progress widget says where the findings came from
            from tqdm.auto import tqdm

            with tqdm(total=1, desc=f"ringscope: loaded from {Path(out) / store.FOLDER}, "
                                    "same export, as-of and parameters") as done:
                done.update(1)
        findings = replace(findings, params=params)
        con = export.con
        identity = tracking.export_identity(con, params.tracking.sketch_size)
        tracking.check_same_export(prev, identity, params.tracking)
        findings = add_facts(con, tracking.follow(findings, prev, verdicts, identity=identity))
        return export, findings
    con = open_workspace(workspace, memory_limit=params.memory_limit)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(STEPS) - 1, desc="ringscope")   # no report step here
    try:
        export = load_export(export_dir, con, Path(rejects_dir),
                             max_reject_rate=params.max_reject_rate, timer=StepTimer({}, bar))
        identity = tracking.export_identity(con, params.tracking.sketch_size)
        tracking.check_same_export(prev, identity, params.tracking)
        timer = StepTimer({}, bar)
        findings = analyse(con, params, bar=bar,
                           initial_communities=prev.communities if prev else None)
        if key is not None:
            store.save(out, key, export, findings)
        with timer.step("tracking"):
            findings = add_facts(con, tracking.follow(findings, prev, verdicts,
                                                      identity=identity))
    finally:
        if bar is not None:
            bar.close()
    return export, findings
