"""Headless Chromium and a small PNG reader: how the tests look at the report, and how
the README's screenshots are made (``python -m analysis.workshop screenshots OUT``).

Workshop code: the product never imports it.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import config
from ..notebook.runner import chromium_path

__all__ = ["chromium", "chromium_path", "screenshot", "docs_screenshots", "png_pixels",
           "png_summary"]


# -- headless Chromium ---------------------------------------------------------------------------

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
