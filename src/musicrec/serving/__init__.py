"""Recommendations from a trained models folder or an MLflow run, with explanations; the ``musicrec`` CLI.

``artifacts`` finds and downloads the models folder, ``explain`` writes the ``why`` column,
``recommender`` holds :class:`~musicrec.serving.recommender.ModelServer` (load, recommend, similar, id
search) and ``cli`` the command line.
"""
