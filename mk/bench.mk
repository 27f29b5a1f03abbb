# Scale and speed benchmarks (benchmarks/README.md). Included by the main Makefile,
# which defines VENV, PY, DVC and $(VENV)/.installed.
# `make bench` (1M and 10M rows, ~8 min on 2 cores; SIZES=1m for a quick run) / `make bench-full` (adds 48M rows:
# 19 min measured on 2 cores, + 2.5 min to generate the 48M data once).
# Data is generated once and cached in $(BENCH_DIR) (git-ignored); results go to
# reports/benchmarks.json and reports/benchmarks.md.
SIZES ?= 1m,10m
BENCH_DIR ?= bench-data
BENCH_ARGS ?=

ANN_SIZES ?= 20k,50k,375k

.PHONY: bench bench-full bench-ann

bench: $(VENV)/.installed-dev ## the benchmarks, 1M and 10M rows (SIZES=1m for a quick run; benchmarks/README.md)
	$(PY) benchmarks/run.py --sizes $(SIZES) --workdir $(BENCH_DIR)/ $(BENCH_ARGS)

bench-full: $(VENV)/.installed-dev ## the benchmarks with 48M rows too (about 19 min on 2 cores)
	$(PY) benchmarks/run.py --sizes 1m,10m,48m --workdir $(BENCH_DIR)/ $(BENCH_ARGS)

# FAISS ANN vs exact top-10 over synthetic MF factors (benchmarks/bench_ann.py): reports/ann_benchmark.json and its
# section of reports/benchmarks.md. All three sizes: ~20 min on 2 cores (one thread; 4 GB peak at 375k).
bench-ann: $(VENV)/.installed ## FAISS ANN vs exact top-10 at 20k/50k/375k items (reports/benchmarks.md)
	$(PY) benchmarks/bench_ann.py --sizes $(ANN_SIZES) $(BENCH_ARGS)
