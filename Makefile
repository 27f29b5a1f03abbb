# musicrec: `make` lists every target (from the `## ` comment on each target line, here and in mk/*.mk).
# `make repro` installs the runtime requirements (requirements.txt) into .venv once and runs the pipeline;
# `make test` adds the development requirements (requirements-dev.txt) and runs the test suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DVC := $(VENV)/bin/dvc
PYTEST_ARGS ?=
NOTEBOOK_PORT ?= 8888
# extra pip-compile options for `make lock`, e.g. LOCK_ARGS="--upgrade-package mlflow"
LOCK_ARGS ?=
PIP_COMPILE := $(VENV)/bin/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export OPENBLAS_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export PYTHONHASHSEED := 0

.DEFAULT_GOAL := help
.PHONY: help setup setup-dev lock notebooks repro test test-scale status metrics plots exp-grid exp-show clean-venv

help: ## list every target with what it does (the default goal)
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z0-9_-]+:[^=]*## / {printf "  make %-16s %s\n", $$1, $$2}' \
	  $(MAKEFILE_LIST)

# Runtime set (pipeline, CLI, serving, MLflow logging, local services); the dev set adds tests, notebooks, pip-tools.
$(VENV)/.installed: requirements.txt requirements.in pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

setup: $(VENV)/.installed ## create .venv with the runtime requirements (requirements.txt) only

setup-dev: $(VENV)/.installed-dev ## create .venv with the runtime and development requirements (requirements-dev.txt)

lock: $(VENV)/.installed-dev ## re-pin requirements.txt / requirements-dev.txt from the .in files (pip-compile keeps existing pins)
	$(PIP_COMPILE) --output-file requirements.txt requirements.in
	$(PIP_COMPILE) --output-file requirements-dev.txt requirements-dev.in

notebooks: $(VENV)/.installed-dev ## JupyterLab on 127.0.0.1 (token login, no browser) for notebooks/
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --port $(NOTEBOOK_PORT) --no-browser notebooks/

repro: $(VENV)/.installed ## run the pipeline (dvc repro; runtime requirements only)
	$(DVC) repro

status: $(VENV)/.installed ## dvc status: which stages are out of date
	$(DVC) status

metrics: $(VENV)/.installed ## dvc metrics show
	$(DVC) metrics show

# the nDCG@K, recall@K, precision-recall, nDCG-per-experiment and coverage-vs-nDCG plots, offline
# (.dvc/config plots.html_template); `make plots REVS="HEAD <exp> ..."` compares experiments (dvc plots diff)
plots: $(VENV)/.installed ## dvc plots show, offline (REVS="HEAD <exp> ...": dvc plots diff)
	$(DVC) plots $(if $(REVS),diff $(REVS),show)

test: $(VENV)/.installed-dev ## the whole test suite (what CI runs); PYTEST_ARGS=... narrows it
	$(PY) -m pytest $(PYTEST_ARGS)

test-scale: $(VENV)/.installed-dev ## the 10M-row streaming scale test (not in the default suite)
	$(PY) -m pytest -m scale -p no:cacheprovider $(PYTEST_ARGS)

# A small ALS grid as DVC experiments (data stages and the other models stay cached), each one a
# `dvc exp run --temp` (not DVC's queue, whose worker can stop half way: mk/exp_grid.py); best first.
GRID ?= -S 'train.als.factors=32,64,128' -S 'train.als.regularization=0.01,0.1' -S 'train.als.alpha=1,4'
exp-grid: $(VENV)/.installed ## run a small ALS grid as DVC experiments, one after the other (mk/exp_grid.py), then exp-show
	$(PY) mk/exp_grid.py $(GRID)
	$(MAKE) --no-print-directory exp-show

# dvc exp show cut to data.source, the trained models' changed params and their nDCG/recall (mk/exp_show.py)
exp-show: $(VENV)/.installed ## compare the experiments: data.source, changed params of trained models, nDCG/recall
	$(PY) mk/exp_show.py --md

clean-venv: ## delete .venv (the next make target recreates it)
	rm -rf $(VENV)

-include mk/*.mk
