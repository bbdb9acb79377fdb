# ringscope: find data-harvesting rings in platform exports.
# `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SEED ?= 7
EXPORTS ?= data/demo/export
OUT ?= reports/latest

.PHONY: help setup demo test test-fast report lab bench quality lint clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(PYTHON) $(VENV)
	@touch $(STAMP)

setup: $(STAMP) ## create or refresh .venv and the system packages (chromium for static charts)

demo: setup ## generate the demo export and run the pipeline into reports/demo/
	$(PY) -m analysis.workshop synth data/demo --seed $(SEED) --accounts 6000 --days 120
	$(PY) -m analysis run data/demo/export --out reports/demo --seed $(SEED)
	$(PY) -m analysis.workshop evaluate reports/demo --labels data/demo/labels.csv

test: setup ## run both test tiers (fast, then slow)
	$(PY) -m pytest -m "not slow"
	$(PY) -m pytest -m slow

test-fast: setup ## the fast tier only: unit tests, hand-built exports, doctests (< 2 min)
	$(PY) -m pytest -m "not slow"

RING ?=
AS_OF ?=
FRESH ?=
report: setup ## run the five notebooks on EXPORTS= into OUT= (optional RING=, AS_OF=, FRESH=1)
	$(PY) -m analysis report $(EXPORTS) --out $(OUT) --seed $(SEED) \
		$(if $(RING),--ring $(RING)) $(if $(AS_OF),--as-of $(AS_OF)) $(if $(FRESH),--fresh)

lab: setup ## JupyterLab on the notebooks, with EXPORTS= (and OUT=) as their default export
	RINGSCOPE_EXPORT="$(abspath $(EXPORTS))" RINGSCOPE_OUT="$(abspath $(OUT))" \
		$(VENV)/bin/jupyter lab notebooks

quality: setup ## detection quality per scenario on held-out seeds -> benchmarks/quality.md
	$(PY) -m analysis.workshop.quality --out benchmarks/quality.md

bench: setup ## speed and memory benchmarks -> benchmarks/results.md
	$(PY) -m analysis.workshop.bench --out benchmarks/results.md

lint: setup ## ruff
	$(VENV)/bin/ruff check analysis tests

clean: ## remove generated data and reports
	rm -rf reports data/demo benchmarks/work
