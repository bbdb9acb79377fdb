"""Command line: ``python -m analysis run|report`` (alias ``ringscope``).

The workshop (synthetic exports, evaluation, quality, benchmarks) has its own:
``python -m analysis.workshop``.

Errors the user can act on end as one line on stderr and exit code 2; no
traceback reaches the user.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from .contract import ExportError
from .findings import is_flagged

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAIL, EXIT_UNUSABLE = 0, 1, 2


def _date(value: str) -> str:
    """An as-of day: a real date from 1970 up to tomorrow (UTC); an export holds nothing later."""
    from datetime import date, datetime, timedelta, timezone

    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None
    latest = datetime.now(timezone.utc).date() + timedelta(days=1)
    if not date(1970, 1, 1) <= day <= latest:
        raise argparse.ArgumentTypeError(f"{value!r} is not a day an export can hold "
                                         f"(1970-01-01 to {latest.isoformat()})")
    return day.isoformat()


def _resolution(value: str) -> float:
    """Community resolution: a finite number > 0."""
    import math

    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not math.isfinite(v) or v <= 0 or v > 1e6:
        raise argparse.ArgumentTypeError(f"must be a number above 0 and at most 1e6 (such as "
                                         f"1.0): {value!r}")
    return v


def _whole(low: int, high: int, what: str):
    """An argparse type: a whole number from ``low`` to ``high`` (``what`` says why)."""
    def parse(value: str) -> int:
        try:
            v = int(value.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"must be {what}: {value!r}")
        return v
    return parse


_hub_degree = _whole(1, 2 ** 62, f"1 or more, at most {2 ** 62} (accounts sharing a device "
                                 f"or IP)")
_seed = _whole(0, 2 ** 31 - 1, f"between 0 and {2 ** 31 - 1}")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), naming the flag."""

    def error(self, message: str):
        self.exit(EXIT_UNUSABLE, f"error: {' '.join(message.split())}\n")


def _rate(value: str) -> float:
    try:
        v = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {value!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"rate must be between 0 and 1: {value!r}")
    return v


def _memory(value: str) -> str:
    """A DuckDB memory size such as ``3GB``, ``800MB`` or ``1.5GiB``."""
    if not re.fullmatch(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", value,
                        flags=re.IGNORECASE):
        raise argparse.ArgumentTypeError(f"not a memory size (e.g. 3GB, 800MB): {value!r}")
    return value.strip()


def build_parser() -> argparse.ArgumentParser:
    from .communities import ENGINES

    p = _Parser(prog="python -m analysis",
                                description="Find data-harvesting rings in platform exports.")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run the pipeline on an export folder")
    r.add_argument("exports_dir", type=Path)
    r.add_argument("--out", type=Path, required=True,
                   help="output folder (replaced atomically): missing, empty or an earlier "
                        "output of ringscope")
    r.add_argument("--force", action="store_true",
                   help="--out is a folder ringscope did not write: move it aside (to "
                        "OUT.before-ringscope-TIME) instead of refusing")
    r.add_argument("--as-of", type=_date, default=None,
                   help="use only events up to the end of this day (UTC)")
    r.add_argument("--seed", type=_seed, default=7)
    r.add_argument("--communities", choices=ENGINES, default="igraph",
                   help="community engine (louvain = python-louvain)")
    r.add_argument("--resolution", type=_resolution, default=1.0)
    r.add_argument("--hub-degree", type=_hub_degree, default=200,
                   help="devices/IPs shared by more accounts are hubs, left out of the graph")
    r.add_argument("--max-reject-rate", type=_rate, default=0.05,
                   help="fail (exit 2) when more of a table's rows are rejected (default 5%%)")
    r.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb",
                   help="engine of the heavy stage (events → per-account aggregates): embedded "
                        "DuckDB, or Apache Spark (needs Java 17+)")
    r.add_argument("--spark-master", default=None, metavar="URL",
                   help="Spark master for --engine spark (default local[2]; under spark-submit, "
                        "the master it was given)")
    r.add_argument("--spark-staging", default=None, metavar="DIR",
                   help="folder where the validated tables are staged as Parquet for Spark "
                        "(default: the run's workspace; on a cluster a shared mount)")
    r.add_argument("--memory-limit", type=_memory, default="3GB", metavar="SIZE",
                   help="DuckDB's memory limit, e.g. 3GB or 800MB (default 3GB); tables "
                        "and sorts beyond it spill to the run's workspace folder")
    r.add_argument("--previous", type=Path, default=None, metavar="PREV_OUT",
                   help="the previous run's output folder: rings keep their ring_key, get a "
                        "status (new, grown, ...), and communities start from its own")
    r.add_argument("--cases", type=Path, default=None, metavar="CASES.csv",
                   help="analysts' verdicts (ring_key, verdict, note, decided_at); needs "
                        "--previous")
    r.add_argument("--handoff", action="append", default=[], metavar="RING",
                   help="write this ring (key, id or rank) as GEXF, GraphML and Neo4j import "
                        "CSVs into OUT/handoff/ (real ids); repeatable")
    r.add_argument("--no-progress", action="store_true")

    n = sub.add_parser("report", help="run the five notebooks headless on an export "
                                      "(report.html, charts, executed notebooks)")
    n.add_argument("exports_dir", type=Path)
    n.add_argument("--out", type=Path, required=True,
                   help="output folder (replaced atomically), as for run")
    n.add_argument("--force", action="store_true",
                   help="--out is a folder ringscope did not write: move it aside first")
    n.add_argument("--as-of", type=_date, default=None,
                   help="use only events up to the end of this day (UTC)")
    n.add_argument("--seed", type=_seed, default=7)
    n.add_argument("--ring", default=None,
                   help="ring for notebook 04: rank or ring id (default: the top flagged ring); "
                        "when OUT holds this export's report (same parameters, notebooks and "
                        "code), only notebook 04 runs again")
    n.add_argument("--fresh", action="store_true",
                   help="run all five notebooks even when OUT holds this export's report")
    n.add_argument("--previous", type=Path, default=None, metavar="PREV_OUT",
                   help="the previous run's output folder (ring keys, statuses)")
    n.add_argument("--cases", type=Path, default=None, metavar="CASES.csv",
                   help="analysts' verdicts; notebook 04's picker records into it")
    n.add_argument("--no-progress", action="store_true")
    return p


class LineProgress:
    """Progress as one line per step, for output that is not a terminal (a log, CI, a pipe):
    the tqdm calls the runs make (``set_description_str``, ``update``, ``close``) as lines on
    stdout (stderr keeps its one line per error).

    >>> import io
    >>> out = io.StringIO()
    >>> bar = LineProgress(2, "report", file=out, clock=iter([0, 0, 1.5, 1.5, 4, 4]).__next__)
    >>> bar.set_description_str("01_load"); bar.update(1)
    >>> bar.set_description_str("02_graph"); bar.update(1); bar.close()
    >>> print(out.getvalue(), end="")
    report [1/2] 01_load ...
    report [1/2] 01_load done (1.5 s)
    report [2/2] 02_graph ...
    report [2/2] 02_graph done (2.5 s)
    report: 2 of 2 steps done in 4.0 s
    """

    def __init__(self, total: int, what: str, *, file=None, clock=None):
        import time

        self.total, self.n, self.what = total, 0, what
        self.file = file if file is not None else sys.stdout
        self.clock = clock or time.perf_counter
        self.t0 = self.started = self.clock()
        self.desc = ""

    def _say(self, text: str) -> None:
        print(f"{self.what} [{min(self.n + 1, self.total)}/{self.total}] {text}", file=self.file,
              flush=True)

    def set_description_str(self, desc: str) -> None:
        desc = desc.removeprefix("ringscope ")
        if desc and desc != self.desc:
            self.desc = desc
            self.started = self.clock()
            self._say(f"{desc} ...")

    def update(self, n: int = 1) -> None:
        self._say(f"{self.desc} done ({self.clock() - self.started:.1f} s)")
        self.n += n

    def close(self) -> None:
        print(f"{self.what}: {self.n} of {self.total} steps done in "
              f"{self.clock() - self.t0:.1f} s", file=self.file, flush=True)


def _cmd_report(a) -> int:
    from .notebook.runner import run_notebooks

    progress = None
    if not a.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        def progress(total):
            return tqdm(total=total, desc="notebooks", unit="nb", file=sys.stderr)
    elif not a.no_progress:   # a log or a pipe: a line per notebook on stdout, start and end
        def progress(total):
            return LineProgress(total, "report")
    res = run_notebooks(a.exports_dir, a.out, as_of=a.as_of, seed=a.seed, ring=a.ring,
                        previous=a.previous, cases=a.cases, progress=progress,
                        force=a.force, fresh=a.fresh)
    ran = res.executed
    kept = (f" ({len(res.kept)} kept from the report already there, made from the same "
            f"export, parameters and notebooks; --fresh runs all)" if res.kept else "")
    print(f"{len(ran)} {'notebook' if len(ran) == 1 else 'notebooks'} executed into "
          f"{res.out / 'notebooks'}{kept}; report {res.report}; {len(res.charts)} chart files "
          f"in {res.out / 'charts'}")
    return EXIT_OK


def _cmd_run(a) -> int:
    from .params import RunParams
    from .pipeline import run

    progress = None
    if not a.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        def progress(total):
            # Steps differ in length by 100x: show elapsed time, not a rate or an ETA.
            return tqdm(total=total, desc="ringscope", file=sys.stderr,
                        bar_format="{desc}: {bar} {n_fmt}/{total_fmt} steps [{elapsed}]")
    elif not a.no_progress:
        def progress(total):
            return LineProgress(total, "run")
    if a.engine != "spark" and (a.spark_master or a.spark_staging):
        raise ValueError("--spark-master and --spark-staging need --engine spark")
    params = RunParams(as_of=a.as_of, seed=a.seed, communities=a.communities,
                       resolution=a.resolution, hub_degree=a.hub_degree,
                       max_reject_rate=a.max_reject_rate, engine=a.engine,
                       spark_master=a.spark_master, spark_staging=a.spark_staging,
                       memory_limit=a.memory_limit,
                       previous=str(a.previous) if a.previous else None,
                       cases=str(a.cases) if a.cases else None, handoff=tuple(a.handoff))
    export, findings = run(a.exports_dir, a.out, params, progress=progress, force=a.force)
    rings = findings.rings.rings
    n_flag = int(is_flagged(rings).sum()) if len(rings) else 0
    rej = sum(c.rejected for c in export.counts.values())
    since = ""
    if findings.tracking is not None and findings.tracking.previous is not None:
        c = findings.tracking.counts()
        since = (f" ({c['new']} new, {c['continuing']} continuing, {c['closed']} closed since "
                 f"the previous run)")
    print(f"{len(rings)} candidate rings, {n_flag} flagged{since}; {rej} rows rejected; "
          f"outputs in {a.out}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    from . import outdir

    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    with outdir.interrupts():
        try:
            return _run(a)
        except KeyboardInterrupt as exc:       # a signal between the run's own handlers
            signum = outdir.interrupted_by() or getattr(exc, "signum", 2)
            print(f"error: {outdir.interrupt_message(signum)}", file=sys.stderr)
            return outdir.exit_code(signum)


def _run(a) -> int:
    from . import outdir

    try:
        return {"run": _cmd_run, "report": _cmd_report}[a.command](a)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a signal turns any failure into "interrupted"
        signum = outdir.interrupted_by()
        if signum is not None:
            print(f"error: {outdir.interrupt_message(signum)}", file=sys.stderr)
            return outdir.exit_code(signum)
        return _fail(a, exc)


def _fail(a, exc: Exception) -> int:
    """One line on stderr for an exception, and the exit code."""
    if isinstance(exc, ExportError):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError,
                        NotADirectoryError)):
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if isinstance(exc, ValueError):
        msg = " ".join(str(exc).split())[:300]
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_UNUSABLE
    if isinstance(exc, MemoryError):
        print("error: out of memory; raise --memory-limit if the machine has more, or run "
              "the heavy stage on Spark (--engine spark)", file=sys.stderr)
        return EXIT_FAIL
    if isinstance(exc, BrokenPipeError):
        # The reader went away (e.g. `| head`); not an error of the run.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    if isinstance(exc, OSError):
        # Disk full, a read-only folder, ...: say which path, or the output folder.
        where = exc.filename or getattr(a, "out", None) or ""
        print(f"error: {where}: {exc.strerror or exc} (nothing was replaced; the previous "
              f"output is as it was)", file=sys.stderr)
        return EXIT_FAIL
    import duckdb

    from .engines.spark import SparkUnavailable

    if isinstance(exc, duckdb.OutOfMemoryException):
        limit = getattr(a, "memory_limit", None)
        within = f" within --memory-limit {limit}" if limit else ""
        print(f"error: DuckDB ran out of memory{within} (spilling to disk was not enough); "
              f"raise --memory-limit, or run the heavy stage on Spark (--engine spark)",
              file=sys.stderr)
        return EXIT_FAIL
    if isinstance(exc, duckdb.IOException):
        msg = " ".join(str(exc).split())[:300]
        print(f"error: {msg} (output folder {getattr(a, 'out', '')}; the previous output is "
              f"as it was)", file=sys.stderr)
        return EXIT_FAIL
    if isinstance(exc, duckdb.InterruptException) or "Query interrupted" in str(exc):
        print("error: interrupted; the partial output was removed and the previous output "
              "left as it was", file=sys.stderr)
        return 130
    if isinstance(exc, SparkUnavailable):   # no Java 17+ or no pyspark: say so plainly
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    msg = " ".join(str(exc).split())[:300]
    print(f"error: unexpected {type(exc).__name__}: {msg} (re-run with -v for the log)",
          file=sys.stderr)
    if a.verbose:
        logging.getLogger(__name__).exception("unexpected error")
    return EXIT_FAIL
