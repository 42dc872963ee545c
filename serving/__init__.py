"""Serving a trained model to people: the demo page and its JSON API (`python3 demo.py`)."""
