"""The report runner's bookkeeping: what a report is made from (a new ring on the same
report runs notebook 04 only), and the kernels' environment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import analysis
from analysis import config, pipeline, store
from analysis.notebook import runner


def test_what_a_report_is_made_from(ring_export, tmp_path):
    """``report --ring`` reuses an earlier report only when it was made from the same
    (runner.made_from): the key a report keeps gives the digest computed afresh, and the
    export, as-of, seed, verdicts or notebooks changing each change it."""
    out = tmp_path / "out"
    pipeline.open_findings(ring_export, out=out, progress=False)
    source = tmp_path / "notebooks"
    shutil.copytree(config.NOTEBOOKS, source)
    cases = tmp_path / "cases.csv"
    cases.write_text("ring_key,verdict,note,decided_at\n")
    made = runner.made_from(ring_export, source=source, cases=cases)
    assert made == runner.made_from(ring_export, source=source, cases=cases)
    # what notebook 01 kept (OUT/.ringscope/key.json) stands for the export as hashed now
    assert runner.made_from(ring_export, source=source, cases=cases,
                            findings=store.kept_key(out)) == made
    assert runner.made_from(ring_export, source=source, cases=cases, seed=8) != made
    assert runner.made_from(ring_export, source=source, cases=cases,
                            as_of="2020-03-02") != made
    assert runner.made_from(ring_export, source=source) != made
    cases.write_text("ring_key,verdict,note,decided_at\nRK-0001,dismissed,,2020-03-05\n")
    assert runner.made_from(ring_export, source=source, cases=cases) != made
    cases.write_text("ring_key,verdict,note,decided_at\n")
    nb = source / "04_investigate_ring.ipynb"
    nb.write_text(nb.read_text().replace("Investigate", "Look at"))
    assert runner.made_from(ring_export, source=source, cases=cases) != made
    nb.write_text((config.NOTEBOOKS / nb.name).read_text())
    os.utime(ring_export / "events.csv")         # touched, the same bytes: the same
    assert runner.made_from(ring_export, source=source, cases=cases) == made
    (ring_export / "events.csv").write_bytes((ring_export / "events.csv").read_bytes() + b"\n")
    assert runner.made_from(ring_export, source=source, cases=cases) != made


def test_the_kernel_imports_the_callers_package():
    """The notebooks run the ``analysis`` of the command that started them: its folder comes
    first on the kernel's PYTHONPATH, once, before what was there."""
    here = str(Path(analysis.__file__).resolve().parent.parent)
    env = runner._kernel_env({"PYTHONPATH": os.pathsep.join(["/x", here]), "HOME": "/h"})
    assert env["PYTHONPATH"].split(os.pathsep) == [here, "/x"] and env["HOME"] == "/h"
    assert runner._kernel_env({})["PYTHONPATH"] == here
    assert env[config.HEADLESS_ENV] == "1"


def test_widgets_are_a_note_in_a_headless_report_and_widgets_elsewhere(ring_export,
                                                                       monkeypatch):
    """Nobody clicks in a headless report, and widget cells there sometimes lost the kernel's
    reply: the four explorers show a note in the report's kernels, widgets everywhere else."""
    import ipywidgets

    from analysis.notebook import widgets

    exp, findings = pipeline.open_findings(ring_export, progress=False)
    made = {"The ring picker": lambda: widgets.ring_explorer(exp, findings, 1),
            "The network explorer": lambda: widgets.network_explorer(findings, 1),
            "Search by id": lambda: widgets.search_box(findings),
            "The timeline explorer": lambda: widgets.timeline_explorer(exp, findings, 1)}
    monkeypatch.delenv(config.HEADLESS_ENV, raising=False)
    assert all(isinstance(make(), ipywidgets.Widget) for make in made.values())
    monkeypatch.setenv(config.HEADLESS_ENV, "1")
    for what, make in made.items():
        note = make()
        assert not isinstance(note, ipywidgets.Widget)
        assert note.data.startswith(f"<i>{what}: interactive when this notebook is opened")


def test_headless_runs_skip_the_iri_grammars_and_still_validate_notebooks():
    """rfc3987-syntax compiles 39 grammars when jsonschema is imported (1.2 s per process);
    the command and the kernels skip it, and nbformat still reads and validates notebooks."""
    import subprocess
    import sys

    assert any(a.startswith("--IPKernelApp.exec_lines=") and "rfc3987_syntax" in a
               for a in runner.KERNEL_ARGUMENTS)
    code = (f"{runner._SKIP}\nimport sys, nbformat\n"
            f"nb = nbformat.read({str(config.NOTEBOOKS / '04_investigate_ring.ipynb')!r}, 4)\n"
            "nbformat.validate(nb)\n"
            "print(sys.modules['rfc3987_syntax'], 'jsonschema' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["None", "True"]
