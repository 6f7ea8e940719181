"""The web app that shows the mirrored questions live (built in the web issue)."""
