"""environment.yml mirrors pyproject.toml: the same packages, the same lower bounds."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names for the PyPI packages that are named differently there.
CONDA_NAMES = {"duckdb": "python-duckdb", "igraph": "python-igraph", "kaleido": "python-kaleido"}
# conda-forge packages with no PyPI twin: Java for the Spark engine (pip users get it from
# the system; scripts/setup.sh installs it).
CONDA_ONLY = {"openjdk": ">=17"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    expected = {CONDA_NAMES.get(n, n): spec for n, spec in map(_split, reqs)} | CONDA_ONLY
    conda = {}
    text = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    for line in text.splitlines():
        m = re.match(r"^\s{2}-\s+([A-Za-z0-9_.\-]+)(.*)$", line)
        if m and m.group(1) not in ("python", "pip"):
            conda[m.group(1).lower()] = m.group(2).strip()
    assert conda == expected
