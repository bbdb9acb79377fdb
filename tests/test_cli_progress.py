"""Output that is not a terminal (a log, CI, a pipe) gets a line per step on stdout, not
silence; stderr keeps one line per error."""

from __future__ import annotations

import re

from analysis.cli import main
from analysis.findings import STEPS
from analysis.notebook.runner import NOTEBOOKS


def test_run_prints_a_line_per_step(ring_export, tmp_path, capsys):
    assert main(["run", str(ring_export), "--out", str(tmp_path / "out")]) == 0
    cap = capsys.readouterr()               # pytest's stderr is no terminal: lines on stdout
    err = cap.out
    assert cap.err == ""
    done = re.findall(r"^run \[\d+/\d+\] (\w+) done \(\d+\.\d s\)$", err, flags=re.M)
    assert done == list(STEPS)
    assert re.search(r"^run: 10 of 10 steps done in \d+\.\d s$", err, flags=re.M)


def test_report_prints_a_line_per_notebook(ring_export, tmp_path, capsys, monkeypatch):
    import papermill

    ran = []

    def fake_execute(src, dst, **kwargs):          # the notebooks themselves are the slow tier
        ran.append(src)
        open(dst, "w").write(open(src).read())

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    assert main(["report", str(ring_export), "--out", str(tmp_path / "rep")]) == 0
    err = capsys.readouterr().out
    assert len(ran) == len(NOTEBOOKS)
    for i, name in enumerate(NOTEBOOKS, 1):
        assert f"report [{i}/5] {name} ...\n" in err
        assert re.search(rf"^report \[{i}/5\] {name} done \(\d+\.\d s\)$", err, flags=re.M)
    # --no-progress: quiet
    assert main(["report", str(ring_export), "--out", str(tmp_path / "rep"), "--no-progress"]) == 0
    assert "report [" not in capsys.readouterr().out
