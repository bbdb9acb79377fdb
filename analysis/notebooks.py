"""Headless re-runs: the five notebooks on a new export, and the chart exports.

``python -m analysis report EXPORTS --out OUT`` (``make report``) calls
:func:`run_notebooks`, which executes ``notebooks/01_…`` to ``05_…`` with
papermill, injecting the parameters (EXPORTS, OUT, AS_OF, SEED, RING) after
each notebook's ``parameters`` cell. The notebooks write into ``OUT``::

    OUT/notebooks/0N_….ipynb     the executed notebooks (04 holds real ids)
    OUT/rejects/<table>.csv      quarantined rows (01)
    OUT/rings.csv, ring_members.csv, partners_review.csv   (03; real ids)
    OUT/investigation/<ring>/    the investigated ring's evidence (04; real ids)
    OUT/charts/NAME.html|png|pdf management charts, pseudonymised (05)
    OUT/report.html              the management page, pseudonymised (05)

Also here: :func:`export_charts` (self-contained HTML with plotly.js embedded,
and PNG and PDF through one kaleido browser session), headless Chromium
helpers (:func:`chromium`, :func:`screenshot`) and :func:`png_summary`, a
small PNG reader that tells a drawn chart from a blank one.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config
from .contract import ExportError

__all__ = ["NOTEBOOKS", "NotebookError", "ReportRun", "run_notebooks", "export_charts",
           "chromium", "chromium_path", "screenshot", "docs_screenshots", "png_pixels",
           "png_summary"]

log = logging.getLogger(__name__)

NOTEBOOKS = ("01_load_and_validate", "02_build_graph", "03_find_rings", "04_investigate_ring",
             "05_management_report")


#: The kernels log only what is critical: their warnings (such as running over local TCP)
#: would break the CLI's one-line errors; a failing cell is reported from the notebook.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
#: Errors in a notebook that come from its parameters (a ring that is not there, a bad date).
USER_ERRORS = ("ValueError",)


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


def run_notebooks(exports: str | Path, out: str | Path, *, as_of: str | None = None,
                  seed: int = 7, ring: int | str | None = None,
                  notebooks: list[str] | tuple[str, ...] = NOTEBOOKS,
                  source: Path | None = None, kernel_name: str | None = None,
                  progress=None) -> ReportRun:
    """Execute the notebooks headless on ``exports``, writing everything into ``out``.

    Parameters
    ----------
    exports, out : the export folder and the output folder (created)
    as_of, seed, ring : injected as AS_OF, SEED and RING
    notebooks : which notebooks to run, by name, in order
    source : folder of the notebooks (default ``notebooks/`` of the project)
    kernel_name : Jupyter kernel (default: the one the notebook names, ``python3``)
    progress : optional ``callable(total) -> bar`` with ``update()``/``close()`` (tqdm)

    Raises
    ------
    ExportError when the export cannot be used (as ``run`` does), NotebookError
    when a notebook fails for another reason.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    exports = Path(exports).expanduser().resolve()
    if not exports.is_dir():
        raise ExportError(exports, "export folder not found")
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    source = Path(source) if source else config.NOTEBOOKS
    executed = out / "notebooks"
    executed.mkdir(exist_ok=True)
    # Charts and report come from this run only.
    shutil.rmtree(out / "charts", ignore_errors=True)
    (out / "report.html").unlink(missing_ok=True)
    params = {"EXPORTS": str(exports), "OUT": str(out), "AS_OF": as_of, "SEED": int(seed),
              "RING": ring}
    result = ReportRun(out=out)
    bar = progress(total=len(notebooks)) if progress else None
    try:
        for name in notebooks:
            src = source / f"{name}.ipynb"
            if not src.exists():
                raise FileNotFoundError(2, "notebook not found", str(src))
            dst = executed / f"{name}.ipynb"
            t0 = time.perf_counter()
            log.info("executing %s", name)
            try:
                pm.execute_notebook(str(src), str(dst), parameters=params,
                                    kernel_name=kernel_name, progress_bar=False,
                                    cwd=str(out), log_output=False,
                                    extra_arguments=KERNEL_ARGUMENTS)
            except PapermillExecutionError as exc:
                msg = " ".join(str(exc.evalue).split())[:300]
                if exc.ename == "ExportError":
                    raise ExportError(None, msg) from None
                where = f"notebook {name} (executed copy: {dst})"
                if exc.ename in USER_ERRORS:       # a bad parameter: the user can act on it
                    raise ValueError(f"{msg} [{where}]") from None
                raise NotebookError(f"{where} failed in cell {exc.exec_count}: "
                                    f"{exc.ename}: {msg}") from None
            result.seconds[name] = round(time.perf_counter() - t0, 2)
            result.notebooks.append(dst)
            if bar:
                bar.update(1)
    finally:
        if bar:
            bar.close()
    if (out / "report.html").exists():
        result.report = out / "report.html"
    if (out / "charts").is_dir():
        result.charts = sorted((out / "charts").iterdir())
    return result


# -- chart export ------------------------------------------------------------------------------

def export_charts(figures: dict, folder: str | Path, *, formats: tuple[str, ...] = ("png", "pdf"),
                  width: int = 1100, scale: float = 1.0) -> list[Path]:
    """Write each figure as NAME.html (plotly.js embedded: works offline) and NAME.png/.pdf.

    All static images are made in one kaleido session (one Chromium start), which
    is several times faster than one per figure. ``figures`` maps a file name
    (letters, digits, ``_`` and ``-``) to a plotly figure.

    Returns the paths written.
    """
    import plotly.io as pio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, fig in figures.items():
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError(f"bad chart name {name!r}")
        path = folder / f"{name}.html"
        fig.write_html(str(path), include_plotlyjs=True, full_html=True,
                       config={"displaylogo": False, "responsive": True})
        written.append(path)
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
        written += files
    return written


# -- headless Chromium ---------------------------------------------------------------------------

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


@dataclass
class ChromiumResult:
    dom: str
    log: str
    returncode: int

    @property
    def console(self) -> list[str]:
        """The page's console messages."""
        return [line.split(":CONSOLE", 1)[1] for line in self.log.splitlines()
                if ":CONSOLE" in line]

    @property
    def errors(self) -> list[str]:
        """Console messages that report script errors."""
        return [m for m in self.console if "Uncaught" in m or "Error" in m]


def chromium(target: str | Path, *, screenshot: str | Path | None = None,
             dump_dom: bool = False, window: tuple[int, int] = (1200, 3000),
             budget_ms: int = 15000, timeout: float = 180) -> ChromiumResult:
    """Load a file (or URL) in headless Chromium; dump its DOM or take a screenshot.

    Runs with ``--no-sandbox --disable-gpu --disable-background-networking``,
    logs the console to stderr (see :attr:`ChromiumResult.errors`) and waits
    ``budget_ms`` of virtual time so scripts (plotly) finish drawing.
    """
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("Chromium not found; run `make setup` or install chromium")
    url = str(target)
    if "://" not in url:
        url = Path(target).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="ringscope-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-extensions", "--no-first-run",
               "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
               f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
               f"--virtual-time-budget={int(budget_ms)}",
               "--run-all-compositor-stages-before-draw"]
        if screenshot is not None:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            cmd.append(f"--screenshot={Path(screenshot).resolve()}")
        if dump_dom:
            cmd.append("--dump-dom")
        proc = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=timeout,
                              errors="replace")
    return ChromiumResult(dom=proc.stdout if dump_dom else "", log=proc.stderr,
                          returncode=proc.returncode)


def screenshot(target: str | Path, png: str | Path, *, window: tuple[int, int] = (1200, 3000),
               budget_ms: int = 15000) -> Path:
    """A PNG screenshot of a page rendered in headless Chromium."""
    png = Path(png)
    res = chromium(target, screenshot=png, window=window, budget_ms=budget_ms)
    if not png.exists():
        raise RuntimeError(f"Chromium made no screenshot of {target} "
                           f"(exit {res.returncode}): {res.log.strip()[-300:]}")
    return png


def docs_screenshots(out: str | Path, docs: str | Path | None = None) -> list[Path]:
    """The README's pictures from a report run: ``docs/report.png`` (report.html) and
    ``docs/ring_network.png`` (charts/ring_network.html, pseudonymised)."""
    out = Path(out)
    docs = Path(docs) if docs else config.DOCS
    made = [screenshot(out / "report.html", docs / "report.png", window=(1200, 2600))]
    net = out / "charts" / "ring_network.html"
    if net.exists():
        made.append(screenshot(net, docs / "ring_network.png", window=(1100, 700)))
    return made


# -- PNG check -----------------------------------------------------------------------------------

def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_pixels(path: str | Path) -> np.ndarray:
    """Decode an 8-bit, non-interlaced PNG into an array (height, width, channels).

    Enough of PNG for what kaleido and Chromium write (grey, RGB, RGBA,
    palette), so tests can check pixels without an imaging library.
    """
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, palette = 8, [], None
    width = height = depth = ctype = interlace = None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if depth != 8 or interlace:
        raise ValueError(f"{path}: only 8-bit non-interlaced PNGs are supported")
    bpp = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    stride = width * bpp
    rows = raw.reshape(height, stride + 1)
    img = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        f, line = rows[y, 0], rows[y, 1:]
        if f == 0:
            cur = line.copy()
        elif f == 1:
            cur = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif f == 2:
            cur = line + prev
        else:
            ln, up = line.tolist(), prev.tolist()
            out = [0] * stride
            for i in range(stride):
                a = out[i - bpp] if i >= bpp else 0
                if f == 3:
                    out[i] = (ln[i] + ((a + up[i]) >> 1)) & 0xFF
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    out[i] = (ln[i] + _paeth(a, up[i], c)) & 0xFF
            cur = np.array(out, dtype=np.uint8)
        img[y] = cur
        prev = cur
    img = img.reshape(height, width, bpp)
    if ctype == 3 and palette is not None:
        img = palette[img[:, :, 0]]
    return img


def png_summary(path: str | Path) -> dict:
    """Size of a PNG, how many distinct colours it has and the share of its commonest one.

    A blank image has one colour (share 1.0); a drawn chart has many.
    """
    img = png_pixels(path)
    h, w, ch = img.shape
    rgb = img[:, :, :3] if ch >= 3 else np.repeat(img[:, :, :1], 3, axis=2)
    flat = (rgb[:, :, 0].astype(np.uint32) << 16) | (rgb[:, :, 1].astype(np.uint32) << 8) \
        | rgb[:, :, 2].astype(np.uint32)
    values, counts = np.unique(flat.reshape(-1), return_counts=True)
    return {"width": int(w), "height": int(h), "colours": int(len(values)),
            "top_share": float(counts.max() / counts.sum()),
            "palette": {f"#{int(v):06X}": int(c) for v, c in zip(values, counts)}}
