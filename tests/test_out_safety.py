"""--out is safe: the export and the analyst's files are never replaced; outputs are atomic
(run and report), survive a reject-rate stop, signals and dead runs; bad flags get one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import EVENTS_H, digest, tiny_ring_export, write_table

from analysis import outdir
from analysis.cli import main

ROOT = Path(__file__).resolve().parents[1]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name or ".old-" in p.name)


@pytest.fixture
def exp(tmp_path) -> Path:
    return tiny_ring_export(tmp_path)


# -- 1: what --out may be --------------------------------------------------------------------

@pytest.mark.parametrize("where", ["export", "parent", "inside"])
@pytest.mark.parametrize("force", [False, True])
def test_out_never_touches_the_export(tmp_path, capsys, where, force):
    root = tmp_path / "case"
    exp = tiny_ring_export(root)
    (root / "notes.txt").write_text("the analyst's notes")
    out = {"export": exp, "parent": root, "inside": exp / "out"}[where]
    before = digest(root)
    code = main(["run", str(exp), "--out", str(out)] + (["--force"] if force else []))
    assert code == 2
    assert "export" in one_line(capsys)
    assert digest(root) == before and parts(root) == [] and parts(exp) == []


@pytest.mark.parametrize("where", ["export", "parent", "inside"])
def test_the_notebooks_out_is_never_the_export(exp, where):
    """The notebooks' OUT (open_findings(out=...)): rejects/ and .ringscope/ went into the
    export folder (or beside it, when OUT held it) without a check."""
    from analysis import pipeline

    out = {"export": exp, "parent": exp.parent, "inside": exp / "out"}[where]
    before = sorted(p.name for p in exp.iterdir())
    with pytest.raises(outdir.OutputError, match="export"):
        pipeline.open_findings(exp, progress=False, out=out)
    assert sorted(p.name for p in exp.iterdir()) == before
    assert not (exp.parent / "rejects").exists() and not (exp.parent / ".ringscope").exists()


def test_out_that_is_a_file_is_refused_and_left_alone(exp, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    for force in ([], ["--force"]):
        assert main(["run", str(exp), "--out", str(f)] + force) == 2
        assert "is a file" in one_line(capsys)
    assert f.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "file.txt"]


def test_a_folder_the_tool_did_not_write_needs_force_and_is_moved_aside(exp, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["run", str(exp), "--out", str(out)]) == 2
    msg = one_line(capsys)
    assert str(out) in msg and "--force" in msg and outdir.MARKER in msg
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["run", str(exp), "--out", str(out), "--force"]) == 0
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("mine.before-ringscope-")]
    assert len(backups) == 1 and (backups[0] / "notes.txt").read_text() == "mine"
    assert (out / "rings.csv").exists() and not (out / "notes.txt").exists()


def test_an_earlier_output_is_replaced_but_not_a_file_added_to_it(exp, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    marker = json.loads((out / outdir.MARKER).read_text())
    assert marker["state"] == "complete" and "rings.csv" in marker["files"]
    assert main(["run", str(exp), "--out", str(out), "--seed", "3"]) == 0   # replaced
    capsys.readouterr()
    (out / "cases.csv").write_text("ring_key,verdict\n")
    assert main(["run", str(exp), "--out", str(out)]) == 2
    assert "cases.csv" in one_line(capsys)
    assert (out / "cases.csv").exists()
    assert parts(tmp_path) == []


def test_an_empty_folder_added_to_an_earlier_output_is_not_deleted(exp, tmp_path, capsys):
    """An empty folder the analyst made in OUT (or in its rejects/) is theirs: refused
    without --force (it was silently deleted with the earlier output), moved aside with it."""
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    capsys.readouterr()
    for where in (out / "evidence", out / "rejects" / "checked"):
        where.mkdir()
        assert main(["run", str(exp), "--out", str(out)]) == 2
        assert where.relative_to(out).as_posix() in one_line(capsys)
        assert where.is_dir() and parts(tmp_path) == []
        where.rmdir()
    (out / "evidence").mkdir()
    assert main(["run", str(exp), "--out", str(out), "--force"]) == 0
    backups = list(tmp_path.glob("out.before-ringscope-*"))
    assert len(backups) == 1 and (backups[0] / "evidence").is_dir()


def test_out_may_be_previous_but_not_inside_it(exp, tmp_path, capsys):
    out = tmp_path / "w1"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    assert main(["run", str(exp), "--out", str(out), "--previous", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(out / "w2"), "--previous", str(out)]) == 2
    assert "inside --previous" in one_line(capsys)


# -- 4: an exit 2 for the reject rate keeps its rejects -------------------------------------

def break_events(exp: Path, share: float) -> int:
    ev = exp / "events.csv"
    lines = ev.read_text().splitlines(keepends=True)
    n = int((len(lines) - 1) * share)
    for i in range(1, n + 1):
        lines[i] = "not-a-time" + lines[i][lines[i].index(","):]
    ev.write_text("".join(lines))
    return len(lines) - 1


def test_reject_rate_stop_keeps_the_rejects_in_a_new_out(exp, tmp_path, capsys):
    rows = break_events(exp, 0.5)
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 2
    msg = one_line(capsys)
    assert f"see {out / 'rejects'}/events.csv" in msg
    assert "quarantine stopped" in msg
    assert sorted(p.name for p in out.iterdir()) == [outdir.MARKER, "rejects"]
    assert (out / "rejects" / "NOTE.txt").read_text().startswith("ringscope stopped")
    rej = pd.read_csv(out / "rejects" / "events.csv")
    # only as many as prove the 5 % limit exceeded, in file order
    assert len(rej) == int(0.05 * rows) + 1
    assert rej["source_row"].tolist() == list(range(1, len(rej) + 1))
    assert set(rej["reason"]) == {"bad ts timestamp"}
    assert json.loads((out / outdir.MARKER).read_text())["state"] == "rejected"
    # an output holding only rejects is the tool's: the next good run replaces it
    assert parts(tmp_path) == []


def test_reject_rate_stop_leaves_an_earlier_output_intact(exp, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 0
    before = {k: v for k, v in digest(out).items() if not k.startswith("rejects")}
    old_rejects = digest(out / "rejects")
    break_events(exp, 0.3)
    assert main(["run", str(exp), "--out", str(out)]) == 2
    assert f"see {out / 'rejects'}/events.csv" in one_line(capsys)
    after = digest(out)
    for name, sha in before.items():
        if name != outdir.MARKER:
            assert after[name] == sha, name
    assert digest(out / "rejects.previous") == old_rejects
    assert len(pd.read_csv(out / "rejects" / "events.csv")) > 0
    assert (out / "rejects" / "NOTE.txt").exists()
    # a second failure replaces the failed run's rejects, not the good run's
    assert main(["run", str(exp), "--out", str(out)]) == 2
    assert digest(out / "rejects.previous") == old_rejects
    assert parts(tmp_path) == []


# -- 3: report is atomic ----------------------------------------------------------------------

def test_report_is_atomic(exp, tmp_path, capsys, monkeypatch):
    import papermill

    out = tmp_path / "rep"
    calls = []

    def fake(src, dst, parameters, cwd, **kw):
        calls.append(Path(src).stem)
        work = Path(parameters["OUT"])
        assert work == Path(cwd) and work != out and ".part-" in work.name
        Path(dst).write_text("{}")
        (work / "charts").mkdir(exist_ok=True)
        (work / "charts" / f"{Path(src).stem}.html").write_text("chart")
        (work / "report.html").write_text(f"report {len(calls)}")
        if fail_at and len(calls) == fail_at:
            from papermill.exceptions import PapermillExecutionError

            raise PapermillExecutionError(0, 3, "cell", "RuntimeError", "killed halfway", [])
    monkeypatch.setattr(papermill, "execute_notebook", fake)
    fail_at = 0
    assert main(["report", str(exp), "--out", str(out), "--no-progress"]) == 0
    first = digest(out)
    assert first["report.html"] and len([k for k in first if k.startswith("charts/")]) == 5
    capsys.readouterr()
    fail_at = 3
    calls.clear()
    assert main(["report", str(exp), "--out", str(out), "--no-progress"]) == 1
    assert "killed halfway" in one_line(capsys)
    assert digest(out) == first
    assert parts(tmp_path) == []


# -- 5: signals and dead runs -----------------------------------------------------------------

@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                       (signal.SIGINT, 130)])
def test_a_signal_removes_the_partial_folder(exp, tmp_path, capsys, monkeypatch, sig, code):
    out = tmp_path / "out"
    # Under nohup SIGHUP arrives ignored, and the tool leaves an inherited ignore alone.
    old = signal.signal(sig, signal.SIG_DFL if sig == signal.SIGHUP else signal.getsignal(sig))
    assert main(["run", str(exp), "--out", str(out)]) == 0
    before = digest(out)
    import analysis.pipeline as pipeline

    real = pipeline.write_findings

    def killed(findings, folder):
        real(findings, folder)
        assert (folder / "rings.csv").exists()
        os.kill(os.getpid(), sig)
        time.sleep(5)
    monkeypatch.setattr(pipeline, "write_findings", killed)
    try:
        assert main(["run", str(exp), "--out", str(out), "--seed", "5"]) == code
    finally:
        signal.signal(sig, old)
    assert signal.Signals(sig).name in one_line(capsys)
    assert digest(out) == before and parts(tmp_path) == []


def test_a_signal_stops_a_running_duckdb_query(exp, tmp_path, capsys, monkeypatch):
    import threading

    import analysis.pipeline as pipeline

    def slow(con, *a, **k):
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        con.execute("SELECT count(*) FROM range(200000000000) t(x) WHERE x % 7 = 3").fetchall()
        raise AssertionError("the query ran to its end")
    monkeypatch.setattr(pipeline, "analyse", slow)
    t0 = time.perf_counter()
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 143
    assert time.perf_counter() - t0 < 30
    assert "SIGTERM" in one_line(capsys)
    assert parts(tmp_path) == [] and not (tmp_path / "out").exists()


def test_the_next_run_removes_partial_folders_of_dead_runs(exp, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".out.part-{dead}"
    (stale / "rejects").mkdir(parents=True)
    (stale / "ring_members.csv").write_text("account_id\nk1\n")
    (stale / outdir.MARKER).write_text(json.dumps({"tool": "ringscope", "state": "partial",
                                                   "pid": int(dead), "host": os.uname()[1]}))
    foreign = tmp_path / f".out.part-{dead}-notours"
    foreign.mkdir()
    alive = tmp_path / f".out.part-{os.getppid()}"
    alive.mkdir()
    (alive / outdir.MARKER).write_text((stale / outdir.MARKER).read_text())
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 0
    assert not stale.exists()
    assert foreign.exists() and alive.exists()     # no marker, or a live process: kept


def test_the_next_run_also_removes_dead_partial_folders_of_other_outputs(exp, tmp_path):
    """A run killed into w1 leaves .w1.part-PID with real ids; the next run into w2 in the
    same folder removes it too (a partial folder is never complete: nothing to put back)."""
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip())
    marker = {"tool": "ringscope", "state": "partial", "pid": dead, "host": os.uname()[1]}
    stale = tmp_path / f".w1.part-{dead}"
    stale.mkdir()
    (stale / "ring_members.csv").write_text("account_id\nk1\n")
    (stale / outdir.MARKER).write_text(json.dumps(marker))
    kept = {tmp_path / f".w3.part-{dead}": {**marker, "pid": dead + 1},   # another pid's
            tmp_path / f".w4.part-{dead}": {**marker, "state": "complete"},
            tmp_path / f".w5.part-{dead}": None}                          # not the tool's
    for folder, m in kept.items():
        folder.mkdir()
        if m is not None:
            (folder / outdir.MARKER).write_text(json.dumps(m))
    old = tmp_path / f".w6.old-{dead}"          # an earlier w6, to be put back into w6
    old.mkdir()
    (old / outdir.MARKER).write_text(json.dumps({**marker, "state": "complete"}))
    assert main(["run", str(exp), "--out", str(tmp_path / "w2")]) == 0
    assert not stale.exists()
    assert all(folder.exists() for folder in kept) and old.exists()


def test_cleaning_up_reads_out_name_literally_not_as_a_pattern(exp, tmp_path):
    """--out 'w?' must not take the folders of another OUT ('w1'): an earlier output of w1
    set aside by a run that died mid-swap waits there to be put back into w1."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    old = tmp_path / f".w1.old-{dead}"
    old.mkdir()
    (old / "rings.csv").write_text("ring_id\nring-001\n")
    (old / outdir.MARKER).write_text(json.dumps({"tool": "ringscope", "state": "complete",
                                                 "pid": int(dead), "host": os.uname()[1],
                                                 "files": ["rings.csv"]}))
    assert main(["run", str(exp), "--out", str(tmp_path / "w?")]) == 0
    assert old.is_dir() and (old / "rings.csv").read_text() == "ring_id\nring-001\n"
    assert main(["run", str(exp), "--out", str(tmp_path / "w1")]) == 0
    assert not old.exists()


@pytest.mark.parametrize("key", ["../../escaped", "/tmp/abs-escaped", "..", "a/b"])
def test_a_tampered_ring_key_never_sends_the_handoff_outside_out(exp, tmp_path, capsys, key):
    """--handoff names its folder by the ring key carried over from --previous's
    ring_keys.csv; a key edited into a path wrote real ids outside OUT."""
    w1, w2 = tmp_path / "w1", tmp_path / "w2"
    assert main(["run", str(exp), "--out", str(w1)]) == 0
    keys = (w1 / "ring_keys.csv").read_text().splitlines()
    first = keys[1].split(",")[0]
    (w1 / "ring_keys.csv").write_text("\n".join([keys[0]] + [ln.replace(first, key, 1)
                                                              for ln in keys[1:]]) + "\n")
    before = sorted(p for p in tmp_path.rglob("*") if "w1" not in p.parts)
    capsys.readouterr()
    assert main(["run", str(exp), "--out", str(w2), "--previous", str(w1),
                 "--handoff", "1"]) == 2
    msg = one_line(capsys)
    assert "--handoff" in msg and "ring_keys.csv" in msg
    assert sorted(p for p in tmp_path.rglob("*") if "w1" not in p.parts) == before
    assert not Path("/tmp/abs-escaped").exists()


@pytest.mark.slow
def test_sigterm_from_outside(exp, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "analysis", "run", str(exp), "--out",
                             str(out), "--no-progress"], cwd=ROOT, stderr=subprocess.PIPE,
                            text=True)
    for _ in range(400):
        if parts(tmp_path):
            break
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and "SIGTERM" in err
    assert parts(tmp_path) == [] and not out.exists()


# -- 8: command-line values -------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [("--resolution", "nan"), ("--resolution", "-1"),
                                         ("--resolution", "inf"), ("--hub-degree", "0"),
                                         ("--hub-degree", "-5"), ("--as-of", "9999-12-31"),
                                         ("--as-of", "1969-12-31"), ("--seed", "-1")])
def test_bad_flag_values_get_one_line_naming_the_flag(exp, tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as ex:
        main(["run", str(exp), "--out", str(tmp_path / "out"), flag, value])
    assert ex.value.code == 2
    assert flag in one_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value, says", [
    ("--hub-degree", "99999999999999999999", "at most"),
    ("--resolution", "1e7", "at most"),
    ("--seed", "99999999999999999999", "between 0 and")])
def test_too_large_flag_values_say_so(exp, tmp_path, capsys, flag, value, says):
    """A value too large is not told it must be 'above 0' or '1 or more'."""
    with pytest.raises(SystemExit) as ex:
        main(["run", str(exp), "--out", str(tmp_path / "out"), flag, value])
    assert ex.value.code == 2
    msg = one_line(capsys)
    assert flag in msg and says in msg, msg


@pytest.mark.parametrize("kind", ["fifo", "folder", "device", "dangling"])
def test_a_table_that_is_not_a_regular_file(exp, tmp_path, capsys, kind):
    ev = exp / "events.csv"
    ev.unlink()
    if kind == "fifo":
        os.mkfifo(ev)
    elif kind == "folder":
        ev.mkdir()
    elif kind == "device":
        ev.symlink_to("/dev/null")
    else:
        ev.symlink_to(tmp_path / "nowhere.csv")
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 2
    msg = one_line(capsys)
    assert "events.csv" in msg and "not a regular file" in msg and "missing" not in msg


def test_a_full_disk_gives_one_line_with_the_path(exp, tmp_path, capsys, monkeypatch):
    import errno

    import analysis.pipeline as pipeline

    def full(findings, folder):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pipeline, "write_findings", full)
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out)]) == 1
    msg = one_line(capsys)
    assert "No space left on device" in msg and str(out) in msg
    assert parts(tmp_path) == []


def test_events_only_header_with_a_doubled_column_stays_fatal(tmp_path, capsys):
    exp = tiny_ring_export(tmp_path)
    write_table(exp / "events.csv", EVENTS_H + ["ts"], [])
    assert main(["run", str(exp), "--out", str(tmp_path / "out")]) == 2
    assert "appears twice" in one_line(capsys)


def test_a_kernel_never_writes_to_the_users_stderr(tmp_path, capfd):
    """What a notebook kernel prints to its own stderr before it is up (such as IPython's
    "Current working directory doesn't exist." when a signal removed the partial folder
    while it started) never reaches the user: their stderr keeps one line per error."""
    import nbformat
    import papermill as pm

    from analysis.notebook import runner

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    src = tmp_path / "n.ipynb"
    nbformat.write(nb, src)
    capfd.readouterr()
    with pytest.raises(Exception):   # noqa: B017 - the kernel cannot start: any error
        runner._execute(pm, src, tmp_path / "out.ipynb", progress_bar=False, log_output=False,
                        start_timeout=30, extra_arguments=["--IPKernelApp.log_level=NOPE"])
    err = capfd.readouterr().err
    assert "log_level" not in err and "NOPE" not in err, err
