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


def _conda(name: str) -> dict[str, str]:
    conda = {}
    text = (ROOT / name).read_text().split("dependencies:", 1)[1]
    for line in text.splitlines():
        m = re.match(r"^\s{2}-\s+([A-Za-z0-9_.\-]+)(.*)$", line)
        if m and m.group(1) not in ("python", "pip"):
            conda[m.group(1).lower()] = m.group(2).strip()
    return conda


def _expected(reqs: list[str]) -> dict[str, str]:
    return {CONDA_NAMES.get(n, n): spec for n, spec in map(_split, reqs)}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert _conda("environment.yml") == _expected(project["dependencies"] + extras["dev"])
    assert _conda("environment-spark.yml") == _expected(extras["spark"]) | CONDA_ONLY


def test_spark_is_an_extra_not_a_base_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {n for n, _ in map(_split, project["dependencies"])}
    assert "pyspark" not in base and "pyspark" in {n for n, _ in map(
        _split, project["optional-dependencies"]["spark"])}


def test_notebooks_reach_git_without_outputs(tmp_path):
    """.gitattributes sends notebooks through nbstripout; the filter strips outputs."""
    import subprocess
    import sys

    import nbformat

    root = Path(__file__).resolve().parent.parent
    assert "*.ipynb filter=nbstripout" in (root / ".gitattributes").read_text()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('a0001822')")
    cell.outputs = [nbformat.v4.new_output("stream", text="a0001822\n")]
    cell.execution_count = 1
    nb.cells.append(cell)
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    subprocess.run([sys.executable, "-m", "nbstripout", str(path)], check=True)
    stripped = nbformat.read(path, as_version=4)
    assert stripped.cells[0].outputs == [] and "a0001822\n" not in path.read_text()
