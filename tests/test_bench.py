"""The benchmark module's helpers, on a tiny export (fast: a few seconds)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from analysis.workshop import bench

#: Slow tier (`make test` runs it after the fast tier).
pytestmark = pytest.mark.slow


def test_parse_sizes_and_growth():
    assert bench._parse_sizes("10k, 100000,1M") == [10_000, 100_000, 1_000_000]
    slopes = bench.growth_exponent([(1e5, 1.0), (1e6, 10.0), (1e7, 50.0)])
    assert [round(s, 3) for _, _, s in slopes] == [1.0, round(math.log10(5), 3)]
    assert bench.growth_exponent([(1e5, 1.0)]) == []


def test_median_run_skips_failures():
    runs = [{"status": "ok", "timings_s": {"total": 4.0}, "peak_bytes": 10,
             "step_peak_bytes": {"graph": 10}, "cpu_s": 5.0, "load_before": 0.2},
            {"status": "timeout"},
            {"status": "ok", "timings_s": {"total": 2.0}, "peak_bytes": 30,
             "step_peak_bytes": {"graph": 30}, "cpu_s": 3.0, "load_before": 1.5}]
    r = bench.median_run(runs)
    assert r["n_runs"] == 2 and r["timings_s"]["total"] == 3.0
    assert r["peak_bytes"] == 30 and r["load_before"] == 1.5 and r["cpu_s"] == 4.0
    assert bench.median_run([{"status": "error"}])["n_runs"] == 0


def test_step_memory_sees_an_allocation():
    np = pytest.importorskip("numpy")
    if not bench.reset_hwm():
        pytest.skip("kernel has no /proc/self/clear_refs")
    mem = bench.StepMemory()
    with mem.step("big"):
        a = np.ones(64 * 1024 * 1024 // 8)      # 64 MiB touched
        del a
    with mem.step("small"):
        pass
    out = mem.finish()
    assert out["step_peak_bytes"]["big"] - out["step_peak_bytes"]["small"] > 48 * 1024 ** 2
    assert out["peak_bytes"] >= out["step_peak_bytes"]["big"]


def test_children_on_tiny_export(ring_export: Path, tmp_path: Path):
    res = bench.run_child("pipeline", ring_export, tmp_path / "p.json", run_out=tmp_path / "out",
                          timeout=300)
    assert res["status"] == "ok", res.get("error")
    assert set(bench.STEPS) <= set(res["timings_s"]) and res["timings_s"]["total"] > 0
    assert set(bench.STEPS) <= set(res["step_peak_bytes"])
    assert res["peak_bytes"] >= max(res["step_peak_bytes"].values()) > 10 * 1024 ** 2
    assert res["flagged_rings"] == 1
    assert bench._flagged_accounts(tmp_path / "out") == {"s1", "k1", "k2", "k3"}

    naive = bench.run_child("naive", ring_export, tmp_path / "n.json", timeout=300)
    assert naive["status"] == "ok", naive.get("error")
    assert set(bench.NAIVE_STEPS) <= set(naive["timings_s"])
    assert naive["events"] == res["events"]


def test_run_child_timeout_and_error(tmp_path: Path):
    r = bench.run_child("pipeline", tmp_path / "missing", tmp_path / "x.json",
                        run_out=tmp_path / "o", timeout=0)
    assert r["status"] == "timeout" and r["exit_code"] != 0
    r = bench.run_child("pipeline", tmp_path / "missing", tmp_path / "y.json",
                        run_out=tmp_path / "o", timeout=120)
    assert r["status"] == "error" and "export folder not found" in r["error"]


def test_render_states_failures_plainly():
    ex = {"accounts": 1_000_000, "fmt": "parquet", "events": 54_000_000, "bytes": 2 ** 30}
    t = {s: 10.0 for s in bench.STEPS} | {"total": 200.0}
    run = {"status": "ok", "timings_s": t, "step_peak_bytes": {s: 2 ** 30 for s in bench.STEPS},
           "peak_bytes": 7 * 2 ** 30, "events": 54_000_000, "n_runs": 1, "all_totals_s": [200.0],
           "graph": {"nodes": 1, "edges": 1}, "fmt": "parquet", "accounts": 1_000_000}
    res = {"machine": {"cores": 2, "cpu": "x", "ram_bytes": 2 ** 34, "os": "Linux",
                       "python": "3.11", "versions": {}},
           "date": "today", "command": "python -m analysis.workshop.bench", "repeats": 3,
           "exports": {"1000000-parquet": ex}, "pipeline": {"1000000-parquet": run},
           "naive": {"1000000-csv": {"status": "timeout"}},
           "speedup_100k": {"csv": {"pipeline_s": 20.0, "naive_s": 100.0, "speedup": 5.0}},
           "growth": {"parquet": [(6e6, 5.4e7, 1.2)]}, "notes": ["n"], "naive_notes": []}
    text = bench.render(res)
    assert "**FAIL** — 1M accounts from Parquet ≤ 3 min: 200.0 s" in text
    assert "**FAIL** — peak memory ≤ 6 GiB" in text
    assert "**FAIL** — speed-up ≥ 10× at 100k: 5.0× (csv)" in text
    assert "**FAIL** — growth ≤ linear" in text
    assert "not measured — 1M accounts from CSV" in text
    assert "did not finish in 30 min" in text


def test_engines_child_times_every_engine_both_ways(ring_export: Path, tmp_path: Path):
    res = bench.run_child("engines", ring_export, tmp_path / "e.json",
                          run_out=tmp_path / "ws", timeout=300)
    assert res["status"] == "ok", res.get("error")
    keys = {f"{e} · {m}" for e in bench.ENGINES for m in bench.ENGINE_MODES}
    assert set(res["engines"]) == keys
    for e in res["engines"].values():
        assert set(e["flagged_accounts"]) == {"s1", "k1", "k2", "k3"}
        assert e["time_s"] > 0 and 0 < e["modularity"] <= 1
