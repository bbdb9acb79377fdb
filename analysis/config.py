"""Paths: the project root and every default path below it.

Notebooks and the CLI take their defaults from here, never from relative
strings such as ``'../data'``, so they work whatever the working directory is
(papermill and CI run them from elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROJECT_ROOT", "DATA", "DEMO_EXPORT", "REPORTS", "NOTEBOOKS", "DOCS",
           "export_dir", "out_dir"]

#: The repository's root folder (the one holding ``pyproject.toml``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA = PROJECT_ROOT / "data"
#: Where ``make demo`` writes the synthetic demo export.
DEMO_EXPORT = DATA / "demo" / "export"
#: Environment variables that set the notebooks' defaults (``make lab EXPORTS=… OUT=…``).
EXPORT_ENV, OUT_ENV = "RINGSCOPE_EXPORT", "RINGSCOPE_OUT"
#: Set in the kernels of a headless report (``report``): nobody is there to click, so the
#: notebooks' widgets show a note instead (:mod:`analysis.notebook.widgets`).
HEADLESS_ENV = "RINGSCOPE_HEADLESS"
#: Default home of run outputs (git-ignored).
REPORTS = PROJECT_ROOT / "reports"
NOTEBOOKS = PROJECT_ROOT / "notebooks"
DOCS = PROJECT_ROOT / "docs"


def export_dir(value: str | Path | None = None) -> Path:
    """The export folder to read: ``value``, else ``$RINGSCOPE_EXPORT``, else the demo export.

    >>> os.environ.pop(EXPORT_ENV, None) and None
    >>> export_dir(None) == DEMO_EXPORT
    True
    """
    value = value or os.environ.get(EXPORT_ENV)
    return Path(value).expanduser().resolve() if value else DEMO_EXPORT


def out_dir(value: str | Path | None = None) -> Path:
    """The output folder (created): ``value``, else ``$RINGSCOPE_OUT``, else ``reports/latest``."""
    value = value or os.environ.get(OUT_ENV)
    path = Path(value).expanduser().resolve() if value else REPORTS / "latest"
    path.mkdir(parents=True, exist_ok=True)
    return path
