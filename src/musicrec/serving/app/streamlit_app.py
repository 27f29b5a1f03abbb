"""The app's entry script: ``streamlit run src/musicrec/serving/app/streamlit_app.py -- [--models DIR | --run-id ID]``."""

from musicrec.serving.app import ui

ui.main()
