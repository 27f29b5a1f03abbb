"""Page script (the app's navigation runs it): see musicrec.serving.app.ui.listener_page."""

from musicrec.serving.app import ui

ui.listener_page()
