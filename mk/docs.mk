# README's screenshots and the DVC plot templates' colours. Included by the main Makefile, which defines
# VENV, PY and $(VENV)/.installed-dev.
.PHONY: screenshots plot-templates

screenshots: $(VENV)/.installed-dev ## README's MLflow run page and DVC plots page, headless Chromium (reports/screenshots/)
	$(PY) mk/screenshots.py

plot-templates: $(VENV)/.installed ## the DVC plot templates' model colours, from the model registry (after adding a model)
	$(PY) mk/plot_templates.py
