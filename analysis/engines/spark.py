"""The heavy stage on Apache Spark (``--engine spark``).

The aggregation is not written twice. :func:`analysis.aggregate.plan` holds the
statements once, in DuckDB's SQL dialect; here :mod:`sqlglot` transpiles each
of them to Spark SQL (:func:`to_spark_sql`) and Spark runs them as temp views.
Only the ``result`` statements come back to pandas, and they are account-level
(one row per account, per account-device and account-IP link, per
account-partner coupon pair): the events never leave Spark.

Validation stays in DuckDB (:mod:`analysis.load`): it writes the compact,
validated tables ``ev``, ``accounts``, ``partners`` and ``relationships`` as Parquet into a
staging folder (:func:`stage`) and Spark reads them from there. On a cluster
that folder must be visible at the same path to the driver and every executor
(``--spark-staging``: a shared mount).

Nothing here starts unless ``--engine spark`` is asked for; a missing Java or
pyspark is one line (:class:`SparkUnavailable`), not a traceback.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import duckdb
import pandas as pd

from ..aggregate import Aggregates, Step, as_of_bound, assemble, plan

__all__ = ["SparkAggregator", "SparkUnavailable", "aggregate_spark", "java_version",
           "session", "stage", "to_spark_sql"]

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[2]"
#: Tables the plan reads; what :func:`stage` writes.
STAGED = ("ev", "accounts", "partners", "relationships")


class SparkUnavailable(RuntimeError):
    """The Spark engine cannot start here (no Java 17+, no pyspark); the message is one line."""


def java_version() -> int | None:
    """Major version of the ``java`` Spark would start (``JAVA_HOME`` first), or None."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def _memory(limit: str | None) -> str:
    """DuckDB-style memory size → Spark's (``3GB`` → ``3g``, ``512MB`` → ``512m``).

    >>> _memory("3GB"), _memory("512 MB"), _memory("2g"), _memory(None)
    ('3g', '512m', '2g', '2g')
    """
    if not limit:
        return "2g"
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt])i?b?\s*", limit.lower())
    if not m:
        raise ValueError(f"not a memory size: {limit!r} (expected e.g. 3GB)")
    return m.group(1) + m.group(2)


def _local_cores(master: str) -> int:
    m = re.fullmatch(r"local\[(\d+|\*)(?:,\d+)?\]", master.strip())
    if master.strip() == "local":
        return 1
    if not m:
        return 0
    return (os.cpu_count() or 2) if m.group(1) == "*" else int(m.group(1))


def _under_spark_submit() -> bool:
    """True when this Python process was started by ``spark-submit`` (a JVM already waits)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


_LOG4J = """\
rootLogger.level = error
# The shell's "Setting default log level" notice is silenced by these loggers having levels.
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
logger.submit.name = org.apache.spark.deploy.SparkSubmit
logger.submit.level = error
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = error
logger.context.name = org.apache.spark.SparkContext
logger.context.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = spark %p %c{1}: %m%n%ex
"""


def _log4j_file() -> str:
    path = Path(tempfile.gettempdir()) / "ringscope-spark-log4j2.properties"
    if not path.exists() or path.read_text() != _LOG4J:
        tmp = path.with_name(f"{path.name}.{os.getpid()}")
        tmp.write_text(_LOG4J)
        tmp.replace(path)
    return path.as_uri()


#: SQL settings the plan relies on (UTC makes ``UNIX_MICROS`` of a TIMESTAMP_NTZ exact).
_RUNTIME = ("spark.sql.session.timeZone", "spark.sql.parquet.inferTimestampNTZ.enabled",
            "spark.sql.execution.arrow.pyspark.enabled")


def session(master: str | None = None, *, driver_memory: str | None = "2g",
            shuffle_partitions: int | None = None, app_name: str = "ringscope"):
    """A SparkSession set up for ringscope (reused when one is already running).

    ``master`` None means: what ``spark-submit`` was given when launched by it,
    else ``local[2]``. Local mode gets few shuffle partitions (the default 200
    is for clusters and costs seconds of task overhead on a laptop). The web UI
    is off, timestamps are UTC.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            "the Spark engine needs pyspark: pip install 'ringscope[spark]' (make setup installs it)"
        ) from None
    if not _under_spark_submit():
        v = java_version()
        if v is None:
            raise SparkUnavailable("the Spark engine needs Java 17 or newer, and no java was found "
                                   "(set JAVA_HOME or install openjdk-17-jre-headless)")
        if v < 17:
            raise SparkUnavailable(f"the Spark engine needs Java 17 or newer; found Java {v} "
                                   "(set JAVA_HOME to a newer one)")
    if master is None and not _under_spark_submit():
        master = DEFAULT_MASTER
    b = SparkSession.builder.appName(app_name)
    if master:
        b = b.master(master)
    conf = {
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": str(Path(tempfile.gettempdir()) / "ringscope-spark-warehouse"),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if not _under_spark_submit():
        if driver_memory:
            conf["spark.driver.memory"] = _memory(driver_memory)
        # Quiet JVM: errors only, so a run's stderr stays the tool's own.
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={_log4j_file()}"
    for k, v in conf.items():
        b = b.config(k, v)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # pyspark's notice about pandas 3
            spark = b.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - JVM start failures come in many types
        msg = " ".join(str(exc).split())[:200]
        raise SparkUnavailable(f"Spark did not start ({type(exc).__name__}: {msg})") from None
    for k in _RUNTIME:   # also on a session that was already running
        spark.conf.set(k, conf[k])
    if shuffle_partitions is None:
        # Local mode (also under spark-submit --master local[N]): as many partitions as
        # cores, unless spark-submit was told otherwise. Clusters keep Spark's default
        # (or --conf spark.sql.shuffle.partitions) and adaptive execution.
        cores = _local_cores(spark.sparkContext.master)
        given = spark.sparkContext.getConf().contains("spark.sql.shuffle.partitions")
        if cores and not (given and _under_spark_submit()):
            shuffle_partitions = max(2, cores)
    if shuffle_partitions:
        spark.conf.set("spark.sql.shuffle.partitions", str(int(shuffle_partitions)))
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def to_spark_sql(sql: str) -> str:
    """Transpile one statement of the plan from DuckDB's dialect to Spark SQL.

    sqlglot does the dialect work (``TIMESTAMP`` → ``TIMESTAMP_NTZ``, null
    ordering, casts). The one function it has no mapping for is rewritten here:
    ``epoch_us(ts)`` → ``UNIX_MICROS(CAST(ts AS TIMESTAMP_LTZ))`` (exact: the
    session time zone is UTC).

    >>> to_spark_sql("SELECT epoch_us(ts) AS us, ts::DATE AS d FROM e WHERE ts < TIMESTAMP '2020-01-02 00:00:00'")
    "SELECT UNIX_MICROS(CAST(ts AS TIMESTAMP_LTZ)) AS us, CAST(ts AS DATE) AS d FROM e WHERE ts < CAST('2020-01-02 00:00:00' AS TIMESTAMP_NTZ)"
    """
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError:
        raise SparkUnavailable("the Spark engine needs sqlglot: pip install 'ringscope[spark]' "
                               "(make setup installs it)") from None

    def rewrite(node):
        if isinstance(node, exp.Anonymous) and node.name.lower() == "epoch_us":
            return exp.Anonymous(this="UNIX_MICROS", expressions=[
                exp.cast(node.expressions[0], exp.DataType.build("TIMESTAMPLTZ"))])
        return node

    tree = sqlglot.parse_one(sql, read="duckdb").transform(rewrite)
    return tree.sql(dialect="spark")


def stage(con: duckdb.DuckDBPyConnection, folder: Path | str) -> dict[str, str]:
    """Write the validated tables the plan reads as Parquet into ``folder``.

    ``ev`` keeps its compact integer keys; its event code becomes a signed
    TINYINT (Parquet's unsigned types are not Spark's). Timestamps stay
    time-zone-free (Spark reads them as TIMESTAMP_NTZ, like DuckDB's TIMESTAMP).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    queries = {
        "ev": "SELECT aid, ts, did, iid, CAST(et AS TINYINT) AS et, tid, rec FROM ev",
        "accounts": "SELECT aid, account_id, account_type, created_at, partner_id FROM accounts",
        "partners": "SELECT partner_id, name, partner_type, onboarded_at FROM partners",
        "relationships": "SELECT merchant, buyer, first_order_at FROM relationships",
    }
    paths = {}
    for name, q in queries.items():
        path = folder / f"{name}.parquet"
        target = str(path).replace("'", "''")
        con.execute(f"COPY ({q}) TO '{target}' (FORMAT parquet, COMPRESSION zstd, "
                    f"ROW_GROUP_SIZE 1000000)")
        paths[name] = str(path.resolve())
    return paths


def run_spark(spark, steps: list[Step]) -> dict[str, pd.DataFrame]:
    """Run ``steps`` in Spark: temp views (``table`` steps cached), results via Arrow."""
    results, cached = {}, []
    try:
        for s in steps:
            df = spark.sql(to_spark_sql(s.sql))
            if s.kind == "result":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")   # pyspark's notice about pandas 3
                    results[s.name] = df.toPandas()
                continue
            if s.kind == "table":
                df = df.persist()
                cached.append(df)
            df.createOrReplaceTempView(s.name)
    finally:
        for df in cached:
            df.unpersist()
    return results


def aggregate_spark(spark, staged: dict[str, str], as_of=None) -> Aggregates:
    """The heavy stage on Spark over the Parquet tables from :func:`stage`."""
    for name in STAGED:
        spark.read.parquet(staged[name]).createOrReplaceTempView(name)
    return assemble(run_spark(spark, plan(as_of)), as_of_bound(as_of))


class SparkAggregator:
    """A workspace staged for Spark and a session: ``aggregate(as_of)`` as often as needed.

    The tables are staged into a fresh folder inside ``staging`` (the system's
    temporary folder when None; on a cluster, a shared mount every executor
    sees at the same path), removed again by :meth:`close`. The session is
    left running: another run in this process reuses it.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, staging: Path | str | None = None, *,
                 master: str | None = None, driver_memory: str | None = "2g",
                 timings: dict[str, float] | None = None):
        import time

        if staging is not None:
            Path(staging).mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="ringscope-spark-",
                                            dir=str(staging) if staging is not None else None))
        t0 = time.perf_counter()
        self.spark = session(master, driver_memory=driver_memory)
        t1 = time.perf_counter()
        self.staged = stage(con, self.folder)
        t2 = time.perf_counter()
        if timings is not None:
            timings["spark_session"] = round(t1 - t0, 3)
            timings["spark_stage"] = round(t2 - t1, 3)
        log.info("spark %s (master %s): session %.1fs, staged in %.1fs", self.spark.version,
                 self.spark.sparkContext.master, t1 - t0, t2 - t1)

    @property
    def master(self) -> str:
        return self.spark.sparkContext.master

    @property
    def version(self) -> str:
        return self.spark.version

    def aggregate(self, as_of=None) -> Aggregates:
        return aggregate_spark(self.spark, self.staged, as_of)

    def close(self) -> None:
        for name in STAGED:
            try:
                self.spark.catalog.dropTempView(name)
            except Exception:  # noqa: BLE001 - best effort
                pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
