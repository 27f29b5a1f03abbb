"""Page script (the app's navigation runs it): see musicrec.serving.app.ui.songs_page."""

from musicrec.serving.app import ui

ui.songs_page()
