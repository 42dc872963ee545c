"""Sweeps: many runs of one recipe as an Optuna study (`python3 sweep.py`)."""
