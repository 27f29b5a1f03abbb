"""MLflow: the evaluate stage's one run (a no-op when tracking is off), its provenance and models.

``run`` opens the pipeline's run and logs its results, ``provenance`` computes the run's git
state, changed params and DVC md5s (no MLflow import: the report uses it too), ``datasets`` logs
the data read as MLflow inputs, ``logged_models`` logs each model as a pyfunc (``pyfunc_model``,
models from code) once per content and keeps the registry's ``champion`` alias, ``server`` picks
and checks the tracking store, ``logger`` logs params, metrics and artifacts and ``redact`` keeps
secrets out of them.
"""
