"""Speed and memory benchmarks → ``benchmarks/results.md`` (``make bench``).

For each size (10k, 100k and 1M accounts by default; about 50–100 events per
account over 120 days) and each format (CSV and Parquet) this

1. generates a synthetic export with :func:`analysis.workshop.synth.generate` under
   ``benchmarks/work/exports/`` (reused when already there; exports of 1M
   accounts and more are deleted at the end unless ``--keep``);
2. runs the full pipeline (:func:`analysis.pipeline.run`) in a child process per
   run, takes the per-step wall times from the run's ``run.json`` and the peak
   memory (RSS) of every step from a sampler inside the child: at the start of
   each step it resets the kernel's high-water mark (``/proc/self/clear_refs``)
   and at its end it reads ``VmHWM`` from ``/proc/self/status``. The whole run's
   peak is the largest of these windows (the reset also resets the child's
   ``ru_maxrss``, so ``wait4`` alone would under-report it);
3. runs the naive baseline an analyst would write by hand (pandas reads the
   whole events table, networkx graph of accounts–devices–IPs, python-louvain
   ``best_partition``, a groupby of profile reads per account) in a child with a
   30-minute timeout and a memory guard;
4. at 100k accounts times the community engines (python-louvain, networkx,
   igraph multilevel and Leiden) on the pipeline's own graph, each on the whole
   graph and as the pipeline runs it (small components settled first), and
   compares the flagged accounts of ``run --communities louvain|igraph|leiden``.

Small sizes use the median of ``--repeats`` runs (10k for both, 100k for the
pipeline); 1M is run once. Child processes are started with
``python -m analysis.workshop.bench --child KIND ...``.

Usage::

    python -m analysis.workshop.bench --out benchmarks/results.md            # the full set
    python -m analysis.workshop.bench --sizes 10000,100000 --out /tmp/r.md   # development
    python -m analysis.workshop.bench --quick --out /tmp/r.md                # 10k, one run each
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["STEPS", "NAIVE_STEPS", "growth_exponent", "jaccard", "median_run", "read_hwm_kib",
           "render", "reset_hwm", "run_child", "main"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
FORMATS = ("parquet", "csv")
#: Pipeline steps as recorded in ``run.json`` ``timings_s``, in order.
STEPS = ("read_validate", "aggregate", "graph", "communities", "signals", "rings", "report")
#: Sub-steps of read_validate recorded by the loader.
LOAD_STEPS = ("load_partners", "load_accounts", "load_events")
NAIVE_STEPS = ("read", "graph", "louvain", "profile_reads")
ENGINES = ("python-louvain", "networkx louvain_communities", "igraph multilevel", "igraph leiden")
#: Each engine is timed on the whole graph and as the pipeline runs it, after the small
#: components are settled (:mod:`analysis.communities`).
ENGINE_MODES = ("whole graph", "settled")
#: ``detect_communities`` engine names.
ENGINE_CODES = {"python-louvain": "louvain", "networkx louvain_communities": "networkx",
                "igraph multilevel": "igraph", "igraph leiden": "leiden"}
RUN_ENGINES = {k: v for k, v in ENGINE_CODES.items() if v != "networkx"}
#: The default engine as the pipeline runs it: the reference for flagged accounts.
ENGINE_REFERENCE = "igraph multilevel · settled"
NAIVE_TIMEOUT_S = 30 * 60
NAIVE_SKIP_1M_AFTER_S = 10 * 60
PIPELINE_TIMEOUT_S = 40 * 60
BIG = 1_000_000
GIB = 1024 ** 3

TARGETS = {
    "parquet_1m_s": 180.0,
    "csv_1m_s": 300.0,
    "peak_bytes": 6 * GIB,
    "speedup_100k": 10.0,
    "growth": 1.0,
}


# --------------------------------------------------------------------------- memory sampler

def read_hwm_kib(pid: int | str = "self") -> dict[str, int]:
    """VmHWM and VmRSS (KiB) of a process from ``/proc/<pid>/status``.

    >>> m = read_hwm_kib()
    >>> m["VmHWM"] >= m["VmRSS"] > 0
    True
    """
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, val = line.split(":", 1)
                out[key] = int(val.split()[0])
    return out


def reset_hwm() -> bool:
    """Reset this process's peak RSS to its current RSS; False where the kernel can't."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class StepMemory:
    """Peak RSS per named window; windows between steps are kept as ``other``."""

    def __init__(self):
        self.peaks: dict[str, int] = {}
        self.other = 0

    def _close_gap(self) -> None:
        self.other = max(self.other, read_hwm_kib()["VmHWM"] * 1024)
        reset_hwm()

    @contextmanager
    def step(self, name: str):
        self._close_gap()
        try:
            yield
        finally:
            peak = read_hwm_kib()["VmHWM"] * 1024
            self.peaks[name] = max(self.peaks.get(name, 0), peak)
            reset_hwm()

    def finish(self) -> dict:
        self._close_gap()
        return {"step_peak_bytes": self.peaks,
                "peak_bytes": max([self.other, *self.peaks.values()])}


# --------------------------------------------------------------------------- children

def _child_pipeline(a) -> dict:
    """Run the real pipeline with a memory window around each of its timed steps."""
    from .. import pipeline

    mem = StepMemory()
    t0 = time.perf_counter()
    params = pipeline.RunParams(seed=a.seed, communities=a.communities)
    pipeline.run(a.export, a.run_out, params, on_step=mem.step)
    wall = time.perf_counter() - t0
    record = json.loads((Path(a.run_out) / "run.json").read_text())
    return {"kind": "pipeline", "wall_s": wall, "timings_s": record["timings_s"],
            "events": record["tables"]["events"]["rows"], "graph": record["graph"],
            "flagged_rings": record["flagged_rings"], "rings": record["rings"],
            "communities": a.communities, **mem.finish()}


def _events_file(export: Path) -> Path:
    for ext in ("parquet", "csv", "csv.gz"):
        p = export / f"events.{ext}"
        if p.exists():
            return p
    raise FileNotFoundError(f"no events table in {export}")


def _child_naive(a) -> dict:
    """What an analyst writes by hand: the whole table in pandas, networkx, python-louvain."""
    import community as community_louvain
    import networkx as nx
    import pandas as pd

    mem = StepMemory()
    t: dict[str, float] = {}
    path = _events_file(Path(a.export))
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    with mem.step("read"):
        ev = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    t["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with mem.step("graph"):
        g = nx.Graph()
        for col, prefix in (("device_id", "d:"), ("ip", "ip:")):
            pairs = ev[["account_id", col]].dropna().drop_duplicates()
            g.add_edges_from(zip("a:" + pairs["account_id"].astype(str),
                                 prefix + pairs[col].astype(str), strict=True))
    t["graph"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with mem.step("louvain"):
        part = community_louvain.best_partition(g, random_state=a.seed)
    t["louvain"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with mem.step("profile_reads"):
        reads = (ev[ev["event_type"] == "view_profile"]
                 .groupby("account_id")
                 .agg(reads=("target_id", "size"), users=("target_id", "nunique")))
        reads["community"] = ("a:" + reads.index.astype(str)).map(part)
        top = reads.sort_values("users", ascending=False).head(100)
    t["profile_reads"] = time.perf_counter() - t0
    t["total"] = time.perf_counter() - t_all
    return {"kind": "naive", "timings_s": t, "events": int(len(ev)),
            "graph": {"nodes": g.number_of_nodes(), "edges": g.number_of_edges()},
            "communities": len(set(part.values())), "top_reader_users": int(top["users"].max()),
            **mem.finish()}


def _child_engines(a) -> dict:
    """Time each community engine on the pipeline's own graph; flagged accounts per engine."""
    import random

    import igraph as ig
    import numpy as np

    from ..aggregate import aggregate
    from ..communities import detect_communities
    from ..findings import flagged_accounts, flagged_rings
    from ..graph import build_graph, to_igraph
    from ..load import load_export
    from ..params import RunParams
    from ..pipeline import detect
    from ..workspace import open_workspace

    work = Path(a.run_out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    con = open_workspace(work / "workspace.duckdb")
    load_export(a.export, con, work / "rejects")
    agg = aggregate(con)
    devices = con.execute("SELECT device_id FROM devices ORDER BY did").df()["device_id"]
    ips = con.execute("SELECT ip FROM ips ORDER BY iid").df()["ip"]
    graph = build_graph(agg, devices, ips)
    con.close()
    params = RunParams(seed=a.seed)
    g_ig = to_igraph(graph)
    weights = g_ig.es["weight"]
    out: dict[str, dict] = {}

    def measure(name, fn):
        mem = StepMemory()
        before = read_hwm_kib()["VmRSS"] * 1024
        t0 = time.perf_counter()
        with mem.step(name):
            comm = fn()
        took = time.perf_counter() - t0
        peak = mem.finish()["step_peak_bytes"][name]
        # The product's own detector on this engine's communities.
        _, _, rings, _ = detect(agg, graph, comm, params)
        membership = np.zeros(g_ig.vcount(), dtype=np.int64)
        membership[comm.index.to_numpy()] = comm.to_numpy()
        out[name] = {"time_s": took, "peak_bytes": peak, "extra_bytes": max(0, peak - before),
                     "communities": int(comm.nunique()),
                     "modularity": float(g_ig.modularity(membership.tolist(), weights=weights)),
                     "flagged_rings": int(len(flagged_rings(rings.rings))),
                     "flagged_accounts": sorted(flagged_accounts(rings.rings, rings.members))}

    for name in ENGINES:
        for mode in ENGINE_MODES:
            measure(f"{name} · {mode}", lambda e=ENGINE_CODES[name], m=mode: detect_communities(
                graph, engine=e, resolution=1.0, seed=a.seed, settle=(m == "settled")))
    ig.set_random_number_generator(random)
    shutil.rmtree(work, ignore_errors=True)
    return {"kind": "engines", "graph": {"nodes": int(len(graph.nodes)),
                                         "edges": int(len(graph.edges))}, "engines": out}


_CHILDREN = {"pipeline": _child_pipeline, "naive": _child_naive, "engines": _child_engines}


def _child_main(a) -> int:
    result = _CHILDREN[a.child](a)
    Path(a.result).write_text(json.dumps(result, indent=1, default=str))
    return 0


# --------------------------------------------------------------------------- parent side

def _mem_total() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _mem_available() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return _mem_total()


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``)."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_s: float, *, cores: float = 0.5, window: float = 2.0) -> float:
    """Wait (up to ``max_s``) for a ``window`` in which other programs keep fewer than
    ``cores`` cores busy; return the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_s:
        b0 = _busy_cpu_s()
        time.sleep(window)
        if (_busy_cpu_s() - b0) / window < cores:
            break
    return time.perf_counter() - t0


def run_child(kind: str, export: Path, result: Path, *, run_out: Path | None = None,
              communities: str = "igraph", seed: int = 7, timeout: float = PIPELINE_TIMEOUT_S,
              mem_limit: int | None = None, log: Path | None = None) -> dict:
    """Run one benchmark child; return its result plus the parent's view of it.

    The parent polls the child with ``os.wait4`` (its rusage: CPU time, and
    ``ru_maxrss`` for what it is worth after the child's resets), kills its
    process group after ``timeout`` seconds or when its RSS passes ``mem_limit``
    bytes, and records what happened in ``status``: ``ok``, ``timeout``,
    ``memory`` or ``error``.
    """
    result.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "analysis.workshop.bench", "--child", kind, "--export", str(export),
           "--result", str(result), "--communities", communities, "--seed", str(seed)]
    if run_out is not None:
        cmd += ["--run-out", str(run_out)]
    log = log or result.with_suffix(".log")
    load_before = os.getloadavg()[0]
    busy0 = _busy_cpu_s()
    with open(log, "w") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)
        status, rss_seen, usage, code = "ok", 0, None, None
        while True:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                usage, code = ru, os.waitstatus_to_exitcode(st)
                proc.returncode = code
                break
            try:
                rss_seen = max(rss_seen, read_hwm_kib(proc.pid)["VmRSS"] * 1024)
            except (OSError, KeyError):
                pass
            elapsed = time.perf_counter() - t0
            if elapsed > timeout or (mem_limit and rss_seen > mem_limit):
                status = "timeout" if elapsed > timeout else "memory"
                os.killpg(proc.pid, 9)
                _, st, usage = os.wait4(proc.pid, 0)
                proc.returncode = code = os.waitstatus_to_exitcode(st)
                break
            time.sleep(0.25)
        wall = time.perf_counter() - t0
    busy = _busy_cpu_s() - busy0
    out: dict = {}
    if status == "ok" and code == 0 and result.exists():
        out = json.loads(result.read_text())
    elif status == "ok":
        status = "error"
        out["error"] = log.read_text(errors="replace")[-2000:]
    out.update({"status": status, "process_wall_s": wall, "exit_code": code,
                "cpu_s": (usage.ru_utime + usage.ru_stime) if usage else None,
                "ru_maxrss_bytes": usage.ru_maxrss * 1024 if usage else None,
                "rss_polled_bytes": rss_seen, "load_before": load_before,
                "load_after": os.getloadavg()[0],
                # cores kept busy by other programs while the child ran
                "others_cores": max(0.0, (busy - (usage.ru_utime + usage.ru_stime
                                                  if usage else 0.0)) / max(wall, 1e-9))})
    return out


def median_run(runs: list[dict]) -> dict:
    """Combine repeated runs: median of every time, largest of every peak memory.

    >>> r = median_run([{"timings_s": {"total": t}, "peak_bytes": m, "step_peak_bytes": {"a": m}}
    ...                 for t, m in [(3.0, 5), (1.0, 9), (2.0, 7)]])
    >>> r["timings_s"]["total"], r["peak_bytes"], r["step_peak_bytes"]["a"], r["n_runs"]
    (2.0, 9, 9, 3)
    """
    ok = [r for r in runs if r.get("status", "ok") == "ok"]
    if not ok:
        return {**runs[-1], "n_runs": 0, "all_totals_s": []}
    keys = set().union(*(r["timings_s"] for r in ok))
    steps = set().union(*(r.get("step_peak_bytes", {}) for r in ok))
    out = dict(ok[0])
    out["timings_s"] = {k: statistics.median(r["timings_s"][k] for r in ok
                                             if k in r["timings_s"]) for k in keys}
    out["step_peak_bytes"] = {k: max(r.get("step_peak_bytes", {}).get(k, 0) for r in ok)
                              for k in steps}
    out["peak_bytes"] = max(r["peak_bytes"] for r in ok)
    for k, agg in (("cpu_s", statistics.median), ("process_wall_s", statistics.median),
                   ("load_before", max), ("load_after", max), ("others_cores", max)):
        vals = [r[k] for r in ok if r.get(k) is not None]
        if vals:
            out[k] = agg(vals)
    out["n_runs"] = len(ok)
    out["all_totals_s"] = [r["timings_s"]["total"] for r in ok]
    return out


def growth_exponent(points: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """Log-log slopes of time against events between consecutive sizes.

    ``points`` are (events, seconds); returns (events_from, events_to, slope).
    A slope of 1 is linear growth.

    >>> [round(s, 3) for _, _, s in growth_exponent([(1e6, 2.0), (1e7, 20.0), (1e8, 400.0)])]
    [1.0, 1.301]
    """
    pts = sorted(p for p in points if p[0] > 0 and p[1] > 0)
    return [(a[0], b[0], math.log(b[1] / a[1]) / math.log(b[0] / a[0]))
            for a, b in zip(pts, pts[1:], strict=False) if b[0] != a[0]]


def jaccard(a: set, b: set) -> float:
    """Overlap of two sets; 1.0 when both are empty.

    >>> jaccard({1, 2}, {2, 3}), jaccard(set(), set())
    (0.3333333333333333, 1.0)
    """
    return len(a & b) / len(a | b) if (a | b) else 1.0


def _flagged_accounts(out: Path) -> set[str]:
    import pandas as pd

    rings = pd.read_csv(out / "rings.csv")
    members = pd.read_csv(out / "ring_members.csv", dtype=str, keep_default_na=False)
    from ..findings import flagged_accounts

    return flagged_accounts(rings, members)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ensure_export(work: Path, accounts: int, fmt: str, seed: int, days: int) -> dict:
    """Generate (or reuse) the synthetic export for one size and format."""
    from .synth import generate

    root = work / "exports" / f"{accounts}-{fmt.replace('.', '')}"
    marker = root / "bench.json"
    want = {"accounts": accounts, "fmt": fmt, "seed": seed, "days": days}
    if marker.exists():
        info = json.loads(marker.read_text())
        if all(info.get(k) == v for k, v in want.items()):
            info["reused"] = True
            return info
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    res = generate(root, seed=seed, accounts=accounts, days=days, fmt=fmt)
    info = {**want, "export_dir": str(res.export_dir), "events": res.n_events,
            "bytes": _dir_bytes(res.export_dir), "synth_s": time.perf_counter() - t0}
    marker.write_text(json.dumps(info, indent=1))
    info["reused"] = False
    return info


def _machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for pkg in ("duckdb", "pandas", "pyarrow", "networkx", "python-louvain", "igraph"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(),
            "ram_bytes": _mem_total(), "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "versions": versions}


# --------------------------------------------------------------------------- rendering

def _gib(b: float | None) -> str:
    if b is None:
        return "–"
    return f"{b / GIB:.2f} GiB" if b >= GIB else f"{b / 1024 ** 2:.0f} MiB"


def _s(x: float | None) -> str:
    if x is None:
        return "–"
    if x >= 600:
        return f"{x / 60:.1f} min"
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s"


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else (
        f"{n // 1000}k" if n % 1000 == 0 else str(n))


def _naive_status(r: dict | None) -> str:
    if r is None:
        return "not run"
    return {"ok": "finished", "timeout": f"did not finish in {NAIVE_TIMEOUT_S // 60} min",
            "memory": f"stopped: memory over {_gib(r.get('mem_limit'))}",
            "skipped": "skipped: " + r.get("why", ""),
            }.get(r["status"], "failed: " + r.get("error", "")[-200:].replace("\n", " "))


def checks(res: dict) -> list[tuple[str, bool | None, str]]:
    """The target lines: (target, passed or None when not measured, measured value)."""
    pipe = res.get("pipeline", {})
    out: list[tuple[str, bool | None, str]] = []
    for fmt, label, key in (("parquet", "1M accounts from Parquet ≤ 3 min", "parquet_1m_s"),
                            ("csv", "1M accounts from CSV ≤ 5 min", "csv_1m_s")):
        r = pipe.get(f"{BIG}-{fmt}")
        if not r or r.get("status") != "ok":
            out.append((label, None if not r else False,
                        "not measured (1M not run)" if not r else f"run {r.get('status')}"))
        else:
            tot = r["timings_s"]["total"]
            out.append((label, tot <= TARGETS[key], f"{_s(tot)}"))
    big = [r for k, r in pipe.items() if k.startswith(f"{BIG}-") and r.get("status") == "ok"]
    if big:
        worst = max(big, key=lambda r: r["peak_bytes"])
        out.append(("peak memory ≤ 6 GiB", worst["peak_bytes"] <= TARGETS["peak_bytes"],
                    f"{_gib(worst['peak_bytes'])} (largest at 1M, {worst['fmt']})"))
    else:
        peaks = [r["peak_bytes"] for r in pipe.values() if r.get("status") == "ok"]
        out.append(("peak memory ≤ 6 GiB", None,
                    f"1M not run; {_gib(max(peaks))} at the largest size run" if peaks
                    else "not measured"))
    sp = res.get("speedup_100k") or {}
    if sp:
        worst = min(sp.values(), key=lambda v: v["speedup"])
        txt = ", ".join(f"{v['speedup']:.1f}× ({f})" for f, v in sorted(sp.items()))
        out.append(("speed-up ≥ 10× at 100k", worst["speedup"] >= TARGETS["speedup_100k"], txt))
    else:
        out.append(("speed-up ≥ 10× at 100k", None, "not measured (100k not run)"))
    gr = res.get("growth", {})
    top = [(f, sl[-1]) for f, sl in gr.items() if sl]
    if top:
        worst = max(s for _, (_, _, s) in top)
        txt = ", ".join(f"{s:.2f} ({f}, {_size_ev(a)}→{_size_ev(b)} events)"
                        for f, (a, b, s) in sorted(top))
        ok = worst <= TARGETS["growth"]
        if not ok and worst <= 1.1:
            txt += " — marginally above 1"
        cpu = [(f, sl[-1][2]) for f, sl in res.get("growth_cpu", {}).items() if sl]
        if cpu:
            txt += "; from CPU time: " + ", ".join(f"{c:.2f} ({f})" for f, c in sorted(cpu))
        out.append(("growth ≤ linear (log-log slope between the two largest sizes ≤ 1)", ok, txt))
    else:
        out.append(("growth ≤ linear", None, "needs two sizes"))
    return out


def _size_ev(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def render(res: dict) -> str:
    """benchmarks/results.md from the collected results."""
    m = res["machine"]
    pipe = res.get("pipeline", {})
    lines = ["# Benchmarks: speed and memory", "",
             f"Produced by `{res['command']}` on {res['date']} "
             f"(bench wall time {_s(res.get('bench_wall_s'))}).", "",
             f"Machine: {m['cores']} cores ({m['cpu']}), {_gib(m['ram_bytes'])} RAM, {m['os']}, "
             f"Python {m['python']}; "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".", ""]
    lines += ["## Targets", ""]
    for label, ok, val in checks(res):
        mark = "PASS" if ok else ("not measured" if ok is None else "**FAIL**")
        lines.append(f"- {mark} — {label}: {val}")
    lines += [""]

    lines += ["## Pipeline, per size and format", "",
              "`analysis.pipeline.run` with default parameters (igraph communities, DuckDB "
              "memory_limit 3GB), one child process per run. Wall time per step from "
              "`run.json` `timings_s`; peak RSS of the process during each step from "
              "`VmHWM`, reset at each step's start. "
              + (f"Times are the median of {res['repeats']} runs up to 100k accounts and "
                 "one run above; memory is the largest of the runs. " if res["repeats"] > 1
                 else "One run per size. ")
              + "CPU is the child's user + system time (2 cores: CPU above wall means "
              "parallel work); *others* is how many cores other programs kept busy while "
              "the run went on (largest over the runs; on 2 cores anything near 1 slows "
              "the run noticeably).", "",
              "| accounts | format | events | export on disk | total | peak memory | "
              "events/s | CPU | others | runs (totals, s) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in pipe.items():
        ex = res["exports"][key]
        if r.get("status") != "ok":
            lines.append(f"| {_size(ex['accounts'])} | {ex['fmt']} | {ex['events']:,} | "
                         f"{_gib(ex['bytes'])} | {r.get('status')} | – | – | – | – | – |")
            continue
        tot = r["timings_s"]["total"]
        lines.append(f"| {_size(ex['accounts'])} | {ex['fmt']} | {r['events']:,} | "
                     f"{_gib(ex['bytes'])} | {_s(tot)} | {_gib(r['peak_bytes'])} | "
                     f"{r['events'] / tot:,.0f} | {_s(r.get('cpu_s'))} | "
                     f"{r.get('others_cores', 0):.2f} | {r['n_runs']} ({', '.join(f'{t:.1f}' for t in r['all_totals_s'])}) |")
    lines.append("")
    for key, r in pipe.items():
        if r.get("status") != "ok":
            continue
        ex = res["exports"][key]
        t, mm = r["timings_s"], r["step_peak_bytes"]
        lines += [f"### {_size(ex['accounts'])} accounts, {ex['fmt']} "
                  f"({r['events']:,} events; graph {r['graph']['nodes']:,} nodes, "
                  f"{r['graph']['edges']:,} edges)", "",
                  "| step | wall time | share | peak memory |", "|---|---|---|---|"]
        for step in STEPS:
            lines.append(f"| {step} | {_s(t.get(step))} | "
                         f"{100 * t.get(step, 0) / t['total']:.0f} % | {_gib(mm.get(step))} |")
            if step == "read_validate":
                for sub in LOAD_STEPS:
                    if sub in t:
                        lines.append(f"| ↳ {sub.replace('load_', '')} | {_s(t[sub])} | | |")
        lines.append(f"| **total** | **{_s(t['total'])}** | | **{_gib(r['peak_bytes'])}** |")
        lines.append("")

    naive = res.get("naive", {})
    lines += ["## Naive baseline", "",
              "What an analyst writes by hand, on the same files: `pandas.read_csv` "
              "(`read_parquet` for Parquet) of the whole events table; a networkx graph "
              "of account–device and account–IP pairs (`drop_duplicates`, "
              "`add_edges_from`); python-louvain `best_partition`; a groupby of profile "
              "reads per account. It does no validation, no read ties and no hub removal, so "
              "it does less than the pipeline. One child process per run, "
              f"{NAIVE_TIMEOUT_S // 60}-minute timeout"
              + (f"; median of {res['repeats']} runs at 10k, one run above." if res["repeats"] > 1
                 else "; one run per size.")
              + " The speed-up compares in-process totals (no interpreter start-up on "
              "either side).", "",
              "| accounts | format | status | read | graph | louvain | profile reads | total | "
              "peak memory | others |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in naive.items():
        ex = res["exports"].get(key, {"accounts": int(key.split("-")[0]),
                                      "fmt": key.split("-")[1]})
        t = r.get("timings_s", {}) if r.get("status") == "ok" else {}
        peak = r.get("peak_bytes") if r.get("status") == "ok" else r.get("rss_polled_bytes")
        lines.append(f"| {_size(ex['accounts'])} | {ex['fmt']} | {_naive_status(r)} | "
                     + " | ".join(_s(t.get(s)) for s in (*NAIVE_STEPS, "total"))
                     + f" | {_gib(peak)} | {r.get('others_cores', 0):.2f} |")
    lines.append("")
    sp = res.get("speedup_100k") or {}
    if sp:
        lines += ["**Speed-up over naive at 100k accounts** (naive total ÷ pipeline total): "
                  + "; ".join(f"{f}: {v['naive_s']:.1f} s ÷ {v['pipeline_s']:.1f} s = "
                              f"**{v['speedup']:.1f}×**" for f, v in sorted(sp.items())), ""]
    for note in res.get("naive_notes", []):
        lines += [note, ""]

    gr = res.get("growth", {})
    if any(gr.values()):
        lines += ["## Growth", "",
                  "Log-log slope of pipeline total time against events between consecutive "
                  "sizes (1 = linear; below 1 at small sizes is fixed start-up cost), from "
                  "wall time (what the target is about) and from the child's CPU time (less "
                  "disturbed by other programs on the machine).", "",
                  "| format | from → to (events) | slope, wall | slope, CPU |",
                  "|---|---|---|---|"]
        gc = res.get("growth_cpu", {})
        for fmt, slopes in sorted(gr.items()):
            cpu = {(round(a), round(b)): s for a, b, s in gc.get(fmt, [])}
            for a, b, s in slopes:
                c = cpu.get((round(a), round(b)))
                lines.append(f"| {fmt} | {_size_ev(a)} → {_size_ev(b)} | {s:.2f} | "
                             f"{'–' if c is None else f'{c:.2f}'} |")
        for fmt, slopes in sorted(res.get("growth_steps", {}).items()):
            if slopes:
                lines.append("")
                lines.append(f"Per step, {fmt}, between the two largest sizes: "
                             + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items()) + ".")
        lines.append("")

    eng = res.get("engines")
    if eng:
        lines += [f"## Community engines on the pipeline's graph ({_size(eng['accounts'])} "
                  f"accounts, {eng['fmt']})", ""]
        if eng.get("status") != "ok":
            lines += [f"Engine timing child failed: {eng.get('status')} "
                      f"{eng.get('error', '')[-300:]}", ""]
        else:
            g = eng["graph"]
            lines += [f"Graph: {g['nodes']:,} nodes, {g['edges']:,} edges (hubs left out). "
                      "Each engine runs twice: on the *whole graph*, and *settled*, as the "
                      "pipeline runs it: components too small to split are labelled "
                      "directly and only the rest goes to the engine "
                      "(`analysis/communities.py`). Time includes converting the graph for "
                      "the engine; memory is the process's peak during detection and what it "
                      "added over the RSS before. Modularity is on the whole graph. Flagged "
                      "accounts come from `find_rings` on each partition; Jaccard is against "
                      "the default, igraph multilevel, settled.", "",
                      "| engine | graph | time | peak memory (added) | communities | "
                      "modularity | flagged rings | flagged accounts | Jaccard vs default |",
                      "|---|---|---|---|---|---|---|---|---|"]
            ref = set(eng["engines"].get(ENGINE_REFERENCE, {}).get("flagged_accounts", []))
            for key, e in eng["engines"].items():
                name, mode = key.split(" · ")
                fa = set(e["flagged_accounts"])
                lines.append(f"| {name} | {mode} | {_s(e['time_s'])} | {_gib(e['peak_bytes'])} "
                             f"({_gib(e['extra_bytes'])}) | {e['communities']:,} | "
                             f"{e['modularity']:.4f} | {e['flagged_rings']} | {len(fa)} | "
                             f"{jaccard(fa, ref):.3f} |")
            lines.append("")
        runs = eng.get("runs", {})
        if runs:
            lines += ["Full runs with `--communities` (`run` in a child process; flagged "
                      "accounts from `rings.csv` + `ring_members.csv`):", "",
                      "| --communities | status | total | communities step | peak memory | "
                      "flagged rings | flagged accounts | Jaccard vs igraph |",
                      "|---|---|---|---|---|---|---|---|"]
            for name, r in runs.items():
                if r.get("status") != "ok":
                    lines.append(f"| {name} | {r.get('status')} | – | – | – | – | – | – |")
                    continue
                lines.append(f"| {name} | ok | {_s(r['timings_s']['total'])} | "
                             f"{_s(r['timings_s']['communities'])} | "
                             f"{_gib(r['peak_bytes'])} | {r['flagged_rings']} | "
                             f"{r['n_flagged']} | {r['jaccard_vs_igraph']:.3f} |")
            lines.append("")

    lines += ["## Notes", ""]
    for note in res.get("notes", []):
        lines.append(f"- {note}")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- orchestration

def _log(msg: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def bench(a) -> dict:
    t_bench = time.perf_counter()
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    (work / "runs").mkdir(exist_ok=True)
    sizes = sorted(a.sizes)
    res: dict = {"machine": _machine(), "date": datetime.now(timezone.utc).strftime(
                     "%Y-%m-%d %H:%M UTC"),
                 "command": a.command, "repeats": a.repeats, "exports": {}, "pipeline": {},
                 "naive": {}, "notes": [], "naive_notes": [], "code": _code_state(),
                 "formats": a.formats, "naive_big_format": a.naive_big_format}
    mem_guard = int(min(0.8 * _mem_available(), 16 * GIB))
    out_md = Path(a.out)

    def save():
        res["bench_wall_s"] = time.perf_counter() - t_bench
        (work / "results.json").write_text(json.dumps(res, indent=1, default=str))
        out_md.parent.mkdir(parents=True, exist_ok=True)
        out_md.write_text(render(res))

    def pipeline_runs(key, ex, n, communities="igraph"):
        runs = []
        for i in range(n):
            _log(f"pipeline {key} ({communities}) run {i + 1}/{n}")
            r = child("pipeline", Path(ex["export_dir"]), work / "runs" / f"{key}-{i}.json",
                          run_out=work / "runs" / f"{key}-{communities}-out",
                          communities=communities, seed=a.seed, mem_limit=mem_guard,
                          big=ex["accounts"] >= 100_000)
            if r["status"] == "ok":
                _log(f"  total {r['timings_s']['total']:.1f} s, peak {_gib(r['peak_bytes'])}")
            else:
                _log(f"  {r['status']}: {r.get('error', '')[-300:]}")
            runs.append(r)
        out = median_run(runs)
        out.update({"fmt": ex["fmt"], "accounts": ex["accounts"]})
        return out

    naive_100k_slow = False
    others: list[float] = []
    waits: list[float] = []

    def child(*args, big=False, **kw):
        waited = wait_quiet(a.quiet_wait) if big and a.quiet_wait > 0 else 0.0
        r = run_child(*args, **kw)
        r["quiet_wait_s"] = waited
        others.append(r.get("others_cores", 0.0))
        if big:
            waits.append(waited)
        return r
    for n in sizes:
        for fmt in a.formats:
            key = f"{n}-{fmt}"
            _log(f"export {key}")
            ex = ensure_export(work, n, fmt, a.seed, a.days)
            res["exports"][key] = ex
            _log(f"  {ex['events']:,} events, {_gib(ex['bytes'])}"
                 + (" (reused)" if ex["reused"] else f", generated in {ex['synth_s']:.0f} s"))
            reps = a.repeats if n <= 100_000 else 1
            res["pipeline"][key] = pipeline_runs(key, ex, reps)
            save()
            # the naive baseline
            if n >= BIG and fmt != a.naive_big_format:
                continue
            if n > 100_000 and naive_100k_slow:
                res["naive"][key] = {"status": "skipped",
                                     "why": "the 100k naive run took over "
                                            f"{NAIVE_SKIP_1M_AFTER_S // 60} min"}
                continue
            if a.no_naive:
                continue
            nreps = a.repeats if n <= 10_000 else 1
            runs = []
            for i in range(nreps):
                _log(f"naive {key} run {i + 1}/{nreps}")
                r = child("naive", Path(ex["export_dir"]),
                              work / "runs" / f"naive-{key}-{i}.json", seed=a.seed,
                              timeout=a.naive_timeout, mem_limit=mem_guard,
                              big=n >= 100_000)
                r["mem_limit"] = mem_guard
                _log(f"  {r['status']}" + (f", total {r['timings_s']['total']:.1f} s, peak "
                                           f"{_gib(r['peak_bytes'])}" if r["status"] == "ok"
                                           else ""))
                runs.append(r)
                if r["status"] != "ok":
                    break
            res["naive"][key] = median_run(runs) if runs[-1]["status"] == "ok" else runs[-1]
            nr = res["naive"][key]
            if n == 100_000:
                took = nr["timings_s"]["total"] if nr["status"] == "ok" else float("inf")
                naive_100k_slow = naive_100k_slow or took > NAIVE_SKIP_1M_AFTER_S
            save()
        # engines at 100k (or the largest size up to 100k when 100k is not run)
        eng_size = 100_000 if 100_000 in sizes else max([s for s in sizes if s <= 100_000],
                                                       default=None)
        if n == eng_size and not a.no_engines:
            fmt = "parquet" if "parquet" in a.formats else a.formats[0]
            key = f"{n}-{fmt}"
            ex = res["exports"][key]
            _log(f"engines on the {key} graph")
            r = child("engines", Path(ex["export_dir"]), work / "runs" / f"engines-{key}.json",
                          run_out=work / "runs" / "engines-ws", seed=a.seed,
                          timeout=a.naive_timeout, mem_limit=mem_guard, big=True)
            r.update({"accounts": n, "fmt": fmt})
            res["engines"] = r
            runs = {}
            ref_out = work / "runs" / f"{key}-igraph-out"
            ref = _flagged_accounts(ref_out) if (ref_out / "rings.csv").exists() else None
            for label, engine in RUN_ENGINES.items():
                if engine == "igraph" and ref is not None:
                    rr = dict(res["pipeline"][key])
                    flagged = ref
                else:
                    rr = pipeline_runs(f"{key}-{engine}", ex, 1, communities=engine)
                    out = work / "runs" / f"{key}-{engine}-{engine}-out"
                    flagged = _flagged_accounts(out) if rr.get("status") == "ok" else set()
                    if engine == "igraph":
                        ref = flagged
                rr["n_flagged"] = len(flagged)
                rr["flagged"] = sorted(flagged)
                runs[f"{engine} ({label})"] = rr
            for rr in runs.values():
                rr["jaccard_vs_igraph"] = jaccard(set(rr["flagged"]), ref or set())
            res["engines"]["runs"] = runs
            save()

    summarise(res, a.formats, a.naive_big_format)
    code_after = _code_state()
    if code_after != res["code"]:
        res["notes"].append(
            "**The pipeline code changed while the bench ran** (`analysis/*.py` other than "
            "bench.py, or the git commit): runs started before and after the change measured "
            f"different code. Files changed: {', '.join(_changed(res['code'], code_after))}.")
    res["notes"] += [
        "Pipeline peak memory includes DuckDB (memory_limit 3GB; it spills to the "
        "workspace's temp folder beyond that) and the Python side.",
        "Per-step memory is measured inside the child: `/proc/self/clear_refs` ← 5 resets the "
        "high-water mark at each step's start and `VmHWM` is read at its end. Because the "
        "reset also resets the child's `ru_maxrss`, the run's peak is the largest of the step "
        "windows and the gaps between them, not `wait4`'s rusage.",
        f"Other programs kept on average {statistics.fmean(others or [0]):.2f} cores "
        f"busy while the benchmark's children ran (largest during one run: "
        f"{max(others or [0]):.2f}) on this {os.cpu_count()}-core machine; wall times are "
        "inflated by about that share, CPU times much less. Before each run at 100k "
        f"accounts and more the bench waited up to {a.quiet_wait:.0f} s for a quiet moment "
        f"(other programs under half a core); {sum(w >= a.quiet_wait - 0.5 for w in waits)} "
        f"of {len(waits)} such waits ran out.",
        f"Exports: `analysis.workshop.synth.generate(seed={a.seed}, days={a.days})` under "
        f"`{a.work}/exports/`; exports of 1M accounts and more are deleted after the bench "
        f"unless `--keep`.",
        f"The naive baseline at 1M is run on {a.naive_big_format} only (one format, to "
        "stay within the time budget), and skipped when the 100k naive run took over "
        f"{NAIVE_SKIP_1M_AFTER_S // 60} min. A memory guard stops a naive run whose RSS passes "
        f"{_gib(mem_guard)}.",
    ]
    save()
    if not a.keep:
        for ex in res["exports"].values():
            if ex["accounts"] >= BIG:
                shutil.rmtree(Path(ex["export_dir"]).parent, ignore_errors=True)
        shutil.rmtree(work / "runs", ignore_errors=True)
    return res


def summarise(res: dict, formats: list[str], naive_big_format: str) -> dict:
    """Speed-up at 100k, growth exponents (wall and CPU time) and the naive estimate."""
    res["speedup_100k"] = {}
    for fmt in formats:
        key = f"100000-{fmt}"
        p, nv = res["pipeline"].get(key), res["naive"].get(key)
        if p and nv and p.get("status") == "ok" and nv.get("status") == "ok":
            res["speedup_100k"][fmt] = {"pipeline_s": p["timings_s"]["total"],
                                        "naive_s": nv["timings_s"]["total"],
                                        "speedup": nv["timings_s"]["total"]
                                        / p["timings_s"]["total"]}
    res["growth"], res["growth_cpu"], res["growth_steps"] = {}, {}, {}
    for fmt in formats:
        rs = [r for r in res["pipeline"].values()
              if r.get("fmt") == fmt and r.get("status") == "ok"]
        rs.sort(key=lambda r: r["events"])
        res["growth"][fmt] = growth_exponent([(r["events"], r["timings_s"]["total"]) for r in rs])
        res["growth_cpu"][fmt] = growth_exponent([(r["events"], r["cpu_s"]) for r in rs
                                                  if r.get("cpu_s")])
        if len(rs) >= 2:
            lo, hi = rs[-2], rs[-1]
            res["growth_steps"][fmt] = {
                s: math.log(hi["timings_s"][s] / lo["timings_s"][s])
                / math.log(hi["events"] / lo["events"])
                for s in STEPS if lo["timings_s"].get(s, 0) > 0.05 and hi["timings_s"].get(s, 0) > 0}
    res["naive_notes"] = _naive_extrapolation(res, naive_big_format)
    return res


def _code_state() -> dict[str, str]:
    """A fingerprint of the code under test: the git commit and each module's hash."""
    import hashlib

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    out = {"git HEAD": head}
    for f in sorted((ROOT / "analysis").glob("*.py")):
        if f.name != "bench.py":
            out[f"analysis/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return out


def _changed(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _naive_extrapolation(res: dict, fmt: str) -> list[str]:
    """A note estimating the naive 1M time when it was not measured (10k→100k slope)."""
    nv = res.get("naive", {})
    big = nv.get(f"{BIG}-{fmt}")
    small = [nv.get(f"{n}-{fmt}") for n in (10_000, 100_000)]
    if big is None or big.get("status") == "ok" or not all(
            r and r.get("status") == "ok" for r in small):
        return []
    (_, _, slope), = growth_exponent([(r["events"], r["timings_s"]["total"]) for r in small])
    ev_big = res["exports"].get(f"{BIG}-{fmt}", {}).get("events")
    if not ev_big:
        return []
    est = small[1]["timings_s"]["total"] * (ev_big / small[1]["events"]) ** slope
    return [f"The naive baseline's time grew with slope {slope:.2f} from 10k to 100k accounts "
            f"({fmt}); at that rate 1M accounts ({ev_big:,} events) would take about "
            f"{_s(est)}."]


def _parse_sizes(text: str) -> list[int]:
    """``"10k,100000,1M"`` → ``[10000, 100000, 1000000]``.

    >>> _parse_sizes("10k,100000,1M")
    [10000, 100000, 1000000]
    """
    out = []
    for part in text.split(","):
        p = part.strip().lower()
        if not p:
            continue
        mult = {"k": 1000, "m": 1_000_000}.get(p[-1], 1)
        out.append(int(float(p[:-1] if mult > 1 else p) * mult))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.workshop.bench", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--out", default="benchmarks/results.md")
    p.add_argument("--sizes", type=_parse_sizes, default=list(DEFAULT_SIZES),
                   help="accounts per size, comma separated (10k,100k,1M)")
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--repeats", type=int, default=3, help="runs per small size (median)")
    p.add_argument("--quick", action="store_true",
                   help="10k accounts, one run each: for development")
    p.add_argument("--keep", action="store_true", help="keep the big exports and run outputs")
    p.add_argument("--work", default="benchmarks/work")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--naive-timeout", type=float, default=NAIVE_TIMEOUT_S)
    p.add_argument("--naive-big-format", default="csv", choices=FORMATS)
    p.add_argument("--quiet-wait", type=float, default=20.0,
                   help="before each run at 100k accounts and more, wait up to this many "
                        "seconds for other programs to leave the CPUs (0: don't wait)")
    p.add_argument("--no-naive", action="store_true")
    p.add_argument("--rerender", action="store_true",
                   help="only rewrite --out from WORK/results.json of an earlier run")
    p.add_argument("--no-engines", action="store_true")
    # child mode (internal)
    p.add_argument("--child", choices=sorted(_CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--export", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--run-out", help=argparse.SUPPRESS)
    p.add_argument("--communities", default="igraph", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return _child_main(a)
    a.formats = [f.strip() for f in a.formats.split(",") if f.strip()]
    if a.rerender:
        res = json.loads((Path(a.work) / "results.json").read_text())
        summarise(res, res.get("formats", a.formats),
                  res.get("naive_big_format", a.naive_big_format))
        Path(a.out).write_text(render(res))
        _log(f"rewrote {a.out} from {Path(a.work) / 'results.json'}")
        return 0
    if a.quick:
        a.sizes, a.repeats = [10_000], 1
    a.command = "python -m analysis.workshop.bench " + " ".join(
        argv if argv is not None else sys.argv[1:])
    res = bench(a)
    _log(f"wrote {a.out} in {_s(res['bench_wall_s'])}")
    for label, ok, val in checks(res):
        _log(f"{'PASS' if ok else ('n/a ' if ok is None else 'FAIL')} {label}: {val}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
