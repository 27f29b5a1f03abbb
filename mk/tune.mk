# Tuning and presets (README: Tuning). Included by the main Makefile, which defines VENV, PY, DVC and
# $(VENV)/.installed.
# `make exp PRESET=hetrec_lastfm_2k`: `dvc exp run -S key=value ...` with the values of
#   params/presets/<PRESET>.yaml (validated first: an unknown key names the preset file and the key).
# `make tune MODEL=als TRIALS=50`: Optuna TPE search of train.<MODEL> on the validation split of the built
#   interactions (data/processed/matrices: run `make repro` or `make exp PRESET=...` first), resumable
#   (optuna.db next to mlflow.db), every trial an MLflow child run; prints the winner's `dvc exp run -S ...`.
#   APPLY=run runs it; PRESET=name tunes over that preset's values; TUNE_ARGS passes more options
#   (`$(PY) -m musicrec.tuning tune --help`).
MODEL ?= als
TRIALS ?= 50
APPLY ?= print
PRESET ?=
EXP_ARGS ?=
TUNE_ARGS ?=

.PHONY: exp tune

exp: $(VENV)/.installed ## a dvc exp run with a preset's values: PRESET=<params/presets/NAME.yaml>
	@test -n "$(PRESET)" || { echo "usage: make exp PRESET=<name>, one of: $$(ls params/presets | sed 's/\.yaml$$//' | tr '\n' ' ')" >&2; exit 2; }
	@args="$$($(PY) -m musicrec.tuning preset '$(PRESET)')" || exit $$?; \
	  echo "$(DVC) exp run $$(echo $$args) $(EXP_ARGS)"; \
	  printf '%s\n' "$$args" | xargs $(DVC) exp run $(EXP_ARGS)

tune: $(VENV)/.installed ## Optuna search on validation: MODEL=als TRIALS=50 (README: Tuning)
	$(PY) -m musicrec.tuning tune --model $(MODEL) --trials $(TRIALS) --apply $(APPLY) \
	  $(if $(PRESET),--preset '$(PRESET)') $(TUNE_ARGS)
