"""Analyse once: a run's findings kept in its output folder, loaded again while nothing changed.

:func:`analysis.pipeline.open_findings` with ``out=OUT`` (what every notebook
does) looks in ``OUT/.ringscope/`` first. When the findings there were made
from the same export (the SHA-256 fingerprints of its files, as in
``run.json``), with the same as-of and parameters, by the same code, it loads
them and the validated tables in seconds instead of analysing again; otherwise
it analyses and keeps the new findings there. ``make report`` therefore
analyses the export once, in notebook 01, and notebooks 02–05 load it.

``OUT/.ringscope/`` holds:

``key.json``            what the findings were made from (:func:`key`); no raw ids
``workspace.duckdb``    the validated tables and the tie tables of the as-of
``findings.pickle``     the export's counts and the findings before ring tracking

Ring tracking (``--previous``, ``--cases``) is not kept: it is cheap, and a
verdict recorded since must count, so it is applied again on every load. The
files hold real ids, like ``ring_members.csv`` beside them; they are read only
from the tool's own output folder (pickle runs what it loads: keep OUT yours).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import platform
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .aggregate import _TIE_STEPS, _as_of_key, plan, run_duckdb
from .findings import Findings
from .load import Export, export_fingerprints
from .params import RunParams
from .workspace import Workspace, open_workspace

__all__ = ["FOLDER", "FORMAT", "key", "save", "load", "kept_key", "matches", "code_digest",
           "digest"]

log = logging.getLogger(__name__)

#: The folder inside the output folder.
FOLDER = ".ringscope"
#: Bumped when what is kept changes shape.
FORMAT = 1
#: Run parameters that do not change the findings (where and how fast, not what).
_NEUTRAL = ("previous", "cases", "handoff", "memory_limit", "spark_master", "spark_staging")
_PACKAGE = Path(__file__).resolve().parent


def code_digest() -> str:
    """SHA-256 over the product's source files (not the notebooks' helpers or the workshop):
    findings made by other code are analysed again."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        rel = path.relative_to(_PACKAGE).as_posix()
        if rel.startswith(("workshop/", "notebook/")):
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def key(export_dir: Path | str, params: RunParams, warm_start: Path | str | None = None) -> dict:
    """What findings are made from: the export's fingerprints, the parameters that change them
    (as-of, seed, engines, thresholds), the code and the libraries; and, for engines that start
    from the previous run's communities, that file's digest (``warm_start``)."""
    record = {k: v for k, v in params.record().items() if k not in _NEUTRAL}
    warm = None
    if warm_start is not None and Path(warm_start).exists():
        warm = hashlib.sha256(Path(warm_start).read_bytes()).hexdigest()
    return {"format": FORMAT, "code": code_digest(),
            "versions": {"python": platform.python_version(),
                         **{p: _version(p) for p in ("pandas", "numpy", "duckdb", "igraph")}},
            "inputs": export_fingerprints(Path(export_dir)), "parameters": record,
            "warm_start": warm}


def _same(a: dict, b: dict) -> bool:
    """Keys compared as ``key.json`` stores them (JSON: tuples read back as lists)."""
    return json.loads(json.dumps(a, sort_keys=True, default=str)) == \
        json.loads(json.dumps(b, sort_keys=True, default=str))


def _main_tables(con: Workspace) -> list[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'memory' "
                       "AND schema_name = 'main' AND NOT temporary ORDER BY table_name").fetchall()
    return [r[0] for r in rows if not r[0].startswith("chk_")]


def _tie_tables(con: Workspace, as_of) -> list[str]:
    """The tie tables the workspace holds for ``as_of`` (temporary tables of the plan)."""
    if not con.has_built(_TIE_STEPS, _as_of_key(as_of)):
        return []
    kinds = {s.name: s.kind for s in plan(as_of)}
    return [t for t in _TIE_STEPS if kinds.get(t) == "table"]


def save(out: Path | str, the_key: dict, export: Export, findings: Findings) -> Path:
    """Keep the findings (before ring tracking) and the validated tables in ``out/.ringscope``
    (written beside it and moved into place: a reader never sees half of it)."""
    out = Path(out)
    final = out / FOLDER
    tmp = out / f"{FOLDER}.part-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    con = export.con
    try:
        db = str(tmp / "workspace.duckdb").replace("'", "''")
        con.execute(f"ATTACH '{db}' AS rs_store")
        try:
            for t in _main_tables(con):
                con.execute(f'CREATE TABLE rs_store.main."{t}" AS SELECT * FROM memory.main."{t}"')
            for t in _tie_tables(con, findings.params.as_of):
                con.execute(f'CREATE TABLE rs_store.main."tie_{t}" AS SELECT * FROM temp.main."{t}"')
        finally:
            con.execute("DETACH rs_store")
        with open(tmp / "findings.pickle", "wb") as fh:
            pickle.dump({"export": replace(export, con=None), "findings": findings}, fh,
                        protocol=pickle.HIGHEST_PROTOCOL)
        (tmp / "key.json").write_text(json.dumps(
            {**the_key, "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            indent=2, sort_keys=True, default=str) + "\n")
        old = out / f"{FOLDER}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load(out: Path | str, the_key: dict, *, memory_limit: str = "3GB",
         workspace: Path | str | None = None) -> tuple[Export, Findings] | None:
    """The kept findings and a workspace holding the validated tables, when ``out/.ringscope``
    was made from exactly ``the_key``; None otherwise (or when it cannot be read)."""
    folder = Path(out) / FOLDER
    if not matches(out, the_key):
        return None
    con = open_workspace(workspace, memory_limit=memory_limit)
    try:
        with open(folder / "findings.pickle", "rb") as fh:
            kept_objects = pickle.load(fh)
        db = str(folder / "workspace.duckdb").replace("'", "''")
        con.execute(f"ATTACH '{db}' AS rs_store (READ_ONLY)")
        try:
            names = [r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'rs_store' "
                "ORDER BY table_name").fetchall()]
            for t in names:
                if t.startswith("tie_"):
                    con.execute(f'CREATE TEMP TABLE "{t[4:]}" AS SELECT * FROM rs_store.main."{t}"')
                else:
                    con.execute(f'CREATE TABLE main."{t}" AS SELECT * FROM rs_store.main."{t}"')
        finally:
            con.execute("DETACH rs_store")
    except Exception as exc:  # noqa: BLE001 - a damaged folder is analysed again, not fatal
        log.warning("%s: cannot reuse the kept findings (%s); analysing again", folder, exc)
        con.close()
        return None
    findings: Findings = kept_objects["findings"]
    as_of = findings.params.as_of
    ties = [t[4:] for t in names if t.startswith("tie_")]
    if ties:
        # The view the tie tables were built over, then the workspace knows they hold this as-of.
        run_duckdb(con, [s for s in plan(as_of) if s.name == "e"])
        con.mark_built(_TIE_STEPS, _as_of_key(as_of))
    export: Export = replace(kept_objects["export"], con=con)
    return export, findings


def kept_key(out: Path | str) -> dict | None:
    """What the findings kept in ``out/.ringscope`` were made from: their ``key.json``
    without the time it was saved; None when nothing is kept there."""
    try:
        kept = json.loads((Path(out) / FOLDER / "key.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict):
        return None
    kept.pop("saved_at", None)
    return kept


def matches(out: Path | str, the_key: dict) -> bool:
    """Whether ``out/.ringscope`` holds findings made from exactly ``the_key``."""
    kept = kept_key(out)
    return kept is not None and _same(kept, the_key)


def digest(out: Path | str) -> str | None:
    """A digest of what the findings kept in ``out/.ringscope`` were made from (their
    ``key.json``, without the time it was saved); None when nothing is kept there."""
    kept = kept_key(out)
    if kept is None:
        return None
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()
