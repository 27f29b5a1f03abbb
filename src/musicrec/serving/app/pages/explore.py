"""Page script (the app's navigation runs it): see musicrec.serving.app.ui.explore_page."""

from musicrec.serving.app import ui

ui.explore_page()
