"""Workflows of many runs: planning and launching children, the worker processes, a search's
Optuna study."""
