"""MLflow: the run as the train and evaluate stages use it (a no-op when tracking is off), and the logging helpers.

``run`` opens the pipeline's run, ``server`` picks and checks the tracking store, ``logger`` logs
params, metrics and artifacts, ``redact`` keeps secrets out of them and ``provenance`` tags a run
with its git commit and data hashes.
"""
