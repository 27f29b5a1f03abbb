"""MLflow: the run as the train and evaluate stages use it (a no-op when tracking is off), and the logging helpers."""
