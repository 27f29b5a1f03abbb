# Scale and speed benchmarks (benchmarks/README.md). Included by the main Makefile,
# which defines VENV, PY, DVC and $(VENV)/.installed.
# `make bench` (1M and 10M rows, ~15 min on 2 cores; SIZES=1m for a quick run) / `make bench-full` (adds 48M rows:
# 40 min measured on 2 cores, + 2.5 min to generate the 48M data once).
# Data is generated once and cached in $(BENCH_DIR) (git-ignored); results go to
# reports/benchmarks.json and reports/benchmarks.md.
SIZES ?= 1m,10m
BENCH_DIR ?= bench-data
BENCH_ARGS ?=

.PHONY: bench bench-full

bench: $(VENV)/.installed-dev ## the benchmarks, 1M and 10M rows (SIZES=1m for a quick run; benchmarks/README.md)
	$(PY) benchmarks/run.py --sizes $(SIZES) --workdir $(BENCH_DIR)/ $(BENCH_ARGS)

bench-full: $(VENV)/.installed-dev ## the benchmarks with 48M rows too (about 40 min on 2 cores)
	$(PY) benchmarks/run.py --sizes 1m,10m,48m --workdir $(BENCH_DIR)/ $(BENCH_ARGS)
