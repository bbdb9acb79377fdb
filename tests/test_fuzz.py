"""Fuzzing: mutated small exports end in exit 0 or exit 2 with one line, never a traceback."""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_ring_export
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.cli import main

#: Slow tier (`make test` runs it after the fast tier).
pytestmark = pytest.mark.slow

TABLES = ("accounts", "partners", "events")


def _mutate(exp: Path, table: str, kind: str, rnd: random.Random) -> None:
    path = exp / f"{table}.csv"
    data = path.read_bytes()
    if kind == "drop_column":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df = df.drop(columns=[rnd.choice(list(df.columns))])
        df.to_csv(path, index=False)
    elif kind == "shuffle_types":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        cols = list(df.columns)
        for _ in range(rnd.randint(1, 3)):
            c = rnd.choice(cols)
            vals = df[c].tolist()
            junk = [rnd.choice(["", "-1", "3.5", "NaN", "2020-13-45", "=1+1", "ï»¿", "\u202e",
                                "<script>alert(1)</script>", "9" * 30, "true"])
                    for _ in vals]
            df[c] = [j if rnd.random() < 0.3 else v for v, j in zip(vals, junk)]
        df.to_csv(path, index=False)
    elif kind == "random_bytes":
        b = bytearray(data)
        for _ in range(rnd.randint(1, 20)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        path.write_bytes(bytes(b))
    elif kind == "truncate":
        path.write_bytes(data[: rnd.randrange(len(data))])
    elif kind == "gzip_truncate":
        path.unlink()
        z = gzip.compress(data)
        (exp / f"{table}.csv.gz").write_bytes(z[: rnd.randrange(10, len(z))])
    elif kind == "parquet_retype":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        c = rnd.choice(list(df.columns))
        df[c] = [rnd.random() for _ in range(len(df))]
        path.unlink()
        df.to_parquet(exp / f"{table}.parquet")
    elif kind == "duplicate_table":
        shutil.copy(path, exp / f"{table}.csv.gz")
    elif kind == "garbage_file":
        path.write_bytes(bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 400))))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=st.sampled_from(TABLES),
       kind=st.sampled_from(["drop_column", "shuffle_types", "random_bytes", "truncate",
                             "gzip_truncate", "parquet_retype", "duplicate_table",
                             "garbage_file"]),
       seed=st.integers(0, 10**6))
def test_mutated_exports_never_crash(tmp_path_factory, capsys, table, kind, seed):
    root = tmp_path_factory.mktemp("fuzz")
    exp = tiny_ring_export(root)
    _mutate(exp, table, kind, random.Random(seed))
    out = root / "out"
    code = main(["run", str(exp), "--out", str(out), "--max-reject-rate", "0.5"])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
        # Nothing is written, except the quarantine a reject-rate stop points to.
        if out.exists():
            assert "--max-reject-rate" in err, err
            assert (out / "rejects").is_dir() and not (out / "rings.csv").exists()
    else:
        record = json.loads((out / "run.json").read_text())
        for t, c in record["tables"].items():
            assert c["accepted"] + c["rejected"] == c["rows"], (t, c)
    shutil.rmtree(root, ignore_errors=True)
