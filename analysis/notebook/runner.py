"""Headless re-runs: the five notebooks on a new export, and the chart exports.

``python -m analysis report EXPORTS --out OUT`` (``make report``) calls
:func:`run_notebooks`, which executes ``notebooks/01_…`` to ``05_…`` with
papermill, injecting the parameters (EXPORTS, OUT, AS_OF, SEED, RING, PREVIOUS, CASES) after
each notebook's ``parameters`` cell. The notebooks write into ``OUT``::

    OUT/notebooks/0N_….ipynb     the executed notebooks (04 holds real ids)
    OUT/rejects/<table>.csv      quarantined rows (01)
    OUT/rings.csv, ring_members.csv, partners_review.csv   (03; real ids)
    OUT/investigation/<ring>/    the investigated ring's evidence (04; real ids)
    OUT/charts/NAME.html|png|pdf management charts, pseudonymised (05)
    OUT/plotly.min.js            the one plotly.js the pages of charts/ and investigation/
                                 load (04, 05)
    OUT/report.html              the management page, pseudonymised, self-contained (05)

**A new ring on the same report.** The marker of a complete report records what it was
made from (:func:`made_from`: the kept findings' key, the previous run's and the verdicts'
files, the notebooks and their helpers), all but the ring. ``report --ring R`` into a
folder holding a report made from the same keeps its notebooks 01-03 and 05 and their
files, and runs notebook 04 only, on the kept findings: opening a ring takes seconds, not
the whole report (``fresh=True``, ``--fresh``, runs all five).

Also here: :func:`export_charts` (HTML pages loading one plotly.min.js, and PNG and PDF
through one kaleido browser session).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import config, outdir, store
from ..charts import PLOTLY_JS, write_html
from ..contract import ExportError

__all__ = ["NOTEBOOKS", "RING_NOTEBOOK", "NotebookError", "ReportRun", "run_notebooks",
           "made_from", "export_charts", "chromium_path"]

log = logging.getLogger(__name__)

NOTEBOOKS = ("01_load_and_validate", "02_build_graph", "03_find_rings", "04_investigate_ring",
             "05_management_report")
#: The one notebook that shows RING; the others are the same whichever ring is opened.
RING_NOTEBOOK = "04_investigate_ring"


#: Modules a headless report never needs and does not import: jsonschema (imported by
#: nbformat, which papermill imports, and which plotly imports to show a figure in a kernel)
#: loads rfc3987-syntax when it is installed (jupyter-events pulls it in), and that compiles
#: 39 Earley grammars on import, 1.2 s here, once in the command and once in each kernel
#: (python-jsonschema/jsonschema#1428). Nothing here checks IRIs; without it jsonschema only
#: leaves its "iri" formats unchecked.
SKIPPED_MODULES = ("rfc3987_syntax",)
_SKIP = "; ".join(f"__import__('sys').modules.setdefault({m!r}, None)" for m in SKIPPED_MODULES)
#: The kernels log only what is critical: their warnings (such as running over local TCP)
#: would break the CLI's one-line errors; a failing cell is reported from the notebook. They
#: skip :data:`SKIPPED_MODULES`.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL", f"--IPKernelApp.exec_lines={_SKIP}"]
#: Seconds to wait for the kernel's answer to a request that is not a cell (papermill's
#: closing ``kernel_info``). Cells have no time limit; that one request, left without one,
#: can wait forever on a lost reply (nteract/papermill#711; seen once in the test suite),
#: so it gets one, and the notebook is run once more.
KERNEL_REPLY_TIMEOUT = 120


#: Seconds a running notebook's kernel may sit idle, it and its children, before it counts
#: as stuck. Cells here compute (DuckDB, pandas, Chromium for the charts); both sides idle
#: means a message was lost and papermill would wait for ever (seen in the slow tier and in
#: notebook 04 on a widget's cell, nteract/papermill#711, jupyter/jupyter_client#922). The
#: kernel is stopped and the notebook runs once more.
KERNEL_IDLE_LIMIT = 300.0
#: Idle is less than this share of one core over :data:`KERNEL_IDLE_LIMIT`: an idle kernel's
#: own threads (heartbeat, I/O) still use about 10 ms of CPU a minute, which is not work.
KERNEL_IDLE_SHARE = 0.01
#: How often the watch looks at the kernels' CPU time, in seconds.
KERNEL_WATCH_POLL = 5.0


def _idle_seconds(samples, limit: float, share: float = KERNEL_IDLE_SHARE) -> float | None:
    """How long a kernel has sat idle, if it has: ``samples`` are (time, CPU seconds) of the
    kernel and its children, oldest first; idle is less than ``share`` of one core over at
    least the last ``limit`` seconds. None: busy, or not watched that long yet.

    >>> _idle_seconds([(0, 5.0), (150, 5.01), (300, 5.02)], 300)   # its own threads only
    300
    >>> _idle_seconds([(0, 5.0), (300, 9.0)], 300) is None            # computing
    True
    >>> _idle_seconds([(0, 5.0), (200, 5.0)], 300) is None            # too soon to tell
    True
    """
    now, cpu = samples[-1]
    before = [(t, c) for t, c in samples if now - t >= limit]
    if not before:
        return None
    t0, c0 = before[-1]
    return now - t0 if cpu - c0 < share * (now - t0) else None


def _no_cell_timeout(cell) -> None:
    return None


class _IdleKernelWatch:
    """Stops a notebook kernel (a child of this process) that sat idle, itself and its
    children, for ``limit`` seconds (:func:`_idle_seconds`); papermill then raises its
    DeadKernelError."""

    def __init__(self, limit: float, poll: float | None = None):
        self.limit, self.fired = limit, False
        self.poll = KERNEL_WATCH_POLL if poll is None else poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name="ringscope-kernel-watch")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll + 5)

    def _watch(self) -> None:
        import psutil

        me, seen = psutil.Process(), {}
        while not self._stop.wait(self.poll):
            for kernel in me.children():
                try:
                    if "ipykernel" not in " ".join(kernel.cmdline()):
                        continue
                    cpu = sum(sum(p.cpu_times()[:2])
                              for p in [kernel, *kernel.children(recursive=True)])
                except psutil.Error:
                    continue
                now = time.monotonic()
                samples = seen.setdefault(kernel.pid, [])
                samples.append((now, cpu))
                while len(samples) > 2 and now - samples[1][0] >= self.limit:
                    del samples[0]          # keep one sample at least ``limit`` old
                idle = _idle_seconds(samples, self.limit)
                if idle is not None:
                    log.warning("notebook kernel %s sat idle for %.0f s: stopping it",
                                kernel.pid, idle)
                    self.fired = True
                    try:
                        kernel.kill()
                    except psutil.Error:
                        pass


def _quiet_kernel_manager():
    """A kernel manager whose kernels' own stderr is not the user's.

    A cell's output reaches the notebook through the kernel, not this stream; what a
    kernel prints there comes before it is up (such as IPython's "Current working
    directory doesn't exist." when a signal removed the partial folder while the kernel
    started), and would break the CLI's one line per error. A kernel that cannot start is
    still reported: papermill says it died.
    """
    import subprocess

    from jupyter_client import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw.setdefault("stderr", subprocess.DEVNULL)
            kw["env"] = _kernel_env(kw.get("env"))
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


def _kernel_env(env: dict | None) -> dict:
    """The kernel's environment: ``env`` (default this process's) with the folder holding this
    ``analysis`` package first on PYTHONPATH, so the notebooks run the same code as the
    command that started them (not another copy installed in the environment, as an
    editable install of another checkout would be), and :data:`analysis.config.HEADLESS_ENV`
    set."""
    env = dict(os.environ if env is None else env)
    env[config.HEADLESS_ENV] = "1"          # the widgets show a note (nobody clicks)
    here = str(Path(__file__).resolve().parent.parent.parent)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]
    env["PYTHONPATH"] = os.pathsep.join([here, *rest])
    return env


def _execute(pm, src: Path, dst: Path, **kwargs) -> None:
    """papermill's execute_notebook; a lost reply outside the cells, or a kernel stuck idle
    (:data:`KERNEL_IDLE_LIMIT`), is retried once."""
    from nbclient.exceptions import DeadKernelError

    for attempt in (1, 2):
        watch = _IdleKernelWatch(KERNEL_IDLE_LIMIT)
        try:
            with watch:
                pm.execute_notebook(str(src), str(dst), execution_timeout=KERNEL_REPLY_TIMEOUT,
                                    timeout_func=_no_cell_timeout, interrupt_on_timeout=True,
                                    kernel_manager_class=_quiet_kernel_manager(), **kwargs)
            return
        except DeadKernelError:
            if not watch.fired:
                raise
            if attempt == 2:
                raise NotebookError(f"notebook {src.stem}: its kernel sat idle for "
                                    f"{KERNEL_IDLE_LIMIT:.0f} s in a cell, twice (a lost "
                                    f"message); run it again") from None
            log.warning("kernel of %s sat idle in a cell; running it once more", src.name)
        except TypeError as exc:
            # papermill reads the closing kernel_info reply: None after the timeout
            if "NoneType" not in str(exc):
                raise
            if attempt == 2:
                raise NotebookError(f"notebook {src.stem}: the kernel did not answer for "
                                    f"{KERNEL_REPLY_TIMEOUT} s after its last cell, twice") from None
            log.warning("kernel did not answer after %s; running it once more", src.name)
#: Errors in a notebook that come from its parameters (a ring that is not there, a bad date).
USER_ERRORS = ("ValueError", "TrackingError")


class NotebookError(Exception):
    """A notebook failed; the message names it, the cell's error and the executed copy."""


@dataclass
class ReportRun:
    """What :func:`run_notebooks` produced."""

    out: Path
    notebooks: list[Path] = field(default_factory=list)
    report: Path | None = None
    charts: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    #: Notebooks kept from the earlier report in ``out`` (made from the same; not run again).
    kept: list[str] = field(default_factory=list)

    @property
    def executed(self) -> list[str]:
        """The notebooks this run executed."""
        return [p.stem for p in self.notebooks if p.stem not in self.kept]


def _sha256(paths) -> str:
    """SHA-256 over the names and bytes of ``paths`` (a missing file counts as missing)."""
    import hashlib

    h = hashlib.sha256()
    for path in paths:
        path = Path(path)
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes() if path.is_file() else b"(missing)")
        h.update(b"\0")
    return h.hexdigest()


def made_from(exports: str | Path, *, as_of: str | None = None, seed: int = 7,
              previous: str | Path | None = None, cases: str | Path | None = None,
              source: Path | None = None, findings: dict | None = None) -> str:
    """A digest of what a report's notebooks show, the ring of notebook 04 aside: the key of
    the findings (the export's files, as-of, parameters, code and libraries:
    :func:`analysis.pipeline.findings_key`; ``findings`` when it is known, as the one a
    report kept), the previous run's files and the verdicts file the notebooks read, the
    notebooks and their helpers (``analysis.notebook``). No raw ids."""
    import hashlib
    import json

    from .. import pipeline

    if findings is None:
        params = pipeline.notebook_params(as_of, seed, previous=previous, cases=cases)
        findings = pipeline.findings_key(Path(exports), params)
    prev = Path(previous).expanduser().resolve() if previous else None
    record = {
        "findings": json.loads(json.dumps(findings, sort_keys=True, default=str)),
        "previous": None if prev is None else
        [str(prev), _sha256(prev / f for f in ("run.json", "ring_keys.csv",
                                               "communities.parquet"))],
        "cases": None if not cases else
        [str(Path(cases).expanduser().resolve()), _sha256([Path(cases).expanduser()])],
        "notebooks": _sha256(sorted((Path(source) if source else config.NOTEBOOKS)
                                    .glob("*.ipynb"))),
        "helpers": _sha256(sorted(Path(__file__).resolve().parent.glob("*.py"))),
    }
    blob = json.dumps(record, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _earlier_report(plan: outdir.OutPlan) -> str | None:
    """What the complete report in ``plan.out`` was made from (None: no such report, or one
    without every notebook but notebook 04's executed copy)."""
    earlier = plan.earlier or {}
    report = earlier.get("report")
    if (plan.backup is not None or earlier.get("state") != "complete"
            or earlier.get("command") != "report" or not isinstance(report, dict)
            or not all((plan.out / "notebooks" / f"{n}.ipynb").is_file()
                       for n in NOTEBOOKS if n != RING_NOTEBOOK)):
        return None
    made = report.get("made_from")
    return made if isinstance(made, str) else None


def _copy_earlier(out: Path, tmp: Path) -> None:
    """Copy the earlier report in ``out`` into the partial folder ``tmp``: every file but its
    marker and notebook 04's executed copy (run again). ``out`` stays as it was until the
    new report replaces it."""
    for item in out.iterdir():
        if item.name == outdir.MARKER:
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, tmp / item.name, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(item, tmp / item.name, follow_symlinks=False)
    (tmp / "notebooks" / f"{RING_NOTEBOOK}.ipynb").unlink(missing_ok=True)


def run_notebooks(exports: str | Path, out: str | Path, *, as_of: str | None = None,
                  seed: int = 7, ring: int | str | None = None,
                  previous: str | Path | None = None, cases: str | Path | None = None,
                  notebooks: list[str] | tuple[str, ...] = NOTEBOOKS,
                  source: Path | None = None, kernel_name: str | None = None,
                  progress=None, force: bool = False, fresh: bool = False) -> ReportRun:
    """Execute the notebooks headless on ``exports``, writing everything into ``out``.

    As ``run`` does, the notebooks write into a partial folder beside ``out``
    that replaces ``out`` only when every notebook has run
    (:mod:`analysis.outdir`): a report that fails or is killed halfway leaves the
    previous one as it was. ``out`` must pass :func:`analysis.outdir.check_out`
    (``force``: a folder the tool did not write is moved aside first).

    When ``out`` holds a complete report made from the same (:func:`made_from`: export,
    parameters, previous run, verdicts, notebooks, code), only notebook 04 runs, for
    ``ring``; the others and their files are kept (``ReportRun.kept``). ``fresh`` runs
    every notebook anyway.

    Parameters
    ----------
    exports, out : the export folder and the output folder (created)
    as_of, seed, ring : injected as AS_OF, SEED and RING
    previous, cases : injected as PREVIOUS and CASES (the previous run's output folder and
        the verdicts file; None: none)
    notebooks : which notebooks to run, by name, in order
    source : folder of the notebooks (default ``notebooks/`` of the project)
    kernel_name : Jupyter kernel (default: the one the notebook names, ``python3``)
    progress : optional ``callable(total) -> bar`` with ``update()``/``close()`` (tqdm), and
        ``set_description_str(name)``, called as each notebook starts, when it has one

    Raises
    ------
    ExportError when the export cannot be used (as ``run`` does), NotebookError
    when a notebook fails for another reason.
    """
    import sys

    for name in SKIPPED_MODULES:           # before papermill imports nbformat
        sys.modules.setdefault(name, None)
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    exports = Path(exports).expanduser().resolve()
    if not exports.is_dir():
        raise ExportError(exports, "export folder not found")
    plan = outdir.check_out(Path(out).expanduser(), export=exports, previous=previous,
                            force=force)
    out = plan.out
    source = Path(source) if source else config.NOTEBOOKS
    for name in notebooks:
        if not (source / f"{name}.ipynb").exists():
            raise FileNotFoundError(2, "notebook not found", str(source / f"{name}.ipynb"))
    result = ReportRun(out=out)
    whole = tuple(notebooks) == NOTEBOOKS       # a part of a report is never reused
    what = {"as_of": as_of, "seed": seed, "previous": previous, "cases": cases,
            "source": source}
    earlier = _earlier_report(plan) if whole and not fresh else None
    if earlier is not None and earlier == made_from(exports, **what):
        result.kept = [n for n in notebooks if n != RING_NOTEBOOK]
    to_run = [n for n in notebooks if n not in result.kept]
    bar = progress(total=len(to_run)) if progress else None
    with outdir.OutputFolder(plan, "report") as folder:
        tmp = folder.tmp
        if result.kept:
            log.info("%s holds this export's report: running %s only", out, RING_NOTEBOOK)
            _copy_earlier(out, tmp)
        executed = tmp / "notebooks"
        executed.mkdir(exist_ok=True)
        params = {"EXPORTS": str(exports), "OUT": str(tmp), "AS_OF": as_of, "SEED": int(seed),
                  "RING": ring,
                  "PREVIOUS": str(Path(previous).expanduser().resolve()) if previous else None,
                  "CASES": str(Path(cases).expanduser().resolve()) if cases else None}
        try:
            for name in to_run:
                src = source / f"{name}.ipynb"
                dst = executed / f"{name}.ipynb"
                if bar is not None and hasattr(bar, "set_description_str"):
                    bar.set_description_str(name)   # the bar (or a line) names the notebook
                t0 = time.perf_counter()
                log.info("executing %s", name)
                try:
                    # Saved once at the end (or on a failing cell), not after every cell:
                    # each save writes and validates the whole notebook.
                    _execute(pm, src, dst, parameters=params, kernel_name=kernel_name,
                             progress_bar=False, cwd=str(tmp), log_output=False,
                             extra_arguments=KERNEL_ARGUMENTS,
                             request_save_on_cell_execute=False)
                except PapermillExecutionError as exc:
                    msg = " ".join(str(exc.evalue).split())[:300]
                    if exc.ename == "RejectRateError":
                        # Keep the quarantine notebook 01 wrote, where the message says.
                        where = folder.keep_rejects(f"ringscope report stopped: {msg}")
                        raise ExportError(None, msg.replace("see rejects/",
                                                            f"see {where}/")) from None
                    if exc.ename in ("ExportError",):
                        raise ExportError(None, msg) from None
                    where = f"notebook {name}"
                    if exc.ename in USER_ERRORS:   # a bad parameter: the user can act on it
                        raise ValueError(f"{msg} [{where}]") from None
                    kept = _keep_failed(dst, out)
                    raise NotebookError(f"{where} failed in cell {exc.exec_count}: "
                                        f"{exc.ename}: {msg} (executed copy: {kept})") from None
                result.seconds[name] = round(time.perf_counter() - t0, 2)
                if bar:
                    bar.update(1)
        finally:
            if bar:
                bar.close()
        kept_key = store.kept_key(tmp) if whole else None
        made = None if kept_key is None else made_from(exports, findings=kept_key, **what)
        folder.commit(report={"made_from": made, "ring": ring, "kept": result.kept})
    for note in folder.notes:
        log.warning(note)
    result.notebooks = [out / "notebooks" / f"{name}.ipynb" for name in notebooks]
    if (out / "report.html").exists():
        result.report = out / "report.html"
    if (out / "charts").is_dir():
        result.charts = sorted((out / "charts").iterdir())
    return result


def _keep_failed(notebook: Path, out: Path) -> Path:
    """Keep the executed copy of a failed notebook beside OUT (its partial folder goes)."""
    if not notebook.exists():
        return notebook
    dst = out.parent / f"{out.name}.failed-{notebook.name}"
    try:
        shutil.copyfile(notebook, dst)
    except OSError:
        return notebook
    return dst


# -- chart export ------------------------------------------------------------------------------

def export_charts(figures: dict, folder: str | Path, *, formats: tuple[str, ...] = ("png", "pdf"),
                  width: int = 1100, scale: float = 2.0, stamp=None,
                  plotly_js: str | Path | None = None) -> list[Path]:
    """Write each figure as NAME.html and NAME.png/.pdf.

    The pages load ``plotly_js`` (default ``folder/plotly.min.js``; a report passes its one
    copy at OUT's root) by a relative path: they work offline.

    All static images are made in one kaleido session (one Chromium start), which
    is several times faster than one per figure. ``figures`` maps a file name
    (letters, digits, ``_`` and ``-``) to a plotly figure. A PDF's creation and
    modification dates are ``stamp`` (the data time, :func:`analysis.report.data_time`),
    or 1970-01-01 without one, never the clock: the same figures give the same bytes.

    Returns the paths written.
    """
    import plotly.io as pio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    js = Path(plotly_js) if plotly_js is not None else folder / PLOTLY_JS
    written: list[Path] = []
    for name, fig in figures.items():
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError(f"bad chart name {name!r}")
        written.append(write_html(fig, folder / f"{name}.html", js))
    if formats and figures:
        figs, files, heights = [], [], []
        for fmt in formats:
            for name, fig in figures.items():
                figs.append(fig)
                files.append(folder / f"{name}.{fmt}")
                heights.append(int(fig.layout.height or 500))
        if chromium_path() is None:
            raise RuntimeError("static chart export needs Chromium; run `make setup` or "
                               "install it (apt-get install chromium)")
        pio.write_images(figs, files, width=width, height=heights, scale=scale)
        for f in files:
            if f.suffix == ".pdf":
                _stamp_pdf(f, stamp)
        written += files
    return written


def _stamp_pdf(path: Path, stamp=None) -> None:
    """Set the PDF's /CreationDate and /ModDate to ``stamp`` (UTC; None: 1970-01-01), in
    place: the 14 digits are replaced by 14 digits, so the cross-reference offsets hold."""
    import re

    digits = (stamp.strftime("%Y%m%d%H%M%S") if stamp is not None else "19700101000000")
    data = path.read_bytes()
    new = re.sub(rb"(/(?:CreationDate|ModDate) ?\(D:)\d{14}",
                 lambda m: m.group(1) + digits.encode(), data)
    if new != data:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(new)
        tmp.replace(path)


def chromium_path() -> str | None:
    """The Chromium (or Chrome) executable: $CHROMIUM, else the first one on the PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None
