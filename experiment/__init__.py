"""Experiment runner: config -> train -> run folder."""
