"""Serving a trained model to people: the demo page and its JSON API (demo.py)."""
