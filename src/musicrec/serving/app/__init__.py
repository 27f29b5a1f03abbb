"""The Streamlit app over a trained models folder (``make app``).

* :mod:`.source`: where the models come from (``AppSource``: the workspace's ``data/models``,
  an MLflow run ``--run-id`` or a registered model ``--model-uri models:/NAME@ALIAS``), parsed
  from the command line after ``streamlit run ... --``;
* :mod:`.workspace`: the view model, ``Workspace``: every page's data as DataFrames, computed
  without Streamlit (recommendations, cold start with live re-weighting and MMR re-ranking,
  similar tracks side by side, previews, search), loaded once;
* :mod:`.stats`: the Explore page's data (long tail, listener activity, tags, audio
  features, the model comparison from ``reports/`` and the run's provenance);
* :mod:`.ui`: the Streamlit rendering of each page (thin: widgets in, view model out), and the
  readable page shown when no models are there; ``streamlit_app.py`` is the entry script and
  ``pages/`` the page scripts (one call each).
"""
