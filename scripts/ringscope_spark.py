"""Entry point for ``spark-submit``: the ringscope CLI inside a Spark driver.

    spark-submit --master spark://head:7077 scripts/ringscope_spark.py \
        run EXPORT --out OUT --engine spark --spark-staging /shared/ringscope

The Spark session then uses the master and resources spark-submit was given
(``--spark-master`` is not needed). The driver's Python must have ringscope
installed (``PYSPARK_PYTHON``/``PYSPARK_DRIVER_PYTHON`` pointing at its venv);
the executors run only Spark SQL and need no Python packages.
"""

import sys

from analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
