"""Page script (the app's navigation runs it): see musicrec.serving.app.ui.similar_page."""

from musicrec.serving.app import ui

ui.similar_page()
