#!/usr/bin/env bash
# Create or refresh the project's virtual environment and the system packages
# it needs. Idempotent; called by `make setup` (and so by `make demo`/`make test`).
set -euo pipefail
PYTHON="${1:-python3}"
VENV="${2:-.venv}"

# Chromium renders static charts (kaleido) and lets the tests load report.html.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing chromium (static chart export and report checks)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "setup: chromium not found; install it (e.g. 'sudo apt-get install chromium') for PNG/PDF charts" >&2
    fi
fi

# Java 17+ runs Apache Spark (--engine spark and tests/test_spark.py).
java_major() {
    local j="${JAVA_HOME:+$JAVA_HOME/bin/}java"
    command -v "$j" >/dev/null 2>&1 || { echo 0; return; }
    "$j" -version 2>&1 | sed -nE 's/.*version "(1\.)?([0-9]+).*/\2/p' | head -n1
}
if [ "$(java_major)" -lt 17 ] 2>/dev/null || [ -z "$(java_major)" ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing Java 17 (openjdk-17-jre-headless) for the Spark engine"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    else
        echo "setup: Java 17+ not found; install it (e.g. 'sudo apt-get install openjdk-17-jre-headless') for --engine spark" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[spark,dev]'

# Notebooks never reach git with outputs (they can hold real ids): .gitattributes routes
# *.ipynb through the nbstripout filter, configured here for this clone.
if git -C "$(dirname "$0")/.." rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$(dirname "$0")/.." && "$VENV/bin/nbstripout" --install) \
        || echo "setup: could not configure the nbstripout git filter" >&2
fi
