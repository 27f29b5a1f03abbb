"""Hyperparameter tuning and presets (issue #15): ``make tune MODEL=als TRIALS=50``, ``make exp PRESET=name``.

* :mod:`~musicrec.tuning.space`: the search space of every tunable model (one place);
* :mod:`~musicrec.tuning.study`: the Optuna study (TPE, seeded, median pruning, SQLite
  storage next to ``mlflow.db``, resumable) run in process on the built interactions,
  selecting on validation only;
* :mod:`~musicrec.tuning.runs`: the MLflow parent run and a child run per trial (the only
  importer of mlflow here); :mod:`~musicrec.tuning.plots`: history and importance PNGs;
* :mod:`~musicrec.tuning.presets`: ``params/presets/<name>.yaml`` validated and turned into
  ``dvc exp run -S key=value`` arguments;
* ``python -m musicrec.tuning``: the command behind the make targets (``--help``).
"""
