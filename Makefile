# musicrec: `make repro` runs the pipeline, `make test` runs the test suite.
# Both create .venv from the pinned requirements.txt first (once).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DVC := $(VENV)/bin/dvc
PYTEST_ARGS ?=

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export OPENBLAS_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export PYTHONHASHSEED := 0

.PHONY: help setup repro test test-scale status metrics plots exp-grid exp-show clean-venv
help:
	@echo "make repro       create .venv (once) and run the pipeline (dvc repro)"
	@echo "make test        create .venv (once) and run the whole test suite"
	@echo "make metrics     dvc metrics show; make plots: dvc plots show"
	@echo "make exp-grid    queue and run a small ALS grid with dvc exp; make exp-show compares them"
	@echo "make bench       run the benchmarks (see benchmarks/README.md)"
	@echo "make services-up / services-down / push / pull / ui   (local S3 + MLflow server)"

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

setup: $(VENV)/.installed

repro: $(VENV)/.installed
	$(DVC) repro

status: $(VENV)/.installed
	$(DVC) status

metrics: $(VENV)/.installed
	$(DVC) metrics show

# the nDCG@K, recall@K, precision-recall, nDCG-per-experiment and coverage-vs-nDCG plots, offline
# (.dvc/config plots.html_template); `make plots REVS="HEAD <exp> ..."` compares experiments (dvc plots diff)
plots: $(VENV)/.installed
	$(DVC) plots $(if $(REVS),diff $(REVS),show)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# the 10M-row streaming scale test (not in the default suite)
test-scale: $(VENV)/.installed
	$(PY) -m pytest -m scale -p no:cacheprovider $(PYTEST_ARGS)

# A small ALS grid as DVC experiments (data stages and the other models stay cached); best first.
GRID ?= -S 'train.als.factors=32,64,128' -S 'train.als.regularization=0.01,0.1' -S 'train.als.alpha=1,4'
exp-grid: $(VENV)/.installed
	$(DVC) exp run --queue $(GRID)
	$(DVC) exp run --run-all --jobs 1
	$(MAKE) --no-print-directory exp-show

# dvc exp show cut to data.source, the trained models' changed params and their nDCG/recall (mk/exp_show.py)
exp-show: $(VENV)/.installed
	$(PY) mk/exp_show.py --md

clean-venv:
	rm -rf $(VENV)

-include mk/*.mk
