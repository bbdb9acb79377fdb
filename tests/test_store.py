"""Analyse once: the findings kept in OUT/.ringscope are loaded while the export, the as-of,
the parameters and the code are the same, and analysed again when any of them changes."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import pipeline, store


@pytest.fixture
def counted(monkeypatch):
    """Counts the analyses (and the loads of the export) open_findings makes."""
    calls = {"analyse": 0, "load": 0}
    analyse, load = pipeline.analyse, pipeline.load_export

    def counting_analyse(*a, **k):
        calls["analyse"] += 1
        return analyse(*a, **k)

    def counting_load(*a, **k):
        calls["load"] += 1
        return load(*a, **k)

    monkeypatch.setattr(pipeline, "analyse", counting_analyse)
    monkeypatch.setattr(pipeline, "load_export", counting_load)
    return calls


def test_second_open_loads_instead_of_analysing(ring_export, tmp_path, counted):
    out = tmp_path / "out"
    exp1, f1 = pipeline.open_findings(ring_export, out=out, progress=False)
    assert counted == {"analyse": 1, "load": 1}
    assert (out / store.FOLDER / "key.json").exists() and (out / "rejects").is_dir()
    exp2, f2 = pipeline.open_findings(ring_export, out=out, progress=False)
    assert counted == {"analyse": 1, "load": 1}          # nothing analysed or loaded again
    pd.testing.assert_frame_equal(f1.rings.rings, f2.rings.rings)
    pd.testing.assert_frame_equal(f1.facts, f2.facts)
    assert f2.tracking is not None                          # tracking applied afresh
    assert exp2.counts == exp1.counts and exp2.fingerprints == exp1.fingerprints
    # The workspace came back with the events and the tie tables of the as-of.
    assert exp2.con.execute("SELECT count(*) FROM ev").fetchone() == \
        exp1.con.execute("SELECT count(*) FROM ev").fetchone()
    from analysis.queries import ring_daily

    rid = f1.flagged["ring_id"].iloc[0]
    pd.testing.assert_frame_equal(ring_daily(exp1.con, f1, rid), ring_daily(exp2.con, f2, rid))


def test_changes_are_analysed_again(ring_export, tmp_path, counted):
    out = tmp_path / "out"
    pipeline.open_findings(ring_export, out=out, progress=False)
    pipeline.open_findings(ring_export, "2020-01-20", out=out, progress=False)   # as-of
    assert counted["analyse"] == 2
    pipeline.open_findings(ring_export, "2020-01-20", seed=8, out=out, progress=False)  # seed
    assert counted["analyse"] == 3
    pipeline.open_findings(ring_export, "2020-01-20", seed=8, out=out, progress=False)
    assert counted["analyse"] == 3
    with open(ring_export / "events.csv", "a", encoding="utf-8") as fh:   # the export
        fh.write("2020-01-15T10:00:00Z,h000,hphone0,10.1.0.1,login,,0\n")
    pipeline.open_findings(ring_export, "2020-01-20", seed=8, out=out, progress=False)
    assert counted["analyse"] == 4
    # Where it runs and what it tracks do not change the findings: no new analysis.
    from analysis.params import RunParams

    pipeline.open_findings(ring_export, "2020-01-20", seed=8, out=out, progress=False,
                           params=RunParams(memory_limit="1GB"))
    assert counted["analyse"] == 4


def test_a_damaged_store_is_analysed_again(ring_export, tmp_path, counted, caplog):
    out = tmp_path / "out"
    pipeline.open_findings(ring_export, out=out, progress=False)
    (out / store.FOLDER / "findings.pickle").write_bytes(b"not a pickle")
    _, findings = pipeline.open_findings(ring_export, out=out, progress=False)
    assert counted["analyse"] == 2 and len(findings.flagged) == 1
    assert "analysing again" in caplog.text


def test_the_key_names_no_raw_ids(ring_export, tmp_path):
    out = tmp_path / "out"
    pipeline.open_findings(ring_export, out=out, progress=False)
    text = (out / store.FOLDER / "key.json").read_text()
    for raw in ("k1", "s1", "emu-1", "198.51.100.7"):
        assert f'"{raw}"' not in text


def test_the_weekly_replay_runs_once_per_analysis(ring_export, tmp_path, monkeypatch):
    from dataclasses import replace

    from analysis import replay

    out = tmp_path / "out"
    exp, findings = pipeline.open_findings(ring_export, out=out, progress=False)
    first = replay.first_flagged(exp.con, findings, keep=out)
    assert (out / store.FOLDER / "replay.pickle").exists()
    calls = []
    analyse = replay.analyse
    monkeypatch.setattr(replay, "analyse", lambda *a, **k: calls.append(1) or analyse(*a, **k))
    again = replay.first_flagged(exp.con, findings, keep=out)
    pd.testing.assert_frame_equal(first, again)
    assert calls == []
    # Another flagged set (a ring dismissed, say) is replayed anew.
    rings = findings.rings.rings.assign(flagged=False)
    none = replay.first_flagged(exp.con, replace(findings, rings=replace(findings.rings,
                                                                         rings=rings)), keep=out)
    assert none.empty
    replay.first_flagged(exp.con, findings, keep=out, step_days=3)
    assert calls


def test_the_replay_bar_ends_full_when_every_ring_is_found_early(ring_export, tmp_path):
    # Notebook 05's bar once ended red at "93 % 14/15": the runs skipped once every ring was
    # found must count as done.
    from analysis import replay

    class Bar:
        def __init__(self, total):
            self.total, self.n, self.closed = total, 0, False

        def update(self, k=1):
            self.n += k

        def close(self):
            self.closed = True

    bars = []
    exp, findings = pipeline.open_findings(ring_export, progress=False)
    lag = replay.first_flagged(exp.con, findings, step_days=1,
                               progress=lambda total: bars.append(Bar(total)) or bars[-1])
    (bar,) = bars
    assert bar.total > 1 and bar.n == bar.total and bar.closed
    assert (lag["days_to_flag"] >= 0).all()


def test_case_files_are_written_once_per_findings(ring_export, tmp_path, monkeypatch):
    # Reopening notebook 04 on another ring does not write every flagged ring's files again.
    from dataclasses import replace

    from analysis import case as ring_case

    out = tmp_path / "out"
    exp, findings = pipeline.open_findings(ring_export, out=out, progress=False)
    src = store.digest(out)
    assert src and store.digest(tmp_path / "nothing") is None
    first = ring_case.write_investigations(exp, findings, out / "investigation", source=src)
    assert first and all(p.exists() for p in first)
    calls = []
    real = ring_case.case
    monkeypatch.setattr(ring_case, "case", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = ring_case.write_investigations(exp, findings, out / "investigation", source=src)
    assert sorted(again) == sorted(first) and calls == []
    # a lost file, another flagged set, or no kept findings: written again
    first[0].unlink()
    ring_case.write_investigations(exp, findings, out / "investigation", source=src)
    assert first[0].exists() and len(calls) == 1
    rings = findings.rings.rings.assign(status="grown")
    ring_case.write_investigations(exp, replace(findings, rings=replace(findings.rings,
                                                                        rings=rings)),
                                   out / "investigation", source=src)
    assert len(calls) == 2
    ring_case.write_investigations(exp, findings, out / "investigation")
    assert len(calls) == 3
    # another ring opened beside them: only that one is written
    other = findings.rings.rings.loc[~findings.rings.rings["ring_id"].isin(
        findings.flagged["ring_id"]), "ring_id"]
    if len(other):
        ring_case.write_investigations(exp, findings, out / "investigation", source=src,
                                       also=other.iloc[0])
        assert len(calls) == 4   # the flagged rings were kept, only this one written

