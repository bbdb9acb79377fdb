"""The heavy stage's plan: its execution choices never change its results."""

from __future__ import annotations

import pandas as pd

from analysis.aggregate import assemble, plan, run_duckdb
from analysis.load import load_export
from analysis.workspace import open_workspace


def test_gap_chunks_give_the_same_aggregates(ring_export, tmp_path):
    con = open_workspace()
    load_export(ring_export, con, tmp_path / "rejects")
    whole = assemble(run_duckdb(con, plan(gap_chunks=1)), None)
    assert whole.accounts["n_gaps"].sum() > 0
    for chunks in (2, 3, 7):
        sliced = assemble(run_duckdb(con, plan(gap_chunks=chunks)), None)
        pd.testing.assert_frame_equal(sliced.accounts, whole.accounts, rtol=1e-12)
        pd.testing.assert_frame_equal(sliced.device_links, whole.device_links)
