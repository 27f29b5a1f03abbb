# Local S3 (SeaweedFS) + MLflow tracking server, and the DVC remote on top of them.
# Included by the main Makefile, which defines VENV, PY, DVC and $(VENV)/.installed.
# Ports: MUSICREC_S3_PORT (8333), MUSICREC_MLFLOW_PORT (5000), MUSICREC_WEED_{MASTER,VOLUME,FILER}_PORT.
# Keys: MUSICREC_S3_ACCESS_KEY / MUSICREC_S3_SECRET_KEY, else generated into .services/credentials.env.
# State (data, logs, keys, PID files): MUSICREC_SERVICES_DIR (default .services). The bucket has versioning on.
# MLflow server: basic auth; its admin login is MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in credentials.env.
SERVICES := $(PY) -m musicrec.devservices
DVC_ARGS ?=
MLFLOW_UI_PORT ?= 5000
SERVICES_DIR := $(or $(MUSICREC_SERVICES_DIR),.services)
SERVICES_CREDENTIALS := $(SERVICES_DIR)/credentials.env

# Recipes that talk to the local MLflow server (dvc repro, musicrec ...) get its login, unless one is set
# already; only when MLFLOW_TRACKING_URI is a 127.0.0.1 server, so the login never goes to another host.
ifneq ($(filter http://127.0.0.1:%,$(MLFLOW_TRACKING_URI)),)
ifeq ($(MLFLOW_TRACKING_PASSWORD),)
stored = $(shell sed -n 's/^$(1)=//p' $(SERVICES_CREDENTIALS) 2>/dev/null)
stored_user := $(call stored,MLFLOW_TRACKING_USERNAME)
stored_pass := $(call stored,MLFLOW_TRACKING_PASSWORD)
ifneq ($(and $(stored_user),$(stored_pass)),)
export MLFLOW_TRACKING_USERNAME := $(stored_user)
export MLFLOW_TRACKING_PASSWORD := $(stored_pass)
endif
endif
endif

.PHONY: services-up services-down services-status check-remote push pull ui

services-up: $(VENV)/.installed ## start local S3 (SeaweedFS) + MLflow server, write .dvc/config.local
	$(SERVICES) up

services-down: $(VENV)/.installed ## stop the processes services-up started
	$(SERVICES) down

services-status: $(VENV)/.installed ## are the local services running and answering
	$(SERVICES) status

check-remote: $(VENV)/.installed ## one line: is the DVC remote reachable with these keys
	@$(SERVICES) check-remote

push: check-remote ## dvc push every out of dvc.lock to the remote, then check that the remote has them all
	$(DVC) push $(DVC_ARGS)
	@if [ -z "$(DVC_ARGS)" ]; then $(SERVICES) check-pull; fi

# check-pull: which cached outs of dvc.lock the remote lacks (one line each, with what to run), before
# `dvc pull` and after `dvc push`; with DVC_ARGS (targets or options for dvc) that check is left to dvc.
pull: check-remote ## dvc pull; first one line per out of dvc.lock missing from the remote
	@if [ -z "$(DVC_ARGS)" ]; then $(SERVICES) check-pull; fi
	$(DVC) pull $(DVC_ARGS)

# The tracking server's UI when one is configured or running; else a local `mlflow ui` on ./mlflow.db in
# MLflow's lightest mode: one worker, no GenAI job runner (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false; there is
# no flag for it): 2 processes / ~0.5 GB RSS instead of 15 / ~2.4 GB. MLflow has no server setting for the
# default view, so the printed link opens the model-training view (?workflowType=machine_learning).
MLFLOW_UI_VIEW := \#/experiments?workflowType=machine_learning
ui: $(VENV)/.installed ## the MLflow UI (tracking server, else mlflow ui on ./mlflow.db, lightest mode)
	@if url=$$($(SERVICES) ui-url 2>/dev/null); then \
	  echo "MLflow UI: $$url/$(MLFLOW_UI_VIEW)"; \
	  case "$$url" in http://127.0.0.1:*) \
	    echo "  log in as $$(sed -n 's/^MLFLOW_TRACKING_USERNAME=//p' $(SERVICES_CREDENTIALS) 2>/dev/null)," \
	         "password: the MLFLOW_TRACKING_PASSWORD line of $(SERVICES_CREDENTIALS)";; \
	  esac; \
	else \
	  store="$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}"; \
	  echo "MLflow UI: http://127.0.0.1:$(MLFLOW_UI_PORT)/$(MLFLOW_UI_VIEW)  (store $$store; Ctrl-C stops it)"; \
	  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true \
	    $(VENV)/bin/mlflow ui --backend-store-uri "$$store" --host 127.0.0.1 --port $(MLFLOW_UI_PORT) --workers 1; \
	fi
