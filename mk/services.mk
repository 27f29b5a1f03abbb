# Local S3 (SeaweedFS) + MLflow tracking server, and the DVC remote on top of them.
# Included by the main Makefile, which defines VENV, PY, DVC and $(VENV)/.installed.
# Ports: MUSICREC_S3_PORT (8333), MUSICREC_MLFLOW_PORT (5000), MUSICREC_WEED_{MASTER,VOLUME,FILER}_PORT.
# Keys: MUSICREC_S3_ACCESS_KEY / MUSICREC_S3_SECRET_KEY, else generated into .services/credentials.env.
# State (data, logs, keys, PID files): MUSICREC_SERVICES_DIR (default .services). The bucket has versioning on.
SERVICES := $(PY) -m musicrec.services
DVC_ARGS ?=
MLFLOW_UI_PORT ?= 5000

.PHONY: services-up services-down services-status check-remote push pull ui

services-up: $(VENV)/.installed
	$(SERVICES) up

services-down: $(VENV)/.installed
	$(SERVICES) down

services-status: $(VENV)/.installed
	$(SERVICES) status

check-remote: $(VENV)/.installed
	@$(SERVICES) check-remote

push: check-remote
	$(DVC) push $(DVC_ARGS)

pull: check-remote
	$(DVC) pull $(DVC_ARGS)

# The tracking server's UI when one is configured or running; else a local `mlflow ui` on ./mlflow.db.
ui: $(VENV)/.installed
	@if url=$$($(SERVICES) ui-url 2>/dev/null); then \
	  echo "MLflow UI: $$url"; \
	else \
	  store="$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}"; \
	  echo "MLflow UI: http://127.0.0.1:$(MLFLOW_UI_PORT)  (store $$store; Ctrl-C stops it)"; \
	  $(VENV)/bin/mlflow ui --backend-store-uri "$$store" --host 127.0.0.1 --port $(MLFLOW_UI_PORT); \
	fi
