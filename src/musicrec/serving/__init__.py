"""Recommendations from a trained models folder or an MLflow run, with explanations; the ``musicrec`` CLI."""
