# The Streamlit app (README: The app). Included by the main Makefile, which defines VENV, PY and
# $(VENV)/.installed. `make app` serves data/models (after `make repro` or `dvc pull`) on
# http://127.0.0.1:$(APP_PORT); `make app RUN_ID=<run id>` an MLflow run's models,
# `make app MODEL_URI=models:/musicrec@champion` a registered model (TRACKING_URI= for a server),
# `make app APP_MODELS=other/models`, and APP_ARGS= passes anything else (--matrices, --items).
APP_PORT ?= 8501
APP_MODELS ?=
RUN_ID ?=
MODEL_URI ?=
TRACKING_URI ?=
APP_ARGS ?=
APP_SCRIPT := src/musicrec/serving/app/streamlit_app.py

.PHONY: app

app: $(VENV)/.installed ## the Streamlit app on http://127.0.0.1:$(APP_PORT) (README: The app; RUN_ID= / MODEL_URI= / APP_MODELS=)
	$(PY) -m streamlit run $(APP_SCRIPT) --server.address 127.0.0.1 --server.port $(APP_PORT) \
	  --server.headless true --browser.gatherUsageStats false --client.toolbarMode viewer -- \
	  $(if $(APP_MODELS),--models '$(APP_MODELS)') $(if $(RUN_ID),--run-id '$(RUN_ID)') \
	  $(if $(MODEL_URI),--model-uri '$(MODEL_URI)') $(if $(TRACKING_URI),--tracking-uri '$(TRACKING_URI)') $(APP_ARGS)
